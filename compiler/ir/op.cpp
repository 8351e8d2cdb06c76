#include "compiler/ir/op.h"

#include <algorithm>

#include "compiler/ir/graph.h"

namespace kiln {

const Attributes& InferContext::attrs() const { return node_.attrs; }

const TensorType& InferContext::input(size_t i) const {
  if (!hasInput(i)) fail("input " + std::to_string(i) + " is required");
  return *inputs_[i];
}

void InferContext::fail(const std::string& message) const { throw Error(message, node_.site()); }

const Attributes& KernelContext::attrs() const { return node_.attrs; }

const Tensor& KernelContext::input(size_t i) const {
  if (!hasInput(i)) fail("input " + std::to_string(i) + " is required");
  return *inputs_[i];
}

void KernelContext::fail(const std::string& message) const { throw Error(message, node_.site()); }

void OpRegistry::add(OpDef def) {
  if (find(def.name)) throw Error("op '" + def.name + "' registered twice");
  ops_.push_back(std::move(def));
}

const OpDef* OpRegistry::find(std::string_view name) const {
  for (const OpDef& d : ops_)
    if (d.name == name) return &d;
  return nullptr;
}

const OpDef& OpRegistry::get(std::string_view name) const {
  if (const OpDef* d = find(name)) return *d;
  throw Error("unknown op '" + std::string(name) + "'");
}

std::vector<std::string> OpRegistry::names() const {
  std::vector<std::string> out;
  for (const OpDef& d : ops_) out.push_back(d.name);
  std::sort(out.begin(), out.end());
  return out;
}

Attributes completeAttributes(const OpDef& def, const Attributes& attrs, const std::string& nodeName) {
  ErrorSite site{"", nodeName, def.name};
  for (const auto& [name, value] : attrs.all()) {
    auto spec = std::find_if(def.attrs.begin(), def.attrs.end(), [&](const AttrSpec& s) { return s.name == name; });
    if (spec == def.attrs.end()) throw Error("unknown attribute '" + name + "'", site);
    if (attrKindOf(value) != spec->kind)
      throw Error("attribute '" + name + "' is " + attrKindName(attrKindOf(value)) + ", expected " +
                      attrKindName(spec->kind),
                  site);
  }
  Attributes out = attrs;
  for (const AttrSpec& s : def.attrs) {
    if (out.has(s.name)) continue;
    if (!s.defaultValue) throw Error("missing required attribute '" + s.name + "'", site);
    out.set(s.name, *s.defaultValue);
  }
  return out;
}

}  // namespace kiln
