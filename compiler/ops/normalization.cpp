// Per-channel (axis 1) affine ops: BatchNormalization, inference form,
// y = (x - mean) / sqrt(var + epsilon) * scale + B, and ScaleShift,
// y = scale * x + shift, what fold-batchnorm leaves of a BN it cannot fold;
// InstanceNormalization, the same with mean and (biased) variance taken per
// sample and channel over the spatial dims; LRN, which divides each
// element by (bias + alpha/size * the sum of squares over a window of
// `size` neighbouring channels)^beta; and LayerNormalization, which
// normalizes each row of the trailing dims from `axis` on (opset-17
// semantics, statistics in f32).
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

// LayerNormalization's rows: X as [outer, row] split at the axis.
struct Rows {
  size_t axis;
  int64_t outer, size;
};

Rows rowsOf(const Shape& x, int64_t axis) {
  const size_t a = normalizeAxis(axis, x.rank());
  return {a, x.product(0, a), x.product(a, x.rank())};
}

// Scale and B hold one value per row element: their shape broadcasts to the
// normalized dims X[axis:] without repeating anything.
void requireRowParameter(const InferContext& ctx, size_t i, const char* what, const Shape& row) {
  const TensorType& t = ctx.input(i);
  bool fits = t.shape.rank() <= row.rank() && t.shape.isStatic();
  for (size_t d = 0; fits && d < t.shape.rank(); ++d) {
    const int64_t want = row[row.rank() - t.shape.rank() + d];
    fits = t.shape[d] == want;
  }
  fits = fits && t.shape.numElements() == row.numElements();
  ctx.check(fits, std::string(what) + " " + t.shape.str() + " must have the normalized dims' shape " + row.str());
}

std::vector<TensorType> inferLayerNorm(const InferContext& ctx) {
  for (size_t i = 0; i < 3; ++i)
    if (i < 2 || ctx.hasInput(i)) requireFloat(ctx, i);
  const Shape& x = ctx.input(0).shape;
  const int64_t axis = ctx.attrs().getInt("axis");
  ctx.check(axis >= -static_cast<int64_t>(x.rank()) && axis < static_cast<int64_t>(x.rank()),
            "axis " + std::to_string(axis) + " is out of range for " + ctx.input(0).str());
  const size_t a = normalizeAxis(axis, x.rank());
  ctx.check(!(x.hasSymbolicBatch() && a == 0),
            "cannot normalize along the symbolic batch dim of " + ctx.input(0).str());
  const Shape row(std::vector<int64_t>(x.dims.begin() + static_cast<std::ptrdiff_t>(a), x.dims.end()));
  requireRowParameter(ctx, 1, "Scale", row);
  if (ctx.hasInput(2)) requireRowParameter(ctx, 2, "B", row);
  // Mean and InvStdDev: X's shape with the normalized dims 1.
  Shape stats = x;
  for (size_t d = a; d < x.rank(); ++d) stats[d] = 1;
  const TensorType statsType{DType::F32, stats};
  return {ctx.input(0), statsType, statsType};
}

// Each row's mean and variance accumulated in double, so the reference
// carries no f32 summation error.
void layerNormReference(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Rows rows = rowsOf(x.shape(), ctx.attrs().getInt("axis"));
  const float epsilon = ctx.attrs().getFloat("epsilon");
  const float* in = x.data<float>();
  const float* scale = ctx.input(1).data<float>();
  const float* bias = ctx.hasInput(2) ? ctx.input(2).data<float>() : nullptr;
  float* out = ctx.output(0).data<float>();
  float* means = ctx.output(1).data<float>();
  float* invStdDevs = ctx.output(2).data<float>();
  for (int64_t r = 0; r < rows.outer; ++r) {
    const float* row = in + r * rows.size;
    double sum = 0, squares = 0;
    for (int64_t j = 0; j < rows.size; ++j) sum += row[j];
    const double mean = sum / static_cast<double>(rows.size);
    for (int64_t j = 0; j < rows.size; ++j) squares += (row[j] - mean) * (row[j] - mean);
    const double variance = squares / static_cast<double>(rows.size);
    const double invStdDev = 1.0 / std::sqrt(variance + static_cast<double>(epsilon));
    for (int64_t j = 0; j < rows.size; ++j)
      out[r * rows.size + j] =
          static_cast<float>((row[j] - mean) * invStdDev * scale[j] + (bias ? bias[j] : 0.f));
    means[r] = static_cast<float>(mean);
    invStdDevs[r] = static_cast<float>(invStdDev);
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
  OpDef ln;
  ln.name = "LayerNormalization";
  ln.minInputs = 2;
  ln.maxInputs = 3;
  ln.numOutputs = 3;
  ln.attrs = {{"axis", AttrKind::Int, AttrValue{int64_t{-1}}}, {"epsilon", AttrKind::Float, AttrValue{1e-5f}}};
  ln.infer = inferLayerNorm;
  ln.reference = layerNormReference;
  r.add(std::move(ln));
}

}  // namespace kiln
