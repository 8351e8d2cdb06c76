// Building blocks shared by the compute emitters (conv.cpp, pool.cpp,
// linear.cpp): the static geometry of a sliding window along one axis, split
// into spans of outputs that read the same kernel taps (so padding is resolved
// at compile time and no inner loop tests bounds), explicit f32 vectors (wide
// and strided loads, stores, splats), and a register tile of accumulators that
// is updated by rank-1 products (the micro-kernel of convolutions and matrix
// products). Header-only: every helper is small and used by several emitters.
#pragma once

#include <llvm/IR/Intrinsics.h>

#include <algorithm>
#include <functional>
#include <vector>

#include "compiler/codegen/emitter.h"
#include "compiler/codegen/math.h"

namespace kiln::codegen::kernels {

// One spatial axis of a sliding window: output o reads input indices
// o*stride - padBegin + k*dilation for the kernel taps k in [0, kernel).
struct AxisGeometry {
  int64_t in, out, kernel, stride, dilation, padBegin, padEnd;
};

// Consecutive outputs [begin, end) that read the same taps inside the input;
// `padded` counts the taps inside input or padding (count_include_pad).
struct AxisSpan {
  int64_t begin, end;
  std::vector<int64_t> taps;
  int64_t padded;
};

inline std::vector<AxisSpan> axisSpans(const AxisGeometry& a) {
  std::vector<AxisSpan> spans;
  for (int64_t o = 0; o < a.out; ++o) {
    const int64_t start = o * a.stride - a.padBegin;
    std::vector<int64_t> taps;
    for (int64_t k = 0; k < a.kernel; ++k)
      if (const int64_t i = start + k * a.dilation; i >= 0 && i < a.in) taps.push_back(k);
    const int64_t padded = std::min(a.kernel, (a.in + a.padEnd - 1 - start) / a.dilation + 1);
    if (!spans.empty() && spans.back().taps == taps && spans.back().padded == padded) {
      spans.back().end = o + 1;
    } else {
      spans.push_back({o, o + 1, std::move(taps), padded});
    }
  }
  return spans;
}

// Vector widths covering `width` elements: full vectors of `lanes`, then the rest.
inline std::vector<int64_t> chunkWidths(int64_t width, int64_t lanes) {
  std::vector<int64_t> widths(static_cast<size_t>(width / lanes), lanes);
  if (width % lanes) widths.push_back(width % lanes);
  return widths;
}

inline llvm::Type* vectorType(EmitContext& ctx, int64_t width) {
  return llvm::FixedVectorType::get(ctx.f32Type(), static_cast<unsigned>(width));
}

inline llvm::Value* floatPtr(EmitContext& ctx, llvm::Value* base, llvm::Value* index) {
  return ctx.b.CreateInBoundsGEP(ctx.f32Type(), base, index);
}

inline llvm::Value* loadFloat(EmitContext& ctx, llvm::Value* base, llvm::Value* index) {
  return ctx.b.CreateAlignedLoad(ctx.f32Type(), floatPtr(ctx, base, index), llvm::Align(4));
}

inline llvm::Value* splat(EmitContext& ctx, llvm::Value* scalar, int64_t width) {
  return ctx.b.CreateVectorSplat(static_cast<unsigned>(width), scalar);
}

// The `width` floats at ptr[0], ptr[stride], ...: one load for stride 1, a
// wide load and a shuffle for small strides, element loads otherwise.
inline llvm::Value* loadVector(EmitContext& ctx, llvm::Value* ptr, int64_t width, int64_t stride = 1) {
  llvm::IRBuilder<>& b = ctx.b;
  if (stride == 1) return b.CreateAlignedLoad(vectorType(ctx, width), ptr, llvm::Align(4));
  if (stride <= 4) {
    llvm::Value* wide = b.CreateAlignedLoad(vectorType(ctx, (width - 1) * stride + 1), ptr, llvm::Align(4));
    std::vector<int> lanes;
    for (int64_t i = 0; i < width; ++i) lanes.push_back(static_cast<int>(i * stride));
    return b.CreateShuffleVector(wide, lanes);
  }
  llvm::Value* v = llvm::PoisonValue::get(vectorType(ctx, width));
  for (int64_t i = 0; i < width; ++i)
    v = b.CreateInsertElement(v, loadFloat(ctx, ptr, ctx.i64(i * stride)), static_cast<uint64_t>(i));
  return v;
}

// Stores v's lanes at ptr[0], ptr[stride], ...: one store for stride 1, one
// store per lane otherwise (cheaper than a scatter for the few tiles of a
// channel-vectorized conv, whose lanes land a whole plane apart).
inline void storeVector(EmitContext& ctx, llvm::Value* ptr, llvm::Value* v, int64_t stride = 1) {
  if (stride == 1) {
    ctx.b.CreateAlignedStore(v, ptr, llvm::Align(4));
    return;
  }
  const auto width = llvm::cast<llvm::FixedVectorType>(v->getType())->getNumElements();
  for (unsigned i = 0; i < width; ++i)
    ctx.b.CreateAlignedStore(ctx.b.CreateExtractElement(v, static_cast<uint64_t>(i)),
                             floatPtr(ctx, ptr, ctx.i64(static_cast<int64_t>(i) * stride)), llvm::Align(4));
}

inline llvm::Value* fmulAdd(EmitContext& ctx, llvm::Value* a, llvm::Value* x, llvm::Value* acc) {
  return ctx.b.CreateIntrinsic(llvm::Intrinsic::fmuladd, {acc->getType()}, {a, x, acc});
}

// Splits [begin, end) into tiles of `tileWidth` (a run-time loop) and one
// narrower remainder tile; body(start, width) emits one tile.
inline void forEachTile(EmitContext& ctx, int64_t begin, int64_t end, int64_t tileWidth,
                        const std::function<void(llvm::Value*, int64_t)>& body) {
  const int64_t fullEnd = begin + (end - begin) / tileWidth * tileWidth;
  if (fullEnd > begin)
    ctx.loop(
        ctx.i64(begin), ctx.i64(fullEnd), [&](llvm::Value* start) { body(start, tileWidth); }, tileWidth);
  if (end > fullEnd) body(ctx.i64(fullEnd), end - fullEnd);
}

// One pass over a contiguous row of n floats from rowStart: body(offset,
// width) for full vectors of `lanes` (a run-time loop) and one narrower
// remainder (softmax.cpp, LayerNormalization).
inline void forEachVector(EmitContext& ctx, llvm::Value* rowStart, int64_t n, int64_t lanes,
                          const std::function<void(llvm::Value*, int64_t)>& body) {
  const int64_t fullEnd = n / lanes * lanes;
  llvm::IRBuilder<>& b = ctx.b;
  if (fullEnd > 0)
    ctx.loop(
        ctx.i64(0), ctx.i64(fullEnd), [&](llvm::Value* k) { body(b.CreateAdd(rowStart, k), lanes); }, lanes);
  if (n > fullEnd) body(b.CreateAdd(rowStart, ctx.i64(fullEnd)), n - fullEnd);
}

// The lanes of v summed in any order (llvm.vector.reduce.fadd with reassoc:
// a tree of adds).
inline llvm::Value* horizontalSum(EmitContext& ctx, llvm::Value* v) {
  llvm::CallInst* sum = ctx.b.CreateFAddReduce(ctx.f32(-0.f), v);
  sum->setHasAllowReassoc(true);
  return sum;
}

// Runs the fused epilogue activation over `count` floats at ptr (a loop the
// vectorizer widens); nothing when the node has no activation.
inline void applyActivation(EmitContext& ctx, llvm::Value* ptr, int64_t count) {
  const Attributes& a = ctx.attrs();
  if (!a.has("activation") || a.getString("activation").empty()) return;
  ctx.loop(count, [&](llvm::Value* i) {
    llvm::Value* p = floatPtr(ctx, ptr, i);
    llvm::Value* y = ctx.b.CreateAlignedLoad(ctx.f32Type(), p, llvm::Align(4));
    ctx.b.CreateAlignedStore(emitEpilogueActivation(ctx.b, a, y), p, llvm::Align(4));
  });
}

// rows x (chunk vectors) f32 accumulators. They live in allocas of the
// function's entry block, which SROA turns into registers, so emitters can
// update them inside run-time loops without threading phis by hand.
class AccumulatorTile {
 public:
  AccumulatorTile(EmitContext& ctx, int64_t rows, std::vector<int64_t> chunks)
      : ctx_(ctx), rows_(rows), chunks_(std::move(chunks)) {
    llvm::BasicBlock& entry = ctx.b.GetInsertBlock()->getParent()->getEntryBlock();
    llvm::IRBuilder<> atEntry(&entry, entry.begin());
    for (int64_t r = 0; r < rows_; ++r)
      for (int64_t w : chunks_) slots_.push_back(atEntry.CreateAlloca(vectorType(ctx, w), nullptr, "acc"));
  }

  int64_t rows() const { return rows_; }
  const std::vector<int64_t>& chunks() const { return chunks_; }
  // Offset of chunk c within the tile's columns.
  int64_t chunkOffset(size_t c) const {
    int64_t offset = 0;
    for (size_t i = 0; i < c; ++i) offset += chunks_[i];
    return offset;
  }

  llvm::Value* get(int64_t r, size_t c) const { return ctx_.b.CreateLoad(vectorType(ctx_, chunks_[c]), slot(r, c)); }
  void set(int64_t r, size_t c, llvm::Value* v) const { ctx_.b.CreateStore(v, slot(r, c)); }

  // acc[r][:] += scalar(r) * row[:] for every tile row r, where `row` holds
  // one vector per chunk and scalarPtr(r) points to row r's f32 factor, or is
  // null when row r takes no part (e.g. its kernel tap lies in the padding).
  void rankOneUpdate(const std::function<llvm::Value*(int64_t)>& scalarPtr,
                     const std::vector<llvm::Value*>& row) const {
    for (int64_t r = 0; r < rows_; ++r) {
      llvm::Value* ptr = scalarPtr(r);
      if (!ptr) continue;
      llvm::Value* s = ctx_.b.CreateAlignedLoad(ctx_.f32Type(), ptr, llvm::Align(4));
      for (size_t c = 0; c < chunks_.size(); ++c)
        set(r, c, fmulAdd(ctx_, splat(ctx_, s, chunks_[c]), row[c], get(r, c)));
    }
  }

 private:
  llvm::Value* slot(int64_t r, size_t c) const { return slots_[static_cast<size_t>(r) * chunks_.size() + c]; }
  EmitContext& ctx_;
  int64_t rows_;
  std::vector<int64_t> chunks_;
  std::vector<llvm::Value*> slots_;
};

// How many accumulator vectors a register tile may hold on this target:
// about half the vector registers (32 with AVX-512, 16 with AVX2), leaving
// the rest for the loaded operands.
inline int64_t accumulatorBudget(const TargetInfo& t) { return t.vectorFloats >= 16 ? 16 : 8; }

}  // namespace kiln::codegen::kernels
