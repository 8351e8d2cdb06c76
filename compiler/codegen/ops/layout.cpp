// Emits Reorder, the layout pass's conversion between plain NCHW and blocked
// NCHWc ([C/c][H][W][c] per sample, channels padded to whole blocks, pad
// lanes written as zeros, which every NCHWc kernel keeps): a c x c block of
// (channels x pixels) is a register transpose away from (pixels x
// channels). One pass over the tensor at the edges of a laid-out region.
#include "compiler/codegen/ops/families.h"
#include "compiler/codegen/ops/vector_kernels.h"

namespace kiln::codegen {

namespace {

// Transposes the n x n matrix whose rows are the n-lane vectors `rows` (n a
// power of two): log2(n) butterfly stages, each swapping the off-diagonal
// k x k blocks of row pairs (i, i + k) with one two-source shuffle per row.
std::vector<llvm::Value*> transpose(llvm::IRBuilder<>& b, std::vector<llvm::Value*> rows) {
  const int n = static_cast<int>(rows.size());
  for (int k = n / 2; k >= 1; k /= 2)
    for (int i = 0; i < n; ++i) {
      if (i & k) continue;
      std::vector<int> low(static_cast<size_t>(n)), high(static_cast<size_t>(n));
      for (int j = 0; j < n; ++j) {
        low[static_cast<size_t>(j)] = (j & k) ? n + j - k : j;
        high[static_cast<size_t>(j)] = (j & k) ? n + j : j + k;
      }
      llvm::Value *a = rows[static_cast<size_t>(i)], *c = rows[static_cast<size_t>(i + k)];
      rows[static_cast<size_t>(i)] = b.CreateShuffleVector(a, c, low);
      rows[static_cast<size_t>(i + k)] = b.CreateShuffleVector(a, c, high);
    }
  return rows;
}

// Per channel block: tiles of c pixels move as c vectors transposed in
// registers (c contiguous loads, c contiguous stores), the pixels past the
// last whole tile lane by lane. Pad lanes are written as zeros.
void emitReorder(EmitContext& ctx) {
  const Operand &x = ctx.input(0), &y = ctx.output();
  if (x.type.layout == y.type.layout && x.type.block == y.type.block) {
    ctx.b.CreateMemCpy(y.data, llvm::MaybeAlign(4), x.data, llvm::MaybeAlign(4),
                       static_cast<uint64_t>(x.type.storageShape().numElements() * 4));
    return;
  }
  if (x.type.layout != Layout::Plain && y.type.layout != Layout::Plain)
    ctx.fail("Reorder converts between plain and NCHWc only, got " + x.type.str() + " -> " + y.type.str());
  const bool toBlocked = y.type.layout == Layout::NCHWc;
  const Shape& s = x.type.shape;  // [1, C, H, W]
  const int64_t block = toBlocked ? y.type.block : x.type.block;
  if (block & (block - 1)) ctx.fail("Reorder needs a power-of-two block, got " + std::to_string(block));
  const int64_t channels = s[1], plane = s.product(2, s.rank()), blocks = (channels + block - 1) / block;
  const int64_t fullPixels = plane / block * block;
  llvm::IRBuilder<>& b = ctx.b;
  ctx.loop(blocks, [&](llvm::Value* cb) {
    llvm::Value* blockedBase = b.CreateMul(cb, ctx.i64(plane * block));
    llvm::Value* plainBase = b.CreateMul(cb, ctx.i64(block * plane));  // channel cb * block's plane
    // Lanes past the last channel are pad lanes only in the last block.
    auto lanes = [&](const std::function<void(int64_t lanes)>& body) {
      if (channels % block == 0) return body(block);
      llvm::Function* fn = b.GetInsertBlock()->getParent();
      llvm::BasicBlock* last = llvm::BasicBlock::Create(b.getContext(), "reorder.last", fn);
      llvm::BasicBlock* full = llvm::BasicBlock::Create(b.getContext(), "reorder.full", fn);
      llvm::BasicBlock* done = llvm::BasicBlock::Create(b.getContext(), "reorder.done", fn);
      b.CreateCondBr(b.CreateICmpEQ(cb, ctx.i64(blocks - 1)), last, full);
      b.SetInsertPoint(full);
      body(block);
      b.CreateBr(done);
      b.SetInsertPoint(last);
      body(channels % block);
      b.CreateBr(done);
      b.SetInsertPoint(done);
    };
    auto plainAt = [&](int64_t lane, llvm::Value* p) {
      return kernels::floatPtr(ctx, x.type.layout == Layout::Plain ? x.data : y.data,
                               b.CreateAdd(b.CreateAdd(plainBase, ctx.i64(lane * plane)), p));
    };
    auto blockedAt = [&](llvm::Value* p, int64_t lane) {
      return kernels::floatPtr(ctx, toBlocked ? y.data : x.data,
                               b.CreateAdd(b.CreateAdd(blockedBase, b.CreateMul(p, ctx.i64(block))), ctx.i64(lane)));
    };
    lanes([&](int64_t live) {
      if (fullPixels > 0)
        ctx.loop(
            ctx.i64(0), ctx.i64(fullPixels),
            [&](llvm::Value* p0) {
              std::vector<llvm::Value*> rows;
              for (int64_t r = 0; r < block; ++r) {
                if (toBlocked)  // row r: channel r's `block` pixels
                  rows.push_back(r < live ? kernels::loadVector(ctx, plainAt(r, p0), block)
                                          : kernels::splat(ctx, ctx.f32(0.f), block));
                else  // row r: pixel p0 + r's channels
                  rows.push_back(kernels::loadVector(ctx, blockedAt(b.CreateAdd(p0, ctx.i64(r)), 0), block));
              }
              std::vector<llvm::Value*> cols = transpose(b, rows);
              for (int64_t r = 0; r < block; ++r) {
                if (toBlocked)
                  kernels::storeVector(ctx, blockedAt(b.CreateAdd(p0, ctx.i64(r)), 0), cols[static_cast<size_t>(r)]);
                else if (r < live)
                  kernels::storeVector(ctx, plainAt(r, p0), cols[static_cast<size_t>(r)]);
              }
            },
            block);
      for (int64_t p = fullPixels; p < plane; ++p)
        for (int64_t l = 0; l < block; ++l) {
          llvm::Value* plainPtr = plainAt(l, ctx.i64(p));
          llvm::Value* blockedPtr = blockedAt(ctx.i64(p), l);
          if (toBlocked)
            b.CreateAlignedStore(l < live ? static_cast<llvm::Value*>(b.CreateAlignedLoad(ctx.f32Type(), plainPtr,
                                                                                           llvm::Align(4)))
                                          : ctx.f32(0.f),
                                 blockedPtr, llvm::Align(4));
          else if (l < live)
            b.CreateAlignedStore(b.CreateAlignedLoad(ctx.f32Type(), blockedPtr, llvm::Align(4)), plainPtr,
                                 llvm::Align(4));
        }
    });
  });
}

}  // namespace

void registerLayoutEmitters(EmitterRegistry& r) { r.add("Reorder", emitReorder, {0}); }

}  // namespace kiln::codegen
