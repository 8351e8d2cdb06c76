#include "compiler/ir/graph.h"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

namespace kiln {

Value* Graph::newValue(std::string name, TensorType type) {
  if (name.empty()) name = uniqueName("t");
  auto v = std::make_unique<Value>();
  v->name = std::move(name);
  v->type = std::move(type);
  values_.push_back(std::move(v));
  return values_.back().get();
}

Value* Graph::addInput(std::string name, TensorType type) {
  Value* v = newValue(std::move(name), std::move(type));
  inputs_.push_back(v);
  return v;
}

Value* Graph::addConstant(std::string name, Tensor value) {
  Value* v = newValue(std::move(name), value.type());
  v->constant = std::move(value);
  return v;
}

void Graph::addOutput(Value* v) { outputs_.push_back(v); }

std::vector<TensorType> inferTypes(const Node& n) {
  std::vector<const TensorType*> types;
  for (Value* in : n.inputs) types.push_back(in ? &in->type : nullptr);
  InferContext ctx(n, std::move(types));
  std::vector<TensorType> out = n.op->infer(ctx);
  if (n.op->numOutputs != kVariadic && out.size() != static_cast<size_t>(n.op->numOutputs))
    throw Error("shape inference returned " + std::to_string(out.size()) + " outputs", n.site());
  // Layout is storage: an op computes in the layout of its first input
  // (see OpDef::setsLayout).
  const Value* first = n.input(0);
  if (!n.op->setsLayout && first && first->type.layout != Layout::Plain)
    for (TensorType& t : out) {
      t.layout = first->type.layout;
      t.block = first->type.block;
    }
  return out;
}

Node* Graph::addNode(std::string_view op, std::string name, std::vector<Value*> inputs, Attributes attrs,
                     std::vector<std::string> outputNames) {
  const OpDef& def = OpRegistry::instance().get(op);
  auto node = std::make_unique<Node>();
  node->name = std::move(name);
  node->op = &def;
  ErrorSite site = node->site();
  int n = static_cast<int>(inputs.size());
  if (n < def.minInputs || (def.maxInputs != kVariadic && n > def.maxInputs)) {
    std::string want = def.maxInputs == kVariadic ? "at least " + std::to_string(def.minInputs)
                       : def.minInputs == def.maxInputs
                           ? std::to_string(def.minInputs)
                           : std::to_string(def.minInputs) + " to " + std::to_string(def.maxInputs);
    throw Error("has " + std::to_string(n) + " inputs, expected " + want, site);
  }
  for (int i = 0; i < def.minInputs; ++i)
    if (!inputs[i]) throw Error("required input " + std::to_string(i) + " is missing", site);
  node->inputs = std::move(inputs);
  node->attrs = completeAttributes(def, attrs, node->name);
  std::vector<TensorType> types = inferTypes(*node);
  if (!outputNames.empty() && outputNames.size() != types.size())
    throw Error("given " + std::to_string(outputNames.size()) + " output names for " + std::to_string(types.size()) +
                    " outputs",
                site);
  for (size_t i = 0; i < types.size(); ++i) {
    Value* out = newValue(outputNames.empty() ? std::string() : outputNames[i], types[i]);
    out->producer = node.get();
    node->outputs.push_back(out);
  }
  nodes_.push_back(std::move(node));
  return nodes_.back().get();
}

std::vector<Node*> Graph::nodes() const {
  std::vector<Node*> out;
  out.reserve(nodes_.size());
  for (const auto& n : nodes_) out.push_back(n.get());
  return out;
}

std::vector<Value*> Graph::values() const {
  std::vector<Value*> out;
  for (const auto& v : values_) out.push_back(v.get());
  return out;
}

Value* Graph::findValue(std::string_view name) const {
  for (const auto& v : values_)
    if (v->name == name) return v.get();
  return nullptr;
}

std::vector<Node*> Graph::users(const Value* v) const {
  std::vector<Node*> out;
  for (const auto& n : nodes_)
    if (std::find(n->inputs.begin(), n->inputs.end(), v) != n->inputs.end()) out.push_back(n.get());
  return out;
}

bool Graph::isGraphOutput(const Value* v) const {
  return std::find(outputs_.begin(), outputs_.end(), v) != outputs_.end();
}

void Graph::replaceAllUsesWith(Value* from, Value* to) {
  for (auto& n : nodes_)
    for (Value*& in : n->inputs)
      if (in == from) in = to;
  for (Value*& out : outputs_)
    if (out == from) out = to;
}

void Graph::eraseNode(Node* n) {
  for (Value* out : n->outputs)
    if (!users(out).empty() || isGraphOutput(out))
      throw Error("cannot erase: output '" + out->name + "' is still used", n->site());
  for (Value* out : n->outputs) out->producer = nullptr;
  std::erase_if(nodes_, [n](const std::unique_ptr<Node>& p) { return p.get() == n; });
}

void Graph::pruneValues() {
  std::set<const Value*> live(inputs_.begin(), inputs_.end());
  live.insert(outputs_.begin(), outputs_.end());
  for (const auto& n : nodes_) {
    live.insert(n->inputs.begin(), n->inputs.end());
    live.insert(n->outputs.begin(), n->outputs.end());
  }
  std::erase_if(values_, [&](const std::unique_ptr<Value>& v) { return !live.count(v.get()); });
}

void Graph::topoSort() {
  // Kahn's algorithm, taking ready nodes in their current order so an
  // already sorted graph keeps its order.
  std::unordered_map<const Node*, size_t> pending;
  std::unordered_map<const Value*, std::vector<Node*>> consumers;
  for (const auto& n : nodes_) {
    std::set<const Value*> seen;
    size_t deps = 0;
    for (Value* in : n->inputs)
      if (in && in->producer && seen.insert(in).second) {
        ++deps;
        consumers[in].push_back(n.get());
      }
    pending[n.get()] = deps;
  }
  std::vector<Node*> order;
  std::set<std::pair<size_t, Node*>> ready;  // (original position, node)
  std::unordered_map<const Node*, size_t> position;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    position[nodes_[i].get()] = i;
    if (pending[nodes_[i].get()] == 0) ready.insert({i, nodes_[i].get()});
  }
  while (!ready.empty()) {
    Node* n = ready.begin()->second;
    ready.erase(ready.begin());
    order.push_back(n);
    for (Value* out : n->outputs)
      for (Node* c : consumers[out])
        if (--pending[c] == 0) ready.insert({position[c], c});
  }
  if (order.size() != nodes_.size()) {
    for (const auto& n : nodes_)
      if (pending[n.get()] != 0) throw Error("graph has a cycle through this node", n->site());
  }
  std::unordered_map<const Node*, std::unique_ptr<Node>> owned;
  for (auto& n : nodes_) owned[n.get()] = std::move(n);
  nodes_.clear();
  for (Node* n : order) nodes_.push_back(std::move(owned[n]));
}

std::string Graph::uniqueName(const std::string& base) {
  std::set<std::string_view> taken;
  for (const auto& v : values_) taken.insert(v->name);
  for (;;) {
    std::string candidate = base + "_" + std::to_string(nameCounter_++);
    if (!taken.count(candidate)) return candidate;
  }
}

Graph Graph::clone() const {
  Graph g;
  g.name = name;
  g.arenaBytes = arenaBytes;
  g.batchSuffix = batchSuffix;
  g.nameCounter_ = nameCounter_;
  std::unordered_map<const Value*, Value*> map;
  map[nullptr] = nullptr;
  for (const auto& v : values_) {
    auto copy = std::make_unique<Value>();
    copy->name = v->name;
    copy->type = v->type;
    copy->constant = v->constant;  // immutable, shared storage
    copy->arenaOffset = v->arenaOffset;
    copy->inBatchRegion = v->inBatchRegion;
    map[v.get()] = copy.get();
    g.values_.push_back(std::move(copy));
  }
  for (const auto& n : nodes_) {
    auto copy = std::make_unique<Node>();
    copy->name = n->name;
    copy->op = n->op;
    copy->attrs = n->attrs;
    for (Value* in : n->inputs) copy->inputs.push_back(map.at(in));
    for (Value* out : n->outputs) {
      copy->outputs.push_back(map.at(out));
      map.at(out)->producer = copy.get();
    }
    g.nodes_.push_back(std::move(copy));
  }
  for (Value* v : inputs_) g.inputs_.push_back(map.at(v));
  for (Value* v : outputs_) g.outputs_.push_back(map.at(v));
  return g;
}

void verify(const Graph& g) {
  std::set<std::string> names;
  std::set<const Value*> defined;
  for (Value* v : g.values())
    if (!names.insert(v->name).second) throw Error("value name '" + v->name + "' is defined twice");
  for (Value* v : g.inputs()) {
    if (v->producer || v->isConstant()) throw Error("graph input '" + v->name + "' is produced or constant");
    if (v->type.shape.product(v->type.shape.hasSymbolicBatch() ? 1 : 0, v->type.shape.rank()) < 0)
      throw Error("graph input '" + v->name + "' has a bad shape");
    defined.insert(v);
  }
  for (Value* v : g.values())
    if (v->isConstant()) {
      if (v->producer) throw Error("constant '" + v->name + "' also has a producer");
      if (!(v->constant.type() == v->type)) throw Error("constant '" + v->name + "' data does not match its type");
      defined.insert(v);
    }
  for (Node* n : g.nodes()) {
    if (!n->op) throw Error("node has no op", n->site());
    for (size_t i = 0; i < n->inputs.size(); ++i) {
      Value* in = n->inputs[i];
      if (!in) {
        if (static_cast<int>(i) < n->op->minInputs) throw Error("required input " + std::to_string(i) + " is missing", n->site());
        continue;
      }
      if (!defined.count(in))
        throw Error("input '" + in->name + "' is not defined before use (dangling input or cycle)", n->site());
    }
    if (!n->op->setsLayout && n->input(0))
      for (const Value* in : n->inputs)
        if (in && !in->isConstant() &&
            (in->type.layout != n->input(0)->type.layout || in->type.block != n->input(0)->type.block))
          throw Error("input '" + in->name + "' is " + in->type.str() + " but input 0 is " + n->input(0)->type.str() +
                          " (layouts change at Reorder nodes only)",
                      n->site());
    Attributes complete = completeAttributes(*n->op, n->attrs, n->name);
    if (!(complete == n->attrs)) throw Error("attributes are incomplete", n->site());
    std::vector<TensorType> types = inferTypes(*n);
    if (types.size() != n->outputs.size()) throw Error("output count does not match the op", n->site());
    for (size_t i = 0; i < types.size(); ++i) {
      Value* out = n->outputs[i];
      if (out->producer != n) throw Error("output '" + out->name + "' does not point back to its producer", n->site());
      if (defined.count(out)) throw Error("output '" + out->name + "' is defined twice", n->site());
      if (!(types[i] == out->type))
        throw Error("output '" + out->name + "' has type " + out->type.str() + ", inference gives " + types[i].str(),
                    n->site());
      defined.insert(out);
    }
  }
  std::set<std::string> outNames;
  for (Value* v : g.outputs()) {
    if (!defined.count(v)) throw Error("graph output '" + v->name + "' is never defined");
    if (!outNames.insert(v->name).second) throw Error("graph output '" + v->name + "' is listed twice");
  }
}

}  // namespace kiln
