// Search-space parsing, walking and override application (see space.h).
#include "trainer/search/space.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "trainer/spec.h"

namespace kiln::train::search {

namespace {

using nlohmann::json;

const char* const kKinds[] = {"choice", "uniform", "loguniform", "quniform", "int"};

// A distribution is an object with exactly one key naming a kind; any other
// object is a literal whose members may hold distributions.
bool isDistribution(const json& node) {
  if (!node.is_object() || node.size() != 1) return false;
  const std::string& key = node.begin().key();
  return std::find(std::begin(kKinds), std::end(kKinds), key) != std::end(kKinds);
}

bool isInteger(const json& v) { return v.is_number_integer() || (v.is_number_float() && v.get<double>() == std::floor(v.get<double>())); }

std::vector<double> numbers(const json& args, size_t count, const std::string& where) {
  if (!args.is_array() || args.size() != count || !std::all_of(args.begin(), args.end(), [](const json& v) { return v.is_number(); }))
    throw SpecError(where + ": expected " + std::to_string(count) + " numbers, got " + args.dump());
  std::vector<double> out;
  for (const json& v : args) out.push_back(v.get<double>());
  return out;
}

Dimension parseDimension(const json& node, const std::string& label) {
  const std::string& kind = node.begin().key();
  const json& args = node.begin().value();
  const std::string where = "search space '" + label + "' (" + kind + ")";
  Dimension d;
  d.label = label;
  if (kind == "choice") {
    if (!args.is_array() || args.empty()) throw SpecError(where + ": expected a non-empty array of options");
    d.kind = Dimension::Kind::Choice;
    d.options.assign(args.begin(), args.end());
    d.lo = 0;
    d.hi = static_cast<double>(args.size() - 1);
  } else if (kind == "uniform" || kind == "loguniform") {
    std::vector<double> v = numbers(args, 2, where);
    d.kind = kind == "uniform" ? Dimension::Kind::Uniform : Dimension::Kind::LogUniform;
    d.lo = v[0];
    d.hi = v[1];
    if (!(d.lo < d.hi)) throw SpecError(where + ": needs low < high");
    if (d.kind == Dimension::Kind::LogUniform && !(d.lo > 0)) throw SpecError(where + ": needs 0 < low");
  } else if (kind == "quniform") {
    std::vector<double> v = numbers(args, 3, where);
    d.kind = Dimension::Kind::QUniform;
    d.lo = v[0];
    d.hi = v[1];
    d.q = v[2];
    if (!(d.lo <= d.hi) || !(d.q > 0)) throw SpecError(where + ": needs low <= high and q > 0");
    d.integral = isInteger(args[0]) && isInteger(args[1]) && isInteger(args[2]);
  } else {
    if (!args.is_array() || args.size() != 2 || !args[0].is_number_integer() || !args[1].is_number_integer())
      throw SpecError(where + ": expected two integers, got " + args.dump());
    d.kind = Dimension::Kind::Int;
    d.lo = args[0].get<double>();
    d.hi = args[1].get<double>();
    d.integral = true;
    if (!(d.lo <= d.hi)) throw SpecError(where + ": needs low <= high");
  }
  return d;
}

// Registers every distribution under `node` (all options of every choice,
// since any may become active).
void collect(const json& node, const std::string& label, std::map<std::string, Dimension>& dims) {
  if (isDistribution(node)) {
    Dimension d = parseDimension(node, label);
    for (size_t i = 0; i < d.options.size(); ++i) collect(d.options[i], label + "[" + std::to_string(i) + "]", dims);
    dims.emplace(label, std::move(d));
  } else if (node.is_object()) {
    for (const auto& [key, child] : node.items()) collect(child, label + "/" + key, dims);
  } else if (node.is_array()) {
    for (size_t i = 0; i < node.size(); ++i) collect(node[i], label + "/" + std::to_string(i), dims);
  }
}

// Resolves `node` into a plain value, `pick` giving each active dimension's
// internal value.
json resolve(const json& node, const std::string& label, const std::map<std::string, Dimension>& dims,
             const std::function<double(const Dimension&)>& pick) {
  if (isDistribution(node)) {
    const Dimension& d = dims.at(label);
    double v = pick(d);
    if (d.kind == Dimension::Kind::Choice) {
      auto i = static_cast<size_t>(v);
      return resolve(d.options.at(i), label + "[" + std::to_string(i) + "]", dims, pick);
    }
    if (d.integral) return static_cast<int64_t>(std::llround(v));
    return v;
  }
  if (node.is_object()) {
    json out = json::object();
    for (const auto& [key, child] : node.items()) out[key] = resolve(child, label + "/" + key, dims, pick);
    return out;
  }
  if (node.is_array()) {
    json out = json::array();
    for (size_t i = 0; i < node.size(); ++i) out.push_back(resolve(node[i], label + "/" + std::to_string(i), dims, pick));
    return out;
  }
  return node;
}

}  // namespace

int64_t Dimension::gridSize() const { return static_cast<int64_t>(std::floor((hi - lo) / q + 1e-9)) + 1; }

double Dimension::snap(double x) const {
  if (kind != Kind::QUniform && kind != Kind::Int) return x;
  double k = std::clamp(std::round((x - lo) / q), 0.0, static_cast<double>(gridSize() - 1));
  return lo + k * q;
}

SearchSpace::SearchSpace(const json& doc, const std::string& baseDir) {
  JsonFields f(doc, "search space");
  std::string basePath = f.required<std::string>("base");
  params_ = f.object("params");
  f.finish();
  std::filesystem::path p(basePath);
  if (p.is_relative()) p = std::filesystem::path(baseDir) / p;
  std::ifstream in(p);
  if (!in) throw SpecError("search space: cannot read base spec " + p.string());
  try {
    base_ = json::parse(in);
  } catch (const json::exception& e) {
    throw SpecError(p.string() + ": " + e.what());
  }
  if (!params_.is_object() || params_.empty()) throw SpecError("search space: 'params' must be a non-empty object");
  for (const auto& [path, tree] : params_.items()) {
    json::json_pointer ptr;
    try {
      ptr = json::json_pointer(path);
    } catch (const json::exception&) {
      throw SpecError("search space: '" + path + "' is not a JSON pointer (\"/training/optimizer/learning_rate\")");
    }
    if (ptr.empty() || !base_.contains(ptr.parent_pointer()))
      throw SpecError("search space: the parent of '" + path + "' does not exist in the base spec");
    collect(tree, path, dims_);
  }
}

SearchSpace SearchSpace::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw SpecError("cannot read search space " + path);
  json doc;
  try {
    doc = json::parse(in);
  } catch (const json::exception& e) {
    throw SpecError(path + ": " + e.what());
  }
  return SearchSpace(doc, std::filesystem::path(path).parent_path().string());
}

Assignment SearchSpace::sample(const Chooser& choose) const {
  Assignment a;
  for (const auto& [path, tree] : params_.items())
    resolve(tree, path, dims_, [&](const Dimension& d) { return a[d.label] = choose(d); });
  return a;
}

json SearchSpace::overrides(const Assignment& a) const {
  json out = json::object();
  for (const auto& [path, tree] : params_.items())
    out[path] = resolve(tree, path, dims_, [&](const Dimension& d) {
      auto it = a.find(d.label);
      if (it == a.end()) throw SpecError("assignment lacks the active parameter '" + d.label + "'");
      return it->second;
    });
  return out;
}

json applyOverrides(const json& base, const json& overrides) {
  json spec = base;
  for (const auto& [path, value] : overrides.items()) spec[json::json_pointer(path)] = value;
  return spec;
}

json SearchSpace::apply(const json& overrides) const { return applyOverrides(base_, overrides); }

json SearchSpace::canonical() const { return {{"base", base_}, {"params", params_}}; }

}  // namespace kiln::train::search
