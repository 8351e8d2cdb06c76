// Emits the numpy-broadcasting elementwise ops: Add, Sub, Mul, Div, Mod, Pow
// (f32, i64, i32), the variadic Sum, Max, Min, Mean, PRelu (x with a
// broadcast slope), the comparisons (bool results), And, Or, Xor, Not and
// Where. Bools are bytes holding 0 or 1. Each is one walk over the output with per-operand broadcast strides
// computed at compile time (loops.h); after coalescing, the innermost loop
// reads every operand either contiguously or as a loop-invariant scalar.
// Output element i reads only element i of a same-shaped input, so the
// output may alias such an input. Blocked (NCHWc) operands of one shape are
// walked as stored.
#include <optional>
#include <string>

#include "compiler/codegen/math.h"
#include "compiler/codegen/ops/families.h"
#include "compiler/codegen/ops/loops.h"

namespace kiln::codegen {

namespace {

using llvm::Value;

// Integer division truncating toward zero; x / -1 wraps (INT_MIN / -1 does
// not trap) and a zero divisor, which the reference rejects, yields x
// instead of trapping.
Value* emitIntegerDivide(llvm::IRBuilder<>& b, Value* x, Value* y) {
  Value* byMinusOne = b.CreateICmpEQ(y, llvm::ConstantInt::getSigned(y->getType(), -1));
  Value* byZero = b.CreateICmpEQ(y, llvm::ConstantInt::get(y->getType(), 0));
  Value* safeDivisor = b.CreateSelect(b.CreateOr(byMinusOne, byZero), llvm::ConstantInt::get(y->getType(), 1), y);
  return b.CreateSelect(byMinusOne, b.CreateNeg(x), b.CreateSDiv(x, safeDivisor));
}

// The remainder of truncating division (frem is C's fmod); integer x % -1
// is 0 and a zero divisor, which the reference rejects, yields 0 instead of
// trapping. fmod=0 then moves a remainder whose sign differs from the
// divisor's by one divisor (numpy's mod).
Value* emitMod(llvm::IRBuilder<>& b, Value* x, Value* y, bool fmod) {
  Value* zero = llvm::Constant::getNullValue(y->getType());
  Value* r;
  if (x->getType()->isFloatTy()) {
    r = b.CreateFRem(x, y);
    if (fmod) return r;
    Value* signsDiffer = b.CreateXor(b.CreateFCmpOLT(r, zero), b.CreateFCmpOLT(y, zero));
    return b.CreateSelect(b.CreateAnd(b.CreateFCmpONE(r, zero), signsDiffer), b.CreateFAdd(r, y), r);
  }
  Value* byMinusOne = b.CreateICmpEQ(y, llvm::ConstantInt::getSigned(y->getType(), -1));
  Value* byZero = b.CreateICmpEQ(y, zero);
  Value* unsafe = b.CreateOr(byMinusOne, byZero);
  r = b.CreateSelect(unsafe, zero, b.CreateSRem(x, b.CreateSelect(unsafe, llvm::ConstantInt::get(y->getType(), 1), y)));
  if (fmod) return r;
  Value* signsDiffer = b.CreateXor(b.CreateICmpSLT(r, zero), b.CreateICmpSLT(y, zero));
  return b.CreateSelect(b.CreateAnd(b.CreateICmpNE(r, zero), signsDiffer), b.CreateAdd(r, y), r);
}

// Integer x^y as the reference computes it: repeated squaring over every
// bit of y, as straight-line selects (vectorizable; a constant y folds to
// its few multiplies), wrapping; a negative y gives 1/x^|y| truncated: 1 for
// x = 1, +-1 for x = -1, 0 otherwise.
Value* emitIntegerPow(llvm::IRBuilder<>& b, Value* x, Value* y) {
  llvm::Type* type = x->getType();
  Value* one = llvm::ConstantInt::get(type, 1);
  Value* zero = llvm::ConstantInt::get(type, 0);
  Value* result = one;
  Value* base = x;
  const unsigned bits = type->getIntegerBitWidth();
  for (unsigned bit = 0; bit + 1 < bits; ++bit) {  // the sign bit is handled below
    Value* set = b.CreateICmpNE(b.CreateAnd(y, llvm::ConstantInt::get(type, uint64_t{1} << bit)), zero);
    result = b.CreateSelect(set, b.CreateMul(result, base), result);
    base = b.CreateMul(base, base);
  }
  Value* odd = b.CreateICmpNE(b.CreateAnd(y, one), zero);
  Value* minusOne = llvm::ConstantInt::getSigned(type, -1);
  Value* negativePower = b.CreateSelect(b.CreateICmpEQ(x, one), one,
                                        b.CreateSelect(b.CreateICmpEQ(x, minusOne), b.CreateSelect(odd, minusOne, one), zero));
  return b.CreateSelect(b.CreateICmpSLT(y, zero), negativePower, result);
}

// The op's binary step, as the reference computes it: Max/Min propagate a
// NaN from either side and keep `x` on ties.
Value* emitCombine(llvm::IRBuilder<>& b, const std::string& op, Value* x, Value* y) {
  const bool isFloat = x->getType()->isFloatTy();
  if (op == "Add" || op == "Sum" || op == "Mean") return isFloat ? b.CreateFAdd(x, y) : b.CreateAdd(x, y);
  if (op == "Sub") return isFloat ? b.CreateFSub(x, y) : b.CreateSub(x, y);
  if (op == "Mul") return isFloat ? b.CreateFMul(x, y) : b.CreateMul(x, y);
  if (op == "Div") return isFloat ? b.CreateFDiv(x, y) : emitIntegerDivide(b, x, y);
  if (op == "PRelu")
    return b.CreateSelect(b.CreateFCmpOGE(x, llvm::ConstantFP::get(x->getType(), 0.0)), x, b.CreateFMul(y, x));
  const bool isMax = op == "Max";
  Value* yWins = isFloat ? (isMax ? b.CreateFCmpOLT(x, y) : b.CreateFCmpOLT(y, x))
                         : (isMax ? b.CreateICmpSLT(x, y) : b.CreateICmpSLT(y, x));
  Value* result = b.CreateSelect(yWins, y, x);
  return isFloat ? b.CreateSelect(b.CreateFCmpUNO(y, y), y, result) : result;
}

// A comparison's i1 result: ordered for floats (NaN compares false but for
// nothing), signed for integers; bools compare as bytes.
Value* emitCompare(llvm::IRBuilder<>& b, const std::string& op, Value* x, Value* y) {
  using P = llvm::CmpInst::Predicate;
  const bool isFloat = x->getType()->isFloatTy();
  P predicate = isFloat ? P::FCMP_OEQ : P::ICMP_EQ;
  if (op == "Greater") predicate = isFloat ? P::FCMP_OGT : P::ICMP_SGT;
  if (op == "Less") predicate = isFloat ? P::FCMP_OLT : P::ICMP_SLT;
  if (op == "GreaterOrEqual") predicate = isFloat ? P::FCMP_OGE : P::ICMP_SGE;
  if (op == "LessOrEqual") predicate = isFloat ? P::FCMP_OLE : P::ICMP_SLE;
  return b.CreateCmp(predicate, x, y);
}

bool isComparison(const std::string& op) {
  return op == "Equal" || op == "Greater" || op == "Less" || op == "GreaterOrEqual" || op == "LessOrEqual";
}

// The output element from the node's loaded input elements. `exponent`: Pow's
// exponent when it is one constant value.
Value* emitElement(EmitContext& ctx, const std::string& op, const std::vector<Value*>& in,
                   std::optional<float> exponent) {
  llvm::IRBuilder<>& b = ctx.b;
  if (isComparison(op)) return b.CreateZExt(emitCompare(b, op, in[0], in[1]), b.getInt8Ty());
  if (op == "Not") return b.CreateXor(in[0], b.getInt8(1));
  if (op == "Where") return b.CreateSelect(b.CreateICmpNE(in[0], b.getInt8(0)), in[1], in[2]);
  if (op == "Pow" && !in[0]->getType()->isFloatTy()) return emitIntegerPow(b, in[0], in[1]);
  if (op == "Pow") return exponent ? emitPowByConstant(b, in[0], *exponent) : emitPow(b, in[0], in[1]);
  if (op == "Mod") return emitMod(b, in[0], in[1], ctx.attrs().getInt("fmod") != 0);
  if (op == "And") return b.CreateAnd(in[0], in[1]);
  if (op == "Or") return b.CreateOr(in[0], in[1]);
  if (op == "Xor") return b.CreateXor(in[0], in[1]);
  Value* acc = in[0];
  for (size_t k = 1; k < in.size(); ++k) acc = emitCombine(b, op, acc, in[k]);
  if (op == "Mean") acc = b.CreateFDiv(acc, ctx.f32(static_cast<float>(in.size())));
  return acc;
}

void rejectConstantZeroDivisor(EmitContext& ctx) {
  const Operand& divisor = ctx.input(1);
  if (divisor.type.dtype == DType::F32 || !divisor.constant) return;
  for (int64_t v : divisor.constant->toInts())
    if (v == 0) ctx.fail("integer division by zero");
}

// y = element(x0, x1, ...), each input broadcast to y.
void emitBroadcast(EmitContext& ctx) {
  const std::string& op = ctx.node.opName();
  if (op == "Div" || op == "Mod") rejectConstantZeroDivisor(ctx);
  const Operand& y = ctx.output();
  std::vector<const Operand*> inputs;
  std::vector<Shape> shapes;
  for (size_t i = 0; ctx.hasInput(i); ++i) {
    inputs.push_back(&ctx.input(i));
    shapes.push_back(ctx.input(i).type.storageShape());
  }
  // NCHWc operands (the layout pass admits same-shape ones only) are walked
  // as stored, pad lanes included: op(0, 0) = 0 keeps them zero.
  for (const Operand* in : inputs)
    if (in->type.layout != y.type.layout || (y.type.layout != Layout::Plain && in->type.shape != y.type.shape))
      ctx.fail("blocked operands must share the output's shape and layout, got " + in->type.str() + " for " +
               y.type.str());
  std::optional<float> exponent;
  if (op == "Pow" && inputs[1]->type.dtype == DType::F32 && inputs[1]->constant &&
      inputs[1]->constant->numElements() == 1)
    exponent = inputs[1]->constant->data<float>()[0];
  emitStridedLoops(ctx, broadcastWalk(y.type.storageShape(), shapes), [&](const std::vector<Value*>& offsets) {
    std::vector<Value*> elements;
    for (size_t k = 0; k < inputs.size(); ++k) elements.push_back(ctx.load(*inputs[k], offsets[k + 1]));
    ctx.store(y, offsets[0], emitElement(ctx, op, elements, exponent));
  });
}

}  // namespace

void registerElementwiseEmitters(EmitterRegistry& r) {
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Mod", "Pow", "Sum", "Max", "Min", "Mean", "PRelu", "Equal", "Greater",
                         "Less", "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor", "Not", "Where"})
    r.add(op, emitBroadcast);
}

}  // namespace kiln::codegen
