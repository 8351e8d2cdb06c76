// Emitter for Resize (nearest, linear, cubic over any axes), matching
// compiler/ops/resize.cpp, in plain layout and in NCHWc.
//
// The sampling is known at compile time (static shapes; a symbolic batch is
// one sample here and keeps its size), so each resized axis becomes two
// packed tables: per output index and tap, the input offset (index times the
// axis' stride) and the weight; an i8 table marks tf_crop_and_resize's
// outside positions. The leading axes that the resize leaves alone (N and C
// of an image) are one loop over planes; the others are nested loops whose
// taps are unrolled, each level combining its offsets and weights with the
// outer ones, so the innermost loop only loads and folds. Nearest needs no
// weights. In NCHWc every element is a channel block: the same walk over
// [N][C/c][H][W] reads and folds whole c-lane vectors (pad lanes are zero in,
// so zero out), which the layout pass allows when N and C keep their scale 1.
#include "compiler/codegen/ops/families.h"
#include "compiler/codegen/ops/vector_kernels.h"
#include "compiler/ops/resize.h"

#include <limits>

namespace kiln::codegen {

namespace {

// One tap combination of the axes walked so far: its input offset (floats)
// and weight (nullptr: 1).
struct Tap {
  llvm::Value* offset;
  llvm::Value* weight;
};

// A resized axis as the emitted loops read it.
struct AxisTables {
  int64_t out = 0, taps = 1, outStride = 0;
  llvm::Value* offsets = nullptr;  // i32 [out * taps]
  llvm::Value* weights = nullptr;  // f32 [out * taps]; nullptr for all-1 weights
  llvm::Value* outside = nullptr;  // i8 [out]; nullptr when no position lies outside
};

void emitResize(EmitContext& ctx) {
  const Operand &x = ctx.input(0), &y = ctx.output();
  const bool blocked = x.type.layout == Layout::NCHWc;
  if (blocked != (y.type.layout == Layout::NCHWc) || (blocked && x.type.block != y.type.block))
    ctx.fail("Resize needs its input and output in one layout, got " + x.type.str() + " and " + y.type.str());
  const Shape &xs = x.type.shape, &ys = y.type.shape;
  const std::vector<ResizeAxis> axes = resizeAxes(ctx.attrs(), xs, ys);
  const size_t rank = xs.rank();
  // Elements of `lanes` floats over `inDims` / `outDims`.
  const int64_t lanes = blocked ? y.type.block : 1;
  std::vector<int64_t> inDims = xs.dims, outDims = ys.dims;
  if (blocked) {
    if (rank != 4 || !axes[0].identity || !axes[1].identity)
      ctx.fail("an NCHWc Resize must keep N and C, got " + xs.str() + " -> " + ys.str());
    inDims[1] = outDims[1] = (xs[1] + lanes - 1) / lanes;
  }
  std::vector<int64_t> inStrides(rank, lanes), outStrides(rank, lanes);
  for (size_t d = rank - 1; d-- > 0;) {
    inStrides[d] = inStrides[d + 1] * inDims[d + 1];
    outStrides[d] = outStrides[d + 1] * outDims[d + 1];
  }
  if (inStrides[0] * inDims[0] > std::numeric_limits<int32_t>::max())
    ctx.fail("input " + xs.str() + " is too large for the 32-bit offsets of the Resize kernel");
  // Leading identity axes form the planes; at least the last axis is walked.
  size_t first = 0;
  while (first + 1 < rank && axes[first].identity) ++first;
  const int64_t planes = first == 0 ? 1 : inStrides[0] * inDims[0] / inStrides[first - 1];
  const int64_t inPlane = first == 0 ? 0 : inStrides[first - 1], outPlane = first == 0 ? 0 : outStrides[first - 1];

  const bool weighted = ctx.attrs().getString("mode") != "nearest";
  int64_t tapsPerOutput = 1;
  std::vector<AxisTables> tables;
  for (size_t d = first; d < rank; ++d) {
    const ResizeAxis& a = axes[d];
    AxisTables t{outDims[d], a.taps, outStrides[d]};
    std::vector<int32_t> offsets;
    for (int64_t i : a.index) offsets.push_back(static_cast<int32_t>(i * inStrides[d]));
    t.offsets = ctx.packConstant(Tensor::fromVector<int32_t>(Shape{static_cast<int64_t>(offsets.size())}, offsets));
    if (weighted)
      t.weights = ctx.packConstant(Tensor::fromVector<float>(Shape{static_cast<int64_t>(a.weight.size())}, a.weight));
    if (!a.outside.empty()) {
      Tensor outside(DType::Bool, Shape{t.out});
      std::copy(a.outside.begin(), a.outside.end(), outside.data<bool>());
      t.outside = ctx.packConstant(outside);
    }
    tapsPerOutput *= a.taps;
    tables.push_back(t);
  }

  llvm::IRBuilder<>& b = ctx.b;
  llvm::Value* extrapolation =
      lanes == 1 ? ctx.f32(ctx.attrs().getFloat("extrapolation_value"))
                 : kernels::splat(ctx, ctx.f32(ctx.attrs().getFloat("extrapolation_value")), lanes);
  auto loadElement = [&](llvm::Value* offset) {
    return lanes == 1 ? kernels::loadFloat(ctx, x.data, offset)
                      : kernels::loadVector(ctx, kernels::floatPtr(ctx, x.data, offset), lanes);
  };
  auto storeElement = [&](llvm::Value* offset, llvm::Value* v) {
    if (lanes == 1)
      b.CreateAlignedStore(v, kernels::floatPtr(ctx, y.data, offset), llvm::Align(4));
    else
      kernels::storeVector(ctx, kernels::floatPtr(ctx, y.data, offset), v);
  };

  // The work (a load and a fold per tap) is split over planes, then over the
  // outputs of the first walked axis.
  const int64_t work = 2 * ys.numElements() * tapsPerOutput;
  const int64_t ways = splitWays(work, planes * tables[0].out), planeWays = std::min(planes, ways);
  const LoopRange planeRange = ctx.split(planes, planeWays);
  const LoopRange firstRange = ctx.split(tables[0].out, std::min(tables[0].out, ways / planeWays));

  // Walks axis `level` of the tables below the taps and output offset so far.
  std::function<void(size_t, const std::vector<Tap>&, llvm::Value*, llvm::Value*)> walk =
      [&](size_t level, const std::vector<Tap>& taps, llvm::Value* yOffset, llvm::Value* inside) {
        if (level == tables.size()) {
          llvm::Value* sum = nullptr;
          for (const Tap& t : taps) {
            llvm::Value* v = loadElement(t.offset);
            if (t.weight) {
              llvm::Value* w = lanes == 1 ? t.weight : kernels::splat(ctx, t.weight, lanes);
              sum = sum ? kernels::fmulAdd(ctx, w, v, sum) : b.CreateFMul(w, v);
            } else {
              sum = sum ? b.CreateFAdd(sum, v) : v;
            }
          }
          storeElement(yOffset, inside ? b.CreateSelect(inside, sum, extrapolation) : sum);
          return;
        }
        const AxisTables& t = tables[level];
        auto body = [&](llvm::Value* o) {
          std::vector<Tap> next;
          for (int64_t k = 0; k < t.taps; ++k) {
            llvm::Value* at = b.CreateAdd(b.CreateMul(o, ctx.i64(t.taps)), ctx.i64(k));
            llvm::Value* offset = b.CreateSExt(
                b.CreateAlignedLoad(b.getInt32Ty(), b.CreateInBoundsGEP(b.getInt32Ty(), t.offsets, at), llvm::Align(4)),
                b.getInt64Ty());
            llvm::Value* weight = t.weights ? kernels::loadFloat(ctx, t.weights, at) : nullptr;
            for (const Tap& outer : taps)
              next.push_back({b.CreateAdd(outer.offset, offset),
                              !weight ? outer.weight : outer.weight ? b.CreateFMul(outer.weight, weight) : weight});
          }
          llvm::Value* in = inside;
          if (t.outside) {
            llvm::Value* flag = b.CreateAlignedLoad(b.getInt8Ty(), b.CreateInBoundsGEP(b.getInt8Ty(), t.outside, o),
                                                    llvm::Align(1));
            llvm::Value* here = b.CreateICmpEQ(flag, b.getInt8(0));
            in = in ? b.CreateAnd(in, here) : here;
          }
          walk(level + 1, next, b.CreateAdd(yOffset, b.CreateMul(o, ctx.i64(t.outStride))), in);
        };
        if (level == 0)
          ctx.loop(firstRange, 0, t.out, body);
        else
          ctx.loop(t.out, body);
      };
  ctx.loop(planeRange, 0, planes, [&](llvm::Value* p) {
    walk(0, {{b.CreateMul(p, ctx.i64(inPlane)), nullptr}}, b.CreateMul(p, ctx.i64(outPlane)), nullptr);
  });
}

}  // namespace

void registerResizeEmitters(EmitterRegistry& r) { r.add("Resize", emitResize); }

}  // namespace kiln::codegen
