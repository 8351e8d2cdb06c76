// Per-channel (axis 1) affine ops: BatchNormalization, inference form,
// y = (x - mean) / sqrt(var + epsilon) * scale + B, and ScaleShift,
// y = scale * x + shift, what fold-batchnorm leaves of a BN it cannot fold;
// InstanceNormalization, the same with mean and (biased) variance taken per
// sample and channel over the spatial dims; and LRN, which divides each
// element by (bias + alpha/size * the sum of squares over a window of
// `size` neighbouring channels)^beta.
#include <algorithm>
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

void instanceNormKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const float* scale = ctx.input(1).data<float>();
  const float* bias = ctx.input(2).data<float>();
  const double epsilon = ctx.attrs().getFloat("epsilon");
  const int64_t planes = x.shape().product(0, 2), channels = x.shape()[1], plane = x.shape().product(2, x.shape().rank());
  const float* in = x.data<float>();
  float* out = ctx.output(0).data<float>();
  for (int64_t p = 0; p < planes; ++p) {
    const float* row = in + p * plane;
    double mean = 0, var = 0;
    for (int64_t i = 0; i < plane; ++i) mean += row[i];
    mean /= static_cast<double>(plane);
    for (int64_t i = 0; i < plane; ++i) var += (row[i] - mean) * (row[i] - mean);
    var /= static_cast<double>(plane);
    const double s = scale[p % channels] / std::sqrt(var + epsilon);
    for (int64_t i = 0; i < plane; ++i)
      out[p * plane + i] = static_cast<float>((row[i] - mean) * s + bias[p % channels]);
  }
}

// The channels [first, last] of LRN's window around channel c (clamped to
// the tensor): floor((size-1)/2) before c and ceil((size-1)/2) after it.
std::pair<int64_t, int64_t> lrnWindow(int64_t c, int64_t size, int64_t channels) {
  return {std::max<int64_t>(0, c - (size - 1) / 2), std::min<int64_t>(channels - 1, c + size / 2)};
}

void lrnKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t size = ctx.attrs().getInt("size");
  const double alpha = ctx.attrs().getFloat("alpha"), beta = ctx.attrs().getFloat("beta");
  const double bias = ctx.attrs().getFloat("bias");
  const int64_t batch = x.shape()[0], channels = x.shape()[1], plane = x.shape().product(2, x.shape().rank());
  const float* in = x.data<float>();
  float* out = ctx.output(0).data<float>();
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c) {
      const auto [first, last] = lrnWindow(c, size, channels);
      for (int64_t i = 0; i < plane; ++i) {
        double squares = 0;
        for (int64_t k = first; k <= last; ++k) {
          const double v = in[(n * channels + k) * plane + i];
          squares += v * v;
        }
        const int64_t at = (n * channels + c) * plane + i;
        out[at] = static_cast<float>(in[at] / std::pow(bias + alpha / static_cast<double>(size) * squares, beta));
      }
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

  OpDef in;
  in.name = "InstanceNormalization";
  in.minInputs = in.maxInputs = 3;
  in.attrs = {{"epsilon", AttrKind::Float, AttrValue{1e-5f}}};
  in.infer = [](const InferContext& ctx) {
    ctx.check(ctx.input(0).shape.rank() >= 3, "X " + ctx.input(0).str() + " needs rank >= 3 (N, C, spatial...)");
    return inferPerChannel(ctx, {"X", "scale", "B"});
  };
  in.reference = instanceNormKernel;
  r.add(std::move(in));

  OpDef lrn;
  lrn.name = "LRN";
  lrn.attrs = {{"size", AttrKind::Int, std::nullopt},
               {"alpha", AttrKind::Float, AttrValue{1e-4f}},
               {"beta", AttrKind::Float, AttrValue{0.75f}},
               {"bias", AttrKind::Float, AttrValue{1.f}}};
  lrn.infer = [](const InferContext& ctx) {
    ctx.check(ctx.attrs().getInt("size") >= 1, "size must be >= 1");
    return inferPerChannel(ctx, {"X"});
  };
  lrn.reference = lrnKernel;
  r.add(std::move(lrn));
}

}  // namespace kiln
