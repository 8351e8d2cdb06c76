// Emitters for WinogradInput and WinogradOutput (compiler/ops/winograd.cpp),
// in NCHWc and plain layout: one channel block of L lanes (the block, or 1
// when plain) is the unit, so element (channel, pixel) of a [C/L][H][W][L]
// buffer is at (channel / L) * H * W * L + pixel * L + channel % L.
//
// Per channel block (the loop split over the pool), the tiles are walked in
// runs along each axis whose in-bounds rows or columns are known at compile
// time: border tiles one by one, the interior ones as one run-time loop. So
// padding costs no compare in the inner loop, and the zeros it reads are
// known and drop out of the transform's adds. A tile is 16 vector loads, the
// transform's adds (winograd::applyTransform2D, the reference kernels'
// order) and 16 stores (input), or 16 loads, the adds, bias, residual, the
// fused activation and up to 4 stores (output).
#include <utility>

#include "compiler/codegen/math.h"
#include "compiler/codegen/ops/families.h"
#include "compiler/codegen/ops/vector_kernels.h"
#include "compiler/ops/winograd.h"

namespace kiln::codegen {

namespace {

using winograd::kInputTile;
using winograd::kOutputTile;
using winograd::kPositions;

// Vector arithmetic for applyTransform; nullptr is a known zero.
struct VectorOps {
  EmitContext& ctx;
  int64_t lanes;
  llvm::Value* add(llvm::Value* a, llvm::Value* b) const { return !a ? b : !b ? a : ctx.b.CreateFAdd(a, b); }
  llvm::Value* sub(llvm::Value* a, llvm::Value* b) const { return !b ? a : !a ? neg(b) : ctx.b.CreateFSub(a, b); }
  llvm::Value* neg(llvm::Value* a) const { return a ? ctx.b.CreateFNeg(a) : nullptr; }
  llvm::Value* scale(llvm::Value* a, float c) const {
    return a ? ctx.b.CreateFMul(a, kernels::splat(ctx, ctx.f32(c), lanes)) : nullptr;
  }
  llvm::Value* orZero(llvm::Value* v) const { return v ? v : kernels::splat(ctx, ctx.f32(0.f), lanes); }
};

// Tiles [begin, end) of one axis whose positions i in [0, size) are valid
// (inside the input or output) alike.
struct TileRun {
  int64_t begin, end;
  std::vector<bool> valid;
};

// The runs of `tiles` tiles whose position i maps to first + 2 * t + i,
// valid when that lies in [0, extent).
std::vector<TileRun> tileRuns(int64_t tiles, int64_t size, int64_t first, int64_t extent) {
  std::vector<TileRun> runs;
  for (int64_t t = 0; t < tiles; ++t) {
    std::vector<bool> valid;
    for (int64_t i = 0; i < size; ++i) {
      const int64_t at = first + kOutputTile * t + i;
      valid.push_back(at >= 0 && at < extent);
    }
    if (!runs.empty() && runs.back().valid == valid)
      runs.back().end = t + 1;
    else
      runs.push_back({t, t + 1, valid});
  }
  return runs;
}

// body(ty, rowValid, tx, colValid) for every tile of the runs in the
// part's tile rows.
using TileBody = std::function<void(llvm::Value*, const std::vector<bool>&, llvm::Value*, const std::vector<bool>&)>;
void forEachTile(EmitContext& ctx, const std::vector<TileRun>& rows, const LoopRange& rowPart,
                 const std::vector<TileRun>& cols, const TileBody& body) {
  for (const TileRun& r : rows)
    ctx.loop(rowPart, r.begin, r.end, [&](llvm::Value* ty) {
      for (const TileRun& c : cols) {
        if (c.end - c.begin == 1) body(ty, r.valid, ctx.i64(c.begin), c.valid);
        else ctx.loop(ctx.i64(c.begin), ctx.i64(c.end), [&](llvm::Value* tx) { body(ty, r.valid, tx, c.valid); });
      }
    });
}

int64_t lanesOf(const Operand& t) { return t.type.layout == Layout::NCHWc ? t.type.block : 1; }

// Transforms are memory-bound: split by the bytes moved (in and out), each
// counted as 4 flops, as the convs count theirs. Tile rows are the outer split (each thread's chunk, EmitContext::
// split), as rows are in the convs around them, so a thread transforms the
// rows it wrote; channel blocks take the ways left. Returns {blocks, tile rows}.
std::pair<LoopRange, LoopRange> splitTransform(EmitContext& ctx, int64_t elements, int64_t blocks, int64_t tileRows) {
  const int64_t ways = splitWays(16 * elements, blocks * tileRows), rowWays = std::min(tileRows, ways);
  const LoopRange blockPart =
      ctx.split(blocks, std::min(blocks, waysLeft(ways, rowWays)));
  return {blockPart, ctx.split(tileRows, rowWays)};
}

void emitWinogradInput(EmitContext& ctx) {
  const Operand &x = ctx.input(0), &v = ctx.output();
  const int64_t lanes = lanesOf(x);
  if (lanesOf(v) != lanes) ctx.fail("input and output layouts differ: " + x.type.str() + " vs " + v.type.str());
  const int64_t channels = x.type.shape[1], h = x.type.shape[2], w = x.type.shape[3];
  const int64_t tilesH = v.type.shape[2], tilesW = v.type.shape[3], blocks = channels / lanes;
  const std::vector<int64_t>& pads = ctx.attrs().getInts("pads");
  const std::vector<TileRun> rows = tileRuns(tilesH, kInputTile, -pads[0], h);
  const std::vector<TileRun> cols = tileRuns(tilesW, kInputTile, -pads[1], w);
  llvm::IRBuilder<>& b = ctx.b;
  const VectorOps ops{ctx, lanes};
  const auto [part, rowPart] =
      splitTransform(ctx, x.type.shape.numElements() + v.type.shape.numElements(), blocks, tilesH);
  ctx.loop(part, 0, blocks, [&](llvm::Value* cb) {
    llvm::Value* inPlane = b.CreateMul(cb, ctx.i64(h * w * lanes));
    forEachTile(ctx, rows, rowPart, cols, [&](llvm::Value* ty, const std::vector<bool>& rowValid, llvm::Value* tx,
                                              const std::vector<bool>& colValid) {
      // Input pixel (2 ty - pad_top, 2 tx - pad_left), negative at the top and left borders.
      llvm::Value* corner = b.CreateAdd(
          b.CreateMul(b.CreateSub(b.CreateMul(ty, ctx.i64(kOutputTile)), ctx.i64(pads[0])), ctx.i64(w)),
          b.CreateSub(b.CreateMul(tx, ctx.i64(kOutputTile)), ctx.i64(pads[1])));
      llvm::Value* base = b.CreateAdd(inPlane, b.CreateMul(corner, ctx.i64(lanes)));
      std::array<llvm::Value*, kPositions> d{};
      for (int64_t i = 0; i < kInputTile; ++i)
        for (int64_t j = 0; j < kInputTile; ++j)
          if (rowValid[static_cast<size_t>(i)] && colValid[static_cast<size_t>(j)])
            d[static_cast<size_t>(i * kInputTile + j)] = kernels::loadVector(
                ctx, kernels::floatPtr(ctx, x.data, b.CreateAdd(base, ctx.i64((i * w + j) * lanes))), lanes);
      const auto t = winograd::applyTransform2D(winograd::kBT, d, ops);
      llvm::Value* tile = b.CreateMul(b.CreateAdd(b.CreateMul(ty, ctx.i64(tilesW)), tx), ctx.i64(lanes));
      for (int64_t p = 0; p < kPositions; ++p) {
        llvm::Value* plane = b.CreateMul(b.CreateAdd(cb, ctx.i64(p * blocks)), ctx.i64(tilesH * tilesW * lanes));
        kernels::storeVector(ctx, kernels::floatPtr(ctx, v.data, b.CreateAdd(plane, tile)),
                             ops.orZero(t[static_cast<size_t>(p)]));
      }
    });
  });
}

void emitWinogradOutput(EmitContext& ctx) {
  const Operand &m = ctx.input(0), &y = ctx.output();
  const int64_t lanes = lanesOf(y);
  if (lanesOf(m) != lanes) ctx.fail("input and output layouts differ: " + m.type.str() + " vs " + y.type.str());
  const int64_t channels = y.type.shape[1], outH = y.type.shape[2], outW = y.type.shape[3];
  const int64_t tilesH = m.type.shape[2], tilesW = m.type.shape[3], blocks = channels / lanes;
  const std::vector<TileRun> rows = tileRuns(tilesH, kOutputTile, 0, outH);
  const std::vector<TileRun> cols = tileRuns(tilesW, kOutputTile, 0, outW);
  const std::optional<Operand> bias = ctx.hasInput(1) ? std::optional<Operand>(ctx.input(1)) : std::nullopt;
  const std::optional<Operand> residual = ctx.hasInput(2) ? std::optional<Operand>(ctx.input(2)) : std::nullopt;
  llvm::IRBuilder<>& b = ctx.b;
  const VectorOps ops{ctx, lanes};
  const auto [part, rowPart] =
      splitTransform(ctx, m.type.shape.numElements() + y.type.shape.numElements(), blocks, tilesH);
  ctx.loop(part, 0, blocks, [&](llvm::Value* kb) {
    llvm::Value* biasVector =
        bias ? kernels::loadVector(ctx, kernels::floatPtr(ctx, bias->data, b.CreateMul(kb, ctx.i64(lanes))), lanes)
             : nullptr;
    llvm::Value* outPlane = b.CreateMul(kb, ctx.i64(outH * outW * lanes));
    forEachTile(ctx, rows, rowPart, cols, [&](llvm::Value* ty, const std::vector<bool>& rowValid, llvm::Value* tx,
                                              const std::vector<bool>& colValid) {
      llvm::Value* tile = b.CreateMul(b.CreateAdd(b.CreateMul(ty, ctx.i64(tilesW)), tx), ctx.i64(lanes));
      std::array<llvm::Value*, kPositions> t;
      for (int64_t p = 0; p < kPositions; ++p) {
        llvm::Value* plane = b.CreateMul(b.CreateAdd(kb, ctx.i64(p * blocks)), ctx.i64(tilesH * tilesW * lanes));
        t[static_cast<size_t>(p)] =
            kernels::loadVector(ctx, kernels::floatPtr(ctx, m.data, b.CreateAdd(plane, tile)), lanes);
      }
      const auto o = winograd::applyTransform2D(winograd::kAT, t, ops);
      llvm::Value* corner = b.CreateMul(
          b.CreateAdd(b.CreateMul(b.CreateMul(ty, ctx.i64(kOutputTile)), ctx.i64(outW)),
                      b.CreateMul(tx, ctx.i64(kOutputTile))),
          ctx.i64(lanes));
      for (int64_t i = 0; i < kOutputTile; ++i)
        for (int64_t j = 0; j < kOutputTile; ++j) {
          if (!rowValid[static_cast<size_t>(i)] || !colValid[static_cast<size_t>(j)]) continue;
          llvm::Value* at = b.CreateAdd(outPlane, b.CreateAdd(corner, ctx.i64((i * outW + j) * lanes)));
          llvm::Value* value = ops.add(o[static_cast<size_t>(i * kOutputTile + j)], biasVector);
          if (residual) value = ops.add(value, kernels::loadVector(ctx, kernels::floatPtr(ctx, residual->data, at), lanes));
          kernels::storeVector(ctx, kernels::floatPtr(ctx, y.data, at),
                               emitEpilogueActivation(b, ctx.attrs(), ops.orZero(value)));
        }
    });
  });
}

}  // namespace

void registerWinogradEmitters(EmitterRegistry& r) {
  r.add("WinogradInput", emitWinogradInput, {0});
  r.add("WinogradOutput", emitWinogradOutput, {0, 2});  // M and the residual hold samples
}

}  // namespace kiln::codegen
