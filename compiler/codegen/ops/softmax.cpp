// Emits Softmax and LogSoftmax along one axis (opset-13 semantics), stable:
// each row along the axis first finds its maximum, then sums exp(x - max)
// (Softmax keeps those exponentials in the output and divides them by the
// sum), and LogSoftmax writes x - max - log(sum). Rows are visited in place
// order, so the output may alias the input.
#include <limits>

#include "compiler/codegen/math.h"
#include "compiler/codegen/ops/families.h"
#include "compiler/codegen/ops/loops.h"

namespace kiln::codegen {

namespace {

using llvm::Value;

void emitSoftmax(EmitContext& ctx) {
  const bool logarithmic = ctx.node.opName() == "LogSoftmax";
  const Operand& x = ctx.input(0);
  const Operand& y = ctx.output();
  const Shape& shape = x.type.shape;
  const size_t axis = normalizeAxis(ctx.attrs().getInt("axis"), shape.rank());
  // The tensor as [outer, n, inner] around the axis; a row is n elements inner apart.
  const int64_t outer = shape.product(0, axis), n = shape[axis], inner = shape.product(axis + 1, shape.rank());
  llvm::IRBuilder<>& b = ctx.b;
  llvm::AllocaInst* maxSlot = entryBlockSlot(ctx, ctx.f32Type());
  llvm::AllocaInst* sumSlot = entryBlockSlot(ctx, ctx.f32Type());
  ctx.loop(outer, [&](Value* o) {
    ctx.loop(inner, [&](Value* i) {
      Value* rowStart = b.CreateAdd(b.CreateMul(o, ctx.i64(n * inner)), i);
      auto at = [&](Value* k) { return b.CreateAdd(rowStart, b.CreateMul(k, ctx.i64(inner))); };
      b.CreateStore(ctx.f32(-std::numeric_limits<float>::infinity()), maxSlot);
      ctx.loop(n, [&](Value* k) {
        Value* v = ctx.load(x, at(k));
        Value* max = b.CreateLoad(ctx.f32Type(), maxSlot);
        b.CreateStore(b.CreateSelect(b.CreateFCmpOLT(max, v), v, max), maxSlot);
      });
      Value* max = b.CreateLoad(ctx.f32Type(), maxSlot);
      b.CreateStore(ctx.f32(0.f), sumSlot);
      ctx.loop(n, [&](Value* k) {
        Value* e = emitExp(b, b.CreateFSub(ctx.load(x, at(k)), max));
        if (!logarithmic) ctx.store(y, at(k), e);
        b.CreateStore(b.CreateFAdd(b.CreateLoad(ctx.f32Type(), sumSlot), e), sumSlot);
      });
      Value* sum = b.CreateLoad(ctx.f32Type(), sumSlot);
      if (logarithmic) {
        Value* logSum = emitLog(b, sum);
        ctx.loop(n,
                 [&](Value* k) { ctx.store(y, at(k), b.CreateFSub(b.CreateFSub(ctx.load(x, at(k)), max), logSum)); });
      } else {
        ctx.loop(n, [&](Value* k) { ctx.store(y, at(k), b.CreateFDiv(ctx.load(y, at(k)), sum)); });
      }
    });
  });
}

}  // namespace

void registerSoftmaxEmitters(EmitterRegistry& r) {
  r.add("Softmax", emitSoftmax);
  r.add("LogSoftmax", emitSoftmax);
}

}  // namespace kiln::codegen
