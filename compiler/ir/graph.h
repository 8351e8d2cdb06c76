// The graph IR: values (typed edges, possibly constant), nodes (an op from the
// registry, typed attributes, input/output values) and the graph (inputs,
// outputs, nodes kept in topological order). It knows no file format and no
// backend; frontends build it, passes rewrite it, backends read it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "compiler/ir/op.h"

namespace kiln {

class Node;

class Value {
 public:
  std::string name;
  TensorType type;
  Node* producer = nullptr;  // null for graph inputs and constants
  Tensor constant;           // non-empty for constants (initializers, folded values)
  // Byte offset in one batch item's workspace arena (Graph::arenaBytes; the
  // backend gives every item its own), set by the plan-memory pass; -1 when
  // not planned (graph inputs/outputs, constants, or no plan yet). In the
  // batch region instead (Graph::BatchSuffix) when inBatchRegion.
  int64_t arenaOffset = -1;
  bool inBatchRegion = false;

  bool isConstant() const { return !constant.empty(); }
};

class Node {
 public:
  std::string name;
  const OpDef* op = nullptr;
  std::vector<Value*> inputs;  // nullptr marks an omitted optional input
  std::vector<Value*> outputs;
  Attributes attrs;

  const std::string& opName() const { return op->name; }
  Value* input(size_t i) const { return i < inputs.size() ? inputs[i] : nullptr; }
  Value* output(size_t i = 0) const { return outputs.at(i); }
  ErrorSite site() const { return ErrorSite{"", name, op ? op->name : ""}; }
};

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  Graph(Graph&&) = default;
  Graph& operator=(Graph&&) = default;

  std::string name = "main";
  // Workspace bytes per batch item of the plan-memory pass (0: no plan).
  int64_t arenaBytes = 0;
  // The plan's whole-batch suffix: nodes()[firstNode...] run node by node
  // over chunks of up to `chunk` samples (weight-heavy nodes then read their
  // weights once per chunk, not once per sample), every value those nodes
  // read or write in a batch region of regionBytes per sample of the chunk.
  // chunk 0: no suffix, every node runs in the arena.
  struct BatchSuffix {
    int64_t firstNode = -1;
    int64_t chunk = 0;
    int64_t regionBytes = 0;
  } batchSuffix;

  Value* addInput(std::string name, TensorType type);
  Value* addConstant(std::string name, Tensor value);
  void addOutput(Value* v);

  // Creates a node after all existing ones: validates the arity, completes
  // the attributes with defaults, infers the output types and creates the
  // output values (named from outputNames, else generated). Throws kiln::Error.
  Node* addNode(std::string_view op, std::string name, std::vector<Value*> inputs, Attributes attrs = {},
                std::vector<std::string> outputNames = {});

  const std::vector<Value*>& inputs() const { return inputs_; }
  const std::vector<Value*>& outputs() const { return outputs_; }
  std::vector<Node*> nodes() const;  // topological order (a snapshot)
  std::vector<Value*> values() const;
  size_t numNodes() const { return nodes_.size(); }

  Value* findValue(std::string_view name) const;
  std::vector<Node*> users(const Value* v) const;
  bool isGraphOutput(const Value* v) const;

  // Redirects every use of `from` (node inputs and graph outputs) to `to`.
  void replaceAllUsesWith(Value* from, Value* to);
  // Removes a node whose outputs are unused; throws otherwise.
  void eraseNode(Node* n);
  // Drops values no node, graph input or graph output refers to.
  void pruneValues();
  // Re-sorts nodes topologically (stable); throws kiln::Error on a cycle.
  void topoSort();

  std::string uniqueName(const std::string& base);
  Graph clone() const;

 private:
  Value* newValue(std::string name, TensorType type);
  std::vector<std::unique_ptr<Value>> values_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<Value*> inputs_;
  std::vector<Value*> outputs_;
  size_t nameCounter_ = 0;
};

// Re-runs shape inference for a node with its current inputs and attributes.
std::vector<TensorType> inferTypes(const Node& n);

// Checks structural and type invariants; throws kiln::Error naming the first
// broken one (node and op included).
void verify(const Graph& g);

// Human-readable text form, one node per line.
std::string printGraph(const Graph& g);
// Graphviz DOT form.
std::string graphToDot(const Graph& g);

}  // namespace kiln
