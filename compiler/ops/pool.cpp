// Pooling: MaxPool, AveragePool, GlobalMaxPool, GlobalAveragePool. All four
// share one window mechanism: the pool's geometry (a global pool is a window
// spanning the whole input) gives, per output position, the offsets of the
// input elements it covers; a reducer (max or average) folds them.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "compiler/ops/families.h"
#include "compiler/ops/helpers.h"

namespace kiln {

namespace {

std::string str(int64_t v) { return std::to_string(v); }

// Window geometry per spatial axis (pads = begins then ends).
struct PoolParams {
  std::vector<int64_t> kernel, strides, pads, dilations;
  bool ceilMode = false;
};

PoolParams windowParams(const Attributes& a, std::vector<int64_t> dilations) {
  return {a.getInts("kernel_shape"), a.getInts("strides"), a.getInts("pads"), std::move(dilations),
          a.getInt("ceil_mode") != 0};
}

PoolParams maxPoolParams(const Attributes& a, const Shape&) { return windowParams(a, a.getInts("dilations")); }

PoolParams averagePoolParams(const Attributes& a, const Shape&) {
  return windowParams(a, std::vector<int64_t>(a.getInts("kernel_shape").size(), 1));
}

PoolParams globalPoolParams(const Attributes&, const Shape& x) {
  const size_t spatial = x.rank() - 2;
  return {std::vector<int64_t>(x.dims.begin() + 2, x.dims.end()), std::vector<int64_t>(spatial, 1),
          std::vector<int64_t>(2 * spatial, 0), std::vector<int64_t>(spatial, 1), false};
}

// The taps of one window along one axis: those inside the input (a run
// starting at input index `first`, stepping by the dilation) and those
// inside input or padding (what count_include_pad divides by).
struct AxisWindow {
  int64_t first, count, padded;
};

AxisWindow axisWindow(const PoolParams& p, size_t axis, int64_t in, int64_t o) {
  const size_t spatial = p.kernel.size();
  const int64_t kernel = p.kernel[axis], dilation = p.dilations[axis];
  const int64_t start = o * p.strides[axis] - p.pads[axis];  // input index of tap 0; >= -padBegin
  const int64_t skipped = start >= 0 ? 0 : (-start + dilation - 1) / dilation;  // taps in the begin padding
  const int64_t inside = start >= in ? 0 : std::min(kernel, (in - 1 - start) / dilation + 1);
  const int64_t padded = std::min(kernel, (in + p.pads[spatial + axis] - 1 - start) / dilation + 1);
  return {start + skipped * dilation, std::max<int64_t>(0, inside - skipped), padded};
}

// Checks the geometry against x [N, C, spatial...] (rank >= 3) and returns the output
// shape, ONNX rules: floor or ceil of the window positions, and in ceil mode
// the last window must start inside the input or the begin padding.
Shape pooledShape(const InferContext& ctx, const Shape& x, const PoolParams& p) {
  const size_t spatial = x.rank() - 2;
  auto checkLength = [&](const std::vector<int64_t>& v, const char* name, size_t want) {
    ctx.check(v.size() == want, std::string(name) + " has " + str(int64_t(v.size())) + " values, expected " +
                                    str(int64_t(want)) + " for input " + x.str());
  };
  checkLength(p.kernel, "kernel_shape", spatial);
  checkLength(p.strides, "strides", spatial);
  checkLength(p.dilations, "dilations", spatial);
  checkLength(p.pads, "pads", 2 * spatial);
  Shape out({x[0], x[1]});
  for (size_t d = 0; d < spatial; ++d) {
    const int64_t in = x[2 + d], kernel = p.kernel[d], stride = p.strides[d], dilation = p.dilations[d];
    const int64_t padBegin = p.pads[d], padEnd = p.pads[spatial + d];
    const int64_t span = windowSpan(ctx, d, in, kernel, stride, dilation, padBegin, padEnd);
    int64_t size = span / stride + 1;
    if (p.ceilMode && span % stride != 0 && size <= (in + padBegin - 1) / stride) ++size;
    for (int64_t o = 0; o < size; ++o)
      ctx.check(axisWindow(p, d, in, o).count > 0, "window " + str(o) + " along spatial dim " + str(int64_t(d)) +
                                                       " covers only padding");
    out.dims.push_back(size);
  }
  return out;
}

// For every output position (row-major), the offsets within one (n, c) plane
// of the input elements its window covers, and its count_include_pad size.
struct PoolWindows {
  std::vector<int64_t> offsets;  // position i reads offsets[begin[i] .. begin[i+1])
  std::vector<int64_t> begin{0};
  std::vector<int64_t> padded;
};

PoolWindows poolWindows(const Shape& x, const Shape& y, const PoolParams& p) {
  const size_t spatial = x.rank() - 2;
  const std::vector<int64_t> inStrides = stridesOf(Shape(std::vector<int64_t>(x.dims.begin() + 2, x.dims.end())));
  PoolWindows w;
  std::vector<int64_t> o(spatial, 0), next;
  for (int64_t i = 0, positions = y.product(2, y.rank()); i < positions; ++i) {
    // Expand the window axis by axis: each offset so far times the axis' taps.
    std::vector<int64_t> window{0};
    int64_t padded = 1;
    for (size_t d = 0; d < spatial; ++d) {
      const AxisWindow a = axisWindow(p, d, x[2 + d], o[d]);
      padded *= a.padded;
      next.clear();
      for (int64_t base : window)
        for (int64_t j = 0; j < a.count; ++j) next.push_back(base + (a.first + j * p.dilations[d]) * inStrides[d]);
      window.swap(next);
    }
    w.offsets.insert(w.offsets.end(), window.begin(), window.end());
    w.begin.push_back(static_cast<int64_t>(w.offsets.size()));
    w.padded.push_back(padded);
    for (size_t d = spatial; d-- > 0;)
      if (++o[d] < y[2 + d]) break;
      else o[d] = 0;
  }
  return w;
}

// Reducers: fold the covered elements of one window into one value.
struct MaxReduce {
  float operator()(const float* plane, const int64_t* first, const int64_t* last, int64_t) const {
    float m = -std::numeric_limits<float>::infinity();
    for (const int64_t* i = first; i != last; ++i)
      if (plane[*i] > m || std::isnan(plane[*i])) m = plane[*i];  // NaN propagates
    return m;
  }
};

struct AverageReduce {
  bool countIncludePad;
  float operator()(const float* plane, const int64_t* first, const int64_t* last, int64_t padded) const {
    float sum = 0.f;
    for (const int64_t* i = first; i != last; ++i) sum += plane[*i];
    return sum / static_cast<float>(countIncludePad ? padded : last - first);
  }
};

using ParamsFn = PoolParams (*)(const Attributes&, const Shape&);

template <class MakeReduce>
void addPool(OpRegistry& r, std::string name, std::vector<AttrSpec> attrs, ParamsFn params, MakeReduce makeReduce) {
  OpDef d;
  d.name = std::move(name);
  d.attrs = std::move(attrs);
  d.infer = [params](const InferContext& ctx) {
    requireFloat(ctx, 0);
    const Shape& x = ctx.input(0).shape;
    ctx.check(x.rank() >= 3, "input " + x.str() + " needs rank >= 3 (N, C, at least one spatial dim)");
    return std::vector<TensorType>{{DType::F32, pooledShape(ctx, x, params(ctx.attrs(), x))}};
  };
  d.reference = [params, makeReduce](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0);
    const PoolWindows w = poolWindows(x.shape(), y.shape(), params(ctx.attrs(), x.shape()));
    const auto reduce = makeReduce(ctx.attrs());
    const int64_t planes = x.shape().product(0, 2), inPlane = x.shape().product(2, x.shape().rank());
    const int64_t outPlane = static_cast<int64_t>(w.padded.size());
    const float* xd = x.data<float>();
    float* yd = y.data<float>();
    for (int64_t c = 0; c < planes; ++c) {
      const float* plane = xd + c * inPlane;
      float* out = yd + c * outPlane;
      for (int64_t i = 0; i < outPlane; ++i)
        out[i] = reduce(plane, w.offsets.data() + w.begin[i], w.offsets.data() + w.begin[i + 1], w.padded[i]);
    }
  };
  r.add(std::move(d));
}

AttrSpec required(std::string name) { return {std::move(name), AttrKind::Ints, std::nullopt}; }
AttrSpec flag(std::string name) { return {std::move(name), AttrKind::Int, AttrValue{int64_t{0}}}; }

}  // namespace

void registerPoolOps(OpRegistry& r) {
  auto max = [](const Attributes&) { return MaxReduce{}; };
  addPool(r, "MaxPool",
          {required("kernel_shape"), required("strides"), required("pads"), required("dilations"), flag("ceil_mode")},
          maxPoolParams, max);
  addPool(r, "AveragePool",
          {required("kernel_shape"), required("strides"), required("pads"), flag("ceil_mode"),
           flag("count_include_pad")},
          averagePoolParams,
          [](const Attributes& a) { return AverageReduce{a.getInt("count_include_pad") != 0}; });
  addPool(r, "GlobalMaxPool", {}, globalPoolParams, max);
  addPool(r, "GlobalAveragePool", {}, globalPoolParams, [](const Attributes&) { return AverageReduce{false}; });
}

}  // namespace kiln
