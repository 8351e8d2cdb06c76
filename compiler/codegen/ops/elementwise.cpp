// Emits the numpy-broadcasting elementwise ops: Add, Sub, Mul, Div (f32, i64,
// i32), the variadic Sum, Max, Min, Mean, and PRelu (x with a broadcast
// slope). Each is one walk over the output with per-operand broadcast strides
// computed at compile time (loops.h); after coalescing, the innermost loop
// reads every operand either contiguously or as a loop-invariant scalar.
// Output element i reads only element i of a same-shaped input, so the
// output may alias such an input. Blocked (NCHWc) operands of one shape are
// walked as stored.
#include <string>

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

void rejectConstantZeroDivisor(EmitContext& ctx) {
  const Operand& divisor = ctx.input(1);
  if (divisor.type.dtype == DType::F32 || !divisor.constant) return;
  for (int64_t v : divisor.constant->toInts())
    if (v == 0) ctx.fail("integer division by zero");
}

// y = combine(...combine(combine(x0, x1), x2)...), each input broadcast to y.
void emitBroadcastFold(EmitContext& ctx) {
  const std::string& op = ctx.node.opName();
  if (op == "Div") rejectConstantZeroDivisor(ctx);
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
  emitStridedLoops(ctx, broadcastWalk(y.type.storageShape(), shapes), [&](const std::vector<Value*>& offsets) {
    Value* acc = ctx.load(*inputs[0], offsets[1]);
    for (size_t k = 1; k < inputs.size(); ++k) acc = emitCombine(ctx.b, op, acc, ctx.load(*inputs[k], offsets[k + 1]));
    if (op == "Mean") acc = ctx.b.CreateFDiv(acc, ctx.f32(static_cast<float>(inputs.size())));
    ctx.store(y, offsets[0], acc);
  });
}

}  // namespace

void registerElementwiseEmitters(EmitterRegistry& r) {
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Mean", "PRelu"})
    r.add(op, emitBroadcastFold);
}

}  // namespace kiln::codegen
