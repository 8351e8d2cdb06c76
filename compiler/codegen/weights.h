// The artifact's read-only weights: every constant the code reads goes into
// one 64-byte aligned blob, emitted as a single global, so the loader can
// hash it and the code addresses each constant at a fixed offset. Constants
// no emitted code ends up reading (e.g. weights an emitter repacked) are
// dropped when the blob is laid out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Module.h>

#include "compiler/ir/tensor.h"

namespace kiln::codegen {

class WeightsBuilder {
 public:
  explicit WeightsBuilder(llvm::Module& module);

  // Appends t's bytes (64-byte aligned) and returns a pointer into the blob.
  llvm::Value* add(llvm::IRBuilder<>& b, const Tensor& t);

  // Lays out the blob from the constants still referenced and emits it;
  // call once after all code is emitted.
  void finalize();

  llvm::GlobalVariable* global() const { return global_; }
  uint64_t size() const { return bytes_.size(); }
  uint64_t hash() const;  // FNV-1a 64 of the bytes

 private:
  struct Entry {
    Tensor tensor;
    llvm::Constant* address;  // GEP into the placeholder global
  };
  llvm::Module& module_;
  llvm::GlobalVariable* global_;
  std::vector<Entry> entries_;
  std::vector<uint8_t> bytes_;
};

}  // namespace kiln::codegen
