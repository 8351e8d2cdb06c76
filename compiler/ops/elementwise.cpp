// Broadcasting elementwise ops: the arithmetic Add, Sub, Mul, Div, Mod, Pow
// and the variadic Sum, Max, Min, Mean, the comparisons Equal, Greater, Less,
// GreaterOrEqual, LessOrEqual (bool results), the logic And, Or, Xor, Not
// and the selection Where. Every op is a scalar functor applied by one
// broadcasting kernel, templated on the element type: folded over the inputs
// where inputs and output share a type, mapped over them otherwise. A functor
// with attributes (Mod's fmod) is constructed from the node's attributes.
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "compiler/ops/families.h"
#include "compiler/ops/helpers.h"

namespace kiln {

namespace {

// Signed integer overflow is undefined in C++; integer ops wrap in two's
// complement instead (as numpy and ONNX runtimes do).
template <class T>
using Wrap = std::make_unsigned_t<T>;

struct AddFn {
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>)
      return static_cast<T>(static_cast<Wrap<T>>(a) + static_cast<Wrap<T>>(b));
    else
      return a + b;
  }
};

struct SubFn {
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>)
      return static_cast<T>(static_cast<Wrap<T>>(a) - static_cast<Wrap<T>>(b));
    else
      return a - b;
  }
};

struct MulFn {
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>)
      return static_cast<T>(static_cast<Wrap<T>>(a) * static_cast<Wrap<T>>(b));
    else
      return a * b;
  }
};

// Integer division truncates toward zero (C++ semantics). Zero divisors are
// rejected before the kernel runs; MIN / -1 wraps instead of trapping.
struct DivFn {
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) {
      if (b == -1) return static_cast<T>(Wrap<T>{0} - static_cast<Wrap<T>>(a));
    }
    return a / b;
  }
};

// Max and Min propagate NaN (like numpy's maximum/minimum).
struct MaxFn {
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(b)) return b;
    }
    return a < b ? b : a;
  }
};

struct MinFn {
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(b)) return b;
    }
    return b < a ? b : a;
  }
};

// The remainder of division truncating toward zero. Integer zero divisors
// are rejected before the kernel runs; x % -1 is 0 (MIN % -1 does not trap).
template <class T>
T truncatedRemainder(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == -1) return 0;
    return a % b;
  } else {
    return std::fmod(a, b);
  }
}

// fmod=1: C's fmod (the result has the dividend's sign); fmod=0: numpy's mod
// (the divisor's sign), for integers and floats alike.
struct ModFn {
  explicit ModFn(const Attributes& attrs) : fmod(attrs.getInt("fmod") != 0) {}
  bool fmod;
  template <class T>
  T operator()(T a, T b) const {
    T r = truncatedRemainder(a, b);
    if (!fmod && r != 0 && (r < 0) != (b < 0)) r += b;
    return r;
  }
};

// Floats: C's powf (a negative base needs an integral exponent, odd ones
// keep the sign; pow(x, 0) = pow(1, y) = 1 even for NaN). Integers: exact
// repeated squaring that wraps like the other integer ops; a negative
// exponent gives 1/x^n truncated toward zero: 1 and -1 keep their powers,
// every other base (0 too, where numpy raises) gives 0.
struct PowFn {
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) {
      using U = Wrap<T>;
      if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;
      U result = 1, base = static_cast<U>(a);
      for (U e = static_cast<U>(b); e != 0; e >>= 1) {
        if (e & 1) result = static_cast<U>(result * base);
        base = static_cast<U>(base * base);
      }
      return static_cast<T>(result);
    } else {
      return std::pow(a, b);
    }
  }
};

struct EqualFn {
  template <class T>
  bool operator()(T a, T b) const { return a == b; }
};
struct GreaterFn {
  template <class T>
  bool operator()(T a, T b) const { return a > b; }
};
struct LessFn {
  template <class T>
  bool operator()(T a, T b) const { return a < b; }
};
struct GreaterOrEqualFn {
  template <class T>
  bool operator()(T a, T b) const { return a >= b; }
};
struct LessOrEqualFn {
  template <class T>
  bool operator()(T a, T b) const { return a <= b; }
};

struct AndFn {
  bool operator()(bool a, bool b) const { return a && b; }
};
struct OrFn {
  bool operator()(bool a, bool b) const { return a || b; }
};
struct XorFn {
  bool operator()(bool a, bool b) const { return a != b; }
};

// y[i] = fn(offsets) over y's shape, offsets[k] indexing input k broadcast
// to it: the kernel of the ops whose output type differs from an input's.
template <class Out, class Fn>
void mapBroadcast(KernelContext& ctx, Fn fn) {
  Tensor& y = ctx.output(0);
  std::vector<std::vector<int64_t>> strides;
  for (size_t k = 0; k < ctx.numInputs(); ++k) strides.push_back(broadcastStrides(ctx.input(k).shape(), y.shape()));
  Out* out = y.data<Out>();
  forEachBroadcast(y.shape(), strides, [&](int64_t i, const std::vector<int64_t>& off) { out[i] = fn(off); });
}

// y[i] = combine(a[...], b[...]) over the broadcast shape of y. `a` may be
// y itself (read before written at the same index), which is how the
// variadic ops fold input after input into the output.
template <class T, class Combine>
void combineBroadcast(Tensor& y, const T* a, const Shape& aShape, const T* b, const Shape& bShape, Combine combine) {
  T* out = y.data<T>();
  const Shape& shape = y.shape();
  forEachBroadcast(shape, {broadcastStrides(aShape, shape), broadcastStrides(bShape, shape)},
                   [&](int64_t i, const std::vector<int64_t>& off) { out[i] = combine(a[off[0]], b[off[1]]); });
}

// The one kernel of the family: y = combine(...combine(combine(x0, x1), x2)...),
// each input broadcast to y's shape; a single input is copied.
template <class T, class Combine>
void foldInputs(KernelContext& ctx, Combine combine) {
  Tensor& y = ctx.output(0);
  const Tensor& x0 = ctx.input(0);
  if (ctx.numInputs() == 1) {
    combineBroadcast<T>(y, x0.data<T>(), x0.shape(), x0.data<T>(), x0.shape(), [](T v, T) { return v; });
    return;
  }
  const Tensor& x1 = ctx.input(1);
  combineBroadcast<T>(y, x0.data<T>(), x0.shape(), x1.data<T>(), x1.shape(), combine);
  for (size_t k = 2; k < ctx.numInputs(); ++k) {
    const Tensor& xk = ctx.input(k);
    combineBroadcast<T>(y, y.data<T>(), y.shape(), xk.data<T>(), xk.shape(), combine);
  }
}

// All inputs share one dtype from `allowed`; the output has the broadcast
// shape of all inputs.
std::vector<TensorType> inferBroadcast(const InferContext& ctx, const std::vector<DType>& allowed) {
  const DType dtype = ctx.input(0).dtype;
  std::string names;
  for (DType t : allowed) names += std::string(names.empty() ? "" : ", ") + dtypeName(t);
  ctx.check(std::find(allowed.begin(), allowed.end(), dtype) != allowed.end(),
            "input 0 is " + ctx.input(0).str() + ", expected one of " + names);
  Shape shape = ctx.input(0).shape;
  for (size_t i = 1; i < ctx.numInputs(); ++i) {
    const TensorType& t = ctx.input(i);
    ctx.check(t.dtype == dtype,
              "input " + std::to_string(i) + " is " + t.str() + ", expected " + dtypeName(dtype) + " like input 0");
    shape = broadcastShapes(ctx, shape, t.shape);
  }
  return {TensorType{dtype, shape}};
}

// The functor of a node: built from its attributes when it has any.
template <class Combine>
Combine combineFor(const KernelContext& ctx) {
  if constexpr (std::is_constructible_v<Combine, const Attributes&>)
    return Combine(ctx.attrs());
  else
    return Combine{};
}

template <class Combine>
OpDef elementwiseOp(std::string name, int maxInputs, std::vector<DType> allowed, std::vector<AttrSpec> attrs = {}) {
  OpDef d;
  d.name = std::move(name);
  d.minInputs = maxInputs == kVariadic ? 1 : maxInputs;
  d.maxInputs = maxInputs;
  d.attrs = std::move(attrs);
  d.infer = [allowed](const InferContext& ctx) { return inferBroadcast(ctx, allowed); };
  d.reference = [](KernelContext& ctx) {
    visitDType(ctx.input(0).dtype(), [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, bool>)
        ctx.fail("no arithmetic on bool");
      else
        foldInputs<T>(ctx, combineFor<Combine>(ctx));
    });
  };
  return d;
}

// An op of one element type T (bool for And/Or/Xor) folded
// like the arithmetic ops.
template <class T, class Combine>
OpDef singleTypeOp(std::string name, int maxInputs) {
  OpDef d;
  d.name = std::move(name);
  d.minInputs = maxInputs == kVariadic ? 1 : maxInputs;
  d.maxInputs = maxInputs;
  d.infer = [](const InferContext& ctx) { return inferBroadcast(ctx, {dtypeOf<T>()}); };
  d.reference = [](KernelContext& ctx) { foldInputs<T>(ctx, Combine{}); };
  return d;
}

// A binary comparison of two inputs of one type: a broadcast bool output.
template <class Compare>
OpDef comparisonOp(std::string name, std::vector<DType> allowed) {
  OpDef d;
  d.name = std::move(name);
  d.minInputs = d.maxInputs = 2;
  d.infer = [allowed](const InferContext& ctx) {
    std::vector<TensorType> out = inferBroadcast(ctx, allowed);
    out[0].dtype = DType::Bool;
    return out;
  };
  d.reference = [](KernelContext& ctx) {
    visitDType(ctx.input(0).dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* a = ctx.input(0).data<T>();
      const T* b = ctx.input(1).data<T>();
      mapBroadcast<bool>(ctx, [&](const std::vector<int64_t>& off) { return Compare{}(a[off[0]], b[off[1]]); });
    });
  };
  return d;
}

// Where(condition, X, Y): X where the bool condition holds, else Y, all
// three broadcast together; X and Y share any one type.
OpDef whereOp() {
  OpDef d;
  d.name = "Where";
  d.minInputs = d.maxInputs = 3;
  d.infer = [](const InferContext& ctx) {
    const TensorType& condition = ctx.input(0);
    ctx.check(condition.dtype == DType::Bool, "condition (input 0) is " + condition.str() + ", expected bool");
    const TensorType &x = ctx.input(1), &y = ctx.input(2);
    ctx.check(x.dtype == y.dtype, "X is " + x.str() + " but Y is " + y.str() + "; they must share a type");
    const Shape shape = broadcastShapes(ctx, broadcastShapes(ctx, condition.shape, x.shape), y.shape);
    return std::vector<TensorType>{TensorType{x.dtype, shape}};
  };
  d.reference = [](KernelContext& ctx) {
    const bool* condition = ctx.input(0).data<bool>();
    visitDType(ctx.input(1).dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* x = ctx.input(1).data<T>();
      const T* y = ctx.input(2).data<T>();
      mapBroadcast<T>(ctx, [&](const std::vector<int64_t>& off) { return condition[off[0]] ? x[off[1]] : y[off[2]]; });
    });
  };
  return d;
}

void rejectIntegerZeroDivisor(KernelContext& ctx) {
  const Tensor& divisor = ctx.input(1);
  if (divisor.dtype() == DType::F32 || ctx.output(0).numElements() == 0) return;
  for (int64_t v : divisor.toInts())
    if (v == 0) ctx.fail("integer division by zero");
}

}  // namespace

void registerElementwiseOps(OpRegistry& r) {
  const std::vector<DType> arithmeticTypes{DType::F32, DType::I64, DType::I32};
  r.add(elementwiseOp<AddFn>("Add", 2, arithmeticTypes));
  r.add(elementwiseOp<SubFn>("Sub", 2, arithmeticTypes));
  r.add(elementwiseOp<MulFn>("Mul", 2, arithmeticTypes));
  for (OpDef division : {elementwiseOp<DivFn>("Div", 2, arithmeticTypes),
                         elementwiseOp<ModFn>("Mod", 2, arithmeticTypes, {{"fmod", AttrKind::Int, AttrValue{int64_t{0}}}})}) {
    division.reference = [divide = division.reference](KernelContext& ctx) {
      rejectIntegerZeroDivisor(ctx);
      divide(ctx);
    };
    r.add(std::move(division));
  }
  r.add(elementwiseOp<PowFn>("Pow", 2, arithmeticTypes));

  const std::vector<DType> orderedTypes{DType::F32, DType::I64, DType::I32};
  r.add(comparisonOp<EqualFn>("Equal", {DType::F32, DType::I64, DType::I32, DType::Bool}));
  r.add(comparisonOp<GreaterFn>("Greater", orderedTypes));
  r.add(comparisonOp<LessFn>("Less", orderedTypes));
  r.add(comparisonOp<GreaterOrEqualFn>("GreaterOrEqual", orderedTypes));
  r.add(comparisonOp<LessOrEqualFn>("LessOrEqual", orderedTypes));
  r.add(singleTypeOp<bool, AndFn>("And", 2));
  r.add(singleTypeOp<bool, OrFn>("Or", 2));
  r.add(singleTypeOp<bool, XorFn>("Xor", 2));
  OpDef negation;
  negation.name = "Not";
  negation.infer = [](const InferContext& ctx) { return inferBroadcast(ctx, {DType::Bool}); };
  negation.reference = [](KernelContext& ctx) {
    const bool* x = ctx.input(0).data<bool>();
    mapBroadcast<bool>(ctx, [&](const std::vector<int64_t>& off) { return !x[off[0]]; });
  };
  r.add(std::move(negation));
  r.add(whereOp());

  r.add(elementwiseOp<AddFn>("Sum", kVariadic, {DType::F32}));
  r.add(elementwiseOp<MaxFn>("Max", kVariadic, {DType::F32, DType::I64, DType::I32}));
  r.add(elementwiseOp<MinFn>("Min", kVariadic, {DType::F32, DType::I64, DType::I32}));
  OpDef mean = elementwiseOp<AddFn>("Mean", kVariadic, {DType::F32});
  mean.reference = [sum = mean.reference](KernelContext& ctx) {
    sum(ctx);
    Tensor& y = ctx.output(0);
    float* out = y.data<float>();
    const float count = static_cast<float>(ctx.numInputs());
    for (int64_t i = 0; i < y.numElements(); ++i) out[i] /= count;
  };
  r.add(std::move(mean));
}

}  // namespace kiln
