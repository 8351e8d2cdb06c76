#include "compiler/ir/attributes.h"

#include <sstream>

#include "compiler/ir/error.h"

namespace kiln {

AttrKind attrKindOf(const AttrValue& v) { return static_cast<AttrKind>(v.index()); }

const char* attrKindName(AttrKind k) {
  switch (k) {
    case AttrKind::Int: return "int";
    case AttrKind::Float: return "float";
    case AttrKind::String: return "string";
    case AttrKind::Ints: return "ints";
    case AttrKind::Floats: return "floats";
  }
  return "?";
}

std::string attrToString(const AttrValue& v) {
  std::ostringstream os;
  auto list = [&os](const auto& xs) {
    os << '[';
    for (size_t i = 0; i < xs.size(); ++i) os << (i ? "," : "") << xs[i];
    os << ']';
  };
  switch (attrKindOf(v)) {
    case AttrKind::Int: os << std::get<int64_t>(v); break;
    case AttrKind::Float: os << std::get<float>(v); break;
    case AttrKind::String: os << '"' << std::get<std::string>(v) << '"'; break;
    case AttrKind::Ints: list(std::get<std::vector<int64_t>>(v)); break;
    case AttrKind::Floats: list(std::get<std::vector<float>>(v)); break;
  }
  return os.str();
}

template <class T>
const T& Attributes::get(const std::string& name, AttrKind kind) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw Error("missing attribute '" + name + "'");
  if (attrKindOf(it->second) != kind)
    throw Error("attribute '" + name + "' is " + attrKindName(attrKindOf(it->second)) + ", expected " +
                attrKindName(kind));
  return std::get<T>(it->second);
}

int64_t Attributes::getInt(const std::string& n) const { return get<int64_t>(n, AttrKind::Int); }
float Attributes::getFloat(const std::string& n) const { return get<float>(n, AttrKind::Float); }
const std::string& Attributes::getString(const std::string& n) const { return get<std::string>(n, AttrKind::String); }
const std::vector<int64_t>& Attributes::getInts(const std::string& n) const {
  return get<std::vector<int64_t>>(n, AttrKind::Ints);
}
const std::vector<float>& Attributes::getFloats(const std::string& n) const {
  return get<std::vector<float>>(n, AttrKind::Floats);
}

}  // namespace kiln
