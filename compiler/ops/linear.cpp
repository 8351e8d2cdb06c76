// Matrix products: Gemm (act(alpha*A'B' + beta*C) on 2-D operands, C broadcast
// to [M, N], act the fused epilogue activation) and MatMul (numpy matmul: 1-D promotion, broadcast batch dims).
// Both kernels accumulate a whole output row per k: y[i,:] += a[i,k] * b[k,:].
#include <string>

#include "compiler/ir/graph.h"
#include "compiler/ops/epilogue.h"
#include "compiler/ops/families.h"
#include "compiler/ops/helpers.h"

namespace kiln {

namespace {

// y[M,N] += a[M,K] * b[K,N], where a(i,k) = a[i*aRow + k*aCol] and
// b(k,j) = b[k*bRow + j*bCol] (strides express transposes).
void matmulAccumulate(const float* a, int64_t aRow, int64_t aCol, const float* b, int64_t bRow, int64_t bCol,
                      float* y, int64_t m, int64_t k, int64_t n) {
  for (int64_t i = 0; i < m; ++i) {
    float* yRow = y + i * n;
    for (int64_t p = 0; p < k; ++p) {
      const float av = a[i * aRow + p * aCol];
      const float* bRowPtr = b + p * bRow;
      for (int64_t j = 0; j < n; ++j) yRow[j] += av * bRowPtr[j * bCol];
    }
  }
}

std::vector<TensorType> inferGemm(const InferContext& ctx) {
  for (size_t i = 0; i < ctx.numInputs(); ++i)
    if (ctx.hasInput(i)) requireFloat(ctx, i);
  const Shape& a = ctx.input(0).shape;
  const Shape& b = ctx.input(1).shape;
  ctx.check(a.rank() == 2 && b.rank() == 2, "A " + a.str() + " and B " + b.str() + " must be 2-D");
  const bool transA = ctx.attrs().getInt("transA") != 0, transB = ctx.attrs().getInt("transB") != 0;
  const int64_t m = transA ? a[1] : a[0], ka = transA ? a[0] : a[1];
  const int64_t kb = transB ? b[1] : b[0], n = transB ? b[0] : b[1];
  ctx.check(ka != kBatch && kb != kBatch && n != kBatch,
            "the symbolic batch may only be A's rows (A " + a.str() + ", B " + b.str() + ")");
  ctx.check(ka == kb, "inner dims differ: A " + a.str() + (transA ? " (transposed)" : "") + ", B " + b.str() +
                          (transB ? " (transposed)" : ""));
  const Shape out({m, n});
  if (ctx.hasInput(2)) {
    const Shape& c = ctx.input(2).shape;
    bool broadcasts = c.rank() <= 2;  // unidirectionally: each dim equal to out's, or 1
    for (size_t i = 0; broadcasts && i < c.rank(); ++i) {
      const int64_t want = out[2 - c.rank() + i];
      broadcasts = c[i] == want || c[i] == 1;
    }
    ctx.check(broadcasts, "C " + c.str() + " does not broadcast to " + out.str());
  }
  return {{DType::F32, out}};
}

void gemmReference(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  Tensor& y = ctx.output(0);
  const bool transA = ctx.attrs().getInt("transA") != 0, transB = ctx.attrs().getInt("transB") != 0;
  const float alpha = ctx.attrs().getFloat("alpha"), beta = ctx.attrs().getFloat("beta");
  const int64_t m = y.shape()[0], n = y.shape()[1], k = transA ? a.shape()[0] : a.shape()[1];
  const int64_t aCols = a.shape()[1], bCols = b.shape()[1];
  float* yd = y.data<float>();
  matmulAccumulate(a.data<float>(), transA ? 1 : aCols, transA ? aCols : 1, b.data<float>(), transB ? 1 : bCols,
                   transB ? bCols : 1, yd, m, k, n);
  for (int64_t i = 0; i < m * n; ++i) yd[i] *= alpha;
  if (ctx.hasInput(2)) {
    const Tensor& c = ctx.input(2);
    const float* cd = c.data<float>();
    forEachBroadcast(y.shape(), {broadcastStrides(c.shape(), y.shape())},
                     [&](int64_t i, const std::vector<int64_t>& off) { yd[i] += beta * cd[off[0]]; });
  }
  Epilogue(ctx.attrs()).apply(yd, m * n);
}

int64_t gemmMacs(const Node& node) {
  const Shape& a = node.input(0)->type.shape;
  const Shape y = node.output()->type.shape.withBatch(1);
  return y[0] * y[1] * (node.attrs.getInt("transA") != 0 ? a[0] : a[1]);
}

// MatMul operands as stacks of matrices: 1-D A is a row [1,K], 1-D B a
// column [K,1]; the promoted dims are dropped from the output, which is
// the broadcast batch dims followed by the matrix dims kept.
struct MatMulDims {
  Shape aBatch, bBatch;
  int64_t m, k, n;
  size_t matrixDims;  // trailing output dims that are not batch dims
};

MatMulDims matmulDims(const Shape& a, const Shape& b) {
  const bool rowA = a.rank() == 1, colB = b.rank() == 1;
  return {Shape(std::vector<int64_t>(a.dims.begin(), a.dims.end() - (rowA ? 1 : 2))),
          Shape(std::vector<int64_t>(b.dims.begin(), b.dims.end() - (colB ? 1 : 2))),
          rowA ? 1 : a[a.rank() - 2],
          a[a.rank() - 1],
          colB ? 1 : b[b.rank() - 1],
          size_t{rowA ? 0u : 1u} + size_t{colB ? 0u : 1u}};
}

Shape batchDims(const Shape& out, const MatMulDims& d) {
  return Shape(std::vector<int64_t>(out.dims.begin(), out.dims.end() - static_cast<std::ptrdiff_t>(d.matrixDims)));
}

std::vector<TensorType> inferMatMul(const InferContext& ctx) {
  requireFloat(ctx, 0);
  requireFloat(ctx, 1);
  const Shape& a = ctx.input(0).shape;
  const Shape& b = ctx.input(1).shape;
  ctx.check(a.rank() >= 1 && b.rank() >= 1, "A " + a.str() + " and B " + b.str() + " must have rank >= 1");
  const MatMulDims d = matmulDims(a, b);
  const int64_t kb = b.rank() == 1 ? b[0] : b[b.rank() - 2];
  ctx.check(d.k != kBatch && kb != kBatch && d.n != kBatch,
            "the symbolic batch of A " + a.str() + " / B " + b.str() + " would be contracted");
  ctx.check(d.k == kb, "inner dims differ: A " + a.str() + ", B " + b.str());
  Shape out = broadcastShapes(ctx, d.aBatch, d.bBatch);
  if (a.rank() > 1) out.dims.push_back(d.m);
  if (b.rank() > 1) out.dims.push_back(d.n);
  for (size_t i = 1; i < out.rank(); ++i)
    ctx.check(out[i] != kBatch, "the symbolic batch would move to dim " + std::to_string(i) + " of " + out.str());
  return {{DType::F32, out}};
}

void matmulReference(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  Tensor& y = ctx.output(0);
  const MatMulDims d = matmulDims(a.shape(), b.shape());
  const Shape batch = batchDims(y.shape(), d);
  const int64_t aSize = d.m * d.k, bSize = d.k * d.n, ySize = d.m * d.n;
  const float* ad = a.data<float>();
  const float* bd = b.data<float>();
  float* yd = y.data<float>();
  forEachBroadcast(batch, {broadcastStrides(d.aBatch, batch), broadcastStrides(d.bBatch, batch)},
                   [&](int64_t i, const std::vector<int64_t>& off) {
                     matmulAccumulate(ad + off[0] * aSize, d.k, 1, bd + off[1] * bSize, d.n, 1, yd + i * ySize, d.m,
                                      d.k, d.n);
                   });
}

int64_t matmulMacs(const Node& node) {
  const MatMulDims d = matmulDims(node.input(0)->type.shape, node.input(1)->type.shape);
  const int64_t m = d.m == kBatch ? 1 : d.m;
  return batchDims(node.output()->type.shape.withBatch(1), d).numElements() * m * d.k * d.n;
}

}  // namespace

void registerLinearOps(OpRegistry& r) {
  OpDef gemm;
  gemm.name = "Gemm";
  gemm.minInputs = 2;
  gemm.maxInputs = 3;
  gemm.attrs = {{"alpha", AttrKind::Float, AttrValue{1.f}},
                {"beta", AttrKind::Float, AttrValue{1.f}},
                {"transA", AttrKind::Int, AttrValue{int64_t{0}}},
                {"transB", AttrKind::Int, AttrValue{int64_t{0}}}};
  for (AttrSpec& s : epilogueAttrSpecs()) gemm.attrs.push_back(std::move(s));
  gemm.infer = [](const InferContext& ctx) {
    checkEpilogue(ctx);
    return inferGemm(ctx);
  };
  gemm.reference = gemmReference;
  gemm.macs = gemmMacs;
  r.add(std::move(gemm));

  OpDef matmul;
  matmul.name = "MatMul";
  matmul.minInputs = matmul.maxInputs = 2;
  matmul.infer = inferMatMul;
  matmul.reference = matmulReference;
  matmul.macs = matmulMacs;
  r.add(std::move(matmul));
}

}  // namespace kiln
