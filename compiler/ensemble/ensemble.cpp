#include "compiler/ensemble/ensemble.h"

#include <cfloat>
#include <map>
#include <unordered_map>

namespace kiln::ensemble {

namespace {

std::string describe(const Member& m) { return m.name + " ('" + m.file + "')"; }

[[noreturn]] void fail(const Member& m, const std::string& what) {
  throw Error("ensemble " + m.name + ": " + what, ErrorSite{m.file, "", ""});
}

// The member's only output, checked to be f32 class scores [N, C].
const Value* classScores(const Member& m) {
  const std::vector<Value*>& outputs = m.graph.outputs();
  if (outputs.size() != 1) {
    std::string list;
    for (const Value* v : outputs) list += (list.empty() ? "" : ", ") + ("'" + v->name + "' " + v->type.str());
    fail(m, "a member needs exactly one output (its f32 [N, C] class scores), this one has " +
                std::to_string(outputs.size()) + (list.empty() ? "" : ": " + list));
  }
  const Value* out = outputs[0];
  if (out->type.dtype != DType::F32 || out->type.shape.rank() != 2)
    fail(m, "output '" + out->name + "' is " + out->type.str() + "; a member's output must be f32 [N, C] class scores");
  return out;
}

std::map<std::string, TensorType> inputTypes(const Graph& g) {
  std::map<std::string, TensorType> types;
  for (const Value* v : g.inputs()) types.emplace(v->name, v->type);
  return types;
}

// Every member against the first: the same inputs and the same [N, C].
void checkMembersFit(const std::vector<Member>& members) {
  const Member& first = members.front();
  const TensorType& scores = classScores(first)->type;
  const std::map<std::string, TensorType> inputs = inputTypes(first.graph);
  for (size_t i = 1; i < members.size(); ++i) {
    const Member& m = members[i];
    const Value* out = classScores(m);
    if (!(out->type == scores))
      fail(m, "output '" + out->name + "' is " + out->type.str() + ", but " + describe(first) + " outputs " +
                  scores.str() + "; members must score the same classes");
    const std::map<std::string, TensorType> own = inputTypes(m.graph);
    for (const auto& [name, type] : own) {
      auto it = inputs.find(name);
      if (it == inputs.end()) fail(m, "has input '" + name + "', which " + describe(first) + " lacks");
      if (!(it->second == type))
        fail(m, "input '" + name + "' is " + type.str() + ", but " + describe(first) + " takes " + it->second.str());
    }
    for (const auto& [name, type] : inputs)
      if (!own.count(name)) fail(m, "lacks input '" + name + "' (" + type.str() + ") of " + describe(first));
  }
}

// Copies the member's nodes, and the constants they read, into g under the
// prefix "NAME/", its graph inputs bound to g's inputs of the same name.
// Returns the copy of the member's output.
Value* appendMember(Graph& g, const Member& m, const std::map<std::string, Value*>& sharedInputs) {
  const std::string prefix = m.name + "/";
  std::unordered_map<const Value*, Value*> copies;
  for (const Value* in : m.graph.inputs()) copies[in] = sharedInputs.at(in->name);
  // Nodes come in topological order, so a value without a copy yet is a constant.
  auto copyOf = [&](const Value* v) -> Value* {
    if (!v) return nullptr;  // an omitted optional input
    if (auto it = copies.find(v); it != copies.end()) return it->second;
    return copies[v] = g.addConstant(prefix + v->name, v->constant);
  };
  for (const Node* n : m.graph.nodes()) {
    std::vector<Value*> inputs;
    for (const Value* in : n->inputs) inputs.push_back(copyOf(in));
    std::vector<std::string> outputNames;
    for (const Value* out : n->outputs) outputNames.push_back(prefix + out->name);
    Node* copy = g.addNode(n->opName(), prefix + n->name, std::move(inputs), n->attrs, std::move(outputNames));
    for (size_t i = 0; i < n->outputs.size(); ++i) copies[n->outputs[i]] = copy->outputs[i];
  }
  return copyOf(m.graph.outputs().front());
}

// sum_i w_i * terms[i], one Mul per member and one Sum, named `name`.
Value* weightedSum(Graph& g, const std::vector<Member>& members, const std::vector<Value*>& terms,
                   const std::string& name) {
  std::vector<Value*> weighted;
  for (size_t i = 0; i < members.size(); ++i) {
    const std::string at = "ensemble/" + members[i].name + "/";
    Value* w = g.addConstant(at + "weight", Tensor::scalar(static_cast<float>(members[i].weight)));
    weighted.push_back(g.addNode("Mul", at + "weighted", {terms[i], w}, {}, {at + "weighted"})->output());
  }
  return g.addNode("Sum", "ensemble/sum", std::move(weighted), {}, {name})->output();
}

// The rule's combination of the members' outputs, named kOutputName.
Value* combine(Graph& g, const std::vector<Member>& members, const std::vector<Value*>& outputs, Rule rule,
               MemberOutput memberOutput) {
  Attributes classAxis;
  classAxis.set("axis", int64_t{1});
  auto apply = [&](const std::string& op, const std::string& name, Value* x, const Attributes& attrs) {
    return g.addNode(op, name, {x}, attrs, {name})->output();
  };
  std::vector<Value*> terms;
  for (size_t i = 0; i < members.size(); ++i) {
    const std::string at = "ensemble/" + members[i].name + "/";
    Value* v = outputs[i];
    if (rule == Rule::Mean && memberOutput == MemberOutput::Logits)
      v = apply("Softmax", at + "probabilities", v, classAxis);
    if (rule == Rule::Logits && memberOutput == MemberOutput::Probabilities) {
      // log(0) = -inf would veto a class outright, and a row where every
      // class is vetoed by some member would turn NaN: the FLT_MIN floor
      // bounds each logit at about -87.3.
      Attributes floor;
      floor.set("min", FLT_MIN);
      v = apply("Log", at + "logits", apply("Clip", at + "floored", v, floor), {});
    }
    if (rule == Rule::Vote) v = apply("Hardmax", at + "vote", v, classAxis);
    terms.push_back(v);
  }
  if (rule != Rule::Logits) return weightedSum(g, members, terms, kOutputName);
  Value* logits = weightedSum(g, members, terms, "ensemble/logits");
  return g.addNode("Softmax", "ensemble/softmax", {logits}, classAxis, {kOutputName})->output();
}

}  // namespace

Graph mergeMembers(const std::vector<Member>& members, Rule rule, MemberOutput memberOutput, const std::string& name) {
  if (members.empty()) throw Error("an ensemble needs at least one member");
  checkMembersFit(members);
  Graph g;
  g.name = name;
  std::map<std::string, Value*> sharedInputs;
  for (const Value* in : members.front().graph.inputs()) sharedInputs[in->name] = g.addInput(in->name, in->type);
  std::vector<Value*> outputs;
  for (const Member& m : members) outputs.push_back(appendMember(g, m, sharedInputs));
  g.addOutput(combine(g, members, outputs, rule, memberOutput));
  return g;
}

}  // namespace kiln::ensemble
