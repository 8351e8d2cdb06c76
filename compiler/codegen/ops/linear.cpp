// Emitters for Gemm (alpha, beta, transA/transB, C broadcast, fused epilogue
// activation) and MatMul (numpy semantics: 1-D promotion, batch broadcast).
//
// Both are one matrix-product kernel, y[M,N] = A[M,K] * B[K,N] per batch
// matrix: a register tile of a few rows of y x a few vectors of adjacent
// columns accumulates rank-1 updates over k (broadcast a(i,k) times a vector
// of row k of B). A constant B (the usual case: the layer's weights) is
// repacked at compile time into column panels of the tile width, [panel][K]
// [tile columns], so the k loop streams through contiguous memory whatever
// transB says; a run-time B is read in place (strided when transposed).
// Per sample, Gemm usually has M = 1 (a matrix-vector product that streams
// B once), so a one-row tile gets the whole accumulator budget in columns.
#include "compiler/codegen/ops/families.h"
#include "compiler/codegen/ops/vector_kernels.h"

namespace kiln::codegen {

namespace {

// One matrix product of the batch: element (i, k) of A at a + i*aRow + k*aCol,
// (k, n) of an unpacked B at b + k*bRow + n*bCol.
struct ProductShape {
  int64_t m, k, n;
  int64_t aRow, aCol, bRow, bCol;
};

// Tile of the product: rows of y x columns (a multiple of the vector width).
struct TileShape {
  int64_t rows, cols;
};

TileShape tileShape(const TargetInfo& t, int64_t m) {
  const int64_t rows = std::min<int64_t>(m, 4);
  return {rows, std::clamp<int64_t>(kernels::accumulatorBudget(t) / rows, 1, 8) * t.vectorFloats};
}

// B (one batch matrix after another) as panels of `panel` columns:
// element (k, n) of the panel starting at column n0 (width w) is at
// n0*K + k*w + (n - n0) within its matrix.
Tensor packPanels(const Tensor& b, const ProductShape& p, int64_t matrices, int64_t panel) {
  Tensor packed(DType::F32, Shape({matrices * p.k * p.n}));
  const float* src = b.data<float>();
  float* dst = packed.data<float>();
  for (int64_t bb = 0; bb < matrices; ++bb)
    for (int64_t n0 = 0; n0 < p.n; n0 += panel) {
      const int64_t width = std::min(panel, p.n - n0);
      for (int64_t k = 0; k < p.k; ++k)
        for (int64_t j = 0; j < width; ++j)
          dst[bb * p.k * p.n + n0 * p.k + k * width + j] = src[bb * p.k * p.n + k * p.bRow + (n0 + j) * p.bCol];
    }
  return packed;
}

// Broadcast of the batch dims: output batch matrix i reads A's matrix
// sum_d idx_d(i) * aStride_d and B's likewise (stride 0 where broadcast).
struct BatchDim {
  int64_t size, outStride, aStride, bStride;
};

// y = epilogue(A*B) for every batch matrix; `finish` turns an accumulated
// chunk (rows starting at `row`, columns at `col`) into the stored value.
using FinishFn = std::function<llvm::Value*(llvm::Value* acc, llvm::Value* row, llvm::Value* col, int64_t width)>;

class MatrixProduct {
 public:
  MatrixProduct(EmitContext& ctx, ProductShape p, const Operand& a, const Operand& b, std::vector<BatchDim> batch,
                FinishFn finish)
      : ctx_(ctx),
        b_(ctx.b),
        p_(p),
        tile_(tileShape(ctx.target, p.m)),
        batch_(std::move(batch)),
        finish_(std::move(finish)),
        a_(a.data) {
    int64_t matrices = 1;
    for (const BatchDim& d : batch_)
      if (d.bStride) matrices *= d.size;
    bPacked_ = b.constant != nullptr;
    b_data_ = bPacked_ ? ctx.packConstant(packPanels(*b.constant, p_, matrices, tile_.cols)) : b.data;
  }

  // The work is split over the column tiles of y.
  void emit(llvm::Value* y) {
    int64_t count = 1;
    for (const BatchDim& d : batch_) count *= d.size;
    const int64_t tiles = (p_.n + tile_.cols - 1) / tile_.cols;
    columnTiles_ = ctx_.split(tiles, splitWays(2 * count * p_.m * p_.n * p_.k, tiles));
    ctx_.loop(count, [&](llvm::Value* i) {
      llvm::Value *aMatrix = ctx_.i64(0), *bMatrix = ctx_.i64(0);
      for (const BatchDim& d : batch_) {
        llvm::Value* idx = b_.CreateURem(b_.CreateUDiv(i, ctx_.i64(d.outStride)), ctx_.i64(d.size));
        aMatrix = b_.CreateAdd(aMatrix, b_.CreateMul(idx, ctx_.i64(d.aStride)));
        bMatrix = b_.CreateAdd(bMatrix, b_.CreateMul(idx, ctx_.i64(d.bStride)));
      }
      const Matrices m{kernels::floatPtr(ctx_, a_, b_.CreateMul(aMatrix, ctx_.i64(p_.m * p_.k))),
                       kernels::floatPtr(ctx_, b_data_, b_.CreateMul(bMatrix, ctx_.i64(p_.k * p_.n))),
                       kernels::floatPtr(ctx_, y, b_.CreateMul(i, ctx_.i64(p_.m * p_.n)))};
      const int64_t fullBlocks = p_.m / tile_.rows, lastRows = p_.m % tile_.rows;
      ctx_.loop(fullBlocks,
                [&](llvm::Value* block) { emitRows(m, b_.CreateMul(block, ctx_.i64(tile_.rows)), tile_.rows); });
      if (lastRows) emitRows(m, ctx_.i64(fullBlocks * tile_.rows), lastRows);
    });
  }

 private:
  struct Matrices {
    llvm::Value *a, *b, *y;
  };

  // Rows [i0, i0 + rows) of y, in this part's column tiles.
  void emitRows(const Matrices& m, llvm::Value* i0, int64_t rows) const {
    const int64_t lanes = ctx_.target.vectorFloats;
    const int64_t fullTiles = p_.n / tile_.cols, tiles = (p_.n + tile_.cols - 1) / tile_.cols;
    auto tile = [&](llvm::Value* n0, int64_t width) {
      kernels::AccumulatorTile acc(ctx_, rows, kernels::chunkWidths(width, lanes));
      for (int64_t r = 0; r < rows; ++r)
        for (size_t c = 0; c < acc.chunks().size(); ++c)
          acc.set(r, c, kernels::splat(ctx_, ctx_.f32(0.f), acc.chunks()[c]));
      ctx_.loop(p_.k, [&](llvm::Value* k) {
        std::vector<llvm::Value*> bRow;
        for (size_t c = 0; c < acc.chunks().size(); ++c)
          bRow.push_back(loadB(m.b, k, n0, width, acc.chunkOffset(c), acc.chunks()[c]));
        acc.rankOneUpdate(
            [&](int64_t r) {
              llvm::Value* row = b_.CreateAdd(i0, ctx_.i64(r));
              return kernels::floatPtr(
                  ctx_, m.a, b_.CreateAdd(b_.CreateMul(row, ctx_.i64(p_.aRow)), b_.CreateMul(k, ctx_.i64(p_.aCol))));
            },
            bRow);
      });
      for (int64_t r = 0; r < rows; ++r)
        for (size_t c = 0; c < acc.chunks().size(); ++c) {
          llvm::Value* row = b_.CreateAdd(i0, ctx_.i64(r));
          llvm::Value* col = b_.CreateAdd(n0, ctx_.i64(acc.chunkOffset(c)));
          llvm::Value* at = b_.CreateAdd(b_.CreateMul(row, ctx_.i64(p_.n)), col);
          kernels::storeVector(ctx_, kernels::floatPtr(ctx_, m.y, at),
                               finish_(acc.get(r, c), row, col, acc.chunks()[c]));
        }
    };
    ctx_.loop(columnTiles_, 0, fullTiles, [&](llvm::Value* t) { tile(b_.CreateMul(t, ctx_.i64(tile_.cols)), tile_.cols); });
    if (tiles > fullTiles)
      ctx_.when(b_.CreateICmpEQ(columnTiles_.end, ctx_.i64(tiles)),
                [&] { tile(ctx_.i64(fullTiles * tile_.cols), p_.n - fullTiles * tile_.cols); });
  }

  // Columns [n0 + offset, + chunk) of row k of B, in a tile of `width` columns.
  llvm::Value* loadB(llvm::Value* b, llvm::Value* k, llvm::Value* n0, int64_t width, int64_t offset,
                     int64_t chunk) const {
    if (bPacked_) {
      llvm::Value* at = b_.CreateAdd(b_.CreateMul(n0, ctx_.i64(p_.k)), b_.CreateMul(k, ctx_.i64(width)));
      return kernels::loadVector(ctx_, kernels::floatPtr(ctx_, b, b_.CreateAdd(at, ctx_.i64(offset))), chunk);
    }
    llvm::Value* at = b_.CreateAdd(b_.CreateMul(k, ctx_.i64(p_.bRow)),
                                   b_.CreateMul(b_.CreateAdd(n0, ctx_.i64(offset)), ctx_.i64(p_.bCol)));
    return kernels::loadVector(ctx_, kernels::floatPtr(ctx_, b, at), chunk, p_.bCol);
  }

  EmitContext& ctx_;
  llvm::IRBuilder<>& b_;
  ProductShape p_;
  TileShape tile_;
  std::vector<BatchDim> batch_;
  FinishFn finish_;
  llvm::Value* a_;
  bool bPacked_ = false;
  llvm::Value* b_data_ = nullptr;
  LoopRange columnTiles_{};  // this part's column tiles
};

void requirePlain(EmitContext& ctx, const Operand& t) {
  if (t.type.layout != Layout::Plain) ctx.fail("the LLVM backend expects plain layouts, got " + t.type.str());
}

void emitGemm(EmitContext& ctx) {
  const Operand &a = ctx.input(0), &b = ctx.input(1), &y = ctx.output();
  for (const Operand* t : {&a, &b, &y}) requirePlain(ctx, *t);
  const Attributes& attrs = ctx.attrs();
  const bool transA = attrs.getInt("transA") != 0, transB = attrs.getInt("transB") != 0;
  const Shape &as = a.type.shape, &bs = b.type.shape, &ys = y.type.shape;
  const ProductShape p{ys[0],
                       transA ? as[0] : as[1],
                       ys[1],
                       transA ? 1 : as[1],
                       transA ? as[1] : 1,
                       transB ? 1 : bs[1],
                       transB ? bs[1] : 1};
  const float alpha = attrs.getFloat("alpha"), beta = attrs.getFloat("beta");
  // C broadcast to [M, N]: (i, n) at c + i*cRow + n*cCol.
  std::optional<Operand> c;
  int64_t cRow = 0, cCol = 0;
  if (ctx.hasInput(2)) {
    c = ctx.input(2);
    const Shape& cs = c->type.shape;
    if (cs.rank() >= 1) cCol = cs[cs.rank() - 1] == 1 ? 0 : 1;
    if (cs.rank() == 2) cRow = cs[0] == 1 ? 0 : cs[1];
  }
  llvm::IRBuilder<>& ir = ctx.b;
  FinishFn finish = [&, alpha, beta, cRow, cCol](llvm::Value* acc, llvm::Value* row, llvm::Value* col, int64_t width) {
    llvm::Value* v = alpha == 1.f ? acc : ir.CreateFMul(acc, kernels::splat(ctx, ctx.f32(alpha), width));
    if (!c || beta == 0.f) return emitEpilogueActivation(ir, ctx.attrs(), v);
    llvm::Value* at = ir.CreateAdd(ir.CreateMul(row, ctx.i64(cRow)), ir.CreateMul(col, ctx.i64(cCol)));
    llvm::Value* cPtr = kernels::floatPtr(ctx, c->data, at);
    llvm::Value* cv = cCol ? kernels::loadVector(ctx, cPtr, width)
                           : kernels::splat(ctx, ir.CreateAlignedLoad(ctx.f32Type(), cPtr, llvm::Align(4)), width);
    return emitEpilogueActivation(ir, ctx.attrs(), kernels::fmulAdd(ctx, kernels::splat(ctx, ctx.f32(beta), width), cv, v));
  };
  MatrixProduct(ctx, p, a, b, {}, finish).emit(y.data);
}

void emitMatMul(EmitContext& ctx) {
  const Operand &a = ctx.input(0), &b = ctx.input(1), &y = ctx.output();
  for (const Operand* t : {&a, &b, &y}) requirePlain(ctx, *t);
  const Shape &as = a.type.shape, &bs = b.type.shape, &ys = y.type.shape;
  const bool rowA = as.rank() == 1, colB = bs.rank() == 1;
  const int64_t m = rowA ? 1 : as[as.rank() - 2], k = as[as.rank() - 1], n = colB ? 1 : bs[bs.rank() - 1];
  const ProductShape p{m, k, n, k, 1, n, 1};
  // Batch dims: the output's leading dims, right-aligned with A's and B's.
  const size_t outBatch = ys.rank() - (rowA ? 0 : 1) - (colB ? 0 : 1);
  const size_t aBatch = as.rank() - (rowA ? 1 : 2), bBatch = bs.rank() - (colB ? 1 : 2);
  std::vector<BatchDim> batch(outBatch);
  int64_t outStride = 1, aStride = 1, bStride = 1;
  for (size_t d = outBatch; d-- > 0;) {
    const size_t fromEnd = outBatch - d;
    const int64_t aDim = fromEnd <= aBatch ? as[aBatch - fromEnd] : 1;
    const int64_t bDim = fromEnd <= bBatch ? bs[bBatch - fromEnd] : 1;
    batch[d] = {ys[d], outStride, aDim == 1 ? 0 : aStride, bDim == 1 ? 0 : bStride};
    outStride *= ys[d];
    aStride *= aDim;
    bStride *= bDim;
  }
  MatrixProduct(ctx, p, a, b, std::move(batch), [](llvm::Value* acc, llvm::Value*, llvm::Value*, int64_t) {
    return acc;
  }).emit(y.data);
}

}  // namespace

void registerLinearEmitters(EmitterRegistry& r) {
  r.add("Gemm", emitGemm);
  r.add("MatMul", emitMatMul);
}

}  // namespace kiln::codegen
