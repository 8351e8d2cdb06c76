// Emits the unary activation ops (Relu, LeakyRelu, Elu, Selu, Sigmoid, Tanh,
// HardSigmoid, HardSwish, Softplus, Gelu, Clip) and the unary math ops (Log,
// Exp, Sqrt, Erf, Abs, Neg, Reciprocal, Floor, Ceil, Round, Sign): one contiguous loop
// applying the math library's function to each element. Element i only reads
// element i, so the output may alias the input. Blocked (NCHWc) values are
// walked as stored; the layout pass admits an activation on padded channels
// only when it maps 0 to 0, so pad lanes stay zero. Clip's run-time bounds
// (scalar inputs) are loaded once, before the loop. PRelu, which broadcasts
// its slope, is emitted with the broadcasting ops in elementwise.cpp.
#include "compiler/codegen/math.h"
#include "compiler/codegen/ops/families.h"

namespace kiln::codegen {

namespace {

// y[i] = fn(x[i]) over the stored elements; the loop vectorizer widens it.
void emitMap(EmitContext& ctx, const std::function<llvm::Value*(llvm::Value*)>& fn) {
  const Operand& x = ctx.input(0);
  const Operand& y = ctx.output();
  ctx.loop(x.type.storageShape().numElements(), [&](llvm::Value* i) { ctx.store(y, i, fn(ctx.load(x, i))); });
}

// Clip's bound `i` (1 = min, 2 = max): the scalar run-time input, loaded
// once before the loop (which broadcasts it), or the attribute.
llvm::Value* clipBound(EmitContext& ctx, size_t i, const char* attr) {
  return ctx.hasInput(i) ? ctx.load(ctx.input(i), ctx.i64(0)) : ctx.f32(ctx.attrs().getFloat(attr));
}

}  // namespace

void registerActivationEmitters(EmitterRegistry& r) {
  for (const char* op : {"Relu", "LeakyRelu", "Elu", "Selu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Softplus",
                         "Gelu", "Log", "Exp", "Sqrt", "Erf", "Abs", "Neg", "Reciprocal", "Floor", "Ceil", "Round",
                         "Sign"}) {
    r.add(op, [](EmitContext& ctx) {
      emitMap(ctx, [&](llvm::Value* x) { return emitActivation(ctx.b, ctx.node.opName(), ctx.attrs(), x); });
    });
  }
  r.add("Clip", [](EmitContext& ctx) {
    llvm::Value* lo = clipBound(ctx, 1, "min");
    llvm::Value* hi = clipBound(ctx, 2, "max");
    emitMap(ctx, [&](llvm::Value* x) { return emitClip(ctx.b, x, lo, hi); });
  });
}

}  // namespace kiln::codegen
