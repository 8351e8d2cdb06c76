#include "compiler/codegen/emitter.h"

#include "compiler/codegen/weights.h"

namespace kiln::codegen {

EmitContext::EmitContext(llvm::IRBuilder<>& builder, const Node& n, std::vector<std::optional<Operand>> inputs,
                         std::vector<Operand> outputs, const TargetInfo& t, WeightsBuilder& weights)
    : b(builder), node(n), target(t), inputs_(std::move(inputs)), outputs_(std::move(outputs)), weights_(weights) {}

const Operand& EmitContext::input(size_t i) const {
  if (!hasInput(i)) fail("input " + std::to_string(i) + " is required");
  return *inputs_[i];
}

llvm::Value* EmitContext::packConstant(const Tensor& t) { return weights_.add(b, t); }

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
