#include <algorithm>
#include <sstream>

#include "compiler/ir/graph.h"

namespace kiln {

namespace {

std::string valueRef(const Value* v) { return v ? "%" + v->name : "_"; }

std::string dotEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::string printGraph(const Graph& g) {
  std::ostringstream os;
  auto valueList = [&os](const std::vector<Value*>& vs) {
    for (size_t i = 0; i < vs.size(); ++i) os << (i ? ", " : "") << valueRef(vs[i]) << ": " << vs[i]->type.str();
  };
  os << "graph " << g.name << "(";
  valueList(g.inputs());
  os << ") -> (";
  valueList(g.outputs());
  os << ")";
  if (g.arenaBytes > 0) os << " arena " << g.arenaBytes << " B/sample";
  if (g.batchSuffix.chunk > 0)
    os << " batch region " << g.batchSuffix.regionBytes << " B/sample from node " << g.batchSuffix.firstNode
       << " in chunks of " << g.batchSuffix.chunk;
  os << " {\n";
  for (Value* v : g.values())
    if (v->isConstant()) os << "  " << valueRef(v) << ": " << v->type.str() << " = constant\n";
  for (Node* n : g.nodes()) {
    os << "  ";
    for (size_t i = 0; i < n->outputs.size(); ++i) {
      os << (i ? ", " : "") << valueRef(n->outputs[i]) << ": " << n->outputs[i]->type.str();
      if (n->outputs[i]->arenaOffset >= 0)
        os << (n->outputs[i]->inBatchRegion ? " @batch+" : " @") << n->outputs[i]->arenaOffset;
    }
    os << " = " << n->opName() << "(";
    for (size_t i = 0; i < n->inputs.size(); ++i) os << (i ? ", " : "") << valueRef(n->inputs[i]);
    os << ")";
    if (!n->attrs.all().empty()) {
      os << " {";
      bool first = true;
      for (const auto& [k, v] : n->attrs.all()) {
        os << (first ? "" : ", ") << k << "=" << attrToString(v);
        first = false;
      }
      os << "}";
    }
    if (!n->name.empty()) os << "  # " << n->name;
    os << "\n";
  }
  os << "  return ";
  for (size_t i = 0; i < g.outputs().size(); ++i) os << (i ? ", " : "") << valueRef(g.outputs()[i]);
  os << "\n}\n";
  return os.str();
}

std::string graphToDot(const Graph& g) {
  std::ostringstream os;
  os << "digraph \"" << dotEscape(g.name) << "\" {\n  rankdir=TB;\n  node [fontname=\"monospace\"];\n";
  auto vid = [](const Value* v) { return "\"v:" + dotEscape(v->name) + "\""; };
  for (Value* v : g.inputs())
    os << "  " << vid(v) << " [shape=oval, label=\"" << dotEscape(v->name) << "\\n" << v->type.str() << "\"];\n";
  for (Value* v : g.outputs())
    os << "  " << vid(v) << " [shape=oval, style=bold, label=\"" << dotEscape(v->name) << "\\n" << v->type.str()
       << "\"];\n";
  std::vector<Node*> nodes = g.nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    Node* n = nodes[i];
    os << "  n" << i << " [shape=box, label=\"" << dotEscape(n->opName()) << "\\n" << dotEscape(n->name) << "\"];\n";
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (Value* in : nodes[i]->inputs) {
      if (!in || in->isConstant()) continue;
      if (in->producer) {
        size_t j = std::find(nodes.begin(), nodes.end(), in->producer) - nodes.begin();
        os << "  n" << j << " -> n" << i << " [label=\"" << in->type.str() << "\"];\n";
      } else {
        os << "  " << vid(in) << " -> n" << i << ";\n";
      }
    }
  }
  for (Value* v : g.outputs()) {
    if (!v->producer) continue;
    size_t j = std::find(nodes.begin(), nodes.end(), v->producer) - nodes.begin();
    os << "  n" << j << " -> " << vid(v) << ";\n";
  }
  os << "}\n";
  return os.str();
}

}  // namespace kiln
