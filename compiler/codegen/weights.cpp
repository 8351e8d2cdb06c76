#include "compiler/codegen/weights.h"

#include <cstring>

namespace kiln::codegen {

namespace {

constexpr uint64_t kAlignment = 64;

}  // namespace

WeightsBuilder::WeightsBuilder(llvm::Module& module) : module_(module) {
  // A placeholder; finalize() replaces it with the laid-out blob and rewrites
  // every address into it (opaque pointers make the type change harmless).
  auto* type = llvm::ArrayType::get(llvm::Type::getInt8Ty(module.getContext()), 0);
  global_ = new llvm::GlobalVariable(module, type, /*isConstant=*/true, llvm::GlobalValue::InternalLinkage,
                                     nullptr, "kiln_weights_placeholder");
}

llvm::Value* WeightsBuilder::add(llvm::IRBuilder<>& b, const Tensor& t) {
  // Each entry gets a distinct placeholder offset so its address is a
  // distinct constant whose uses finalize() can see.
  auto* address = llvm::ConstantExpr::getInBoundsGetElementPtr(
      b.getInt8Ty(), global_, b.getInt64(static_cast<uint64_t>(entries_.size())));
  entries_.push_back({t, address});
  return address;
}

void WeightsBuilder::finalize() {
  std::vector<std::pair<llvm::Constant*, uint64_t>> placed;  // address -> final offset
  for (const Entry& e : entries_) {
    if (e.address->use_empty()) continue;  // nothing reads it
    uint64_t offset = (bytes_.size() + kAlignment - 1) / kAlignment * kAlignment;
    bytes_.resize(offset + e.tensor.byteSize());
    if (e.tensor.byteSize()) std::memcpy(bytes_.data() + offset, e.tensor.rawData(), e.tensor.byteSize());
    placed.emplace_back(e.address, offset);
  }
  if (bytes_.empty()) bytes_.resize(kAlignment);  // keep a real, aligned object for the descriptor
  auto* init = llvm::ConstantDataArray::get(module_.getContext(), llvm::ArrayRef<uint8_t>(bytes_));
  auto* blob = new llvm::GlobalVariable(module_, init->getType(), true, llvm::GlobalValue::InternalLinkage, init,
                                        "kiln_weights");
  blob->setAlignment(llvm::Align(kAlignment));
  auto* i8 = llvm::Type::getInt8Ty(module_.getContext());
  auto* i64 = llvm::Type::getInt64Ty(module_.getContext());
  for (const auto& [address, offset] : placed)
    address->replaceAllUsesWith(
        llvm::ConstantExpr::getInBoundsGetElementPtr(i8, blob, llvm::ConstantInt::get(i64, offset)));
  global_->removeDeadConstantUsers();
  global_->replaceAllUsesWith(blob);  // any remaining direct use (none expected) points at the blob
  global_->eraseFromParent();
  global_ = blob;
  entries_.clear();
}

uint64_t WeightsBuilder::hash() const {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t byte : bytes_) {
    h ^= byte;
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace kiln::codegen
