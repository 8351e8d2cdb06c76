// Resize: nearest, (multi-)linear and (multi-)cubic resampling with ONNX's
// coordinate transformation modes (opset 11/13 semantics; the importer maps
// Upsample and opset-10 Resize onto them). The output shape is an attribute
// (`sizes`, kBatch where the batch keeps its size); `scales` holds the model's scales when it gave them, since the
// coordinate transforms then use the scale rather than output/input.
#include "compiler/ops/resize.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "compiler/ir/graph.h"
#include "compiler/ops/families.h"
#include "compiler/ops/helpers.h"

namespace kiln {

namespace {

bool oneOf(const std::string& s, const std::vector<std::string>& options) {
  return std::find(options.begin(), options.end(), s) != options.end();
}

// Where output index o of an axis samples the input (ONNX's x_original).
// `resized` is the output length the transforms divide by: in * scale when
// the model gave scales (unfloored, as ONNX defines it), else the output size.
double sourceCoordinate(const std::string& mode, double o, double scale, double in, double resized, double roiStart,
                        double roiEnd) {
  if (mode == "half_pixel") return (o + 0.5) / scale - 0.5;
  if (mode == "pytorch_half_pixel") return resized > 1 ? (o + 0.5) / scale - 0.5 : 0.0;
  if (mode == "align_corners") return resized == 1 ? 0.0 : o * (in - 1) / (resized - 1);
  if (mode == "asymmetric") return o / scale;
  if (mode == "tf_half_pixel_for_nn") return (o + 0.5) / scale;
  // tf_crop_and_resize: the roi (in input coordinates normalized to [0, 1]) spans the output.
  if (resized > 1) return roiStart * (in - 1) + o * (roiEnd - roiStart) * (in - 1) / (resized - 1);
  return 0.5 * (roiStart + roiEnd) * (in - 1);
}

int64_t nearestIndex(const std::string& mode, double x) {
  if (mode == "round_prefer_floor") return static_cast<int64_t>(std::ceil(x - 0.5));
  if (mode == "round_prefer_ceil") return static_cast<int64_t>(std::floor(x + 0.5));
  if (mode == "floor") return static_cast<int64_t>(std::floor(x));
  return static_cast<int64_t>(std::ceil(x));
}

// Keys' cubic convolution kernel with parameter a, at distance d >= 0.
double cubicWeight(double d, double a) {
  if (d <= 1) return ((a + 2) * d - (a + 3)) * d * d + 1;
  if (d < 2) return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a;
  return 0;
}

ResizeAxis sampleAxis(const Attributes& a, size_t axis, int64_t in, int64_t out) {
  const std::string& mode = a.getString("mode");
  const std::string& transform = a.getString("coordinate_transformation_mode");
  const std::vector<float>& scales = a.getFloats("scales");
  const std::vector<float>& roi = a.getFloats("roi");
  const size_t rank = roi.empty() ? 0 : roi.size() / 2;
  const double scale = scales.empty() ? static_cast<double>(out) / static_cast<double>(in) : scales[axis];
  const double resized = scales.empty() ? static_cast<double>(out) : scale * static_cast<double>(in);
  const double roiStart = roi.empty() ? 0.0 : roi[axis], roiEnd = roi.empty() ? 1.0 : roi[rank + axis];
  const bool excludeOutside = a.getInt("exclude_outside") != 0;
  const double cubicA = a.getFloat("cubic_coeff_a");

  ResizeAxis r;
  r.taps = mode == "nearest" ? 1 : mode == "linear" ? 2 : 4;
  std::vector<double> weights(static_cast<size_t>(r.taps));
  for (int64_t o = 0; o < out; ++o) {
    const double x = sourceCoordinate(transform, static_cast<double>(o), scale, static_cast<double>(in), resized,
                                      roiStart, roiEnd);
    const bool outside = transform == "tf_crop_and_resize" && (x < 0 || x > static_cast<double>(in - 1));
    if (outside) {
      r.outside.resize(static_cast<size_t>(out));
      r.outside[static_cast<size_t>(o)] = true;
    }
    int64_t first;  // the input index of tap 0 before clamping
    if (mode == "nearest") {
      first = nearestIndex(a.getString("nearest_mode"), x);
      weights[0] = 1;
    } else {
      const double floor = std::floor(x), t = x - floor;
      first = static_cast<int64_t>(floor) - (r.taps == 4 ? 1 : 0);
      for (int64_t k = 0; k < r.taps; ++k)
        weights[static_cast<size_t>(k)] = r.taps == 2 ? (k == 0 ? 1 - t : t)
                                                      : cubicWeight(std::fabs(t - static_cast<double>(k - 1)), cubicA);
    }
    if (excludeOutside) {
      double sum = 0;
      for (int64_t k = 0; k < r.taps; ++k) {
        if (first + k < 0 || first + k >= in) weights[static_cast<size_t>(k)] = 0;
        sum += weights[static_cast<size_t>(k)];
      }
      if (sum != 0)
        for (double& w : weights) w /= sum;
    }
    for (int64_t k = 0; k < r.taps; ++k) {
      r.index.push_back(std::clamp<int64_t>(first + k, 0, in - 1));
      r.weight.push_back(static_cast<float>(weights[static_cast<size_t>(k)]));
    }
  }
  // An axis that reads input o for output o (e.g. N and C of an image
  // resize) is marked so that kernels walk it as a plain loop.
  bool identity = in == out && r.outside.empty();
  for (int64_t o = 0; o < out && identity; ++o)
    for (int64_t k = 0; k < r.taps; ++k) {
      const size_t i = static_cast<size_t>(o * r.taps + k);
      if (r.weight[i] != 0 && (r.index[i] != o || r.weight[i] != 1)) identity = false;
    }
  if (identity) {
    r.taps = 1;
    r.index.clear();
    for (int64_t o = 0; o < out; ++o) r.index.push_back(o);
    r.weight.assign(static_cast<size_t>(out), 1.f);
    r.identity = true;
  }
  return r;
}

// Whether an axis at scale 1 reads input o for output o whatever its length,
// as a symbolic batch must (kernels resize it sample by sample): every
// transform maps o to o then, but tf_crop_and_resize with a roi other than
// [0, 1] and tf_half_pixel_for_nn (o + 0.5) unless nearest rounds it down.
bool keepsEveryLength(const Attributes& a, size_t axis) {
  const std::string& transform = a.getString("coordinate_transformation_mode");
  const std::vector<float>& roi = a.getFloats("roi");
  if (transform == "tf_crop_and_resize") return roi.empty() || (roi[axis] == 0.f && roi[roi.size() / 2 + axis] == 1.f);
  if (transform != "tf_half_pixel_for_nn") return true;
  const std::string& rounding = a.getString("nearest_mode");
  return a.getString("mode") == "nearest" && (rounding == "floor" || rounding == "round_prefer_floor");
}

std::vector<TensorType> inferResize(const InferContext& ctx) {
  requireFloat(ctx, 0);
  const Attributes& a = ctx.attrs();
  const Shape& x = ctx.input(0).shape;
  const std::vector<int64_t>& sizes = a.getInts("sizes");
  const std::vector<float>& scales = a.getFloats("scales");
  const std::vector<float>& roi = a.getFloats("roi");
  const std::string rank = std::to_string(x.rank());
  ctx.check(x.rank() >= 1, "input " + x.str() + " needs rank >= 1");
  ctx.check(sizes.size() == x.rank(), "sizes has " + std::to_string(sizes.size()) + " values, expected " + rank);
  ctx.check(scales.empty() || scales.size() == x.rank(),
            "scales has " + std::to_string(scales.size()) + " values, expected " + rank + " (or none)");
  ctx.check(roi.empty() || roi.size() == 2 * x.rank(),
            "roi has " + std::to_string(roi.size()) + " values, expected " + std::to_string(2 * x.rank()) + " (or none)");
  for (const char* name : {"mode", "coordinate_transformation_mode", "nearest_mode"})
    ctx.check(oneOf(a.getString(name), resizeAttributeValues(name)),
              std::string(name) + " '" + a.getString(name) + "' is not supported");
  const std::string& transform = a.getString("coordinate_transformation_mode");
  Shape out;
  for (size_t d = 0; d < x.rank(); ++d) {
    const std::string dim = "dim " + std::to_string(d);
    // kBatch in sizes: the batch keeps its size (the interpreter binds it).
    if (x[d] == kBatch || sizes[d] == kBatch) {
      ctx.check(d == 0 && sizes[d] == kBatch && (scales.empty() || scales[d] == 1.f),
                "the symbolic batch of " + x.str() + " can only keep its size (" + dim + " of sizes and scales)");
      ctx.check(keepsEveryLength(a, d), "coordinate_transformation_mode '" + transform +
                                            "' would mix the samples of the symbolic batch of " + x.str());
      out.dims.push_back(x[d]);
      continue;
    }
    ctx.check(x[d] >= 1 && sizes[d] >= 1, dim + ": cannot resize " + x.str() + " to size " + std::to_string(sizes[d]));
    ctx.check(scales.empty() || scales[d] > 0, dim + ": scales must be positive");
    out.dims.push_back(sizes[d]);
  }
  return {{DType::F32, out}};
}

// Steps the row-major counter `idx` (digit d runs to limits[d]); false, with
// `idx` back at zero, after the last.
bool advance(std::vector<int64_t>& idx, const std::vector<int64_t>& limits) {
  for (size_t d = idx.size(); d-- > 0;) {
    if (++idx[d] < limits[d]) return true;
    idx[d] = 0;
  }
  return false;
}

// Every output element is the weighted sum of the input elements that the
// axes' taps select (all tap combinations), or extrapolation_value where an
// axis lies outside the input.
void referenceResize(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  Tensor& y = ctx.output(0);
  const Shape &xs = x.shape(), &ys = y.shape();
  const std::vector<ResizeAxis> axes = resizeAxes(ctx.attrs(), xs, ys);
  const std::vector<int64_t> strides = stridesOf(xs);
  const float extrapolation = ctx.attrs().getFloat("extrapolation_value");
  const size_t rank = xs.rank();
  const float* xd = x.data<float>();
  float* yd = y.data<float>();
  std::vector<int64_t> taps, o(rank, 0), k(rank, 0);
  for (const ResizeAxis& axis : axes) taps.push_back(axis.taps);
  int64_t i = 0;
  do {
    bool outside = false;
    for (size_t d = 0; d < rank; ++d)
      outside = outside || (!axes[d].outside.empty() && axes[d].outside[static_cast<size_t>(o[d])]);
    float sum = 0.f;
    if (!outside) do {
        int64_t offset = 0;
        float weight = 1.f;
        for (size_t d = 0; d < rank; ++d) {
          const size_t tap = static_cast<size_t>(o[d] * axes[d].taps + k[d]);
          offset += axes[d].index[tap] * strides[d];
          weight *= axes[d].weight[tap];
        }
        sum += weight * xd[offset];
      } while (advance(k, taps));
    yd[i++] = outside ? extrapolation : sum;
  } while (advance(o, ys.dims));
}

}  // namespace

const std::vector<std::string>& resizeAttributeValues(const std::string& attribute) {
  static const std::vector<std::string> modes = {"nearest", "linear", "cubic"};
  static const std::vector<std::string> transforms = {"half_pixel", "pytorch_half_pixel", "align_corners",
                                                      "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize"};
  static const std::vector<std::string> rounding = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
  return attribute == "mode" ? modes : attribute == "nearest_mode" ? rounding : transforms;
}

std::vector<ResizeAxis> resizeAxes(const Attributes& attrs, const Shape& in, const Shape& out) {
  std::vector<ResizeAxis> axes;
  for (size_t d = 0; d < in.rank(); ++d) axes.push_back(sampleAxis(attrs, d, in[d], out[d]));
  return axes;
}

void registerResizeOps(OpRegistry& r) {
  OpDef d;
  d.name = "Resize";
  d.attrs = {{"sizes", AttrKind::Ints, std::nullopt},
             {"scales", AttrKind::Floats, AttrValue{std::vector<float>{}}},
             {"roi", AttrKind::Floats, AttrValue{std::vector<float>{}}},
             {"mode", AttrKind::String, AttrValue{std::string("nearest")}},
             {"coordinate_transformation_mode", AttrKind::String, AttrValue{std::string("half_pixel")}},
             {"nearest_mode", AttrKind::String, AttrValue{std::string("round_prefer_floor")}},
             {"cubic_coeff_a", AttrKind::Float, AttrValue{-0.75f}},
             {"exclude_outside", AttrKind::Int, AttrValue{int64_t{0}}},
             {"extrapolation_value", AttrKind::Float, AttrValue{0.f}}};
  d.infer = inferResize;
  d.reference = referenceResize;
  // A multiply-add per tap of every output element; nearest only copies.
  d.macs = [](const Node& n) -> int64_t {
    if (n.attrs.getString("mode") == "nearest") return 0;
    const Shape in = n.input(0)->type.shape.withBatch(1), out = n.output()->type.shape.withBatch(1);
    int64_t taps = 1;
    for (const ResizeAxis& axis : resizeAxes(n.attrs, in, out)) taps *= axis.taps;
    return out.product(0, out.rank()) * taps;
  };
  r.add(std::move(d));
}

}  // namespace kiln
