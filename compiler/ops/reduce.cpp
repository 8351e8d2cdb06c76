// ReduceMean: the mean over a set of axes (all when `axes` is empty), the
// reduced dims kept as 1 or dropped.
#include <algorithm>

#include "compiler/ops/families.h"
#include "compiler/ops/helpers.h"

namespace kiln {

namespace {

// The normalized, sorted axes to reduce (every axis for an empty list).
std::vector<size_t> reducedAxes(const std::vector<int64_t>& axes, size_t rank) {
  std::vector<size_t> out;
  if (axes.empty()) {
    for (size_t i = 0; i < rank; ++i) out.push_back(i);
    return out;
  }
  for (int64_t a : axes) out.push_back(normalizeAxis(a, rank));
  std::sort(out.begin(), out.end());
  if (std::adjacent_find(out.begin(), out.end()) != out.end()) throw Error("axes repeat an axis");
  return out;
}

// The input shape with every reduced dim set to 1.
Shape keptDimsShape(const Shape& in, const std::vector<size_t>& axes) {
  Shape s = in;
  for (size_t a : axes) s[a] = 1;
  return s;
}

}  // namespace

void registerReduceOps(OpRegistry& r) {
  OpDef d;
  d.name = "ReduceMean";
  d.attrs = {{"axes", AttrKind::Ints, AttrValue{std::vector<int64_t>{}}},
             {"keepdims", AttrKind::Int, AttrValue{int64_t{1}}}};
  d.infer = [](const InferContext& ctx) {
    requireFloat(ctx, 0);
    const Shape& in = ctx.input(0).shape;
    std::vector<size_t> axes;
    try {
      axes = reducedAxes(ctx.attrs().getInts("axes"), in.rank());
    } catch (const Error& e) {
      ctx.fail(e.message() + " (input " + ctx.input(0).str() + ")");
    }
    ctx.check(!(in.hasSymbolicBatch() && !axes.empty() && axes[0] == 0),
              "cannot reduce over the symbolic batch dim of " + ctx.input(0).str());
    const int64_t keepdims = ctx.attrs().getInt("keepdims");
    ctx.check(keepdims == 0 || keepdims == 1, "keepdims must be 0 or 1");
    Shape out;
    for (size_t i = 0; i < in.rank(); ++i) {
      const bool reduced = std::binary_search(axes.begin(), axes.end(), i);
      if (!reduced)
        out.dims.push_back(in[i]);
      else if (keepdims)
        out.dims.push_back(1);
    }
    return std::vector<TensorType>{{DType::F32, out}};
  };
  d.reference = [](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    const Shape kept = keptDimsShape(x.shape(), reducedAxes(ctx.attrs().getInts("axes"), x.shape().rank()));
    const float* in = x.data<float>();
    // Accumulate in double so the reference is not limited by float rounding.
    std::vector<double> sums(static_cast<size_t>(kept.numElements()), 0.0);
    forEachBroadcast(x.shape(), {broadcastStrides(kept, x.shape())},
                     [&](int64_t i, const std::vector<int64_t>& off) { sums[off[0]] += in[i]; });
    Tensor& y = ctx.output(0);
    float* out = y.data<float>();
    const int64_t count = x.numElements() / std::max<int64_t>(kept.numElements(), 1);
    for (size_t i = 0; i < sums.size(); ++i) out[i] = static_cast<float>(sums[i] / static_cast<double>(count));
  };
  r.add(std::move(d));
}

}  // namespace kiln
