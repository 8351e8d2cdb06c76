// The reductions of reduce.h over a set of axes (all when `axes` is empty),
// the reduced dims kept as 1 or dropped, and ArgMax/ArgMin: the i64 index of
// the first (or, with select_last_index, last) extreme along one axis.
#include "compiler/ops/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "compiler/ops/families.h"
#include "compiler/ops/helpers.h"

namespace kiln {

const std::vector<Reduction>& reductions() {
  using M = ReduceMap;
  using C = ReduceCombine;
  using F = ReduceFinish;
  static const std::vector<Reduction> table = {
      {"ReduceSum", M::Identity, C::Add, F::Identity, false},
      {"ReduceMean", M::Identity, C::Add, F::Mean, false},
      {"ReduceSumSquare", M::Square, C::Add, F::Identity, false},
      {"ReduceL1", M::Abs, C::Add, F::Identity, false},
      {"ReduceL2", M::Square, C::Add, F::Sqrt, false},
      {"ReduceLogSum", M::Identity, C::Add, F::Log, false},
      {"ReduceLogSumExp", M::Exp, C::Add, F::Log, false},
      {"ReduceProd", M::Identity, C::Mul, F::Identity, false},
      {"ReduceMax", M::Identity, C::Max, F::Identity, true},
      {"ReduceMin", M::Identity, C::Min, F::Identity, true},
  };
  return table;
}

const Reduction* findReduction(std::string_view op) {
  for (const Reduction& r : reductions())
    if (op == r.op) return &r;
  return nullptr;
}

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

// The output shape: reduced dims become 1 (keepdims) or disappear.
Shape reducedShape(const InferContext& ctx, const Shape& in, const std::vector<size_t>& axes) {
  const int64_t keepdims = ctx.attrs().getInt("keepdims");
  ctx.check(keepdims == 0 || keepdims == 1, "keepdims must be 0 or 1");
  // Reducing across samples would make one sample's output depend on the others.
  ctx.check(!(in.hasSymbolicBatch() && !axes.empty() && axes[0] == 0),
            "cannot reduce over the symbolic batch dim of " + ctx.input(0).str());
  Shape out;
  for (size_t i = 0; i < in.rank(); ++i) {
    if (!std::binary_search(axes.begin(), axes.end(), i))
      out.dims.push_back(in[i]);
    else if (keepdims)
      out.dims.push_back(1);
  }
  return out;
}

// A NaN wins Max and Min (as it would any arithmetic combination).
template <class A>
A combine(ReduceCombine c, A acc, A v) {
  switch (c) {
    case ReduceCombine::Add: return acc + v;
    case ReduceCombine::Mul: return acc * v;
    case ReduceCombine::Max: return v > acc || v != v ? v : acc;
    case ReduceCombine::Min: return v < acc || v != v ? v : acc;
  }
  return acc;
}

template <class A>
A identityOf(ReduceCombine c) {
  switch (c) {
    case ReduceCombine::Add: return A{0};
    case ReduceCombine::Mul: return A{1};
    case ReduceCombine::Max: return std::is_floating_point_v<A> ? -std::numeric_limits<A>::infinity()
                                                                 : std::numeric_limits<A>::lowest();
    case ReduceCombine::Min: return std::is_floating_point_v<A> ? std::numeric_limits<A>::infinity()
                                                                 : std::numeric_limits<A>::max();
  }
  return A{0};
}

double mapValue(ReduceMap m, double x) {
  switch (m) {
    case ReduceMap::Identity: return x;
    case ReduceMap::Abs: return std::fabs(x);
    case ReduceMap::Square: return x * x;
    case ReduceMap::Exp: return std::exp(x);
  }
  return x;
}

double finishValue(ReduceFinish f, double acc, int64_t count) {
  switch (f) {
    case ReduceFinish::Identity: return acc;
    case ReduceFinish::Mean: return acc / static_cast<double>(count);
    case ReduceFinish::Sqrt: return std::sqrt(acc);
    case ReduceFinish::Log: return std::log(acc);
  }
  return acc;
}

OpDef reductionOp(const Reduction& red) {
  OpDef d;
  d.name = red.op;
  d.attrs = {{"axes", AttrKind::Ints, AttrValue{std::vector<int64_t>{}}},
             {"keepdims", AttrKind::Int, AttrValue{int64_t{1}}}};
  d.infer = [red](const InferContext& ctx) {
    const TensorType& x = ctx.input(0);
    ctx.check(x.dtype == DType::F32 || (red.acceptsI64 && x.dtype == DType::I64),
              "input 0 is " + x.str() + ", expected f32" + (red.acceptsI64 ? " or i64" : ""));
    std::vector<size_t> axes;
    try {
      axes = reducedAxes(ctx.attrs().getInts("axes"), x.shape.rank());
    } catch (const Error& e) {
      ctx.fail(e.message() + " (input " + x.str() + ")");
    }
    return std::vector<TensorType>{{x.dtype, reducedShape(ctx, x.shape, axes)}};
  };
  d.reference = [red](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    const Shape kept = keptDimsShape(x.shape(), reducedAxes(ctx.attrs().getInts("axes"), x.shape().rank()));
    const int64_t count = x.numElements() / std::max<int64_t>(kept.numElements(), 1);
    const std::vector<std::vector<int64_t>> strides = {broadcastStrides(kept, x.shape())};
    if (x.dtype() == DType::I64) {
      std::vector<int64_t> acc(static_cast<size_t>(kept.numElements()), identityOf<int64_t>(red.combine));
      const int64_t* in = x.data<int64_t>();
      forEachBroadcast(x.shape(), strides, [&](int64_t i, const std::vector<int64_t>& off) {
        acc[off[0]] = combine(red.combine, acc[off[0]], in[i]);
      });
      std::copy(acc.begin(), acc.end(), ctx.output(0).data<int64_t>());
      return;
    }
    // Accumulate in double so the reference is not limited by float rounding.
    const size_t outputs = static_cast<size_t>(kept.numElements());
    const float* in = x.data<float>();
    // Exp contributes exp(x - m), m the (finite, else 0) maximum, added back at the end.
    std::vector<double> shift(outputs, 0.0);
    if (red.map == ReduceMap::Exp) {
      std::vector<double> max(outputs, identityOf<double>(ReduceCombine::Max));
      forEachBroadcast(x.shape(), strides, [&](int64_t i, const std::vector<int64_t>& off) {
        max[off[0]] = combine(ReduceCombine::Max, max[off[0]], static_cast<double>(in[i]));
      });
      for (size_t i = 0; i < outputs; ++i) shift[i] = std::isfinite(max[i]) ? max[i] : 0.0;
    }
    std::vector<double> acc(outputs, identityOf<double>(red.combine));
    forEachBroadcast(x.shape(), strides, [&](int64_t i, const std::vector<int64_t>& off) {
      acc[off[0]] = combine(red.combine, acc[off[0]], mapValue(red.map, in[i] - shift[off[0]]));
    });
    float* out = ctx.output(0).data<float>();
    for (size_t i = 0; i < outputs; ++i)
      out[i] = static_cast<float>(finishValue(red.finish, acc[i], count) + shift[i]);
  };
  return d;
}

// Whether element v beats the best so far: larger (ArgMax) or smaller
// (ArgMin), equal too when the last extreme is wanted. A NaN beats every
// number, as numpy's argmax/argmin pick the first NaN.
template <class T>
bool beats(T v, T best, bool isMax, bool last) {
  if (best != best) return last && v != v;
  if (v != v) return true;
  return (isMax ? v > best : v < best) || (last && v == best);
}

OpDef argExtremeOp(const char* name, bool isMax) {
  OpDef d;
  d.name = name;
  d.attrs = {{"axis", AttrKind::Int, AttrValue{int64_t{0}}},
             {"keepdims", AttrKind::Int, AttrValue{int64_t{1}}},
             {"select_last_index", AttrKind::Int, AttrValue{int64_t{0}}}};
  d.infer = [](const InferContext& ctx) {
    const TensorType& x = ctx.input(0);
    ctx.check(x.dtype == DType::F32 || x.dtype == DType::I64, "input 0 is " + x.str() + ", expected f32 or i64");
    const int64_t axis = ctx.attrs().getInt("axis"), rank = static_cast<int64_t>(x.shape.rank());
    ctx.check(axis >= -rank && axis < rank, "axis " + std::to_string(axis) + " is out of range for " + x.str());
    const size_t a = normalizeAxis(axis, x.shape.rank());
    Shape out = reducedShape(ctx, x.shape, {a});
    ctx.check(x.shape[a] != 0, "axis " + std::to_string(axis) + " of " + x.str() + " is empty: it has no extreme");
    return std::vector<TensorType>{{DType::I64, out}};
  };
  d.reference = [isMax](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    const size_t axis = normalizeAxis(ctx.attrs().getInt("axis"), x.shape().rank());
    const bool last = ctx.attrs().getInt("select_last_index") != 0;
    const int64_t outer = x.shape().product(0, axis), n = x.shape()[axis];
    const int64_t inner = x.shape().product(axis + 1, x.shape().rank());
    int64_t* out = ctx.output(0).data<int64_t>();
    visitDType(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, float> || std::is_same_v<T, int64_t>) {
        const T* in = x.data<T>();
        for (int64_t o = 0; o < outer; ++o)
          for (int64_t i = 0; i < inner; ++i) {
            const T* row = in + o * n * inner + i;
            int64_t best = 0;
            for (int64_t k = 1; k < n; ++k)
              if (beats(row[k * inner], row[best * inner], isMax, last)) best = k;
            out[o * inner + i] = best;
          }
      }
    });
  };
  return d;
}

}  // namespace

void registerReduceOps(OpRegistry& r) {
  for (const Reduction& red : reductions()) r.add(reductionOp(red));
  r.add(argExtremeOp("ArgMax", true));
  r.add(argExtremeOp("ArgMin", false));
}

}  // namespace kiln
