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
//   tanh(x)  = sign(x) * -m/(2+m), m = expm1(-2|x|).
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
