// The op registry: every IR op is described exactly once, in one file under
// compiler/ops/, by an OpDef: its name, input/output arity, attributes with
// defaults, shape inference, and the reference kernel the interpreter runs.
// Later stages (passes, codegen) key their own per-op entries by the same name.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/ir/attributes.h"
#include "compiler/ir/tensor.h"

namespace kiln {

class Node;

// Shape inference input: the node (name, attributes) and its input types.
// Omitted optional inputs have no type (hasInput() is false).
class InferContext {
 public:
  InferContext(const Node& node, std::vector<const TensorType*> inputs) : node_(node), inputs_(std::move(inputs)) {}

  const Node& node() const { return node_; }
  const Attributes& attrs() const;
  size_t numInputs() const { return inputs_.size(); }
  bool hasInput(size_t i) const { return i < inputs_.size() && inputs_[i] != nullptr; }
  const TensorType& input(size_t i) const;

  // Throws kiln::Error naming this node and op.
  [[noreturn]] void fail(const std::string& message) const;
  void check(bool ok, const std::string& message) const {
    if (!ok) fail(message);
  }

 private:
  const Node& node_;
  std::vector<const TensorType*> inputs_;
};

// Reference kernel input: concrete tensors (static shapes, batch bound).
// Outputs arrive allocated and zeroed with the shapes shape inference gave.
class KernelContext {
 public:
  KernelContext(const Node& node, std::vector<const Tensor*> inputs, std::vector<Tensor>& outputs)
      : node_(node), inputs_(std::move(inputs)), outputs_(outputs) {}

  const Node& node() const { return node_; }
  const Attributes& attrs() const;
  size_t numInputs() const { return inputs_.size(); }
  bool hasInput(size_t i) const { return i < inputs_.size() && inputs_[i] != nullptr; }
  const Tensor& input(size_t i) const;
  Tensor& output(size_t i) { return outputs_.at(i); }
  [[noreturn]] void fail(const std::string& message) const;

 private:
  const Node& node_;
  std::vector<const Tensor*> inputs_;
  std::vector<Tensor>& outputs_;
};

using InferFn = std::function<std::vector<TensorType>(const InferContext&)>;
using KernelFn = std::function<void(KernelContext&)>;
// Multiply-accumulates of one node per batch item (symbolic batch counted
// as 1); ops without arithmetic worth counting leave it empty.
using MacsFn = std::function<int64_t(const Node&)>;

inline constexpr int kVariadic = -1;

struct OpDef {
  std::string name;
  int minInputs = 1;
  int maxInputs = 1;  // kVariadic: any number >= minInputs
  int numOutputs = 1;  // kVariadic: as many as `infer` returns (Split: one per part)
  std::vector<AttrSpec> attrs;
  InferFn infer;
  KernelFn reference;
  MacsFn macs;
  // Whether `infer` chooses the outputs' layouts (Reorder, Conv). Every other op's
  // outputs take the layout of its first input: layouts are storage, set by
  // the layout pass, and reference kernels see logical (plain) values.
  bool setsLayout = false;
};

class OpRegistry {
 public:
  // The process-wide registry with every op of compiler/ops registered.
  static const OpRegistry& instance();

  void add(OpDef def);
  const OpDef* find(std::string_view name) const;
  const OpDef& get(std::string_view name) const;  // throws kiln::Error if unknown
  std::vector<std::string> names() const;

 private:
  std::vector<OpDef> ops_;
};

// Checks `attrs` against `def` (unknown names, kinds, required ones) and
// returns them with every default filled in. Throws kiln::Error.
Attributes completeAttributes(const OpDef& def, const Attributes& attrs, const std::string& nodeName);

}  // namespace kiln
