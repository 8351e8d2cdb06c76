// Softmax, LogSoftmax and Hardmax along one axis (opset-13 semantics).
// Softmax and LogSoftmax subtract the maximum along the axis first so exp()
// cannot overflow. Hardmax marks the first maximum of each row with 1 and
// every other element with 0 (a row of -inf marks its first element); a row
// holding a NaN has no maximum and becomes all NaN, as a NaN reaches every
// output of its row in Softmax.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "compiler/ops/families.h"
#include "compiler/ops/helpers.h"

namespace kiln {

namespace {

// Views a tensor as [outer, n, inner] around `axis`, the softmax axis.
struct AxisView {
  int64_t outer, n, inner;
};

AxisView viewAround(const Shape& shape, size_t axis) {
  return {shape.product(0, axis), shape[axis], shape.product(axis + 1, shape.rank())};
}

// Runs finish(row, stride, n, max, sumExp) on every 1-D row along the axis,
// where row[k * stride] for k < n are the row's elements (read and written).
template <class Finish>
void forEachRow(KernelContext& ctx, Finish finish) {
  const Tensor& x = ctx.input(0);
  Tensor& y = ctx.output(0);
  const size_t axis = normalizeAxis(ctx.attrs().getInt("axis"), x.shape().rank());
  const AxisView v = viewAround(x.shape(), axis);
  std::memcpy(y.rawData(), x.rawData(), x.byteSize());
  float* out = y.data<float>();
  for (int64_t o = 0; o < v.outer; ++o) {
    for (int64_t i = 0; i < v.inner; ++i) {
      float* row = out + o * v.n * v.inner + i;
      float max = -INFINITY;
      for (int64_t k = 0; k < v.n; ++k) max = std::max(max, row[k * v.inner]);
      double sum = 0.0;
      for (int64_t k = 0; k < v.n; ++k) sum += std::exp(row[k * v.inner] - max);
      finish(row, v.inner, v.n, max, static_cast<float>(sum));
    }
  }
}

OpDef softmaxOp(std::string name, KernelFn kernel) {
  OpDef d;
  d.name = std::move(name);
  d.attrs = {{"axis", AttrKind::Int, AttrValue{int64_t{-1}}}};
  d.infer = [](const InferContext& ctx) {
    requireFloat(ctx, 0);
    const Shape& shape = ctx.input(0).shape;
    ctx.check(shape.rank() >= 1, "input must have rank >= 1");
    int64_t axis = ctx.attrs().getInt("axis"), rank = static_cast<int64_t>(shape.rank());
    ctx.check(axis >= -rank && axis < rank,
              "axis " + std::to_string(axis) + " is out of range for " + ctx.input(0).str());
    // Normalizing across batch items would make one item's result depend on
    // the others; the batch axis stays independent.
    ctx.check(!(shape.hasSymbolicBatch() && normalizeAxis(axis, shape.rank()) == 0),
              "cannot normalize along the symbolic batch dim of " + ctx.input(0).str());
    return sameAsFirstInput(ctx);
  };
  d.reference = std::move(kernel);
  return d;
}

}  // namespace

void registerSoftmaxOps(OpRegistry& r) {
  r.add(softmaxOp("Softmax", [](KernelContext& ctx) {
    forEachRow(ctx, [](float* row, int64_t stride, int64_t n, float max, float sum) {
      for (int64_t k = 0; k < n; ++k) row[k * stride] = std::exp(row[k * stride] - max) / sum;
    });
  }));
  r.add(softmaxOp("LogSoftmax", [](KernelContext& ctx) {
    forEachRow(ctx, [](float* row, int64_t stride, int64_t n, float max, float sum) {
      const float logSum = std::log(sum);
      for (int64_t k = 0; k < n; ++k) row[k * stride] = row[k * stride] - max - logSum;
    });
  }));
  r.add(softmaxOp("Hardmax", [](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    const AxisView v = viewAround(x.shape(), normalizeAxis(ctx.attrs().getInt("axis"), x.shape().rank()));
    const float* in = x.data<float>();
    float* out = ctx.output(0).data<float>();  // arrives zeroed
    for (int64_t o = 0; o < v.outer; ++o) {
      for (int64_t i = 0; i < v.inner; ++i) {
        const int64_t start = o * v.n * v.inner + i;
        int64_t first = 0;
        float max = -INFINITY;
        bool nan = false;
        for (int64_t k = 0; k < v.n; ++k) {
          const float x = in[start + k * v.inner];
          nan = nan || std::isnan(x);
          // Strictly greater: a tie keeps the earlier element.
          if (x > max) {
            max = x;
            first = k;
          }
        }
        if (nan) {
          for (int64_t k = 0; k < v.n; ++k) out[start + k * v.inner] = NAN;
        } else if (v.n > 0) {
          out[start + first * v.inner] = 1.f;
        }
      }
    }
  }));
}

}  // namespace kiln
