#include "compiler/codegen/emitter.h"

#include <algorithm>
#include <bit>

namespace kiln::codegen {

EmitContext::EmitContext(llvm::IRBuilder<>& builder, const Node& n, std::vector<std::optional<Operand>> inputs,
                         std::vector<Operand> outputs, const TargetInfo& t, PackFn pack, llvm::Value* part)
    : b(builder),
      node(n),
      target(t),
      inputs_(std::move(inputs)),
      outputs_(std::move(outputs)),
      pack_(std::move(pack)),
      part_(part) {}

int64_t splitWays(int64_t flops, int64_t limit) {
  // ~2^19 flops is ~5 us of a core's vector work, well above the ~1-2 us a
  // fork-join across cores costs; 32 parts keep 16 threads balanced.
  constexpr int64_t kMinPartFlops = int64_t{1} << 19, kMaxParts = 32;
  return std::clamp<int64_t>(flops / kMinPartFlops, 1, std::max<int64_t>(1, std::min(limit, kMaxParts)));
}

int64_t waysLeft(int64_t ways, int64_t used) {
  return std::max<int64_t>(1, ways / static_cast<int64_t>(std::bit_floor(static_cast<uint64_t>(std::max<int64_t>(1, used)))));
}

LoopRange EmitContext::split(int64_t count, int64_t ways) {
  // Powers of two: every split of a loop into 2^k shares puts the same
  // boundary at its middle (and quarters, ...), so the pool's contiguous
  // per-thread chunks of consecutive nodes cover the same rows, and each
  // thread reads what it wrote itself.
  ways = std::bit_floor(static_cast<uint64_t>(std::clamp<int64_t>(ways, 1, std::max<int64_t>(1, count))));
  if (ways <= 1) return {i64(0), i64(count)};
  // Part index = sum of each split's share index times the parts before it.
  llvm::Value* share = b.CreateURem(b.CreateUDiv(part_, i64(parts_)), i64(ways));
  parts_ *= ways;
  auto boundary = [&](llvm::Value* k) { return b.CreateUDiv(b.CreateMul(k, i64(count)), i64(ways)); };
  return {boundary(share), boundary(b.CreateAdd(share, i64(1)))};
}

void EmitContext::loop(const LoopRange& within, int64_t begin, int64_t end,
                       const std::function<void(llvm::Value*)>& body) {
  loop(b.CreateBinaryIntrinsic(llvm::Intrinsic::smax, within.begin, i64(begin)),
       b.CreateBinaryIntrinsic(llvm::Intrinsic::smin, within.end, i64(end)), body);
}

void EmitContext::when(llvm::Value* condition, const std::function<void()>& body) {
  llvm::Function* fn = b.GetInsertBlock()->getParent();
  llvm::BasicBlock* then = llvm::BasicBlock::Create(b.getContext(), "when", fn);
  llvm::BasicBlock* done = llvm::BasicBlock::Create(b.getContext(), "when.done", fn);
  b.CreateCondBr(condition, then, done);
  b.SetInsertPoint(then);
  body();
  b.CreateBr(done);
  b.SetInsertPoint(done);
}

const Operand& EmitContext::input(size_t i) const {
  if (!hasInput(i)) fail("input " + std::to_string(i) + " is required");
  return *inputs_[i];
}

llvm::Value* EmitContext::packConstant(const Tensor& t) { return pack_(t); }

llvm::Value* EmitContext::f32(float v) const { return llvm::ConstantFP::get(b.getFloatTy(), v); }

void EmitContext::loop(llvm::Value* begin, llvm::Value* end, const std::function<void(llvm::Value*)>& body,
                       int64_t step) {
  llvm::Function* fn = b.GetInsertBlock()->getParent();
  llvm::LLVMContext& ctx = b.getContext();
  llvm::BasicBlock* preheader = b.GetInsertBlock();
  llvm::BasicBlock* header = llvm::BasicBlock::Create(ctx, "loop", fn);
  llvm::BasicBlock* bodyBlock = llvm::BasicBlock::Create(ctx, "loop.body", fn);
  llvm::BasicBlock* exit = llvm::BasicBlock::Create(ctx, "loop.exit", fn);
  b.CreateBr(header);
  b.SetInsertPoint(header);
  llvm::PHINode* i = b.CreatePHI(b.getInt64Ty(), 2, "i");
  i->addIncoming(begin, preheader);
  b.CreateCondBr(b.CreateICmpSLT(i, end), bodyBlock, exit);
  b.SetInsertPoint(bodyBlock);
  body(i);
  llvm::Value* next = b.CreateAdd(i, i64(step), "i.next", /*HasNUW=*/true, /*HasNSW=*/true);
  i->addIncoming(next, b.GetInsertBlock());
  b.CreateBr(header);
  b.SetInsertPoint(exit);
}

llvm::Type* llvmType(llvm::LLVMContext& ctx, DType t) {
  switch (t) {
    case DType::F32: return llvm::Type::getFloatTy(ctx);
    case DType::I64: return llvm::Type::getInt64Ty(ctx);
    case DType::I32: return llvm::Type::getInt32Ty(ctx);
    case DType::Bool: return llvm::Type::getInt8Ty(ctx);
  }
  return nullptr;
}

llvm::Value* EmitContext::elementPtr(const Operand& t, llvm::Value* index) {
  return b.CreateInBoundsGEP(llvmType(b.getContext(), t.type.dtype), t.data, index);
}

llvm::Value* EmitContext::load(const Operand& t, llvm::Value* index) {
  return b.CreateLoad(llvmType(b.getContext(), t.type.dtype), elementPtr(t, index));
}

void EmitContext::store(const Operand& t, llvm::Value* index, llvm::Value* value) {
  b.CreateStore(value, elementPtr(t, index));
}

void EmitContext::fail(const std::string& message) const { throw Error(message, node.site()); }

void EmitterRegistry::add(const std::string& op, EmitFn fn, std::vector<size_t> sampleInputs) {
  if (find(op)) throw Error("emitter for '" + op + "' registered twice");
  emitters_.emplace_back(op, Emitter{std::move(fn), std::move(sampleInputs)});
}

const Emitter* EmitterRegistry::find(const std::string& op) const {
  for (const auto& [name, emitter] : emitters_)
    if (name == op) return &emitter;
  return nullptr;
}

}  // namespace kiln::codegen
