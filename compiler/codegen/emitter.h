// Per-op code generation. Every IR op the backend supports has one emitter,
// registered by op name like the op registry (one file per family in
// compiler/codegen/ops/). An emitter writes LLVM IR that computes its node
// for ONE sample: operands arrive as pointers with per-sample static shapes
// (the symbolic batch dim is 1 here; the generated run function loops or
// parallelizes over samples). Emitters may repack constant operands (weights)
// at compile time into the layout their kernel reads.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Module.h>

#include "compiler/ir/graph.h"

namespace kiln::codegen {

// What the target lets emitters assume.
struct TargetInfo {
  unsigned vectorFloats = 4;  // f32 lanes of the widest vector register (16 AVX-512, 8 AVX2, 4 NEON/SSE)
};

// One operand as an emitter sees it.
struct Operand {
  llvm::Value* data = nullptr;     // pointer to the sample's first element
  TensorType type;                 // per-sample static type (batch dim = 1)
  const Tensor* constant = nullptr;  // the value, when known at compile time
};

// Intra-op parallelism: the number of near-equal parts worth splitting
// `flops` of one sample's work into, at most `limit` (the iterations of the
// loop being split). A part should outweigh the pool's cost of handing it
// out (a few microseconds) many times over, and there are enough parts to
// balance the threads of a large host; small nodes stay whole. The count is
// fixed at compile time, never by the thread count, so which thread runs a
// part cannot change what it computes.
int64_t splitWays(int64_t flops, int64_t limit);
// The ways left of `ways` for a second split once a first one took `used`
// (rounded as EmitContext::split rounds it); at least 1.
int64_t waysLeft(int64_t ways, int64_t used);

// [begin, end) of an i64 loop, as run-time values.
struct LoopRange {
  llvm::Value* begin;
  llvm::Value* end;
};

class EmitContext {
 public:
  // Places a constant the emitter packed and returns the pointer the code
  // reads it through.
  using PackFn = std::function<llvm::Value*(const Tensor&)>;

  // `part`: the i64 index of the part of the node this task computes (see
  // split), 0 when the node is not split.
  EmitContext(llvm::IRBuilder<>& builder, const Node& node, std::vector<std::optional<Operand>> inputs,
              std::vector<Operand> outputs, const TargetInfo& target, PackFn pack, llvm::Value* part);

  llvm::IRBuilder<>& b;
  const Node& node;
  const TargetInfo& target;

  bool hasInput(size_t i) const { return i < inputs_.size() && inputs_[i].has_value(); }
  const Operand& input(size_t i) const;
  const Operand& output(size_t i = 0) const { return outputs_.at(i); }
  const Attributes& attrs() const { return node.attrs; }

  // Adds `t` (e.g. a repacked weight) to the artifact's read-only weights
  // and returns a pointer to it, 64-byte aligned.
  llvm::Value* packConstant(const Tensor& t);

  llvm::Type* f32Type() const { return b.getFloatTy(); }
  llvm::Value* i64(int64_t v) const { return b.getInt64(static_cast<uint64_t>(v)); }
  llvm::Value* f32(float v) const;

  // for (i = begin; i < end; i += step) body(i), i an i64 value.
  void loop(llvm::Value* begin, llvm::Value* end, const std::function<void(llvm::Value*)>& body, int64_t step = 1);
  void loop(int64_t count, const std::function<void(llvm::Value*)>& body) { loop(i64(0), i64(count), body); }

  // Address / load / store of element `index` (i64) of an operand, typed by
  // the operand's dtype.
  llvm::Value* elementPtr(const Operand& t, llvm::Value* index);
  llvm::Value* load(const Operand& t, llvm::Value* index);
  void store(const Operand& t, llvm::Value* index, llvm::Value* value);

  // Splits the node into `ways` parts (rounded down to a power of two, at
  // most `count`) along an outer loop of `count` iterations and returns this
  // task's share of them; the last split of a node is the slowest-varying
  // one, the shares the pool hands each thread in one chunk: the module builder
  // then runs the node as parts() tasks per sample on the thread pool. An
  // iteration computes the same whatever share it falls in, so outputs are
  // bit-identical to an unsplit node. Splitting several (nested) loops
  // multiplies the parts. Each split loop must be emitted inside the
  // returned range only (loop(range, ...)).
  LoopRange split(int64_t count, int64_t ways);
  int64_t parts() const { return parts_; }
  // for (i = max(begin, within.begin); i < min(end, within.end); ++i) body(i)
  void loop(const LoopRange& within, int64_t begin, int64_t end, const std::function<void(llvm::Value*)>& body);
  // if (condition) body()
  void when(llvm::Value* condition, const std::function<void()>& body);

  [[noreturn]] void fail(const std::string& message) const;

 private:
  std::vector<std::optional<Operand>> inputs_;
  std::vector<Operand> outputs_;
  PackFn pack_;
  llvm::Value* part_;
  int64_t parts_ = 1;
};

using EmitFn = std::function<void(EmitContext&)>;

// An emitter and, for sample-wise ops whose kernels are written for one
// sample (convolutions, pools, per-channel affines, layout reorders), the
// inputs that hold samples (Conv: X and the residual, not W or B). The module
// builder runs such an emitter once per row of a static dim 0 > 1, with those
// inputs and the outputs addressed row by row, as it does for a symbolic
// batch. Emitters without sample inputs compute their whole operands.
struct Emitter {
  EmitFn fn;
  std::vector<size_t> sampleInputs;
};

class EmitterRegistry {
 public:
  // The registry with every emitter of compiler/codegen/ops registered.
  static const EmitterRegistry& instance();
  void add(const std::string& op, EmitFn fn, std::vector<size_t> sampleInputs = {});
  const Emitter* find(const std::string& op) const;

 private:
  std::vector<std::pair<std::string, Emitter>> emitters_;
};

llvm::Type* llvmType(llvm::LLVMContext& ctx, DType t);

}  // namespace kiln::codegen
