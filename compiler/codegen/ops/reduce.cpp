// Emits the reductions of compiler/ops/reduce.h: a walk over the kept dims
// (the output's elements) around a walk over the reduced dims combining the
// mapped elements into a register, then the reduction's finish. Both walks
// are strided loops (loops.h) over the input's own strides, so reducing
// trailing dims reads contiguous memory.
//
// When the innermost reduced run is contiguous (the usual case: trailing
// axes) and f32, it is combined in explicit vectors, four accumulators wide
// when the run is long enough to hide the latency, then combined across
// lanes once per output: the reassociation is deliberate (the loop
// vectorizer will not reorder a float sum by itself) and the pairwise tree
// it makes is, if anything, closer to the interpreter's double sum than a
// running float sum. Max and Min let a NaN win, like the reference.
// ReduceLogSumExp takes a Max pass first and sums exp(x - max), so large
// inputs cannot overflow.
//
// ArgMax/ArgMin scan their axis with a scalar compare per element, keeping
// the best value and its index in registers.
#include <algorithm>
#include <limits>

#include "compiler/codegen/math.h"

#include "compiler/codegen/ops/families.h"
#include "compiler/codegen/ops/loops.h"
#include "compiler/codegen/ops/vector_kernels.h"
#include "compiler/ops/reduce.h"

namespace kiln::codegen {

namespace {

using llvm::Value;

bool isFloat(Value* v) { return v->getType()->isFPOrFPVectorTy(); }

// The combination's identity, a scalar of `type` (f32 or i64).
Value* identityOf(EmitContext& ctx, ReduceCombine c, llvm::Type* type) {
  const bool fp = type->isFloatTy();
  switch (c) {
    case ReduceCombine::Add: return fp ? ctx.f32(0.f) : ctx.i64(0);
    case ReduceCombine::Mul: return fp ? ctx.f32(1.f) : ctx.i64(1);
    case ReduceCombine::Max:
      return fp ? ctx.f32(-std::numeric_limits<float>::infinity()) : ctx.i64(std::numeric_limits<int64_t>::min());
    case ReduceCombine::Min:
      return fp ? ctx.f32(std::numeric_limits<float>::infinity()) : ctx.i64(std::numeric_limits<int64_t>::max());
  }
  return nullptr;
}

// acc combined with v (scalars or vectors alike).
Value* combine(EmitContext& ctx, ReduceCombine c, Value* acc, Value* v) {
  llvm::IRBuilder<>& b = ctx.b;
  const bool fp = isFloat(v);
  switch (c) {
    case ReduceCombine::Add: return fp ? b.CreateFAdd(acc, v) : b.CreateAdd(acc, v);
    case ReduceCombine::Mul: return fp ? b.CreateFMul(acc, v) : b.CreateMul(acc, v);
    case ReduceCombine::Max:
    case ReduceCombine::Min: {
      const bool max = c == ReduceCombine::Max;
      if (!fp) return b.CreateSelect(max ? b.CreateICmpSGT(v, acc) : b.CreateICmpSLT(v, acc), v, acc);
      Value* better = max ? b.CreateFCmpOGT(v, acc) : b.CreateFCmpOLT(v, acc);
      return b.CreateSelect(b.CreateOr(better, b.CreateFCmpUNO(v, v)), v, acc);
    }
  }
  return acc;
}

// The lanes of vector v combined into one scalar: halving while the width
// is even (a pairwise tree), then lane by lane.
Value* combineLanes(EmitContext& ctx, ReduceCombine c, Value* v) {
  auto width = static_cast<int>(llvm::cast<llvm::FixedVectorType>(v->getType())->getNumElements());
  for (; width > 1 && width % 2 == 0; width /= 2) {
    std::vector<int> low, high;
    for (int i = 0; i < width / 2; ++i) {
      low.push_back(i);
      high.push_back(width / 2 + i);
    }
    v = combine(ctx, c, ctx.b.CreateShuffleVector(v, low), ctx.b.CreateShuffleVector(v, high));
  }
  if (width == 1 && v->getType()->isVectorTy()) return ctx.b.CreateExtractElement(v, uint64_t{0});
  Value* acc = ctx.b.CreateExtractElement(v, uint64_t{0});
  for (int i = 1; i < width; ++i) acc = combine(ctx, c, acc, ctx.b.CreateExtractElement(v, static_cast<uint64_t>(i)));
  return acc;
}

Value* mapValue(EmitContext& ctx, ReduceMap m, Value* v) {
  switch (m) {
    case ReduceMap::Identity: return v;
    case ReduceMap::Abs: return ctx.b.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, v);
    case ReduceMap::Square: return ctx.b.CreateFMul(v, v);
    case ReduceMap::Exp: return emitExp(ctx.b, v);
  }
  return v;
}

Value* finishValue(EmitContext& ctx, ReduceFinish f, Value* acc, int64_t count) {
  switch (f) {
    case ReduceFinish::Identity: return acc;
    case ReduceFinish::Mean: return ctx.b.CreateFDiv(acc, ctx.f32(static_cast<float>(count)));
    case ReduceFinish::Sqrt: return ctx.b.CreateUnaryIntrinsic(llvm::Intrinsic::sqrt, acc);
    case ReduceFinish::Log: return emitLog(ctx.b, acc);
  }
  return acc;
}

void emitReduce(EmitContext& ctx, const Reduction& red) {
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
  llvm::Type* elemType = llvmType(ctx.b.getContext(), x.type.dtype);
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
  const bool vectorized = x.type.dtype == DType::F32 && run >= lanes;
  const int64_t unroll = run >= 8 * lanes ? 4 : 1, step = unroll * lanes;
  const int64_t fullEnd = vectorized ? run / step * step : 0;

  // One pass over the reduced elements of the output element whose first
  // input element is at `base`: `how` over term(x), from its identity.
  auto reduceAcross = [&](Value* base, ReduceCombine how, const std::function<Value*(Value*)>& term) {
    llvm::AllocaInst* accSlot = entryBlockSlot(ctx, elemType);
    Value* identity = identityOf(ctx, how, elemType);
    b.CreateStore(identity, accSlot);
    auto accumulate = [&](Value* v) { b.CreateStore(combine(ctx, how, b.CreateLoad(elemType, accSlot), v), accSlot); };
    std::optional<kernels::AccumulatorTile> acc;
    if (vectorized) {
      acc.emplace(ctx, 1, std::vector<int64_t>(static_cast<size_t>(unroll), lanes));
      for (int64_t u = 0; u < unroll; ++u) acc->set(0, static_cast<size_t>(u), kernels::splat(ctx, identity, lanes));
    }
    auto accumulateVector = [&](size_t c, Value* v) { acc->set(0, c, combine(ctx, how, acc->get(0, c), term(v))); };
    emitStridedLoops(ctx, acrossWalk, {base}, [&](const std::vector<Value*>& offset) {
      if (!vectorized) {
        // A short (or strided, or integer) run: scalar steps.
        emitStridedLoops(ctx, StridedWalk{{run}, {{1}}}, {offset[0]},
                         [&](const std::vector<Value*>& at) { accumulate(term(ctx.load(x, at[0]))); });
        return;
      }
      if (fullEnd > 0)
        ctx.loop(
            ctx.i64(0), ctx.i64(fullEnd),
            [&](Value* k) {
              for (int64_t u = 0; u < unroll; ++u) {
                Value* at = kernels::floatPtr(ctx, x.data, b.CreateAdd(offset[0], b.CreateAdd(k, ctx.i64(u * lanes))));
                accumulateVector(static_cast<size_t>(u), kernels::loadVector(ctx, at, lanes));
              }
            },
            step);
      int64_t start = fullEnd;
      for (int64_t width : kernels::chunkWidths(run - fullEnd, lanes)) {
        Value* v = kernels::loadVector(ctx, kernels::floatPtr(ctx, x.data, b.CreateAdd(offset[0], ctx.i64(start))), width);
        if (width == lanes)
          accumulateVector(0, v);
        else
          accumulate(combineLanes(ctx, how, term(v)));
        start += width;
      }
    });
    if (vectorized) {
      Value* total = acc->get(0, 0);
      for (int64_t u = 1; u < unroll; ++u) total = combine(ctx, how, total, acc->get(0, static_cast<size_t>(u)));
      accumulate(combineLanes(ctx, how, total));
    }
    return static_cast<Value*>(b.CreateLoad(elemType, accSlot));
  };

  emitStridedLoops(ctx, StridedWalk{kept.dims, {stridesOf(kept), inStrides}}, [&](const std::vector<Value*>& outer) {
    if (x.type.dtype != DType::F32) {
      ctx.store(y, outer[0], reduceAcross(outer[1], red.combine, [](Value* v) { return v; }));
      return;
    }
    if (red.map != ReduceMap::Exp) {
      Value* result = reduceAcross(outer[1], red.combine, [&](Value* v) { return mapValue(ctx, red.map, v); });
      ctx.store(y, outer[0], finishValue(ctx, red.finish, result, count));
      return;
    }
    // exp(x - m) with m the maximum (0 when that is not finite), m added back after the finish.
    Value* max = reduceAcross(outer[1], ReduceCombine::Max, [](Value* v) { return v; });
    Value* finite = b.CreateFCmpOLT(b.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, max),
                                    ctx.f32(std::numeric_limits<float>::infinity()));
    Value* shift = b.CreateSelect(finite, max, ctx.f32(0.f));
    Value* sum = reduceAcross(outer[1], red.combine, [&](Value* v) {
      Value* by = v->getType()->isVectorTy()
                      ? kernels::splat(ctx, shift, llvm::cast<llvm::FixedVectorType>(v->getType())->getNumElements())
                      : shift;
      return emitExp(b, b.CreateFSub(v, by));
    });
    ctx.store(y, outer[0], b.CreateFAdd(finishValue(ctx, red.finish, sum, count), shift));
  });
}

// For each output element, the scan along the axis: k beats the best so far
// when larger (ArgMax) or smaller (ArgMin), equal too with select_last_index;
// a NaN beats every number (and, with select_last_index, an earlier NaN).
void emitArgExtreme(EmitContext& ctx, bool isMax) {
  const Operand& x = ctx.input(0);
  const Operand& y = ctx.output();
  const Shape& in = x.type.shape;
  const size_t axis = normalizeAxis(ctx.attrs().getInt("axis"), in.rank());
  const bool last = ctx.attrs().getInt("select_last_index") != 0;
  const int64_t outer = in.product(0, axis), n = in[axis], inner = in.product(axis + 1, in.rank());
  const bool fp = x.type.dtype == DType::F32;
  llvm::IRBuilder<>& b = ctx.b;
  llvm::AllocaInst* bestValue = entryBlockSlot(ctx, llvmType(b.getContext(), x.type.dtype));
  llvm::AllocaInst* bestIndex = entryBlockSlot(ctx, b.getInt64Ty());
  auto beats = [&](Value* v, Value* best) -> Value* {
    if (!fp) {
      Value* strict = isMax ? b.CreateICmpSGT(v, best) : b.CreateICmpSLT(v, best);
      return last ? b.CreateOr(strict, b.CreateICmpEQ(v, best)) : strict;
    }
    Value* vNaN = b.CreateFCmpUNO(v, v);
    Value* bestNaN = b.CreateFCmpUNO(best, best);
    Value* strict = isMax ? b.CreateFCmpOGT(v, best) : b.CreateFCmpOLT(v, best);
    Value* numberWins = b.CreateOr(last ? b.CreateOr(strict, b.CreateFCmpOEQ(v, best)) : strict, vNaN);
    return b.CreateSelect(bestNaN, last ? vNaN : b.getFalse(), numberWins);
  };
  ctx.loop(outer, [&](Value* o) {
    ctx.loop(inner, [&](Value* i) {
      Value* base = b.CreateAdd(b.CreateMul(o, ctx.i64(n * inner)), i);
      b.CreateStore(ctx.load(x, base), bestValue);
      b.CreateStore(ctx.i64(0), bestIndex);
      ctx.loop(ctx.i64(1), ctx.i64(n), [&](Value* k) {
        Value* v = ctx.load(x, b.CreateAdd(base, b.CreateMul(k, ctx.i64(inner))));
        Value* wins = beats(v, b.CreateLoad(bestValue->getAllocatedType(), bestValue));
        b.CreateStore(b.CreateSelect(wins, v, b.CreateLoad(bestValue->getAllocatedType(), bestValue)), bestValue);
        b.CreateStore(b.CreateSelect(wins, k, b.CreateLoad(b.getInt64Ty(), bestIndex)), bestIndex);
      });
      ctx.store(y, b.CreateAdd(b.CreateMul(o, ctx.i64(inner)), i), b.CreateLoad(b.getInt64Ty(), bestIndex));
    });
  });
}

}  // namespace

void registerReduceEmitters(EmitterRegistry& r) {
  for (const Reduction& red : reductions()) r.add(red.op, [&red](EmitContext& ctx) { emitReduce(ctx, red); });
  r.add("ArgMax", [](EmitContext& ctx) { emitArgExtreme(ctx, true); });
  r.add("ArgMin", [](EmitContext& ctx) { emitArgExtreme(ctx, false); });
}

}  // namespace kiln::codegen
