// Emitters for MaxPool, AveragePool (1-D and 2-D windows, strides, pads,
// dilations, ceil_mode, count_include_pad) and GlobalMaxPool /
// GlobalAveragePool (any rank), matching compiler/ops/pool.cpp.
//
// Windowed pools walk output rows and columns in spans whose in-input
// kernel taps are known at compile time (kernels::axisSpans), so padding and
// ceil-mode overhang cost nothing at run time and the divisor of an average
// is a constant per span. Inside a span, a tile of adjacent output columns
// is a few f32 vectors: every tap is one (strided: shuffled) vector load
// folded into them. Global pools fold each plane through vector
// accumulators, then reduce the lanes. Max propagates NaN like the reference:
// the running value takes x when x > max or x is NaN. Windowed max gets there
// without a per-lane compare and blend per tap (the NaN test doubles the
// cost of a tap): the taps fold with x > max ? x : max, one vmaxps, while
// x * 0 + flag, one FMA, leaves flag 0 unless some tap was NaN or infinite;
// only a tile whose flag is set runs again with the exact combine.
#include <llvm/IR/MDBuilder.h>

#include <algorithm>
#include <limits>

#include "compiler/codegen/ops/families.h"
#include "compiler/codegen/ops/vector_kernels.h"

namespace kiln::codegen {

namespace {

using kernels::AxisGeometry;
using kernels::AxisSpan;

// How a pool folds its window: max (NaN-propagating) or sum.
struct Reducer {
  bool max;

  llvm::Value* identity(EmitContext& ctx, int64_t width) const {
    const float v = max ? -std::numeric_limits<float>::infinity() : 0.f;
    return kernels::splat(ctx, ctx.f32(v), width);
  }
  // Works on vectors and scalars alike.
  llvm::Value* combine(EmitContext& ctx, llvm::Value* acc, llvm::Value* x) const {
    llvm::IRBuilder<>& b = ctx.b;
    if (!max) return b.CreateFAdd(acc, x);
    return b.CreateSelect(b.CreateOr(b.CreateFCmpOGT(x, acc), b.CreateFCmpUNO(x, x)), x, acc);
  }
  // max's fast fold: x > acc ? x : acc (x86 maxps exactly), which drops NaN x.
  llvm::Value* combineIgnoringNaN(EmitContext& ctx, llvm::Value* acc, llvm::Value* x) const {
    if (!max) return combine(ctx, acc, x);
    return ctx.b.CreateSelect(ctx.b.CreateFCmpOGT(x, acc), x, acc);
  }
  llvm::Value* lanes(EmitContext& ctx, llvm::Value* v) const {
    if (max) return ctx.b.CreateFPMaximumReduce(v);
    llvm::CallInst* sum = ctx.b.CreateFAddReduce(ctx.f32(0.f), v);
    sum->setHasAllowReassoc(true);  // a tree of adds, like any vectorized sum
    return sum;
  }
};

// The `width` floats at ptr[0], ptr[stride], ... for a small stride, from
// whole vectors of `width` floats and shuffles that pick every stride-th
// lane (vpermt2ps with AVX-512) instead of one odd-sized wide load that the
// backend splits into lane inserts. The last vector ends at the last float
// read, so nothing past ptr[(width - 1) * stride] is touched.
llvm::Value* loadStrided(EmitContext& ctx, llvm::Value* ptr, int64_t width, int64_t stride) {
  if (stride == 1 || stride > 4 || width < 4 || (width & (width - 1)) != 0)
    return kernels::loadVector(ctx, ptr, width, stride);
  llvm::IRBuilder<>& b = ctx.b;
  const int64_t extent = (width - 1) * stride + 1, sources = (extent + width - 1) / width;
  llvm::Value* v = nullptr;
  int64_t filled = 0;  // lanes of v taken so far (lane i reads element i * stride)
  for (int64_t j = 0; j < sources; ++j) {
    const int64_t start = std::min(j * width, extent - width);
    llvm::Value* part = kernels::loadVector(ctx, kernels::floatPtr(ctx, ptr, ctx.i64(start)), width);
    // Lanes whose element lies in [start, start + width) and is not taken yet.
    std::vector<int> mask(static_cast<size_t>(width));
    int64_t next = filled;
    for (int64_t i = 0; i < width; ++i) {
      const int64_t e = i * stride;
      if (i >= filled && e >= start && e < start + width) {
        mask[static_cast<size_t>(i)] = static_cast<int>(width + e - start);
        next = i + 1;
      } else {
        mask[static_cast<size_t>(i)] = v ? static_cast<int>(i) : -1;
      }
    }
    v = b.CreateShuffleVector(v ? v : llvm::PoisonValue::get(part->getType()), part, mask);
    filled = next;
  }
  return v;
}

// Input x [1, C, spatial...] as planes of `plane` floats.
struct PoolInput {
  llvm::Value* data;
  int64_t planes, plane;
};

void requirePlain(EmitContext& ctx, const Operand& t) {
  if (t.type.layout != Layout::Plain) ctx.fail("the LLVM backend expects plain (NCHW) layouts, got " + t.type.str());
}

// ---------------------------------------------------------------- NCHWc

// Pools in the blocked layout ([C/c][H][W][c] per sample): one vector is one
// pixel's channel block, so every tap is one contiguous load folded into a
// tile of pixel vectors, and a global pool folds a block's pixels into
// vectors and stores one vector per block. Pad lanes are zero in and out
// (max and mean of zeros). Max folds with the exact NaN-propagating combine.
void emitBlockedWindowPool(EmitContext& ctx, const Reducer& reducer, bool countIncludePad) {
  const Operand &x = ctx.input(0), &y = ctx.output();
  const Shape& xs = x.type.shape;
  const Shape& ys = y.type.shape;
  const int64_t c = y.type.block, blocks = (xs[1] + c - 1) / c;
  if (xs.rank() != 4) ctx.fail("NCHWc pools are 2-D");
  const Attributes& a = ctx.attrs();
  const std::vector<int64_t>& kernel = a.getInts("kernel_shape");
  const std::vector<int64_t>& strides = a.getInts("strides");
  const std::vector<int64_t>& pads = a.getInts("pads");
  const std::vector<int64_t> dilations = a.has("dilations") ? a.getInts("dilations") : std::vector<int64_t>(2, 1);
  auto axis = [&](size_t d) {
    return AxisGeometry{xs[2 + d], ys[2 + d], kernel[d], strides[d], dilations[d], pads[d], pads[2 + d]};
  };
  const AxisGeometry rows = axis(0), cols = axis(1);
  llvm::IRBuilder<>& b = ctx.b;
  const int64_t tile = c >= 16 ? 8 : 4;
  auto pixel = [&](llvm::Value* data, int64_t height, int64_t width, llvm::Value* cb, llvm::Value* r,
                   llvm::Value* col) {
    llvm::Value* p = b.CreateAdd(b.CreateMul(b.CreateAdd(b.CreateMul(cb, ctx.i64(height)), r), ctx.i64(width)), col);
    return kernels::floatPtr(ctx, data, b.CreateMul(p, ctx.i64(c)));
  };
  // The work (a load and a fold per tap, counted as flops; at least the
  // bytes moved) is split over output rows, the outer split (each thread's
  // rows, as in the convs around it), then channel blocks.
  const int64_t work = std::max(2 * blocks * c * rows.out * cols.out * rows.kernel * cols.kernel,
                                16 * blocks * c * (rows.in * cols.in + rows.out * cols.out));
  const int64_t ways = splitWays(work, blocks * rows.out), rowWays = std::min(rows.out, ways);
  const LoopRange blockRange =
      ctx.split(blocks, std::min(blocks, waysLeft(ways, rowWays)));
  const LoopRange rowRange = ctx.split(rows.out, rowWays);
  ctx.loop(blockRange, 0, blocks, [&](llvm::Value* cb) {
    for (const AxisSpan& rowSpan : kernels::axisSpans(rows))
      ctx.loop(rowRange, rowSpan.begin, rowSpan.end, [&](llvm::Value* oh) {
        llvm::Value* rowStart = b.CreateSub(b.CreateMul(oh, ctx.i64(rows.stride)), ctx.i64(rows.padBegin));
        for (const AxisSpan& colSpan : kernels::axisSpans(cols))
          kernels::forEachTile(ctx, colSpan.begin, colSpan.end, tile, [&](llvm::Value* ow, int64_t width) {
            const int64_t count = countIncludePad ? rowSpan.padded * colSpan.padded
                                                  : static_cast<int64_t>(rowSpan.taps.size() * colSpan.taps.size());
            std::vector<llvm::Value*> acc(static_cast<size_t>(width), reducer.identity(ctx, c));
            for (int64_t kh : rowSpan.taps) {
              llvm::Value* ih = b.CreateAdd(rowStart, ctx.i64(kh * rows.dilation));
              for (int64_t kw : colSpan.taps)
                for (int64_t j = 0; j < width; ++j) {
                  llvm::Value* iw = b.CreateAdd(b.CreateMul(b.CreateAdd(ow, ctx.i64(j)), ctx.i64(cols.stride)),
                                                ctx.i64(kw * cols.dilation - cols.padBegin));
                  llvm::Value* v = kernels::loadVector(ctx, pixel(x.data, rows.in, cols.in, cb, ih, iw), c);
                  acc[static_cast<size_t>(j)] = reducer.combine(ctx, acc[static_cast<size_t>(j)], v);
                }
            }
            for (int64_t j = 0; j < width; ++j) {
              llvm::Value* v = acc[static_cast<size_t>(j)];
              if (!reducer.max) v = b.CreateFDiv(v, kernels::splat(ctx, ctx.f32(static_cast<float>(count)), c));
              kernels::storeVector(ctx, pixel(y.data, rows.out, cols.out, cb, oh, b.CreateAdd(ow, ctx.i64(j))), v);
            }
          });
      });
  });
}

void emitBlockedGlobalPool(EmitContext& ctx, const Reducer& reducer) {
  const Operand &x = ctx.input(0), &y = ctx.output();
  const Shape& xs = x.type.shape;
  const int64_t c = y.type.block, blocks = (xs[1] + c - 1) / c, plane = xs.product(2, xs.rank());
  const int64_t unroll = std::min<int64_t>(4, plane), fullEnd = plane / unroll * unroll;
  llvm::IRBuilder<>& b = ctx.b;
  ctx.loop(blocks, [&](llvm::Value* cb) {
    llvm::Value* base = b.CreateMul(cb, ctx.i64(plane * c));
    kernels::AccumulatorTile acc(ctx, 1, std::vector<int64_t>(static_cast<size_t>(unroll), c));
    for (size_t k = 0; k < acc.chunks().size(); ++k) acc.set(0, k, reducer.identity(ctx, c));
    auto fold = [&](llvm::Value* p, size_t k) {
      llvm::Value* at = kernels::floatPtr(ctx, x.data, b.CreateAdd(base, b.CreateMul(p, ctx.i64(c))));
      acc.set(0, k, reducer.combine(ctx, acc.get(0, k), kernels::loadVector(ctx, at, c)));
    };
    ctx.loop(
        ctx.i64(0), ctx.i64(fullEnd),
        [&](llvm::Value* p) {
          for (int64_t k = 0; k < unroll; ++k) fold(b.CreateAdd(p, ctx.i64(k)), static_cast<size_t>(k));
        },
        unroll);
    for (int64_t p = fullEnd; p < plane; ++p) fold(ctx.i64(p), static_cast<size_t>(p - fullEnd));
    llvm::Value* v = acc.get(0, 0);
    for (size_t k = 1; k < acc.chunks().size(); ++k) v = reducer.combine(ctx, v, acc.get(0, k));
    if (!reducer.max) v = b.CreateFDiv(v, kernels::splat(ctx, ctx.f32(static_cast<float>(plane)), c));
    kernels::storeVector(ctx, kernels::floatPtr(ctx, y.data, b.CreateMul(cb, ctx.i64(c))), v);
  });
}

PoolInput poolInput(EmitContext& ctx) {
  const Operand& x = ctx.input(0);
  requirePlain(ctx, x);
  requirePlain(ctx, ctx.output());
  const Shape& s = x.type.shape;
  return {x.data, s.product(0, 2), s.product(2, s.rank())};
}

// MaxPool / AveragePool over 1-D or 2-D windows.
void emitWindowPool(EmitContext& ctx, const Reducer& reducer, bool countIncludePad) {
  if (ctx.input(0).type.layout == Layout::NCHWc) return emitBlockedWindowPool(ctx, reducer, countIncludePad);
  const PoolInput in = poolInput(ctx);
  const Shape& xs = ctx.input(0).type.shape;
  const Shape& ys = ctx.output().type.shape;
  const size_t spatial = xs.rank() - 2;
  if (spatial > 2) ctx.fail("the LLVM backend emits 1-D and 2-D pools only (input " + xs.str() + ")");
  const Attributes& a = ctx.attrs();
  const std::vector<int64_t>& kernel = a.getInts("kernel_shape");
  const std::vector<int64_t>& strides = a.getInts("strides");
  const std::vector<int64_t>& pads = a.getInts("pads");
  const std::vector<int64_t> dilations = a.has("dilations") ? a.getInts("dilations") : std::vector<int64_t>(spatial, 1);
  auto axis = [&](size_t d) {
    return AxisGeometry{xs[2 + d], ys[2 + d], kernel[d], strides[d], dilations[d], pads[d], pads[spatial + d]};
  };
  const AxisGeometry rows = spatial == 2 ? axis(0) : AxisGeometry{1, 1, 1, 1, 1, 0, 0};
  const AxisGeometry cols = axis(spatial - 1);
  const int64_t lanes = ctx.target.vectorFloats, outPlane = rows.out * cols.out;
  llvm::IRBuilder<>& b = ctx.b;
  llvm::Value* y = ctx.output().data;

  // The work (a load and a fold per tap) is split over the planes.
  const int64_t work = 2 * in.planes * outPlane * rows.kernel * cols.kernel;
  const LoopRange planes = ctx.split(in.planes, splitWays(work, in.planes));
  ctx.loop(planes, 0, in.planes, [&](llvm::Value* c) {
    llvm::Value* xPlane = kernels::floatPtr(ctx, in.data, b.CreateMul(c, ctx.i64(in.plane)));
    llvm::Value* yPlane = kernels::floatPtr(ctx, y, b.CreateMul(c, ctx.i64(outPlane)));
    for (const AxisSpan& rowSpan : kernels::axisSpans(rows))
      ctx.loop(ctx.i64(rowSpan.begin), ctx.i64(rowSpan.end), [&](llvm::Value* oh) {
        llvm::Value* rowStart = b.CreateMul(oh, ctx.i64(rows.stride));
        for (const AxisSpan& colSpan : kernels::axisSpans(cols))
          kernels::forEachTile(ctx, colSpan.begin, colSpan.end, 2 * lanes, [&](llvm::Value* ow, int64_t width) {
            llvm::Value* colStart = b.CreateSub(b.CreateMul(ow, ctx.i64(cols.stride)), ctx.i64(cols.padBegin));
            const int64_t count = countIncludePad ? rowSpan.padded * colSpan.padded
                                                  : static_cast<int64_t>(rowSpan.taps.size() * colSpan.taps.size());
            int64_t offset = 0;
            for (int64_t chunk : kernels::chunkWidths(width, lanes)) {
              // Folds every tap of the window into the chunk's vector; with
              // `nanFlag`, max ignores NaN and *nanFlag collects x * 0 instead.
              auto fold = [&](llvm::Value** nanFlag) {
                llvm::Value* acc = reducer.identity(ctx, chunk);
                for (int64_t kh : rowSpan.taps) {
                  llvm::Value* ih = b.CreateAdd(rowStart, ctx.i64(kh * rows.dilation - rows.padBegin));
                  for (int64_t kw : colSpan.taps) {
                    llvm::Value* iw = b.CreateAdd(colStart, ctx.i64(kw * cols.dilation + offset * cols.stride));
                    llvm::Value* at =
                        kernels::floatPtr(ctx, xPlane, b.CreateAdd(b.CreateMul(ih, ctx.i64(cols.in)), iw));
                    llvm::Value* x = loadStrided(ctx, at, chunk, cols.stride);
                    if (!nanFlag) {
                      acc = reducer.combine(ctx, acc, x);
                      continue;
                    }
                    acc = reducer.combineIgnoringNaN(ctx, acc, x);
                    *nanFlag = kernels::fmulAdd(ctx, x, kernels::splat(ctx, ctx.f32(0.f), chunk), *nanFlag);
                  }
                }
                return acc;
              };
              llvm::Value* o = b.CreateAdd(b.CreateMul(oh, ctx.i64(cols.out)), b.CreateAdd(ow, ctx.i64(offset)));
              llvm::Value* out = kernels::floatPtr(ctx, yPlane, o);
              if (!reducer.max) {
                llvm::Value* acc = fold(nullptr);
                acc = b.CreateFDiv(acc, kernels::splat(ctx, ctx.f32(static_cast<float>(count)), chunk));
                kernels::storeVector(ctx, out, acc);
              } else {
                // 0 * x is 0 for finite x, NaN for NaN or infinite x: a set flag
                // lane means "maybe NaN"; infinities only cost the exact rerun.
                llvm::Value* nanFlag = kernels::splat(ctx, ctx.f32(0.f), chunk);
                kernels::storeVector(ctx, out, fold(&nanFlag));
                llvm::Value* anyFlagged = b.CreateOrReduce(b.CreateFCmpUNO(nanFlag, nanFlag));
                llvm::Function* fn = b.GetInsertBlock()->getParent();
                llvm::BasicBlock* exact = llvm::BasicBlock::Create(b.getContext(), "pool.nan", fn);
                llvm::BasicBlock* done = llvm::BasicBlock::Create(b.getContext(), "pool.done", fn);
                b.CreateCondBr(anyFlagged, exact, done, llvm::MDBuilder(b.getContext()).createUnlikelyBranchWeights());
                b.SetInsertPoint(exact);
                kernels::storeVector(ctx, out, fold(nullptr));
                b.CreateBr(done);
                b.SetInsertPoint(done);
              }
              offset += chunk;
            }
          });
      });
  });
}

// GlobalMaxPool / GlobalAveragePool: one value per plane.
void emitGlobalPool(EmitContext& ctx, const Reducer& reducer) {
  if (ctx.input(0).type.layout == Layout::NCHWc) return emitBlockedGlobalPool(ctx, reducer);
  const PoolInput in = poolInput(ctx);
  const int64_t lanes = ctx.target.vectorFloats, tile = 4 * lanes;
  const int64_t fullEnd = in.plane / tile * tile;
  llvm::IRBuilder<>& b = ctx.b;
  ctx.loop(in.planes, [&](llvm::Value* c) {
    llvm::Value* plane = kernels::floatPtr(ctx, in.data, b.CreateMul(c, ctx.i64(in.plane)));
    llvm::Value* result = ctx.f32(reducer.max ? -std::numeric_limits<float>::infinity() : 0.f);
    auto foldLanes = [&](llvm::Value* v) { result = reducer.combine(ctx, result, reducer.lanes(ctx, v)); };
    if (fullEnd > 0) {
      kernels::AccumulatorTile acc(ctx, 1, kernels::chunkWidths(tile, lanes));
      for (size_t ch = 0; ch < acc.chunks().size(); ++ch) acc.set(0, ch, reducer.identity(ctx, lanes));
      ctx.loop(
          ctx.i64(0), ctx.i64(fullEnd),
          [&](llvm::Value* start) {
            for (size_t ch = 0; ch < acc.chunks().size(); ++ch) {
              llvm::Value* at = kernels::floatPtr(ctx, plane, b.CreateAdd(start, ctx.i64(acc.chunkOffset(ch))));
              acc.set(0, ch, reducer.combine(ctx, acc.get(0, ch), kernels::loadVector(ctx, at, lanes)));
            }
          },
          tile);
      for (size_t ch = 0; ch < acc.chunks().size(); ++ch) foldLanes(acc.get(0, ch));
    }
    int64_t offset = fullEnd;
    for (int64_t chunk : kernels::chunkWidths(in.plane - fullEnd, lanes)) {
      foldLanes(kernels::loadVector(ctx, kernels::floatPtr(ctx, plane, ctx.i64(offset)), chunk));
      offset += chunk;
    }
    if (!reducer.max) result = b.CreateFDiv(result, ctx.f32(static_cast<float>(in.plane)));
    b.CreateAlignedStore(result, kernels::floatPtr(ctx, ctx.output().data, c), llvm::Align(4));
  });
}

}  // namespace

void registerPoolEmitters(EmitterRegistry& r) {
  const std::vector<size_t> sample = {0};  // X
  r.add("MaxPool", [](EmitContext& ctx) { emitWindowPool(ctx, Reducer{true}, false); }, sample);
  r.add("AveragePool",
        [](EmitContext& ctx) { emitWindowPool(ctx, Reducer{false}, ctx.attrs().getInt("count_include_pad") != 0); },
        sample);
  r.add("GlobalMaxPool", [](EmitContext& ctx) { emitGlobalPool(ctx, Reducer{true}); }, sample);
  r.add("GlobalAveragePool", [](EmitContext& ctx) { emitGlobalPool(ctx, Reducer{false}); }, sample);
}

}  // namespace kiln::codegen
