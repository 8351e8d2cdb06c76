// Emits Reorder, the layout pass's conversion between plain NCHW and blocked
// NCHWc ([C/c][H][W][c] per sample, channels padded to whole blocks). To
// NCHWc: per channel block and pixel, the c lanes gathered from c planes
// (pad lanes written as zeros, which every NCHWc kernel keeps); back to
// NCHW: per channel, the plane gathered at a stride of c. Both are one pass
// over the tensor at the edges of a laid-out region.
#include "compiler/codegen/ops/families.h"
#include "compiler/codegen/ops/vector_kernels.h"

namespace kiln::codegen {

namespace {

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
  const int64_t channels = s[1], plane = s.product(2, s.rank()), blocks = (channels + block - 1) / block;
  llvm::IRBuilder<>& b = ctx.b;
  ctx.loop(blocks, [&](llvm::Value* cb) {
    llvm::Value* blockedBase = b.CreateMul(cb, ctx.i64(plane * block));
    llvm::Value* firstChannel = b.CreateMul(cb, ctx.i64(block));
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
    lanes([&](int64_t live) {
      ctx.loop(plane, [&](llvm::Value* p) {
        llvm::Value* blocked = b.CreateAdd(blockedBase, b.CreateMul(p, ctx.i64(block)));
        for (int64_t l = 0; l < block; ++l) {
          llvm::Value* plainIndex =
              b.CreateAdd(b.CreateMul(b.CreateAdd(firstChannel, ctx.i64(l)), ctx.i64(plane)), p);
          llvm::Value* blockedIndex = b.CreateAdd(blocked, ctx.i64(l));
          if (toBlocked)
            ctx.store(y, blockedIndex, l < live ? ctx.load(x, plainIndex) : ctx.f32(0.f));
          else if (l < live)
            ctx.store(y, plainIndex, ctx.load(x, blockedIndex));
        }
      });
    });
  });
}

}  // namespace

void registerLayoutEmitters(EmitterRegistry& r) { r.add("Reorder", emitReorder); }

}  // namespace kiln::codegen
