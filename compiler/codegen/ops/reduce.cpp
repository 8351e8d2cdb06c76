// Emits ReduceMean: a walk over the kept dims (the output's elements) around
// a walk over the reduced dims summing into a register, then one division by
// the reduced element count. Both walks are strided loops (loops.h) over the
// input's own strides, so reducing trailing dims reads contiguous memory.
//
// When the innermost reduced run is contiguous (the usual case: trailing
// axes), it is summed in explicit f32 vectors, four accumulators wide when
// the run is long enough to hide the add latency, then reduced across lanes
// once per output: the reassociation is deliberate (the loop vectorizer will
// not reorder a float sum by itself) and the pairwise tree it makes is, if
// anything, closer to the interpreter's double sum than a running float sum.
#include <algorithm>

#include "compiler/codegen/ops/families.h"
#include "compiler/codegen/ops/loops.h"
#include "compiler/codegen/ops/vector_kernels.h"

namespace kiln::codegen {

namespace {

using llvm::Value;

Value* sumLanes(EmitContext& ctx, Value* v) {
  llvm::CallInst* sum = ctx.b.CreateFAddReduce(ctx.f32(-0.f), v);
  sum->setHasAllowReassoc(true);
  return sum;
}

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
  // The reduced walk with its innermost dim split off when that one is contiguous.
  StridedWalk acrossWalk = coalesce(StridedWalk{across.dims, {inStrides}});
  int64_t run = 1;
  if (!acrossWalk.dims.empty() && acrossWalk.strides[0].back() == 1) {
    run = acrossWalk.dims.back();
    acrossWalk.dims.pop_back();
    acrossWalk.strides[0].pop_back();
  }
  const int64_t lanes = ctx.target.vectorFloats;
  const bool vectorized = run >= lanes;
  const int64_t unroll = run >= 8 * lanes ? 4 : 1, step = unroll * lanes;
  const int64_t fullEnd = vectorized ? run / step * step : 0;
  std::optional<kernels::AccumulatorTile> acc;
  if (vectorized) acc.emplace(ctx, 1, std::vector<int64_t>(static_cast<size_t>(unroll), lanes));

  emitStridedLoops(ctx, StridedWalk{kept.dims, {stridesOf(kept), inStrides}}, [&](const std::vector<Value*>& outer) {
    b.CreateStore(ctx.f32(0.f), sumSlot);
    auto addToSum = [&](Value* v) { b.CreateStore(b.CreateFAdd(b.CreateLoad(ctx.f32Type(), sumSlot), v), sumSlot); };
    if (vectorized)
      for (int64_t u = 0; u < unroll; ++u) acc->set(0, static_cast<size_t>(u), kernels::splat(ctx, ctx.f32(0.f), lanes));
    emitStridedLoops(ctx, acrossWalk, {outer[1]}, [&](const std::vector<Value*>& offset) {
      if (!vectorized) {
        // A short (or strided) run: scalar adds.
        emitStridedLoops(ctx, StridedWalk{{run}, {{1}}}, {offset[0]},
                         [&](const std::vector<Value*>& at) { addToSum(ctx.load(x, at[0])); });
        return;
      }
      if (fullEnd > 0)
        ctx.loop(
            ctx.i64(0), ctx.i64(fullEnd),
            [&](Value* k) {
              for (int64_t u = 0; u < unroll; ++u) {
                Value* at = kernels::floatPtr(ctx, x.data, b.CreateAdd(offset[0], b.CreateAdd(k, ctx.i64(u * lanes))));
                const size_t c = static_cast<size_t>(u);
                acc->set(0, c, b.CreateFAdd(acc->get(0, c), kernels::loadVector(ctx, at, lanes)));
              }
            },
            step);
      int64_t start = fullEnd;
      for (int64_t width : kernels::chunkWidths(run - fullEnd, lanes)) {
        Value* v = kernels::loadVector(ctx, kernels::floatPtr(ctx, x.data, b.CreateAdd(offset[0], ctx.i64(start))), width);
        if (width == lanes)
          acc->set(0, 0, b.CreateFAdd(acc->get(0, 0), v));
        else
          addToSum(sumLanes(ctx, v));
        start += width;
      }
    });
    if (vectorized) {
      Value* total = acc->get(0, 0);
      for (int64_t u = 1; u < unroll; ++u) total = b.CreateFAdd(total, acc->get(0, static_cast<size_t>(u)));
      addToSum(sumLanes(ctx, total));
    }
    Value* sum = b.CreateLoad(ctx.f32Type(), sumSlot);
    ctx.store(y, outer[0], b.CreateFDiv(sum, ctx.f32(static_cast<float>(count))));
  });
}

}  // namespace

void registerReduceEmitters(EmitterRegistry& r) { r.add("ReduceMean", emitReduceMean); }

}  // namespace kiln::codegen
