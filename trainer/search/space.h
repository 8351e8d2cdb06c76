// The search space: a base model spec plus overrides at JSON-pointer paths,
// each override a tree of constants and distributions (choice, uniform,
// loguniform, quniform, int). Distributions inside a choice's options exist
// only when that option is drawn (conditional sub-spaces). trainer/README.md
// documents the file format.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kiln::train::search {

// One distribution of the space, named by its label: the override path,
// plus "[i]" and the key path inside a choice's option i
// ("/training/optimizer[1]/momentum").
struct Dimension {
  enum class Kind { Choice, Uniform, LogUniform, QUniform, Int } kind = Kind::Uniform;
  std::string label;
  double lo = 0, hi = 1;
  double q = 1;                       // QUniform and Int (1) step
  bool integral = false;              // QUniform/Int values are written as JSON integers
  std::vector<nlohmann::json> options;  // Choice: the option subtrees

  // Number of grid points of QUniform/Int (lo, lo+q, ..., <= hi).
  int64_t gridSize() const;
  // Snaps a continuous draw onto the grid (QUniform/Int) or returns it.
  double snap(double x) const;
};

// Internal coordinates of one draw: label -> value (the option index for a
// choice, the number otherwise). Only the active labels are present.
using Assignment = std::map<std::string, double>;

// Picks the internal value of one dimension (a sampler's whole job).
using Chooser = std::function<double(const Dimension&)>;

// `base` with each override (JSON pointer -> value) written in, in key order.
nlohmann::json applyOverrides(const nlohmann::json& base, const nlohmann::json& overrides);

class SearchSpace {
 public:
  // `doc` is the search-space file; `baseDir` resolves its "base" path.
  SearchSpace(const nlohmann::json& doc, const std::string& baseDir);
  static SearchSpace load(const std::string& path);

  // Walks the space, asking `choose` for every active dimension in a fixed
  // order (override paths sorted, then depth first).
  Assignment sample(const Chooser& choose) const;
  // The overrides {path: value} of an assignment: values, never indices.
  nlohmann::json overrides(const Assignment& a) const;
  // The base spec with `overrides` written at their paths (paths in sorted
  // order, so "/training/optimizer" is replaced before
  // "/training/optimizer/learning_rate" is set inside it).
  nlohmann::json apply(const nlohmann::json& overrides) const;

  const nlohmann::json& base() const { return base_; }
  // The space's identity in a study file: base spec and parameter trees.
  nlohmann::json canonical() const;
  // Every dimension by label, inactive ones included.
  const std::map<std::string, Dimension>& dimensions() const { return dims_; }

 private:
  nlohmann::json base_;
  nlohmann::json params_;  // path -> tree
  std::map<std::string, Dimension> dims_;
};

}  // namespace kiln::train::search
