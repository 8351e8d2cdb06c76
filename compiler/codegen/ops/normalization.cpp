// Emits the per-channel affine ops BatchNormalization (inference form) and
// ScaleShift as y = x * scale[c] + shift[c] over each channel's contiguous
// plane (ScaleShift also per channel block of the NCHWc layout).
// BatchNormalization's scale/shift, scale / sqrt(var + epsilon) and
// B - mean * that, are computed at compile time when its parameters are
// constants and once per channel at run time otherwise.
//
// InstanceNormalization and LRN work in explicit f32 vectors along each
// channel's plane (contiguous in the plain layout they keep), the last
// vector of a plane narrower when the plane is not a whole number of them.
// InstanceNormalization takes the mean, then the mean squared deviation from
// it (two passes, like the reference, so a large mean cannot cancel the
// variance away), each summed in vectors and reduced across lanes once; LRN
// sums each pixel vector's squares over the channel window and divides by
// (bias + alpha/size * sum)^beta computed as exp(-beta * log(...)).
//
// LayerNormalization walks its contiguous rows (the trailing dims from
// axis) in three vector passes: the sum, the sum of squared deviations from
// the mean (two passes rather than E[x^2] - mean^2, which cancels), then
// y = (x - mean) * invStdDev * scale + B, which reads each element before
// writing it, so Y may alias X. Sums are lane-wise vector accumulators,
// reduced once per row (vector_kernels.h). Rows split across threads.
#include <cmath>

#include "compiler/codegen/math.h"
#include "compiler/codegen/ops/families.h"
#include "compiler/codegen/ops/loops.h"
#include "compiler/codegen/ops/vector_kernels.h"

namespace kiln::codegen {

namespace {

using llvm::Value;

struct ChannelAffine {
  Value* scale;
  Value* shift;
};

using ChannelAffineFn = std::function<ChannelAffine(Value* channel)>;

// out[n, c, i] = x[n, c, i] * scale(c) + shift(c), scale/shift read once per channel.
void emitPerChannelAffine(EmitContext& ctx, const ChannelAffineFn& affineOf) {
  const Operand& x = ctx.input(0);
  const Operand& y = ctx.output();
  const Shape& shape = x.type.shape;
  const int64_t channels = shape[1], plane = shape.product(2, shape.rank());
  ctx.loop(shape[0], [&](Value* n) {
    ctx.loop(channels, [&](Value* c) {
      const ChannelAffine affine = affineOf(c);
      Value* base = ctx.b.CreateMul(ctx.b.CreateAdd(ctx.b.CreateMul(n, ctx.i64(channels)), c), ctx.i64(plane));
      ctx.loop(plane, [&](Value* i) {
        Value* at = ctx.b.CreateAdd(base, i);
        ctx.store(y, at, ctx.b.CreateFAdd(ctx.b.CreateFMul(ctx.load(x, at), affine.scale), affine.shift));
      });
    });
  });
}

// ScaleShift on a blocked value [C/c][pixels][c]: per block, the scale and
// shift vectors (packed at compile time, zero in the pad lanes, which thus
// stay zero) times every pixel vector.
void emitBlockedScaleShift(EmitContext& ctx) {
  const Operand &x = ctx.input(0), &y = ctx.output();
  const Operand &scale = ctx.input(1), &shift = ctx.input(2);
  if (!scale.constant || !shift.constant) ctx.fail("NCHWc ScaleShift needs constant scale and shift");
  const Shape& s = x.type.shape;
  const int64_t c = x.type.block, blocks = (s[1] + c - 1) / c, plane = s.product(2, s.rank());
  Tensor scales(DType::F32, Shape({blocks * c})), shifts(DType::F32, Shape({blocks * c}));
  std::copy_n(scale.constant->data<float>(), s[1], scales.data<float>());
  std::copy_n(shift.constant->data<float>(), s[1], shifts.data<float>());
  Value* scaleData = ctx.packConstant(scales);
  Value* shiftData = ctx.packConstant(shifts);
  llvm::IRBuilder<>& b = ctx.b;
  llvm::Type* vec = llvm::FixedVectorType::get(ctx.f32Type(), static_cast<unsigned>(c));
  auto ptr = [&](Value* base, Value* index) { return b.CreateInBoundsGEP(ctx.f32Type(), base, index); };
  ctx.loop(blocks, [&](Value* cb) {
    Value* first = b.CreateMul(cb, ctx.i64(c));
    Value* sc = b.CreateAlignedLoad(vec, ptr(scaleData, first), llvm::Align(4));
    Value* sh = b.CreateAlignedLoad(vec, ptr(shiftData, first), llvm::Align(4));
    ctx.loop(plane, [&](Value* p) {
      Value* at = b.CreateMul(b.CreateAdd(b.CreateMul(cb, ctx.i64(plane)), p), ctx.i64(c));
      Value* v = b.CreateAlignedLoad(vec, ptr(x.data, at), llvm::Align(4));
      b.CreateAlignedStore(b.CreateFAdd(b.CreateFMul(v, sc), sh), ptr(y.data, at), llvm::Align(4));
    });
  });
}

void emitBatchNormalization(EmitContext& ctx) {
  const Operand& scale = ctx.input(1);
  const Operand& bias = ctx.input(2);
  const Operand& mean = ctx.input(3);
  const Operand& var = ctx.input(4);
  const float epsilon = ctx.attrs().getFloat("epsilon");
  if (scale.constant && bias.constant && mean.constant && var.constant) {
    const int64_t channels = scale.type.shape[0];
    std::vector<float> scales, shifts;
    for (int64_t c = 0; c < channels; ++c) {
      const double s = static_cast<double>(scale.constant->data<float>()[c]) /
                       std::sqrt(static_cast<double>(var.constant->data<float>()[c]) + static_cast<double>(epsilon));
      scales.push_back(static_cast<float>(s));
      shifts.push_back(static_cast<float>(bias.constant->data<float>()[c] - mean.constant->data<float>()[c] * s));
    }
    const TensorType vectorType{DType::F32, Shape{channels}};
    const Operand packedScale{ctx.packConstant(Tensor::fromVector(Shape{channels}, scales)), vectorType};
    const Operand packedShift{ctx.packConstant(Tensor::fromVector(Shape{channels}, shifts)), vectorType};
    emitPerChannelAffine(ctx, [&](Value* c) {
      return ChannelAffine{ctx.load(packedScale, c), ctx.load(packedShift, c)};
    });
    return;
  }
  emitPerChannelAffine(ctx, [&](Value* c) {
    Value* deviation = ctx.b.CreateIntrinsic(llvm::Intrinsic::sqrt, {ctx.f32Type()},
                                             {ctx.b.CreateFAdd(ctx.load(var, c), ctx.f32(epsilon))});
    Value* s = ctx.b.CreateFDiv(ctx.load(scale, c), deviation);
    return ChannelAffine{s, ctx.b.CreateFSub(ctx.load(bias, c), ctx.b.CreateFMul(ctx.load(mean, c), s))};
  });
}

// Sum over the row [start, start + n) of term(vector, offset in row).
Value* rowSum(EmitContext& ctx, Value* start, int64_t n, const std::function<Value*(Value*, Value*)>& term) {
  llvm::IRBuilder<>& b = ctx.b;
  const int64_t lanes = std::min<int64_t>(ctx.target.vectorFloats, n);
  kernels::AccumulatorTile acc(ctx, 1, {lanes});
  acc.set(0, 0, kernels::splat(ctx, ctx.f32(0.f), lanes));
  Value* tail = nullptr;
  kernels::forEachVector(ctx, start, n, lanes, [&](Value* at, int64_t width) {
    Value* x = kernels::loadVector(ctx, kernels::floatPtr(ctx, ctx.input(0).data, at), width);
    Value* v = term(x, b.CreateSub(at, start));
    if (width == lanes)
      acc.set(0, 0, b.CreateFAdd(acc.get(0, 0), v));
    else
      tail = kernels::horizontalSum(ctx, v);
  });
  Value* sum = kernels::horizontalSum(ctx, acc.get(0, 0));
  return tail ? b.CreateFAdd(sum, tail) : sum;
}

// (v - mean)^2 lane by lane.
Value* squaredDeviation(EmitContext& ctx, Value* v, Value* mean) {
  const auto width = llvm::cast<llvm::FixedVectorType>(v->getType())->getNumElements();
  Value* d = ctx.b.CreateFSub(v, kernels::splat(ctx, mean, width));
  return ctx.b.CreateFMul(d, d);
}

void emitInstanceNormalization(EmitContext& ctx) {
  const Operand& x = ctx.input(0);
  const Operand& y = ctx.output();
  const Shape& shape = x.type.shape;
  const int64_t channels = shape[1], plane = shape.product(2, shape.rank());
  if (plane == 0) return;  // an empty output
  const int64_t lanes = ctx.target.vectorFloats;
  Value* epsilon = ctx.f32(ctx.attrs().getFloat("epsilon"));
  Value* count = ctx.f32(static_cast<float>(plane));
  llvm::IRBuilder<>& b = ctx.b;
  ctx.loop(shape[0], [&](Value* n) {
    ctx.loop(channels, [&](Value* c) {
      Value* base = b.CreateMul(b.CreateAdd(b.CreateMul(n, ctx.i64(channels)), c), ctx.i64(plane));
      Value* mean = b.CreateFDiv(rowSum(ctx, base, plane, [](Value* v, Value*) { return v; }), count);
      Value* squares = rowSum(ctx, base, plane, [&](Value* v, Value*) { return squaredDeviation(ctx, v, mean); });
      Value* deviation =
          b.CreateUnaryIntrinsic(llvm::Intrinsic::sqrt, b.CreateFAdd(b.CreateFDiv(squares, count), epsilon));
      Value* scale = b.CreateFDiv(ctx.load(ctx.input(1), c), deviation);
      Value* shift = b.CreateFSub(ctx.load(ctx.input(2), c), b.CreateFMul(mean, scale));
      kernels::forEachTile(ctx, 0, plane, lanes, [&](Value* start, int64_t width) {
        Value* at = b.CreateAdd(base, start);
        Value* v = kernels::loadVector(ctx, kernels::floatPtr(ctx, x.data, at), width);
        Value* normalized =
            kernels::fmulAdd(ctx, v, kernels::splat(ctx, scale, width), kernels::splat(ctx, shift, width));
        kernels::storeVector(ctx, kernels::floatPtr(ctx, y.data, at), normalized);
      });
    });
  });
}

void emitLRN(EmitContext& ctx) {
  const Operand& x = ctx.input(0);
  const Operand& y = ctx.output();
  const Shape& shape = x.type.shape;
  const int64_t channels = shape[1], plane = shape.product(2, shape.rank());
  const int64_t size = ctx.attrs().getInt("size"), lanes = ctx.target.vectorFloats;
  const float alphaOverSize = ctx.attrs().getFloat("alpha") / static_cast<float>(size);
  const float beta = ctx.attrs().getFloat("beta"), bias = ctx.attrs().getFloat("bias");
  llvm::IRBuilder<>& b = ctx.b;
  ctx.loop(shape[0], [&](Value* n) {
    Value* sample = b.CreateMul(n, ctx.i64(channels * plane));
    ctx.loop(channels, [&](Value* c) {
      // The window [c - floor((size-1)/2), c + ceil((size-1)/2)] clamped to the channels.
      Value* low = b.CreateSub(c, ctx.i64((size - 1) / 2));
      Value* first = b.CreateSelect(b.CreateICmpSLT(low, ctx.i64(0)), ctx.i64(0), low);
      Value* high = b.CreateAdd(c, ctx.i64(size / 2 + 1));
      Value* end = b.CreateSelect(b.CreateICmpSGT(high, ctx.i64(channels)), ctx.i64(channels), high);
      Value* base = b.CreateAdd(sample, b.CreateMul(c, ctx.i64(plane)));
      kernels::forEachTile(ctx, 0, plane, lanes, [&](Value* start, int64_t width) {
        llvm::AllocaInst* squares = entryBlockSlot(ctx, kernels::vectorType(ctx, width));
        b.CreateStore(kernels::splat(ctx, ctx.f32(0.f), width), squares);
        ctx.loop(first, end, [&](Value* k) {
          Value* at = b.CreateAdd(b.CreateAdd(sample, b.CreateMul(k, ctx.i64(plane))), start);
          Value* v = kernels::loadVector(ctx, kernels::floatPtr(ctx, x.data, at), width);
          b.CreateStore(kernels::fmulAdd(ctx, v, v, b.CreateLoad(squares->getAllocatedType(), squares)), squares);
        });
        Value* denominator = kernels::fmulAdd(ctx, kernels::splat(ctx, ctx.f32(alphaOverSize), width),
                                              b.CreateLoad(squares->getAllocatedType(), squares),
                                              kernels::splat(ctx, ctx.f32(bias), width));
        Value* factor =
            emitExp(b, b.CreateFMul(kernels::splat(ctx, ctx.f32(-beta), width), emitLog(b, denominator)));
        Value* at = b.CreateAdd(base, start);
        Value* v = kernels::loadVector(ctx, kernels::floatPtr(ctx, x.data, at), width);
        kernels::storeVector(ctx, kernels::floatPtr(ctx, y.data, at), b.CreateFMul(v, factor));
      });
    });
  });
}

void emitLayerNormalization(EmitContext& ctx) {
  const Shape& shape = ctx.input(0).type.shape;
  const size_t axis = normalizeAxis(ctx.attrs().getInt("axis"), shape.rank());
  const int64_t outer = shape.product(0, axis), n = shape.product(axis, shape.rank());
  if (outer == 0 || n == 0) return;
  const float epsilon = ctx.attrs().getFloat("epsilon");
  llvm::IRBuilder<>& b = ctx.b;
  const int64_t lanes = std::min<int64_t>(ctx.target.vectorFloats, n);
  const LoopRange rows = ctx.split(outer, splitWays(8 * outer * n, outer));
  ctx.loop(rows, 0, outer, [&](Value* r) {
    Value* start = b.CreateMul(r, ctx.i64(n));
    Value* inverseCount = ctx.f32(1.f / static_cast<float>(n));
    Value* mean = b.CreateFMul(rowSum(ctx, start, n, [](Value* v, Value*) { return v; }), inverseCount);
    Value* squares = rowSum(ctx, start, n, [&](Value* v, Value*) { return squaredDeviation(ctx, v, mean); });
    Value* deviation = b.CreateIntrinsic(llvm::Intrinsic::sqrt, {ctx.f32Type()},
                                         {b.CreateFAdd(b.CreateFMul(squares, inverseCount), ctx.f32(epsilon))});
    Value* invStdDev = b.CreateFDiv(ctx.f32(1.f), deviation);
    kernels::forEachVector(ctx, start, n, lanes, [&](Value* at, int64_t width) {
      Value* j = b.CreateSub(at, start);
      Value* x = kernels::loadVector(ctx, kernels::floatPtr(ctx, ctx.input(0).data, at), width);
      Value* scale = kernels::loadVector(ctx, kernels::floatPtr(ctx, ctx.input(1).data, j), width);
      Value* normalized = b.CreateFMul(b.CreateFSub(x, kernels::splat(ctx, mean, width)),
                                       kernels::splat(ctx, invStdDev, width));
      Value* y = b.CreateFMul(normalized, scale);
      if (ctx.hasInput(2))
        y = b.CreateFAdd(y, kernels::loadVector(ctx, kernels::floatPtr(ctx, ctx.input(2).data, j), width));
      kernels::storeVector(ctx, kernels::floatPtr(ctx, ctx.output(0).data, at), y);
    });
    ctx.store(ctx.output(1), r, mean);
    ctx.store(ctx.output(2), r, invStdDev);
  });
}

}  // namespace

void registerNormalizationEmitters(EmitterRegistry& r) {
  r.add("BatchNormalization", emitBatchNormalization, {0});
  r.add("LayerNormalization", emitLayerNormalization);
  r.add("ScaleShift", [](EmitContext& ctx) {
    if (ctx.input(0).type.layout == Layout::NCHWc) return emitBlockedScaleShift(ctx);
    emitPerChannelAffine(ctx, [&](Value* c) {
      return ChannelAffine{ctx.load(ctx.input(1), c), ctx.load(ctx.input(2), c)};
    });
  }, {0});
  r.add("InstanceNormalization", emitInstanceNormalization, {0});
  r.add("LRN", emitLRN, {0});
}

}  // namespace kiln::codegen
