// Per-channel (axis 1) affine ops: BatchNormalization, inference form,
// y = (x - mean) / sqrt(var + epsilon) * scale + B, and ScaleShift,
// y = scale * x + shift, what fold-batchnorm leaves of a BN it cannot fold.
#include <cmath>
#include <string>

#include "compiler/ops/families.h"
#include "compiler/ops/helpers.h"

namespace kiln {

namespace {

// Checks X [N, C, ...] and that inputs 1.. are per-channel vectors [C].
std::vector<TensorType> inferPerChannel(const InferContext& ctx, const std::vector<const char*>& names) {
  for (size_t i = 0; i < names.size(); ++i) requireFloat(ctx, i);
  const Shape& x = ctx.input(0).shape;
  ctx.check(x.rank() >= 2, "X " + x.str() + " needs rank >= 2 (N, C, ...)");
  for (size_t i = 1; i < names.size(); ++i)
    ctx.check(ctx.input(i).shape == Shape({x[1]}), std::string(names[i]) + " " + ctx.input(i).shape.str() +
                                                       " must have shape " + Shape({x[1]}).str() + " (X's channels)");
  return sameAsFirstInput(ctx);
}

// out[n, c, i] = fn(c, x[n, c, i]) over every element.
template <class Fn>
void mapPerChannel(KernelContext& ctx, Fn fn) {
  const Tensor& x = ctx.input(0);
  const int64_t batch = x.shape()[0], channels = x.shape()[1], plane = x.shape().product(2, x.shape().rank());
  const float* in = x.data<float>();
  float* out = ctx.output(0).data<float>();
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c) {
      const int64_t base = (n * channels + c) * plane;
      for (int64_t i = base; i < base + plane; ++i) out[i] = fn(c, in[i]);
    }
}

}  // namespace

void registerNormalizationOps(OpRegistry& r) {
  OpDef d;
  d.name = "BatchNormalization";
  d.minInputs = d.maxInputs = 5;
  d.attrs = {{"epsilon", AttrKind::Float, AttrValue{1e-5f}}};
  d.infer = [](const InferContext& ctx) { return inferPerChannel(ctx, {"X", "scale", "B", "mean", "var"}); };
  d.reference = [](KernelContext& ctx) {
    const float* scale = ctx.input(1).data<float>();
    const float* bias = ctx.input(2).data<float>();
    const float* mean = ctx.input(3).data<float>();
    const float* var = ctx.input(4).data<float>();
    const float epsilon = ctx.attrs().getFloat("epsilon");
    mapPerChannel(ctx, [&](int64_t c, float x) { return (x - mean[c]) / std::sqrt(var[c] + epsilon) * scale[c] + bias[c]; });
  };
  r.add(std::move(d));

  OpDef ss;
  ss.name = "ScaleShift";
  ss.minInputs = ss.maxInputs = 3;
  ss.infer = [](const InferContext& ctx) { return inferPerChannel(ctx, {"X", "scale", "shift"}); };
  ss.reference = [](KernelContext& ctx) {
    const float* scale = ctx.input(1).data<float>();
    const float* shift = ctx.input(2).data<float>();
    mapPerChannel(ctx, [&](int64_t c, float x) { return scale[c] * x + shift[c]; });
  };
  r.add(std::move(ss));
}

}  // namespace kiln
