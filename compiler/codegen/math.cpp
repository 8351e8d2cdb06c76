// Emits scalar (or vector) float math as plain LLVM IR arithmetic: exp,
// expm1, log, log1p, tanh, sigmoid and every activation function. No libm
// calls and no intrinsics that may lower to one (floor, fma): rounding uses
// the 1.5*2^23 trick and polynomials use llvm.fmuladd, so loops over these
// functions vectorize and artifacts stay self-contained.
//
// Approximations (derived here, a few ulp over the float range):
//   exp(x)   = 2^n * (1 + q(r)),  x = n*ln2 + r, |r| <= ln2/2, q = expm1's
//              degree-7 Taylor polynomial (truncation < 2e-8 relative);
//   expm1(x) = 2^n * q(r) + (2^n - 1), exact in its cancellation;
//   log(x)   = k*ln2 + log(1+f), 1+f in [sqrt(1/2), sqrt(2)),
//              log(1+f) = f - s*(f - 2s^2(1/3 + s^2/5 + s^4/7 + s^6/9)),
//              s = f/(2+f) (the atanh series, |s| <= 0.172, truncation < 3e-9);
//   tanh(x)  = sign(x) * -m/(2+m), m = expm1(-2|x|);
//   erf(x)   = x * P(x^2) for |x| < 1 (P of degree 6), and for |x| >= 1
//              sign(x) * (1 - e^(-x^2) Q(1/|x|)) with |x| clamped to 4
//              (erfc(4) < 2e-8 rounds away), Q of degree 9 approximating
//              erfc(x) e^(x^2). P and Q are weighted least-squares fits made
//              for kiln (relative error of erf/x resp. erfc): evaluated in
//              float, erf is within 2e-7 relative of the exact value;
//   round(x) = (|x| + 2^23) - 2^23 with x's sign (the float add rounds half
//              to even), x itself from 2^23 on (already integral), and
//              floor/ceil step that by one where it overshot.
#include "compiler/codegen/math.h"

#include <cmath>
#include <limits>
#include <string>

#include "compiler/ir/error.h"

namespace kiln::codegen {

namespace {

using llvm::Value;

Value* splat(Value* like, float v) { return llvm::ConstantFP::get(like->getType(), v); }

// The i32 type (or vector of i32) with x's shape.
llvm::Type* intTypeLike(llvm::IRBuilder<>& b, Value* x) { return x->getType()->getWithNewType(b.getInt32Ty()); }

Value* splatInt(llvm::IRBuilder<>& b, Value* x, int32_t v) {
  return llvm::ConstantInt::get(intTypeLike(b, x), static_cast<uint64_t>(static_cast<int64_t>(v)), true);
}

Value* mulAdd(llvm::IRBuilder<>& b, Value* x, Value* y, Value* z) {
  return b.CreateIntrinsic(llvm::Intrinsic::fmuladd, {x->getType()}, {x, y, z});
}

// c[0] + x*(c[1] + x*(c[2] + ...)).
Value* horner(llvm::IRBuilder<>& b, Value* x, std::initializer_list<float> coefficients) {
  const float* c = coefficients.end();
  Value* acc = splat(x, *--c);
  while (c != coefficients.begin()) acc = mulAdd(b, acc, x, splat(x, *--c));
  return acc;
}

Value* clampToRange(llvm::IRBuilder<>& b, Value* x, float lo, float hi) {
  Value* raised = b.CreateIntrinsic(llvm::Intrinsic::maxnum, {x->getType()}, {x, splat(x, lo)});
  return b.CreateIntrinsic(llvm::Intrinsic::minnum, {x->getType()}, {raised, splat(x, hi)});
}

// NaN inputs give NaN (the range clamps above map NaN to a bound).
Value* propagateNaN(llvm::IRBuilder<>& b, Value* x, Value* result) {
  return b.CreateSelect(b.CreateFCmpUNO(x, x), x, result);
}

// x = n*ln2 + r with n integral and |r| <= ln2/2, for |x| < 2^21.
struct ReducedArgument {
  Value* n;     // float
  Value* nInt;  // i32
  Value* r;
};

ReducedArgument reduceByLn2(llvm::IRBuilder<>& b, Value* x) {
  // Adding 1.5*2^23 rounds to an integer (to nearest) and leaves that integer
  // in the low mantissa bits.
  constexpr float kRoundingShift = 12582912.f;  // 1.5 * 2^23
  constexpr float kLog2e = 1.44269504088896340736f;
  // ln2 split so that n*kLn2High is exact for |n| < 2^9.
  constexpr float kLn2High = 0.693145751953125f;
  constexpr float kLn2Low = 1.42860682030941723212e-6f;
  Value* shifted = b.CreateFAdd(b.CreateFMul(x, splat(x, kLog2e)), splat(x, kRoundingShift));
  Value* n = b.CreateFSub(shifted, splat(x, kRoundingShift));
  Value* nInt = b.CreateSub(b.CreateBitCast(shifted, intTypeLike(b, x)),
                            b.CreateBitCast(splat(x, kRoundingShift), intTypeLike(b, x)));
  Value* r = b.CreateFSub(x, b.CreateFMul(n, splat(x, kLn2High)));
  r = b.CreateFSub(r, b.CreateFMul(n, splat(x, kLn2Low)));
  return {n, nInt, r};
}

// expm1(r) for |r| <= ln2/2: the Taylor series through r^7.
Value* expm1Polynomial(llvm::IRBuilder<>& b, Value* r) {
  Value* tail = horner(b, r, {1.f / 2, 1.f / 6, 1.f / 24, 1.f / 120, 1.f / 720, 1.f / 5040});
  return mulAdd(b, b.CreateFMul(r, r), tail, r);
}

// 2^k as a float, for -126 <= k <= 127 (i32 k).
Value* powerOf2(llvm::IRBuilder<>& b, Value* like, Value* k) {
  Value* bits = b.CreateShl(b.CreateAdd(k, splatInt(b, like, 127)), splatInt(b, like, 23));
  return b.CreateBitCast(bits, like->getType());
}

// v * 2^k for -252 <= k <= 254, in two steps so neither factor overflows
// and results in the subnormal range round once.
Value* scaleByPowerOf2(llvm::IRBuilder<>& b, Value* v, Value* k) {
  Value* half = b.CreateAShr(k, splatInt(b, v, 1));
  Value* rest = b.CreateSub(k, half);
  return b.CreateFMul(b.CreateFMul(v, powerOf2(b, v, half)), powerOf2(b, v, rest));
}

// expm1(x) for x <= 0 (NaN propagates; positive x is not supported).
Value* emitExpm1OfNonPositive(llvm::IRBuilder<>& b, Value* x) {
  // Below -25, e^x < 2^-36 and expm1 rounds to -1.
  Value* clamped = clampToRange(b, x, -25.f, 0.f);
  ReducedArgument a = reduceByLn2(b, clamped);
  Value* scale = powerOf2(b, x, a.nInt);  // n in [-36, 0]
  Value* scaleMinusOne = b.CreateFSub(scale, splat(x, 1.f));
  return propagateNaN(b, x, mulAdd(b, scale, expm1Polynomial(b, a.r), scaleMinusOne));
}

Value* fabs(llvm::IRBuilder<>& b, Value* x) { return b.CreateIntrinsic(llvm::Intrinsic::fabs, {x->getType()}, {x}); }

Value* copySign(llvm::IRBuilder<>& b, Value* magnitude, Value* sign) {
  return b.CreateIntrinsic(llvm::Intrinsic::copysign, {magnitude->getType()}, {magnitude, sign});
}

Value* emitRoundHalfToEven(llvm::IRBuilder<>& b, Value* x) {
  constexpr float kTwoTo23 = 8388608.f;
  Value* magnitude = fabs(b, x);
  Value* rounded = b.CreateFSub(b.CreateFAdd(magnitude, splat(x, kTwoTo23)), splat(x, kTwoTo23));
  return b.CreateSelect(b.CreateFCmpOLT(magnitude, splat(x, kTwoTo23)), copySign(b, rounded, x), x);
}

// floor (down = true) or ceil: the nearest integer, one step back where it
// passed x. The result has x's sign (ceil(-0.7) = -0, where -1 + 1 is +0).
Value* emitFloorOrCeil(llvm::IRBuilder<>& b, Value* x, bool down) {
  Value* r = emitRoundHalfToEven(b, x);
  Value* overshot = down ? b.CreateFCmpOGT(r, x) : b.CreateFCmpOLT(r, x);
  return copySign(b, b.CreateSelect(overshot, b.CreateFAdd(r, splat(x, down ? -1.f : 1.f)), r), x);
}

Value* emitSign(llvm::IRBuilder<>& b, Value* x) {
  Value* negative = b.CreateSelect(b.CreateFCmpOLT(x, splat(x, 0.f)), splat(x, -1.f), x);
  return b.CreateSelect(b.CreateFCmpOGT(x, splat(x, 0.f)), splat(x, 1.f), negative);
}

Value* emitGelu(llvm::IRBuilder<>& b, Value* x, const std::string& approximate) {
  Value* gate;
  if (approximate == "tanh") {
    Value* cubic = b.CreateFMul(b.CreateFMul(b.CreateFMul(splat(x, 0.044715f), x), x), x);
    gate = emitTanh(b, b.CreateFMul(splat(x, 0.79788456080286535588f), b.CreateFAdd(x, cubic)));
  } else {
    gate = emitErf(b, b.CreateFMul(x, splat(x, 0.70710678118654752440f)));
  }
  return b.CreateFMul(b.CreateFMul(splat(x, 0.5f), x), b.CreateFAdd(splat(x, 1.f), gate));
}

// log(1+f) for 1+f in [sqrt(1/2), sqrt(2)), plus k*ln2.
Value* logOfReduced(llvm::IRBuilder<>& b, Value* f, Value* k) {
  constexpr float kLn2High = 0.693145751953125f;
  constexpr float kLn2Low = 1.42860682030941723212e-6f;
  Value* s = b.CreateFDiv(f, b.CreateFAdd(f, splat(f, 2.f)));
  Value* s2 = b.CreateFMul(s, s);
  Value* series = b.CreateFMul(b.CreateFMul(s2, splat(f, 2.f)), horner(b, s2, {1.f / 3, 1.f / 5, 1.f / 7, 1.f / 9}));
  Value* log1pf = b.CreateFSub(f, b.CreateFMul(s, b.CreateFSub(f, series)));
  Value* sum = mulAdd(b, k, splat(f, kLn2Low), log1pf);
  return mulAdd(b, k, splat(f, kLn2High), sum);
}

// log1p(e) for 0 <= e <= 1 (e exact, so small e keep full precision).
Value* emitLog1pOfUnit(llvm::IRBuilder<>& b, Value* e) {
  constexpr float kSqrt2MinusOne = 0.41421356237309504880f;
  // 1+e above sqrt(2) is halved: f = (1+e)/2 - 1 = (e-1)/2, exact here.
  Value* halve = b.CreateFCmpOGT(e, splat(e, kSqrt2MinusOne));
  Value* f = b.CreateSelect(halve, b.CreateFMul(b.CreateFSub(e, splat(e, 1.f)), splat(e, 0.5f)), e);
  Value* k = b.CreateSelect(halve, splat(e, 1.f), splat(e, 0.f));
  return logOfReduced(b, f, k);
}

// std::clamp(v, lo, hi) with its exact comparison order (NaN stays NaN).
Value* clampLikeStd(llvm::IRBuilder<>& b, Value* v, Value* lo, Value* hi) {
  Value* low = b.CreateSelect(b.CreateFCmpOLT(v, lo), lo, v);
  return b.CreateSelect(b.CreateFCmpOLT(hi, low), hi, low);
}

Value* emitLeakyRelu(llvm::IRBuilder<>& b, Value* x, float alpha) {
  return b.CreateSelect(b.CreateFCmpOGE(x, splat(x, 0.f)), x, b.CreateFMul(splat(x, alpha), x));
}

// x >= 0 ? x : alpha * expm1(x) (Elu; Selu differs only in x == 0, where both are 0).
Value* emitElu(llvm::IRBuilder<>& b, Value* x, float alpha) {
  Value* negative = b.CreateFMul(splat(x, alpha), emitExpm1OfNonPositive(b, x));
  return b.CreateSelect(b.CreateFCmpOGE(x, splat(x, 0.f)), x, negative);
}

// log(1 + e^x) = max(x, 0) + log1p(e^-|x|), which neither overflows nor
// loses small results.
Value* emitSoftplus(llvm::IRBuilder<>& b, Value* x) {
  Value* magnitude = b.CreateIntrinsic(llvm::Intrinsic::fabs, {x->getType()}, {x});
  Value* positivePart = b.CreateSelect(b.CreateFCmpOGT(x, splat(x, 0.f)), x, splat(x, 0.f));
  return b.CreateFAdd(positivePart, emitLog1pOfUnit(b, emitExp(b, b.CreateFNeg(magnitude))));
}

}  // namespace

Value* emitClip(llvm::IRBuilder<>& b, Value* x, Value* lo, Value* hi) { return clampLikeStd(b, x, lo, hi); }

Value* emitExp(llvm::IRBuilder<>& b, Value* x) {
  // e^89 overflows and e^-104 underflows to 0 after rounding; n stays within
  // [-150, 129], the range scaleByPowerOf2 handles.
  Value* clamped = clampToRange(b, x, -104.f, 89.f);
  ReducedArgument a = reduceByLn2(b, clamped);
  Value* mantissa = b.CreateFAdd(splat(x, 1.f), expm1Polynomial(b, a.r));
  return propagateNaN(b, x, scaleByPowerOf2(b, mantissa, a.nInt));
}

Value* emitLog(llvm::IRBuilder<>& b, Value* x) {
  constexpr float kSmallestNormal = std::numeric_limits<float>::min();
  constexpr float kTwoTo23 = 8388608.f;
  constexpr float kSqrt2 = 1.41421356237309504880f;
  // Subnormals are scaled into the normal range first.
  Value* subnormal = b.CreateFCmpOLT(x, splat(x, kSmallestNormal));
  Value* normal = b.CreateSelect(subnormal, b.CreateFMul(x, splat(x, kTwoTo23)), x);
  Value* bits = b.CreateBitCast(normal, intTypeLike(b, x));
  Value* exponent = b.CreateSub(b.CreateLShr(bits, splatInt(b, x, 23)), splatInt(b, x, 127));
  Value* mantissaBits = b.CreateOr(b.CreateAnd(bits, splatInt(b, x, 0x007fffff)), splatInt(b, x, 0x3f800000));
  Value* mantissa = b.CreateBitCast(mantissaBits, x->getType());  // [1, 2)
  Value* halve = b.CreateFCmpOGE(mantissa, splat(x, kSqrt2));
  Value* m = b.CreateSelect(halve, b.CreateFMul(mantissa, splat(x, 0.5f)), mantissa);
  Value* k = b.CreateSIToFP(b.CreateAdd(exponent, b.CreateZExt(halve, exponent->getType())), x->getType());
  k = b.CreateSelect(subnormal, b.CreateFSub(k, splat(x, 23.f)), k);
  Value* result = logOfReduced(b, b.CreateFSub(m, splat(x, 1.f)), k);
  const float inf = std::numeric_limits<float>::infinity();
  result = b.CreateSelect(b.CreateFCmpOEQ(x, splat(x, inf)), x, result);
  result = b.CreateSelect(b.CreateFCmpOEQ(x, splat(x, 0.f)), splat(x, -inf), result);
  result = b.CreateSelect(b.CreateFCmpOLT(x, splat(x, 0.f)), splat(x, std::nanf("")), result);
  return propagateNaN(b, x, result);
}

Value* emitTanh(llvm::IRBuilder<>& b, Value* x) {
  Value* magnitude = b.CreateIntrinsic(llvm::Intrinsic::fabs, {x->getType()}, {x});
  Value* m = emitExpm1OfNonPositive(b, b.CreateFMul(magnitude, splat(x, -2.f)));
  Value* tanhOfMagnitude = b.CreateFDiv(b.CreateFNeg(m), b.CreateFAdd(m, splat(x, 2.f)));
  return b.CreateIntrinsic(llvm::Intrinsic::copysign, {x->getType()}, {tanhOfMagnitude, x});
}

Value* emitErf(llvm::IRBuilder<>& b, Value* x) {
  Value* magnitude = fabs(b, x);
  Value* small = b.CreateFMul(x, horner(b, b.CreateFMul(x, x),
                                        {1.128379225730896f, -0.3761262893676758f, 0.11283634603023529f,
                                         -0.0268560703843832f, 0.005192957818508148f, -0.0008053751080296934f,
                                         8.006874122656882e-05f}));
  Value* a = clampToRange(b, magnitude, 1.f, 4.f);
  Value* q = horner(b, b.CreateFDiv(splat(x, 1.f), a),
                    {0.00011182147136423737f, 0.5619505047798157f, 0.018990248441696167f, -0.3684885501861572f,
                     0.20852583646774292f, 0.28018030524253845f, -0.5886861085891724f, 0.4781583547592163f,
                     -0.197182759642601f, 0.0340239442884922f});
  Value* erfc = b.CreateFMul(emitExp(b, b.CreateFNeg(b.CreateFMul(a, a))), q);
  Value* large = copySign(b, b.CreateFSub(splat(x, 1.f), erfc), x);
  return propagateNaN(b, x, b.CreateSelect(b.CreateFCmpOLT(magnitude, splat(x, 1.f)), small, large));
}

Value* emitPow(llvm::IRBuilder<>& b, Value* x, Value* y) {
  Value* magnitude = emitExp(b, b.CreateFMul(y, emitLog(b, fabs(b, x))));
  Value* integral = b.CreateFCmpOEQ(emitRoundHalfToEven(b, y), y);
  Value* half = b.CreateFMul(y, splat(y, 0.5f));
  Value* odd = b.CreateAnd(integral, b.CreateFCmpUNE(emitRoundHalfToEven(b, half), half));
  Value* result = b.CreateSelect(odd, copySign(b, magnitude, x), magnitude);
  // -inf to a fractional power is +inf or +0, like |x|.
  const float inf = std::numeric_limits<float>::infinity();
  Value* negativeBase = b.CreateAnd(b.CreateFCmpOLT(x, splat(x, 0.f)), b.CreateFCmpONE(x, splat(x, -inf)));
  result = b.CreateSelect(b.CreateAnd(negativeBase, b.CreateNot(integral)), splat(x, std::nanf("")), result);
  Value* one = b.CreateOr(b.CreateFCmpOEQ(y, splat(y, 0.f)), b.CreateFCmpOEQ(x, splat(x, 1.f)));
  return b.CreateSelect(one, splat(x, 1.f), result);
}

Value* emitPowByConstant(llvm::IRBuilder<>& b, Value* x, float exponent) {
  if (exponent == 0.f) return splat(x, 1.f);
  if (exponent == 1.f) return x;
  if (exponent == 2.f) return b.CreateFMul(x, x);
  if (exponent == 3.f) return b.CreateFMul(b.CreateFMul(x, x), x);
  if (exponent == -1.f) return b.CreateFDiv(splat(x, 1.f), x);
  if (exponent == 0.5f) {
    // powf(-0, 0.5) = +0 and powf(-inf, 0.5) = +inf, where sqrt keeps the sign.
    const float inf = std::numeric_limits<float>::infinity();
    Value* root = b.CreateFAdd(b.CreateIntrinsic(llvm::Intrinsic::sqrt, {x->getType()}, {x}), splat(x, 0.f));
    return b.CreateSelect(b.CreateFCmpOEQ(x, splat(x, -inf)), splat(x, inf), root);
  }
  return emitPow(b, x, splat(x, exponent));
}

Value* emitSigmoid(llvm::IRBuilder<>& b, Value* x) {
  Value* one = splat(x, 1.f);
  return b.CreateFDiv(one, b.CreateFAdd(one, emitExp(b, b.CreateFNeg(x))));
}

Value* emitActivation(llvm::IRBuilder<>& b, const std::string& op, const Attributes& attrs, Value* x) {
  if (op == "Relu") return b.CreateSelect(b.CreateFCmpOGT(x, splat(x, 0.f)), x, splat(x, 0.f));
  if (op == "LeakyRelu") return emitLeakyRelu(b, x, attrs.getFloat("alpha"));
  if (op == "Elu") return emitElu(b, x, attrs.getFloat("alpha"));
  if (op == "Selu") return b.CreateFMul(splat(x, attrs.getFloat("gamma")), emitElu(b, x, attrs.getFloat("alpha")));
  if (op == "Sigmoid") return emitSigmoid(b, x);
  if (op == "Tanh") return emitTanh(b, x);
  if (op == "HardSigmoid") {
    Value* linear = b.CreateFAdd(b.CreateFMul(splat(x, attrs.getFloat("alpha")), x), splat(x, attrs.getFloat("beta")));
    return clampLikeStd(b, linear, splat(x, 0.f), splat(x, 1.f));
  }
  if (op == "HardSwish") {
    Value* gate = b.CreateFAdd(b.CreateFDiv(x, splat(x, 6.f)), splat(x, 0.5f));
    return b.CreateFMul(x, clampLikeStd(b, gate, splat(x, 0.f), splat(x, 1.f)));
  }
  if (op == "Softplus") return emitSoftplus(b, x);
  if (op == "Clip") return emitClip(b, x, splat(x, attrs.getFloat("min")), splat(x, attrs.getFloat("max")));
  if (op == "Log") return emitLog(b, x);
  if (op == "Exp") return emitExp(b, x);
  if (op == "Sqrt") return b.CreateIntrinsic(llvm::Intrinsic::sqrt, {x->getType()}, {x});
  if (op == "Erf") return emitErf(b, x);
  if (op == "Abs") return fabs(b, x);
  if (op == "Neg") return b.CreateFNeg(x);
  if (op == "Reciprocal") return b.CreateFDiv(splat(x, 1.f), x);
  if (op == "Floor" || op == "Ceil") return emitFloorOrCeil(b, x, op == "Floor");
  if (op == "Round") return emitRoundHalfToEven(b, x);
  if (op == "Sign") return emitSign(b, x);
  if (op == "Gelu") return emitGelu(b, x, attrs.getString("approximate"));
  throw Error("no activation emitter for op '" + op + "'");
}

Value* emitEpilogueActivation(llvm::IRBuilder<>& b, const Attributes& attrs, Value* x) {
  const std::string& activation = attrs.getString("activation");
  if (activation.empty()) return x;
  // The epilogue's alpha/beta are the op's own attributes under other names.
  Attributes opAttrs;
  if (activation == "Clip") {
    opAttrs.set("min", attrs.getFloat("activation_alpha"));
    opAttrs.set("max", attrs.getFloat("activation_beta"));
  } else if (activation == "LeakyRelu") {
    opAttrs.set("alpha", attrs.getFloat("activation_alpha"));
  }
  return emitActivation(b, activation, opAttrs, x);
}

}  // namespace kiln::codegen
