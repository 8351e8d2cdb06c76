// Typed node attributes. Every op declares its attributes (kind + default)
// once in the op registry; nodes always carry the full, defaulted set, so
// later stages read concrete values and never re-apply ONNX defaults.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace kiln {

enum class AttrKind : uint8_t { Int, Float, String, Ints, Floats };

using AttrValue = std::variant<int64_t, float, std::string, std::vector<int64_t>, std::vector<float>>;

AttrKind attrKindOf(const AttrValue& v);
const char* attrKindName(AttrKind k);
std::string attrToString(const AttrValue& v);

class Attributes {
 public:
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  void set(const std::string& name, AttrValue v) { values_[name] = std::move(v); }
  void erase(const std::string& name) { values_.erase(name); }

  // Typed getters; throw kiln::Error if missing or of another kind.
  int64_t getInt(const std::string& name) const;
  float getFloat(const std::string& name) const;
  const std::string& getString(const std::string& name) const;
  const std::vector<int64_t>& getInts(const std::string& name) const;
  const std::vector<float>& getFloats(const std::string& name) const;

  const std::map<std::string, AttrValue>& all() const { return values_; }
  bool operator==(const Attributes&) const = default;

 private:
  template <class T> const T& get(const std::string& name, AttrKind kind) const;
  std::map<std::string, AttrValue> values_;
};

struct AttrSpec {
  std::string name;
  AttrKind kind;
  std::optional<AttrValue> defaultValue;  // nullopt: required
};

}  // namespace kiln
