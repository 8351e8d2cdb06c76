// Emits the per-channel affine ops BatchNormalization (inference form) and
// ScaleShift as y = x * scale[c] + shift[c] over each channel's contiguous
// plane. BatchNormalization's scale/shift, scale / sqrt(var + epsilon) and
// B - mean * that, are computed at compile time when its parameters are
// constants and once per channel at run time otherwise.
#include <cmath>

#include "compiler/codegen/ops/families.h"

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

}  // namespace

void registerNormalizationEmitters(EmitterRegistry& r) {
  r.add("BatchNormalization", emitBatchNormalization);
  r.add("ScaleShift", [](EmitContext& ctx) {
    emitPerChannelAffine(ctx, [&](Value* c) {
      return ChannelAffine{ctx.load(ctx.input(1), c), ctx.load(ctx.input(2), c)};
    });
  });
}

}  // namespace kiln::codegen
