// Model-local function inlining: every call of a ModelProto function is
// replaced by the function's body, with internal values renamed uniquely,
// formal inputs/outputs bound to the call's values and attribute references
// (ref_attr_name) resolved from the call site. ai.kiln.keras.SeparableConv2D
// stays a single node for conversion (kiln has an IR op for it) and is inlined
// for validation, which must see every node ONNX's shape inference runs.
#include <map>

#include "frontends/onnx/importer_internal.h"

namespace kiln::onnx_import {

namespace {

// Nested calls deeper than this are taken to be recursion.
constexpr int kMaxCallDepth = 16;

class Inliner {
 public:
  Inliner(const ::onnx::ModelProto& model, KerasOps keras, std::vector<FlatNode>& out) : keras_(keras), out_(out) {
    for (const auto& f : model.functions()) functions_[{f.domain(), f.name()}] = &f;
    const auto& g = model.graph();
    for (const auto& v : g.input()) taken_.insert(v.name());
    for (const auto& v : g.output()) taken_.insert(v.name());
    for (const auto& t : g.initializer()) taken_.insert(t.name());
    for (const auto& n : g.node()) {
      taken_.insert(n.input().begin(), n.input().end());
      taken_.insert(n.output().begin(), n.output().end());
    }
  }

  void add(const ::onnx::NodeProto& node, const std::string& label, int64_t opset, int depth) {
    bool keepsIrOp = keras_ == KerasOps::Keep && node.domain() == kKerasDomain && node.op_type() == "SeparableConv2D";
    auto fn = functions_.find({node.domain(), node.op_type()});
    if (keepsIrOp || fn == functions_.end()) {
      out_.push_back(FlatNode{node, label, opset});
      return;
    }
    inlineCall(node, *fn->second, label, opset, depth);
  }

 private:
  void inlineCall(const ::onnx::NodeProto& call, const ::onnx::FunctionProto& fn, const std::string& label,
                  int64_t opset, int depth) {
    ErrorSite site{"", label, call.op_type()};
    if (depth >= kMaxCallDepth)
      throw Error("function calls nest deeper than " + std::to_string(kMaxCallDepth) + " levels (recursive function?)", site);
    if (call.input_size() > fn.input_size() || call.output_size() > fn.output_size())
      throw Error("calls function '" + fn.name() + "' with " + std::to_string(call.input_size()) + " inputs and " +
                      std::to_string(call.output_size()) + " outputs; it has " + std::to_string(fn.input_size()) +
                      " and " + std::to_string(fn.output_size()),
                  site);
    std::map<std::string, std::string> rename;
    for (int i = 0; i < fn.input_size(); ++i) rename[fn.input(i)] = i < call.input_size() ? call.input(i) : "";
    for (int i = 0; i < fn.output_size(); ++i)
      rename[fn.output(i)] = i < call.output_size() && !call.output(i).empty() ? call.output(i) : fresh(label + "/" + fn.output(i));
    int64_t bodyOpset = opset;
    for (const auto& imp : fn.opset_import())
      if (imp.domain().empty() || imp.domain() == "ai.onnx") bodyOpset = imp.version();
    auto mapped = [&](const std::string& name) {
      if (name.empty()) return name;
      auto it = rename.find(name);
      if (it == rename.end()) it = rename.emplace(name, fresh(label + "/" + name)).first;
      return it->second;
    };
    for (int k = 0; k < fn.node_size(); ++k) {
      const ::onnx::NodeProto& inner = fn.node(k);
      ::onnx::NodeProto bound = inner;
      for (std::string& in : *bound.mutable_input()) in = mapped(in);
      for (std::string& out : *bound.mutable_output()) out = mapped(out);
      bound.clear_attribute();
      for (const auto& a : inner.attribute()) {
        if (a.ref_attr_name().empty()) {
          *bound.add_attribute() = a;
          continue;
        }
        // A reference the call leaves unset falls back to the op's default.
        for (const auto& given : call.attribute())
          if (given.name() == a.ref_attr_name()) {
            ::onnx::AttributeProto resolved = given;
            resolved.set_name(a.name());
            *bound.add_attribute() = std::move(resolved);
          }
      }
      add(bound, label + "/" + nodeLabel(inner, static_cast<size_t>(k)), bodyOpset, depth + 1);
    }
  }

  std::string fresh(const std::string& base) {
    std::string name = base;
    for (int k = 1; taken_.count(name); ++k) name = base + "_" + std::to_string(k);
    taken_.insert(name);
    return name;
  }

  KerasOps keras_;
  std::vector<FlatNode>& out_;
  std::map<std::pair<std::string, std::string>, const ::onnx::FunctionProto*> functions_;
  std::set<std::string> taken_;
};

}  // namespace

std::vector<FlatNode> flattenGraph(const ::onnx::ModelProto& model, int64_t defaultOpset, KerasOps keras) {
  std::vector<FlatNode> out;
  Inliner inliner(model, keras, out);
  const auto& nodes = model.graph().node();
  for (int i = 0; i < nodes.size(); ++i) inliner.add(nodes[i], nodeLabel(nodes[i], static_cast<size_t>(i)), defaultOpset, 0);
  return out;
}

}  // namespace kiln::onnx_import
