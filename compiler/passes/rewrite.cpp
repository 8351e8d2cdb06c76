#include "compiler/passes/rewrite.h"

#include <algorithm>
#include <cmath>

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

std::optional<float> scalarConstant(const Value* v) {
  if (!v || !v->isConstant() || v->type.dtype != DType::F32 || v->constant.numElements() != 1) return std::nullopt;
  return v->constant.data<float>()[0];
}

bool isScalarNear(const Value* v, float want) {
  std::optional<float> c = scalarConstant(v);
  return c && std::fabs(*c - want) <= 1e-6f * std::fabs(want);
}

Node* singleUser(const Graph& g, const Value* v, std::string_view op) {
  if (!v || !hasSingleUse(g, v)) return nullptr;
  Node* user = g.users(v).front();
  return user->opName() == op ? user : nullptr;
}

Node* singleUseProducer(const Graph& g, const Value* v, std::string_view op) {
  if (!v || !v->producer || v->producer->opName() != op || !hasSingleUse(g, v)) return nullptr;
  return v->producer;
}

Value* otherInput(const Node& n, const Value* known) {
  if (n.inputs.size() != 2) return nullptr;
  if (n.input(0) == known) return n.input(1);
  if (n.input(1) == known) return n.input(0);
  return nullptr;
}

void eraseUnused(Graph& g, const std::vector<Node*>& chain) {
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    bool unused = true;
    for (Value* out : (*it)->outputs) unused = unused && g.users(out).empty() && !g.isGraphOutput(out);
    if (unused) g.eraseNode(*it);
  }
}

}  // namespace kiln
