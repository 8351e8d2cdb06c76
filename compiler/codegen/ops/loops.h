// Loop-building helpers shared by the tensor emitters: nested loops over a
// static index space where every operand has its own element strides (the
// one mechanism behind broadcasting, transposing, slicing, reducing and block
// copies), and loop-carried accumulators.
#pragma once

#include <functional>
#include <vector>

#include "compiler/codegen/emitter.h"
#include "compiler/ops/helpers.h"

namespace kiln::codegen {

// An index space dims[0] x dims[1] x ... (outermost first) and, per operand,
// the element stride of each dim.
struct StridedWalk {
  std::vector<int64_t> dims;
  std::vector<std::vector<int64_t>> strides;
};

// The same walk with dims of size 1 dropped and adjacent dims merged where
// every operand steps through both as one (so the innermost loop is as long
// as possible and, for unbroadcast operands, contiguous).
inline StridedWalk coalesce(const StridedWalk& walk) {
  StridedWalk out{{}, std::vector<std::vector<int64_t>>(walk.strides.size())};
  for (size_t d = 0; d < walk.dims.size(); ++d) {
    if (walk.dims[d] == 1) continue;
    bool merges = !out.dims.empty();
    for (size_t k = 0; k < walk.strides.size() && merges; ++k)
      merges = out.strides[k].back() == walk.strides[k][d] * walk.dims[d];
    if (merges) {
      out.dims.back() *= walk.dims[d];
      for (size_t k = 0; k < walk.strides.size(); ++k) out.strides[k].back() = walk.strides[k][d];
      continue;
    }
    out.dims.push_back(walk.dims[d]);
    for (size_t k = 0; k < walk.strides.size(); ++k) out.strides[k].push_back(walk.strides[k][d]);
  }
  return out;
}

using OffsetsBody = std::function<void(const std::vector<llvm::Value*>& offsets)>;

// Emits the (coalesced) loops of `walk`; body receives, per operand k,
// offsets[k] = bases[k] + sum_d i_d * strides[k][d] as i64 values.
inline void emitStridedLoops(EmitContext& ctx, const StridedWalk& walk, const std::vector<llvm::Value*>& bases,
                             const OffsetsBody& body) {
  const StridedWalk loops = coalesce(walk);
  std::function<void(size_t, const std::vector<llvm::Value*>&)> level = [&](size_t d,
                                                                            const std::vector<llvm::Value*>& at) {
    if (d == loops.dims.size()) {
      body(at);
      return;
    }
    ctx.loop(loops.dims[d], [&](llvm::Value* i) {
      std::vector<llvm::Value*> next;
      for (size_t k = 0; k < at.size(); ++k)
        next.push_back(ctx.b.CreateAdd(at[k], ctx.b.CreateMul(i, ctx.i64(loops.strides[k][d]))));
      level(d + 1, next);
    });
  };
  level(0, bases);
}

// Same, with every base 0.
inline void emitStridedLoops(EmitContext& ctx, const StridedWalk& walk, const OffsetsBody& body) {
  emitStridedLoops(ctx, walk, std::vector<llvm::Value*>(walk.strides.size(), ctx.i64(0)), body);
}

// The walk over `out` (operand 0, contiguous) reading each shape in `operands`
// numpy-broadcast to it (operands 1..).
inline StridedWalk broadcastWalk(const Shape& out, const std::vector<Shape>& operands) {
  StridedWalk walk{out.dims, {stridesOf(out)}};
  for (const Shape& s : operands) walk.strides.push_back(broadcastStrides(s, out));
  return walk;
}

// A stack slot in the function's entry block (so loops do not grow the
// stack); SROA turns it into a loop-carried register.
inline llvm::AllocaInst* entryBlockSlot(EmitContext& ctx, llvm::Type* type) {
  llvm::BasicBlock& entry = ctx.b.GetInsertBlock()->getParent()->getEntryBlock();
  llvm::IRBuilder<> atEntry(&entry, entry.getFirstInsertionPt());
  return atEntry.CreateAlloca(type);
}

}  // namespace kiln::codegen
