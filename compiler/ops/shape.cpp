// Shape and data-movement ops: Reshape, Flatten, Transpose, Squeeze,
// Unsqueeze, Concat, Pad, Dropout, Identity, Shape, Gather, ScatterND, Slice,
// Cast, ConstantOfShape, Range, and the planned copies of copy_plan.h (Split, Expand,
// Tile, DepthToSpace, SpaceToDepth). They move or convert elements without
// arithmetic, so shape inference is where the work is: it keeps the symbolic
// batch on dim 0 and refuses anything that would compute with it or move it.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "compiler/ir/graph.h"
#include "compiler/ops/copy_plan.h"
#include "compiler/ops/families.h"
#include "compiler/ops/helpers.h"

namespace kiln {

namespace {

AttrSpec requiredAttr(std::string name, AttrKind kind) { return {std::move(name), kind, std::nullopt}; }
AttrSpec intAttr(std::string name, int64_t v) { return {std::move(name), AttrKind::Int, AttrValue{v}}; }

std::string listStr(const std::vector<int64_t>& v) { return attrToString(AttrValue{v}); }

// Product of dims [begin, end) of a shape, failing through ctx on a symbolic
// dim or overflow.
int64_t staticProduct(const InferContext& ctx, const Shape& s, size_t begin, size_t end) {
  try {
    return s.product(begin, end);
  } catch (const Error& e) {
    ctx.fail(e.message());
  }
}

size_t axisIn(const InferContext& ctx, int64_t axis, size_t rank) {
  try {
    return normalizeAxis(axis, rank);
  } catch (const Error& e) {
    ctx.fail(e.message());
  }
}

// Normalizes a list of axes against `rank`, rejecting repeats.
std::vector<size_t> distinctAxes(const InferContext& ctx, const std::vector<int64_t>& axes, size_t rank) {
  std::vector<size_t> out;
  for (int64_t a : axes) {
    size_t n = axisIn(ctx, a, rank);
    ctx.check(std::find(out.begin(), out.end(), n) == out.end(), "axes " + listStr(axes) + " repeat an axis");
    out.push_back(n);
  }
  return out;
}

bool contains(const std::vector<size_t>& v, size_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

// The dtype named by a string attribute ("f32", "i64", "i32", "bool").
DType dtypeAttr(const InferContext& ctx, const std::string& attr) {
  const std::string& name = ctx.attrs().getString(attr);
  for (DType t : {DType::F32, DType::I64, DType::I32, DType::Bool})
    if (name == dtypeName(t)) return t;
  ctx.fail(attr + " '" + name + "' is not one of f32, i64, i32, bool");
}

void requireDType(const InferContext& ctx, size_t i, std::initializer_list<DType> allowed) {
  std::string names;
  for (DType t : allowed) {
    if (ctx.input(i).dtype == t) return;
    names += std::string(names.empty() ? "" : ", ") + dtypeName(t);
  }
  ctx.fail("input " + std::to_string(i) + " is " + ctx.input(i).str() + ", expected one of " + names);
}

// Kernel of ops whose output is the input's elements in the same order.
void viewKernel(KernelContext& ctx) { ctx.output(0) = ctx.input(0).reshaped(ctx.output(0).shape()); }

// y[i] = x[base + sum_d idx_d * strides_d] over y's shape: transposes and
// slices are both this walk with different strides.
void stridedCopy(const Tensor& x, Tensor& y, int64_t base, const std::vector<int64_t>& strides) {
  visitDType(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* in = x.data<T>() + base;
    T* out = y.data<T>();
    forEachBroadcast(y.shape(), {strides}, [&](int64_t i, const std::vector<int64_t>& off) { out[i] = in[off[0]]; });
  });
}

// Value conversion for Cast and ConstantOfShape. Float to integer truncates
// toward zero and saturates (NaN becomes 0) instead of being undefined.
template <class To, class From>
To convert(From v) {
  if constexpr (std::is_same_v<To, bool>) {
    return v != From{0};
  } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
    if (std::isnan(v)) return 0;
    const double lowest = static_cast<double>(std::numeric_limits<To>::min());  // -2^(bits-1), exact
    if (v >= -lowest) return std::numeric_limits<To>::max();
    if (v <= lowest - 1.0) return std::numeric_limits<To>::min();
    return static_cast<To>(v);
  } else {
    return static_cast<To>(v);
  }
}

// --- Reshape ---------------------------------------------------------------

std::vector<TensorType> inferReshape(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  const Shape& in = x.shape;
  const std::vector<int64_t>& target = ctx.attrs().getInts("shape");
  const bool allowzero = ctx.attrs().getInt("allowzero") != 0;
  Shape out;
  constexpr size_t kNone = SIZE_MAX;
  size_t inferred = kNone;  // index of the -1 dim
  bool hasZero = false;
  for (size_t i = 0; i < target.size(); ++i) {
    const int64_t v = target[i];
    if (v == -1) {
      ctx.check(inferred == kNone, "shape " + listStr(target) + " has more than one -1");
      inferred = i;
      out.dims.push_back(1);
    } else if (v == 0 && !allowzero) {
      ctx.check(i < in.rank(), "shape " + listStr(target) + " copies dim " + std::to_string(i) + " of " + x.str() +
                                   ", which has no such dim");
      out.dims.push_back(in[i]);
    } else {
      ctx.check(v >= 0, "shape " + listStr(target) + " has a negative dim other than -1");
      hasZero = hasZero || v == 0;
      out.dims.push_back(v);
    }
  }
  ctx.check(!(allowzero && hasZero && inferred != kNone),
            "shape " + listStr(target) + " has both 0 and -1 with allowzero=1");
  const std::string what = "cannot reshape " + x.str() + " to " + listStr(target);
  // With a symbolic batch the output's dim 0 must be that same batch (copied
  // by 0, or inferred by -1 when the other dims account for everything
  // else); the remaining static dims must then match the input's.
  const size_t first = in.hasSymbolicBatch() ? 1 : 0;
  if (in.hasSymbolicBatch()) {
    ctx.check(!target.empty() && (out[0] == kBatch || inferred == 0),
              what + ": the symbolic batch must stay at dim 0 (shape[0] must be 0 or -1)");
    if (inferred == 0) {
      out[0] = kBatch;
      inferred = kNone;
    }
  }
  const int64_t inCount = staticProduct(ctx, in, first, in.rank());
  const int64_t outCount = staticProduct(ctx, out, first, out.rank());  // the -1 dim counts as 1 here
  if (inferred != kNone) {
    ctx.check(outCount != 0, what + ": -1 is ambiguous next to a 0 dim");
    ctx.check(inCount % outCount == 0, what + ": element counts do not divide");
    out[inferred] = inCount / outCount;
  } else {
    ctx.check(inCount == outCount, what + ": element counts differ" +
                                       (first ? std::string(" (excluding the symbolic batch)") : std::string()));
  }
  return {TensorType{x.dtype, out}};
}

// --- Flatten ---------------------------------------------------------------

std::vector<TensorType> inferFlatten(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  const Shape& in = x.shape;
  const int64_t rank = static_cast<int64_t>(in.rank());
  int64_t axis = ctx.attrs().getInt("axis");
  ctx.check(axis >= -rank && axis <= rank, "axis " + std::to_string(axis) + " is out of range for " + x.str());
  if (axis < 0) axis += rank;
  const size_t split = static_cast<size_t>(axis);
  if (!in.hasSymbolicBatch())
    return {TensorType{x.dtype, Shape{staticProduct(ctx, in, 0, split), staticProduct(ctx, in, split, in.rank())}}};
  // The batch survives only as the whole of the outer dim.
  ctx.check(
      split >= 1 && staticProduct(ctx, in, 1, split) == 1,
      "flattening " + x.str() + " at axis " + std::to_string(axis) + " would fold the symbolic batch into other dims");
  return {TensorType{x.dtype, Shape{kBatch, staticProduct(ctx, in, split, in.rank())}}};
}

// --- Transpose -------------------------------------------------------------

std::vector<TensorType> inferTranspose(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  const std::vector<int64_t>& perm = ctx.attrs().getInts("perm");
  ctx.check(perm.size() == x.shape.rank(), "perm " + listStr(perm) + " does not match the rank of " + x.str());
  std::vector<size_t> axes = distinctAxes(ctx, perm, perm.size());
  ctx.check(std::all_of(perm.begin(), perm.end(), [](int64_t p) { return p >= 0; }),
            "perm " + listStr(perm) + " must list axes 0..rank-1");
  ctx.check(!x.shape.hasSymbolicBatch() || axes[0] == 0,
            "perm " + listStr(perm) + " would move the symbolic batch of " + x.str() + " off dim 0");
  Shape out;
  for (size_t a : axes) out.dims.push_back(x.shape[a]);
  return {TensorType{x.dtype, out}};
}

void transposeKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const std::vector<int64_t>& perm = ctx.attrs().getInts("perm");
  const std::vector<int64_t> inStrides = stridesOf(x.shape());
  std::vector<int64_t> strides;
  for (int64_t p : perm) strides.push_back(inStrides[static_cast<size_t>(p)]);
  stridedCopy(x, ctx.output(0), 0, strides);
}

// --- Squeeze / Unsqueeze ---------------------------------------------------

std::vector<TensorType> inferSqueeze(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  const std::vector<size_t> axes = distinctAxes(ctx, ctx.attrs().getInts("axes"), x.shape.rank());
  Shape out;
  for (size_t i = 0; i < x.shape.rank(); ++i) {
    if (!contains(axes, i)) {
      out.dims.push_back(x.shape[i]);
      continue;
    }
    ctx.check(x.shape[i] != kBatch, "cannot squeeze the symbolic batch of " + x.str());
    ctx.check(x.shape[i] == 1, "cannot squeeze dim " + std::to_string(i) + " of " + x.str() + ": it is not 1");
  }
  return {TensorType{x.dtype, out}};
}

std::vector<TensorType> inferUnsqueeze(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  const std::vector<int64_t>& attr = ctx.attrs().getInts("axes");
  const size_t rank = x.shape.rank() + attr.size();
  const std::vector<size_t> axes = distinctAxes(ctx, attr, rank);
  ctx.check(!x.shape.hasSymbolicBatch() || !contains(axes, 0),
            "axes " + listStr(attr) + " would move the symbolic batch of " + x.str() + " off dim 0");
  Shape out;
  size_t next = 0;
  for (size_t i = 0; i < rank; ++i) out.dims.push_back(contains(axes, i) ? 1 : x.shape[next++]);
  return {TensorType{x.dtype, out}};
}

// --- Concat ----------------------------------------------------------------

std::vector<TensorType> inferConcat(const InferContext& ctx) {
  const TensorType& first = ctx.input(0);
  requireDType(ctx, 0, {DType::F32, DType::I64});
  ctx.check(first.shape.rank() >= 1, "cannot concatenate scalars");
  const size_t axis = axisIn(ctx, ctx.attrs().getInt("axis"), first.shape.rank());
  Shape out = first.shape;
  out[axis] = 0;
  for (size_t i = 0; i < ctx.numInputs(); ++i) {
    const TensorType& t = ctx.input(i);
    const std::string which = "input " + std::to_string(i) + " " + t.str();
    ctx.check(t.dtype == first.dtype, which + " differs in dtype from input 0 " + first.str());
    ctx.check(t.shape.rank() == first.shape.rank(), which + " differs in rank from input 0 " + first.str());
    ctx.check(!(axis == 0 && t.shape.hasSymbolicBatch()), which + ": cannot concatenate along the symbolic batch");
    for (size_t d = 0; d < out.rank(); ++d) {
      if (d != axis)
        ctx.check(t.shape[d] == first.shape[d],
                  which + " differs from input 0 " + first.str() + " in dim " + std::to_string(d));
    }
    ctx.check(!__builtin_add_overflow(out[axis], t.shape[axis], &out[axis]), "concatenated dim overflows");
  }
  return {TensorType{first.dtype, out}};
}

void concatKernel(KernelContext& ctx) {
  Tensor& y = ctx.output(0);
  const size_t axis = normalizeAxis(ctx.attrs().getInt("axis"), y.shape().rank());
  const size_t elementSize = dtypeSize(y.dtype());
  // Each input contributes, per outer index, one contiguous block of
  // dim(axis) * inner elements; blocks of the inputs interleave in order.
  const int64_t outer = y.shape().product(0, axis);
  const size_t outBlock = static_cast<size_t>(y.shape().product(axis, y.shape().rank())) * elementSize;
  size_t offset = 0;
  for (size_t i = 0; i < ctx.numInputs(); ++i) {
    const Tensor& x = ctx.input(i);
    const size_t block = static_cast<size_t>(x.shape().product(axis, x.shape().rank())) * elementSize;
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(y.rawData() + static_cast<size_t>(o) * outBlock + offset,
                  x.rawData() + static_cast<size_t>(o) * block, block);
    offset += block;
  }
}

// --- Pad -------------------------------------------------------------------

// Negative pads crop first; positive pads then extend the cropped extent.
struct DimPad {
  int64_t crop;    // input elements dropped at the start
  int64_t extent;  // input elements kept
  int64_t lead;    // output elements before the kept ones
};

DimPad dimPad(int64_t dim, int64_t begin, int64_t end) {
  const int64_t crop = std::max<int64_t>(-begin, 0);
  return {crop, dim - crop - std::max<int64_t>(-end, 0), std::max<int64_t>(begin, 0)};
}

std::vector<TensorType> inferPad(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  requireDType(ctx, 0, {DType::F32, DType::I64, DType::I32});
  const std::vector<int64_t>& pads = ctx.attrs().getInts("pads");
  const std::string& mode = ctx.attrs().getString("mode");
  const size_t rank = x.shape.rank();
  ctx.check(mode == "constant" || mode == "reflect" || mode == "edge",
            "mode '" + mode + "' is not one of constant, reflect, edge");
  ctx.check(pads.size() == 2 * rank, "pads " + listStr(pads) + " need 2 values per dim of " + x.str());
  Shape out = x.shape;
  for (size_t d = 0; d < rank; ++d) {
    const int64_t begin = pads[d], end = pads[d + rank];
    const std::string where = "pads " + listStr(pads) + " at dim " + std::to_string(d) + " of " + x.str();
    if (x.shape[d] == kBatch) {
      ctx.check(begin == 0 && end == 0, where + ": cannot pad the symbolic batch");
      continue;
    }
    ctx.check(begin >= -x.shape[d] && end >= -x.shape[d], where + ": crops more than the dim holds");
    const DimPad p = dimPad(x.shape[d], begin, end);
    ctx.check(p.extent >= 0, where + ": crops more than the dim holds");
    const int64_t grow = std::max<int64_t>(begin, 0) + std::max<int64_t>(end, 0);
    if (grow > 0 && mode == "reflect")
      ctx.check(std::max(begin, end) < p.extent, where + ": reflect pads must be smaller than the dim");
    if (grow > 0 && mode == "edge") ctx.check(p.extent >= 1, where + ": edge padding needs a non-empty dim");
    ctx.check(!__builtin_add_overflow(p.extent, grow, &out[d]), where + ": padded dim overflows");
  }
  return {TensorType{x.dtype, out}};
}

template <class T>
void padKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  Tensor& y = ctx.output(0);
  const std::vector<int64_t>& pads = ctx.attrs().getInts("pads");
  const std::string& mode = ctx.attrs().getString("mode");
  const size_t rank = x.shape().rank();
  const std::vector<int64_t> inStrides = stridesOf(x.shape());
  // source[d][o]: the input index read for output index o along dim d, or -1
  // for the constant value.
  std::vector<std::vector<int64_t>> source(rank);
  for (size_t d = 0; d < rank; ++d) {
    const DimPad p = dimPad(x.shape()[d], pads[d], pads[d + rank]);
    for (int64_t o = 0; o < y.shape()[d]; ++o) {
      int64_t i = o - p.lead;
      if (i < 0 || i >= p.extent) {
        if (mode == "constant") {
          source[d].push_back(-1);
          continue;
        }
        if (mode == "reflect")
          i = i < 0 ? -i : 2 * (p.extent - 1) - i;
        else
          i = std::clamp<int64_t>(i, 0, p.extent - 1);
      }
      source[d].push_back(p.crop + i);
    }
  }
  const T value = convert<T>(ctx.attrs().getFloat("value"));
  const T* in = x.data<T>();
  T* out = y.data<T>();
  std::vector<int64_t> idx(rank, 0);
  for (int64_t i = 0; i < y.numElements(); ++i) {
    int64_t offset = 0;
    for (size_t d = 0; d < rank && offset >= 0; ++d) {
      const int64_t s = source[d][static_cast<size_t>(idx[d])];
      offset = s < 0 ? -1 : offset + s * inStrides[d];
    }
    out[i] = offset < 0 ? value : in[offset];
    for (size_t d = rank; d-- > 0;) {
      if (++idx[d] < y.shape()[d]) break;
      idx[d] = 0;
    }
  }
}

// --- Shape -----------------------------------------------------------------

// ONNX-15 Shape slicing: negative bounds count from the end, then both clamp
// to [0, rank].
std::pair<size_t, size_t> shapeRange(const Attributes& attrs, size_t rank) {
  const int64_t r = static_cast<int64_t>(rank);
  auto clampBound = [r](int64_t b) { return std::clamp<int64_t>(b < 0 ? b + r : b, 0, r); };
  const int64_t start = clampBound(attrs.getInt("start")), end = clampBound(attrs.getInt("end"));
  return {static_cast<size_t>(start), static_cast<size_t>(std::max(start, end))};
}

std::vector<TensorType> inferShape(const InferContext& ctx) {
  const auto [start, end] = shapeRange(ctx.attrs(), ctx.input(0).shape.rank());
  return {TensorType{DType::I64, Shape{static_cast<int64_t>(end - start)}}};
}

void shapeKernel(KernelContext& ctx) {
  const Shape& in = ctx.input(0).shape();
  const auto [start, end] = shapeRange(ctx.attrs(), in.rank());
  std::copy(in.dims.begin() + static_cast<ptrdiff_t>(start), in.dims.begin() + static_cast<ptrdiff_t>(end),
            ctx.output(0).data<int64_t>());
}

// --- Gather ----------------------------------------------------------------

std::vector<TensorType> inferGather(const InferContext& ctx) {
  const TensorType& data = ctx.input(0);
  const TensorType& indices = ctx.input(1);
  requireDType(ctx, 0, {DType::F32, DType::I64});
  requireDType(ctx, 1, {DType::I64, DType::I32});
  ctx.check(data.shape.rank() >= 1, "cannot gather from a scalar");
  const size_t axis = axisIn(ctx, ctx.attrs().getInt("axis"), data.shape.rank());
  ctx.check(!(axis == 0 && data.shape.hasSymbolicBatch()), "cannot gather along the symbolic batch of " + data.str());
  ctx.check(!(axis > 0 && indices.shape.hasSymbolicBatch()),
            "indices " + indices.str() + " would put the symbolic batch at dim " + std::to_string(axis));
  Shape out;
  out.dims.insert(out.dims.end(), data.shape.dims.begin(), data.shape.dims.begin() + static_cast<ptrdiff_t>(axis));
  out.dims.insert(out.dims.end(), indices.shape.dims.begin(), indices.shape.dims.end());
  out.dims.insert(out.dims.end(), data.shape.dims.begin() + static_cast<ptrdiff_t>(axis) + 1, data.shape.dims.end());
  return {TensorType{data.dtype, out}};
}

void gatherKernel(KernelContext& ctx) {
  const Tensor& data = ctx.input(0);
  Tensor& y = ctx.output(0);
  const Shape& shape = data.shape();
  const size_t axis = normalizeAxis(ctx.attrs().getInt("axis"), shape.rank());
  const int64_t dim = shape[axis];
  std::vector<int64_t> indices = ctx.input(1).toInts();
  for (int64_t& i : indices) {
    if (i < -dim || i >= dim)
      ctx.fail("index " + std::to_string(i) + " is out of range for dim " + std::to_string(axis) + " of size " +
               std::to_string(dim));
    if (i < 0) i += dim;
  }
  const int64_t outer = shape.product(0, axis);
  const size_t slab = static_cast<size_t>(shape.product(axis + 1, shape.rank())) * dtypeSize(data.dtype());
  std::byte* out = y.rawData();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i : indices) {
      std::memcpy(out, data.rawData() + static_cast<size_t>(o * dim + i) * slab, slab);
      out += slab;
    }
}

// --- ScatterND -------------------------------------------------------------

// data[r], indices[..., k] (k <= r), updates = indices.shape[:-1] +
// data.shape[k:]; the output is data's type.
std::vector<TensorType> inferScatterND(const InferContext& ctx) {
  const TensorType &data = ctx.input(0), &indices = ctx.input(1), &updates = ctx.input(2);
  requireDType(ctx, 0, {DType::F32, DType::I64, DType::I32, DType::Bool});
  requireDType(ctx, 1, {DType::I64, DType::I32});
  const std::string& reduction = ctx.attrs().getString("reduction");
  ctx.check(reduction == "none" || reduction == "add" || reduction == "mul",
            "reduction '" + reduction + "' is not one of none, add, mul");
  ctx.check(reduction == "none" || data.dtype != DType::Bool, "reduction '" + reduction + "' needs numbers, not bool");
  for (const TensorType* t : {&data, &indices, &updates})
    ctx.check(!t->shape.hasSymbolicBatch(), "ScatterND on the symbolic batch (" + t->str() + ") is not supported");
  ctx.check(data.shape.rank() >= 1 && indices.shape.rank() >= 1, "data and indices must have rank >= 1");
  const int64_t k = indices.shape.dims.back();
  ctx.check(k >= 1 && k <= static_cast<int64_t>(data.shape.rank()),
            "indices " + indices.str() + " address " + std::to_string(k) + " dims of " + data.str());
  Shape expected;
  expected.dims.assign(indices.shape.dims.begin(), indices.shape.dims.end() - 1);
  expected.dims.insert(expected.dims.end(), data.shape.dims.begin() + k, data.shape.dims.end());
  ctx.check(updates.dtype == data.dtype && updates.shape == expected,
            "updates are " + updates.str() + ", expected " + TensorType{data.dtype, expected}.str());
  return {data};
}

template <class T>
void scatterNDKernel(KernelContext& ctx) {
  const Tensor &data = ctx.input(0), &updates = ctx.input(2);
  Tensor& y = ctx.output(0);
  const std::vector<int64_t> indices = ctx.input(1).toInts();
  const Shape& shape = data.shape();
  const size_t k = static_cast<size_t>(ctx.input(1).shape().dims.back());
  const int64_t slab = shape.product(k, shape.rank());
  const std::vector<int64_t> strides = stridesOf(shape);
  const std::string& reduction = ctx.attrs().getString("reduction");
  std::copy_n(data.data<T>(), data.numElements(), y.data<T>());
  T* out = y.data<T>();
  const T* in = updates.data<T>();
  // Index tuples apply in order (a repeated one: the last wins, or all combine).
  for (size_t t = 0; t * k < indices.size(); ++t) {
    int64_t offset = 0;
    for (size_t j = 0; j < k; ++j) {
      int64_t i = indices[t * k + j];
      if (i < -shape[j] || i >= shape[j])
        ctx.fail("index " + std::to_string(i) + " is out of range for dim " + std::to_string(j) + " of size " +
                 std::to_string(shape[j]));
      offset += (i < 0 ? i + shape[j] : i) * strides[j];
    }
    for (int64_t e = 0; e < slab; ++e) {
      T& target = out[offset + e];
      const T u = in[static_cast<int64_t>(t) * slab + e];
      if constexpr (std::is_same_v<T, bool>)
        target = u;
      else
        target = reduction == "add" ? static_cast<T>(target + u) : reduction == "mul" ? static_cast<T>(target * u) : u;
    }
  }
}

// --- Slice -----------------------------------------------------------------

// A slice of one dim after ONNX clamping: elements start, start + step, ...
struct DimSlice {
  int64_t start, step, size;
};

// ONNX rules: negative bounds count from the end; then start clamps to
// [0, dim] (positive step) or [0, dim-1] (negative step), and end to [0, dim]
// or [-1, dim-1]. INT64_MIN/INT64_MAX bounds thus mean "from/to the edge".
DimSlice clampSlice(int64_t dim, int64_t start, int64_t end, int64_t step) {
  if (dim == 0) return {0, step, 0};
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
  } else {
    start = std::clamp<int64_t>(start, 0, dim - 1);
    end = std::clamp<int64_t>(end, -1, dim - 1);
  }
  const int64_t distance = step > 0 ? end - start : start - end;
  const uint64_t magnitude = step > 0 ? static_cast<uint64_t>(step) : 0 - static_cast<uint64_t>(step);
  const int64_t size = distance <= 0 ? 0 : static_cast<int64_t>(static_cast<uint64_t>(distance - 1) / magnitude) + 1;
  return {start, step, size};
}

// Ends at or beyond this mean "to the end" of a symbolic batch: exporters
// write INT64_MAX or INT32_MAX there, and no real batch is that large.
constexpr int64_t kWholeBatchEnd = INT32_MAX;

// Per-dim slices of `in` (identity for dims not listed in axes, and for a
// symbolic batch, which inferSlice only lets through when taken whole).
std::vector<DimSlice> sliceDims(const Attributes& attrs, const Shape& in) {
  const std::vector<int64_t>& starts = attrs.getInts("starts");
  const std::vector<int64_t>& ends = attrs.getInts("ends");
  const std::vector<int64_t>& axes = attrs.getInts("axes");
  const std::vector<int64_t>& steps = attrs.getInts("steps");
  std::vector<DimSlice> dims;
  for (size_t d = 0; d < in.rank(); ++d) dims.push_back({0, 1, in[d]});
  for (size_t k = 0; k < axes.size(); ++k) {
    const size_t a = normalizeAxis(axes[k], in.rank());
    if (in[a] != kBatch) dims[a] = clampSlice(in[a], starts[k], ends[k], steps[k]);
  }
  return dims;
}

std::vector<TensorType> inferSlice(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  const std::vector<int64_t>& starts = ctx.attrs().getInts("starts");
  const std::vector<int64_t>& ends = ctx.attrs().getInts("ends");
  const std::vector<int64_t>& axesAttr = ctx.attrs().getInts("axes");
  const std::vector<int64_t>& steps = ctx.attrs().getInts("steps");
  ctx.check(starts.size() == ends.size() && starts.size() == axesAttr.size() && starts.size() == steps.size(),
            "starts, ends, axes and steps must have equal lengths");
  const std::vector<size_t> axes = distinctAxes(ctx, axesAttr, x.shape.rank());
  for (size_t k = 0; k < axes.size(); ++k) {
    ctx.check(steps[k] != 0, "steps " + listStr(steps) + " contain 0");
    if (x.shape[axes[k]] == kBatch)
      ctx.check(starts[k] == 0 && ends[k] >= kWholeBatchEnd && steps[k] == 1,
                "the symbolic batch of " + x.str() + " can only be sliced whole (start 0, end INT64_MAX, step 1)");
  }
  Shape out;
  for (const DimSlice& s : sliceDims(ctx.attrs(), x.shape)) out.dims.push_back(s.size);
  return {TensorType{x.dtype, out}};
}

void sliceKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const std::vector<DimSlice> dims = sliceDims(ctx.attrs(), x.shape());
  const std::vector<int64_t> inStrides = stridesOf(x.shape());
  int64_t base = 0;
  std::vector<int64_t> strides;
  for (size_t d = 0; d < dims.size(); ++d) {
    base += dims[d].start * inStrides[d];
    // A dim read once never advances; zeroing its stride avoids overflowing
    // stride * step for huge steps.
    strides.push_back(dims[d].size > 1 ? dims[d].step * inStrides[d] : 0);
  }
  if (ctx.output(0).numElements() > 0) stridedCopy(x, ctx.output(0), base, strides);
}

// --- Cast and ConstantOfShape ---------------------------------------------

void castKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  Tensor& y = ctx.output(0);
  visitDType(x.dtype(), [&](auto fromTag) {
    using From = decltype(fromTag);
    visitDType(y.dtype(), [&](auto toTag) {
      using To = decltype(toTag);
      const From* in = x.data<From>();
      To* out = y.data<To>();
      for (int64_t i = 0; i < x.numElements(); ++i) out[i] = convert<To>(in[i]);
    });
  });
}

std::vector<TensorType> inferConstantOfShape(const InferContext& ctx) {
  const std::vector<int64_t>& dims = ctx.attrs().getInts("shape");
  ctx.check(std::all_of(dims.begin(), dims.end(), [](int64_t d) { return d >= 0; }),
            "shape " + listStr(dims) + " has a negative dim");
  Shape shape(dims);
  staticProduct(ctx, shape, 0, shape.rank());
  return {TensorType{dtypeAttr(ctx, "dtype"), shape}};
}

void constantOfShapeKernel(KernelContext& ctx) {
  Tensor& y = ctx.output(0);
  const float value = ctx.attrs().getFloat("value");
  visitDType(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    std::fill_n(y.data<T>(), y.numElements(), convert<T>(value));
  });
}

// --- Range -----------------------------------------------------------------

// Range(start, delta) with `size` elements: start + i * delta. The importer
// computes size from ONNX's constant start, limit and delta; start and
// delta stay scalar inputs so that integers keep every bit (a float
// attribute would round int64 values).
std::vector<TensorType> inferRange(const InferContext& ctx) {
  const TensorType &start = ctx.input(0), &delta = ctx.input(1);
  requireDType(ctx, 0, {DType::F32, DType::I64, DType::I32});
  ctx.check(delta.dtype == start.dtype, "delta is " + delta.str() + ", start is " + start.str() + ": one type");
  for (const TensorType* t : {&start, &delta})
    ctx.check(t->shape.isStatic() && t->shape.numElements() == 1, t->str() + " must hold one value");
  const int64_t size = ctx.attrs().getInt("size");
  ctx.check(size >= 0, "size " + std::to_string(size) + " is negative");
  return {TensorType{start.dtype, Shape{size}}};
}

void rangeKernel(KernelContext& ctx) {
  Tensor& y = ctx.output(0);
  visitDType(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, bool>) {
      const T start = ctx.input(0).data<T>()[0], delta = ctx.input(1).data<T>()[0];
      T* out = y.data<T>();
      for (int64_t i = 0; i < y.numElements(); ++i) {
        if constexpr (std::is_integral_v<T>)  // wraps like the integer arithmetic ops
          out[i] = static_cast<T>(static_cast<std::make_unsigned_t<T>>(start) +
                                  static_cast<std::make_unsigned_t<T>>(i) * static_cast<std::make_unsigned_t<T>>(delta));
        else
          out[i] = start + static_cast<T>(i) * delta;
      }
    }
  });
}

// --- Split, Expand, Tile, DepthToSpace, SpaceToDepth (copy_plan.h) ---------

std::vector<TensorType> inferSplit(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  const size_t axis = axisIn(ctx, ctx.attrs().getInt("axis"), x.shape.rank());
  ctx.check(!(axis == 0 && x.shape.hasSymbolicBatch()), "cannot split " + x.str() + " along its symbolic batch");
  const std::vector<int64_t>& sizes = ctx.attrs().getInts("split");
  ctx.check(!sizes.empty(), "split must list at least one part");
  int64_t total = 0;
  std::vector<TensorType> out;
  for (int64_t size : sizes) {
    ctx.check(size >= 0 && !__builtin_add_overflow(total, size, &total), "split " + listStr(sizes) + " is invalid");
    Shape part = x.shape;
    part[axis] = size;
    out.push_back({x.dtype, part});
  }
  ctx.check(total == x.shape[axis], "split " + listStr(sizes) + " does not add up to dim " + std::to_string(axis) +
                                        " of " + x.str());
  return out;
}

std::vector<TensorType> inferExpand(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  const std::vector<int64_t>& shape = ctx.attrs().getInts("shape");
  ctx.check(std::all_of(shape.begin(), shape.end(), [](int64_t d) { return d >= 0; }),
            "shape " + listStr(shape) + " has a negative dim");
  return {TensorType{x.dtype, broadcastShapes(ctx, x.shape, Shape(shape))}};
}

std::vector<TensorType> inferTile(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  const std::vector<int64_t>& repeats = ctx.attrs().getInts("repeats");
  ctx.check(repeats.size() == x.shape.rank(),
            "repeats " + listStr(repeats) + " must give one count per dim of " + x.str());
  Shape out = x.shape;
  for (size_t d = 0; d < repeats.size(); ++d) {
    ctx.check(repeats[d] >= 0, "repeats " + listStr(repeats) + " has a negative count");
    if (out[d] == kBatch) {
      ctx.check(repeats[d] == 1, "tiling would repeat the symbolic batch of " + x.str());
      continue;
    }
    ctx.check(!__builtin_mul_overflow(out[d], repeats[d], &out[d]), "tiling " + x.str() + " overflows");
  }
  return {TensorType{x.dtype, out}};
}

// DepthToSpace and SpaceToDepth: 4-D [N, C, H, W] and a block size >= 1.
int64_t blockSizeOf(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  ctx.check(x.shape.rank() == 4, "input " + x.str() + " must be 4-D (N, C, H, W)");
  const int64_t block = ctx.attrs().getInt("blocksize");
  ctx.check(block >= 1, "blocksize must be >= 1");
  return block;
}

std::vector<TensorType> inferDepthToSpace(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  const int64_t block = blockSizeOf(ctx);
  const std::string& mode = ctx.attrs().getString("mode");
  ctx.check(mode == "DCR" || mode == "CRD", "mode '" + mode + "' is not DCR or CRD");
  ctx.check(x.shape[1] % (block * block) == 0,
            "the " + std::to_string(x.shape[1]) + " channels of " + x.str() + " are not a multiple of blocksize^2");
  return {TensorType{x.dtype, Shape{x.shape[0], x.shape[1] / (block * block), x.shape[2] * block, x.shape[3] * block}}};
}

std::vector<TensorType> inferSpaceToDepth(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  const int64_t block = blockSizeOf(ctx);
  ctx.check(x.shape[2] % block == 0 && x.shape[3] % block == 0,
            "the spatial dims of " + x.str() + " are not multiples of blocksize " + std::to_string(block));
  return {TensorType{x.dtype, Shape{x.shape[0], x.shape[1] * block * block, x.shape[2] / block, x.shape[3] / block}}};
}

void plannedCopyKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  for (size_t o = 0; o < ctx.node().outputs.size(); ++o) {
    Tensor& y = ctx.output(o);
    const CopyPlan plan = copyPlan(ctx.node().opName(), ctx.attrs(), x.shape(), y.shape(), o);
    visitDType(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* in = x.data<T>() + plan.inBase;
      T* out = y.data<T>();
      forEachBroadcast(Shape(plan.dims), {plan.outStrides, plan.inStrides},
                       [&](int64_t, const std::vector<int64_t>& off) { out[off[0]] = in[off[1]]; });
    });
  }
}

OpDef shapeOp(std::string name, std::vector<AttrSpec> attrs, InferFn infer, KernelFn kernel) {
  OpDef d;
  d.name = std::move(name);
  d.attrs = std::move(attrs);
  d.infer = std::move(infer);
  d.reference = std::move(kernel);
  return d;
}

}  // namespace

CopyPlan copyPlan(std::string_view op, const Attributes& attrs, const Shape& in, const Shape& out, size_t output) {
  const std::vector<int64_t> inStrides = stridesOf(in);
  if (op == "Split") {
    const size_t axis = normalizeAxis(attrs.getInt("axis"), in.rank());
    const std::vector<int64_t>& sizes = attrs.getInts("split");
    int64_t offset = 0;
    for (size_t i = 0; i < output; ++i) offset += sizes[i];
    return {out.dims, stridesOf(out), inStrides, offset * inStrides[axis]};
  }
  if (op == "Expand") return {out.dims, stridesOf(out), broadcastStrides(in, out), 0};
  if (op == "Tile") {
    // The output viewed as [r0, i0, r1, i1, ...]: repeat r_d of the input's dim d, index i_d in it.
    const std::vector<int64_t> outStrides = stridesOf(out);
    CopyPlan p;
    for (size_t d = 0; d < in.rank(); ++d) {
      p.dims.insert(p.dims.end(), {attrs.getInts("repeats")[d], in[d]});
      p.outStrides.insert(p.outStrides.end(), {in[d] * outStrides[d], outStrides[d]});
      p.inStrides.insert(p.inStrides.end(), {0, inStrides[d]});
    }
    return p;
  }
  const int64_t block = attrs.getInt("blocksize");
  const int64_t n = in[0], channels = in[1], height = in[2], width = in[3], plane = height * width;
  if (op == "DepthToSpace") {
    // The output [N][C'][H][b][W][b] in its own order reads input channel
    // (i*b + j)*C' + c (DCR: depth, column, row) or c*b*b + i*b + j (CRD).
    const int64_t depth = channels / (block * block);
    const bool crd = attrs.getString("mode") == "CRD";
    const std::vector<int64_t> dims = {n, depth, height, block, width, block};
    return {dims,
            stridesOf(Shape(dims)),
            {channels * plane, crd ? block * block * plane : plane, width, crd ? block * plane : block * depth * plane,
             1, crd ? plane : depth * plane},
            0};
  }
  // SpaceToDepth: the output [N][b][b][C][H/b][W/b] in its own order (channel
  // (i*b + j)*C + c) reads input [n][c][h*b + i][w*b + j].
  const std::vector<int64_t> dims = {n, block, block, channels, height / block, width / block};
  return {dims, stridesOf(Shape(dims)), {channels * plane, width, 1, plane, block * width, block}, 0};
}

void registerShapeOps(OpRegistry& r) {
  r.add(shapeOp("Reshape", {requiredAttr("shape", AttrKind::Ints), intAttr("allowzero", 0)}, inferReshape, viewKernel));
  r.add(shapeOp("Flatten", {intAttr("axis", 1)}, inferFlatten, viewKernel));
  r.add(shapeOp("Transpose", {requiredAttr("perm", AttrKind::Ints)}, inferTranspose, transposeKernel));
  r.add(shapeOp("Squeeze", {requiredAttr("axes", AttrKind::Ints)}, inferSqueeze, viewKernel));
  r.add(shapeOp("Unsqueeze", {requiredAttr("axes", AttrKind::Ints)}, inferUnsqueeze, viewKernel));
  OpDef concat = shapeOp("Concat", {requiredAttr("axis", AttrKind::Int)}, inferConcat, concatKernel);
  concat.maxInputs = kVariadic;
  r.add(std::move(concat));
  r.add(shapeOp("Pad",
                {requiredAttr("pads", AttrKind::Ints),
                 {"mode", AttrKind::String, AttrValue{std::string("constant")}},
                 {"value", AttrKind::Float, AttrValue{0.f}}},
                inferPad, [](KernelContext& ctx) {
                  visitDType(ctx.input(0).dtype(), [&](auto tag) {
                    if constexpr (!std::is_same_v<decltype(tag), bool>) padKernel<decltype(tag)>(ctx);
                  });
                }));
  r.add(shapeOp("Dropout", {}, sameAsFirstInput, viewKernel));
  r.add(shapeOp("Identity", {}, sameAsFirstInput, viewKernel));
  r.add(shapeOp("Shape", {intAttr("start", 0), intAttr("end", INT64_MAX)}, inferShape, shapeKernel));
  OpDef gather = shapeOp("Gather", {intAttr("axis", 0)}, inferGather, gatherKernel);
  gather.minInputs = gather.maxInputs = 2;
  r.add(std::move(gather));
  OpDef scatter = shapeOp("ScatterND", {{"reduction", AttrKind::String, AttrValue{std::string("none")}}},
                          inferScatterND, [](KernelContext& ctx) {
                            visitDType(ctx.input(0).dtype(), [&](auto tag) { scatterNDKernel<decltype(tag)>(ctx); });
                          });
  scatter.minInputs = scatter.maxInputs = 3;
  r.add(std::move(scatter));
  OpDef range = shapeOp("Range", {requiredAttr("size", AttrKind::Int)}, inferRange, rangeKernel);
  range.minInputs = range.maxInputs = 2;
  r.add(std::move(range));
  r.add(shapeOp("Slice",
                {requiredAttr("starts", AttrKind::Ints), requiredAttr("ends", AttrKind::Ints),
                 requiredAttr("axes", AttrKind::Ints), requiredAttr("steps", AttrKind::Ints)},
                inferSlice, sliceKernel));
  r.add(shapeOp(
      "Cast", {requiredAttr("to", AttrKind::String)},
      [](const InferContext& ctx) {
        return std::vector<TensorType>{{dtypeAttr(ctx, "to"), ctx.input(0).shape}};
      },
      castKernel));
  OpDef constantOfShape = shapeOp("ConstantOfShape",
                                  {requiredAttr("shape", AttrKind::Ints),
                                   {"value", AttrKind::Float, AttrValue{0.f}},
                                   {"dtype", AttrKind::String, AttrValue{std::string("f32")}}},
                                  inferConstantOfShape, constantOfShapeKernel);
  constantOfShape.minInputs = constantOfShape.maxInputs = 0;
  r.add(std::move(constantOfShape));
  OpDef split = shapeOp("Split", {requiredAttr("axis", AttrKind::Int), requiredAttr("split", AttrKind::Ints)},
                        inferSplit, plannedCopyKernel);
  split.numOutputs = kVariadic;
  r.add(std::move(split));
  r.add(shapeOp("Expand", {requiredAttr("shape", AttrKind::Ints)}, inferExpand, plannedCopyKernel));
  r.add(shapeOp("Tile", {requiredAttr("repeats", AttrKind::Ints)}, inferTile, plannedCopyKernel));
  r.add(shapeOp("DepthToSpace",
                {requiredAttr("blocksize", AttrKind::Int), {"mode", AttrKind::String, AttrValue{std::string("DCR")}}},
                inferDepthToSpace, plannedCopyKernel));
  r.add(shapeOp("SpaceToDepth", {requiredAttr("blocksize", AttrKind::Int)}, inferSpaceToDepth, plannedCopyKernel));
}

}  // namespace kiln
