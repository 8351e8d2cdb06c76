#include "compiler/passes/rewrite.h"

#include <algorithm>

#include "compiler/interp/interpreter.h"

namespace kiln {

bool replaceValue(Graph& g, Value* from, Value* to) {
  if (from == to) return true;
  bool fromIsOutput = g.isGraphOutput(from);
  if (fromIsOutput) {
    bool toIsInterface = !to->producer || g.isGraphOutput(to);
    if (toIsInterface) return false;
  }
  g.replaceAllUsesWith(from, to);
  if (fromIsOutput) std::swap(from->name, to->name);
  if (Node* producer = from->producer) {
    bool unused = true;
    for (Value* out : producer->outputs) unused = unused && g.users(out).empty() && !g.isGraphOutput(out);
    if (unused) g.eraseNode(producer);
  }
  return true;
}

Value* foldNode(Graph& g, Node* n) {
  std::vector<const Tensor*> inputs;
  for (Value* in : n->inputs) inputs.push_back(in ? &in->constant : nullptr);
  std::vector<Tensor> results = evaluateNode(*n, inputs);
  std::vector<Value*> outputs = n->outputs;
  Value* first = nullptr;
  for (size_t i = 0; i < outputs.size(); ++i) {
    Value* folded = g.addConstant(g.uniqueName(outputs[i]->name + "_folded"), std::move(results[i]));
    replaceValue(g, outputs[i], folded);
    if (!first) first = folded;
  }
  return first;
}

bool hasSingleUse(const Graph& g, const Value* v) {
  if (g.isGraphOutput(v)) return false;
  size_t uses = 0;
  for (Node* n : g.users(v)) uses += std::count(n->inputs.begin(), n->inputs.end(), v);
  return uses == 1;
}

bool readsOnlyFirstInput(const Node& n) {
  return std::all_of(n.inputs.begin() + 1, n.inputs.end(), [](const Value* v) { return !v; });
}

}  // namespace kiln
