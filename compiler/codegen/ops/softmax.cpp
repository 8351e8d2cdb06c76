// Emits Softmax, LogSoftmax and Hardmax along one axis (opset-13 semantics).
// Softmax and LogSoftmax are stable: each row along the axis first finds its
// maximum, then sums exp(x - max) (Softmax keeps those exponentials in the
// output and scales them by one reciprocal of the sum), and LogSoftmax writes
// x - max - log(sum). Rows are visited in place order, so the output may
// alias the input. Hardmax is a scalar scan per row (emitHardmax).
//
// Both reductions are explicit f32 vectors, because the loop vectorizer may
// not reassociate a float max or sum on its own. A contiguous row (the axis
// innermost) is folded lane-wise into one vector accumulator and reduced
// horizontally once (a tree of adds: the reassociation is deliberate and, if
// anything, more accurate than a running sum); when the axis has elements
// `inner` apart, a vector covers that many adjacent rows instead, one row per
// lane, and needs no horizontal step. The max keeps the scalar rule
// "v > max ? v : max" (one vmaxps), which skips NaN; a NaN still reaches
// every output of its row through exp and the sum.
#include <algorithm>
#include <functional>
#include <limits>
#include <vector>

#include "compiler/codegen/math.h"
#include "compiler/codegen/ops/families.h"
#include "compiler/codegen/ops/loops.h"
#include "compiler/codegen/ops/vector_kernels.h"

namespace kiln::codegen {

namespace {

using llvm::Value;

Value* maxOf(llvm::IRBuilder<>& b, Value* acc, Value* v) { return b.CreateSelect(b.CreateFCmpOGT(v, acc), v, acc); }

// The lanes of v folded with maxOf: halves while the width is even (a
// shuffle and a vmaxps each), then the remaining lanes one by one.
Value* horizontalMax(llvm::IRBuilder<>& b, Value* v) {
  unsigned n = llvm::cast<llvm::FixedVectorType>(v->getType())->getNumElements();
  while (n % 2 == 0) {
    std::vector<int> low, high;
    for (unsigned i = 0; i < n / 2; ++i) {
      low.push_back(static_cast<int>(i));
      high.push_back(static_cast<int>(i + n / 2));
    }
    v = maxOf(b, b.CreateShuffleVector(v, low), b.CreateShuffleVector(v, high));
    n /= 2;
  }
  Value* result = b.CreateExtractElement(v, uint64_t{0});
  for (unsigned i = 1; i < n; ++i) result = maxOf(b, result, b.CreateExtractElement(v, static_cast<uint64_t>(i)));
  return result;
}

using kernels::forEachVector;
using kernels::horizontalSum;

// A contiguous row of n floats at x[rowStart] (inner == 1).
void emitContiguousRow(EmitContext& ctx, bool logarithmic, Value* rowStart, int64_t n) {
  const Operand& x = ctx.input(0);
  const Operand& y = ctx.output();
  llvm::IRBuilder<>& b = ctx.b;
  const int64_t lanes = std::min<int64_t>(ctx.target.vectorFloats, n);
  auto xAt = [&](Value* i) { return kernels::floatPtr(ctx, x.data, i); };
  auto yAt = [&](Value* i) { return kernels::floatPtr(ctx, y.data, i); };
  kernels::AccumulatorTile acc(ctx, 1, {lanes});

  // Max: full vectors into the accumulator, the remainder folded in as scalars.
  acc.set(0, 0, kernels::splat(ctx, ctx.f32(-std::numeric_limits<float>::infinity()), lanes));
  Value* tailMax = nullptr;
  forEachVector(ctx, rowStart, n, lanes, [&](Value* at, int64_t width) {
    Value* v = kernels::loadVector(ctx, xAt(at), width);
    if (width == lanes)
      acc.set(0, 0, maxOf(b, acc.get(0, 0), v));
    else
      tailMax = horizontalMax(b, v);
  });
  Value* max = horizontalMax(b, acc.get(0, 0));
  if (tailMax) max = maxOf(b, max, tailMax);

  // Sum of exp(x - max), keeping the exponentials for Softmax.
  acc.set(0, 0, kernels::splat(ctx, ctx.f32(0.f), lanes));
  Value* tailSum = nullptr;
  forEachVector(ctx, rowStart, n, lanes, [&](Value* at, int64_t width) {
    Value* e = emitExp(b, b.CreateFSub(kernels::loadVector(ctx, xAt(at), width), kernels::splat(ctx, max, width)));
    if (!logarithmic) kernels::storeVector(ctx, yAt(at), e);
    if (width == lanes)
      acc.set(0, 0, b.CreateFAdd(acc.get(0, 0), e));
    else
      tailSum = horizontalSum(ctx, e);
  });
  Value* sum = horizontalSum(ctx, acc.get(0, 0));
  if (tailSum) sum = b.CreateFAdd(sum, tailSum);

  if (logarithmic) {
    Value* logSum = emitLog(b, sum);
    forEachVector(ctx, rowStart, n, lanes, [&](Value* at, int64_t width) {
      Value* centered = b.CreateFSub(kernels::loadVector(ctx, xAt(at), width), kernels::splat(ctx, max, width));
      kernels::storeVector(ctx, yAt(at), b.CreateFSub(centered, kernels::splat(ctx, logSum, width)));
    });
  } else {
    Value* reciprocal = b.CreateFDiv(ctx.f32(1.f), sum);
    forEachVector(ctx, rowStart, n, lanes, [&](Value* at, int64_t width) {
      Value* e = kernels::loadVector(ctx, yAt(at), width);
      kernels::storeVector(ctx, yAt(at), b.CreateFMul(e, kernels::splat(ctx, reciprocal, width)));
    });
  }
}

// `width` adjacent rows (one per lane) of n elements `inner` apart, the first
// element of lane 0 at x[start].
void emitRowsAcrossLanes(EmitContext& ctx, bool logarithmic, Value* start, int64_t n, int64_t inner, int64_t width) {
  const Operand& x = ctx.input(0);
  const Operand& y = ctx.output();
  llvm::IRBuilder<>& b = ctx.b;
  auto at = [&](Value* k) { return b.CreateAdd(start, b.CreateMul(k, ctx.i64(inner))); };
  auto xAt = [&](Value* k) { return kernels::floatPtr(ctx, x.data, at(k)); };
  auto yAt = [&](Value* k) { return kernels::floatPtr(ctx, y.data, at(k)); };
  kernels::AccumulatorTile acc(ctx, 1, {width});
  acc.set(0, 0, kernels::splat(ctx, ctx.f32(-std::numeric_limits<float>::infinity()), width));
  ctx.loop(n, [&](Value* k) { acc.set(0, 0, maxOf(b, acc.get(0, 0), kernels::loadVector(ctx, xAt(k), width))); });
  Value* max = acc.get(0, 0);
  acc.set(0, 0, kernels::splat(ctx, ctx.f32(0.f), width));
  ctx.loop(n, [&](Value* k) {
    Value* e = emitExp(b, b.CreateFSub(kernels::loadVector(ctx, xAt(k), width), max));
    if (!logarithmic) kernels::storeVector(ctx, yAt(k), e);
    acc.set(0, 0, b.CreateFAdd(acc.get(0, 0), e));
  });
  Value* sum = acc.get(0, 0);
  if (logarithmic) {
    Value* logSum = emitLog(b, sum);
    ctx.loop(n, [&](Value* k) {
      kernels::storeVector(ctx, yAt(k), b.CreateFSub(b.CreateFSub(kernels::loadVector(ctx, xAt(k), width), max), logSum));
    });
  } else {
    Value* reciprocal = b.CreateFDiv(kernels::splat(ctx, ctx.f32(1.f), width), sum);
    ctx.loop(n, [&](Value* k) {
      kernels::storeVector(ctx, yAt(k), b.CreateFMul(kernels::loadVector(ctx, yAt(k), width), reciprocal));
    });
  }
}

void emitSoftmax(EmitContext& ctx) {
  const bool logarithmic = ctx.node.opName() == "LogSoftmax";
  const Operand& x = ctx.input(0);
  const Shape& shape = x.type.shape;
  const size_t axis = normalizeAxis(ctx.attrs().getInt("axis"), shape.rank());
  // The tensor as [outer, n, inner] around the axis; a row is n elements inner apart.
  const int64_t outer = shape.product(0, axis), n = shape[axis], inner = shape.product(axis + 1, shape.rank());
  if (n == 0 || inner == 0) return;
  llvm::IRBuilder<>& b = ctx.b;
  ctx.loop(outer, [&](Value* o) {
    Value* base = b.CreateMul(o, ctx.i64(n * inner));
    if (inner == 1) {
      emitContiguousRow(ctx, logarithmic, base, n);
      return;
    }
    kernels::forEachTile(ctx, 0, inner, ctx.target.vectorFloats, [&](Value* i, int64_t width) {
      emitRowsAcrossLanes(ctx, logarithmic, b.CreateAdd(base, i), n, inner, width);
    });
  });
}

// Hardmax: per row along the axis, a scalar scan keeps the first maximum's
// index (only a strictly greater element replaces it, so ties keep the
// earlier one) and whether a NaN was seen, then the row is written as 0s
// with a 1 there, or as NaN. Rows are short class vectors; the scan reads the
// whole row before writing it, so the output may alias the input.
void emitHardmax(EmitContext& ctx) {
  const Operand& x = ctx.input(0);
  const Operand& y = ctx.output();
  const Shape& shape = x.type.shape;
  const size_t axis = normalizeAxis(ctx.attrs().getInt("axis"), shape.rank());
  const int64_t outer = shape.product(0, axis), n = shape[axis], inner = shape.product(axis + 1, shape.rank());
  if (n == 0 || inner == 0) return;
  llvm::IRBuilder<>& b = ctx.b;
  llvm::AllocaInst* maxSlot = entryBlockSlot(ctx, ctx.f32Type());
  llvm::AllocaInst* firstSlot = entryBlockSlot(ctx, b.getInt64Ty());
  llvm::AllocaInst* nanSlot = entryBlockSlot(ctx, b.getInt1Ty());
  ctx.loop(outer, [&](Value* o) {
    ctx.loop(inner, [&](Value* i) {
      Value* start = b.CreateAdd(b.CreateMul(o, ctx.i64(n * inner)), i);
      auto at = [&](Value* k) { return b.CreateAdd(start, b.CreateMul(k, ctx.i64(inner))); };
      b.CreateStore(ctx.f32(-std::numeric_limits<float>::infinity()), maxSlot);
      b.CreateStore(ctx.i64(0), firstSlot);
      b.CreateStore(b.getFalse(), nanSlot);
      ctx.loop(n, [&](Value* k) {
        Value* v = ctx.load(x, at(k));
        b.CreateStore(b.CreateOr(b.CreateLoad(b.getInt1Ty(), nanSlot), b.CreateFCmpUNO(v, v)), nanSlot);
        Value* max = b.CreateLoad(ctx.f32Type(), maxSlot);
        Value* greater = b.CreateFCmpOGT(v, max);
        b.CreateStore(b.CreateSelect(greater, v, max), maxSlot);
        b.CreateStore(b.CreateSelect(greater, k, b.CreateLoad(b.getInt64Ty(), firstSlot)), firstSlot);
      });
      Value* first = b.CreateLoad(b.getInt64Ty(), firstSlot);
      Value* nan = b.CreateLoad(b.getInt1Ty(), nanSlot);
      ctx.loop(n, [&](Value* k) {
        Value* mark = b.CreateSelect(b.CreateICmpEQ(k, first), ctx.f32(1.f), ctx.f32(0.f));
        ctx.store(y, at(k), b.CreateSelect(nan, ctx.f32(std::numeric_limits<float>::quiet_NaN()), mark));
      });
    });
  });
}

}  // namespace

void registerSoftmaxEmitters(EmitterRegistry& r) {
  r.add("Softmax", emitSoftmax);
  r.add("LogSoftmax", emitSoftmax);
  r.add("Hardmax", emitHardmax);
}

}  // namespace kiln::codegen
