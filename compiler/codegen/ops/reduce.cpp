// Emits ReduceMean: a walk over the kept dims (the output's elements) around
// a walk over the reduced dims summing into a register, then one division by
// the reduced element count. Both walks are strided loops (loops.h) over the
// input's own strides, so reducing trailing dims reads contiguous memory.

#include "compiler/codegen/ops/families.h"
#include "compiler/codegen/ops/loops.h"

namespace kiln::codegen {

namespace {

using llvm::Value;

void emitReduceMean(EmitContext& ctx) {
  const Operand& x = ctx.input(0);
  const Operand& y = ctx.output();
  const Shape& in = x.type.shape;
  std::vector<bool> reduced(in.rank(), ctx.attrs().getInts("axes").empty());
  for (int64_t a : ctx.attrs().getInts("axes")) reduced[normalizeAxis(a, in.rank())] = true;
  // kept: the output's dims (reduced ones as 1); across: the reduced dims.
  Shape kept = in, across = in;
  for (size_t d = 0; d < in.rank(); ++d) (reduced[d] ? kept : across)[d] = 1;
  const std::vector<int64_t> inStrides = stridesOf(in);
  const int64_t count = across.numElements();
  llvm::AllocaInst* sumSlot = entryBlockSlot(ctx, ctx.f32Type());
  llvm::IRBuilder<>& b = ctx.b;
  emitStridedLoops(ctx, StridedWalk{kept.dims, {stridesOf(kept), inStrides}}, [&](const std::vector<Value*>& outer) {
    b.CreateStore(ctx.f32(0.f), sumSlot);
    emitStridedLoops(ctx, StridedWalk{across.dims, {inStrides}}, {outer[1]}, [&](const std::vector<Value*>& offset) {
      b.CreateStore(b.CreateFAdd(b.CreateLoad(ctx.f32Type(), sumSlot), ctx.load(x, offset[0])), sumSlot);
    });
    Value* sum = b.CreateLoad(ctx.f32Type(), sumSlot);
    ctx.store(y, outer[0], b.CreateFDiv(sum, ctx.f32(static_cast<float>(count))));
  });
}

}  // namespace

void registerReduceEmitters(EmitterRegistry& r) { r.add("ReduceMean", emitReduceMean); }

}  // namespace kiln::codegen
