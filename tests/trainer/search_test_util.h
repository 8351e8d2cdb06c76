// Shared helpers of the search and study tests: scratch folders, spaces
// over an inline base object, the 2-D quadratic objective.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "trainer/search/search.h"

namespace kiln::train::testing {

inline std::filesystem::path scratch(const std::string& name) {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("kiln_search_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A space over the base object `base` (written next to it in `dir`).
inline search::SearchSpace makeSpace(const std::filesystem::path& dir, const nlohmann::json& base, const nlohmann::json& params) {
  std::ofstream(dir / "base.json") << base.dump();
  return search::SearchSpace({{"base", "base.json"}, {"params", params}}, dir.string());
}

inline search::SearchSpace quadraticSpace(const std::filesystem::path& dir) {
  return makeSpace(dir, {{"x", 0}, {"y", 0}}, {{"/x", {{"uniform", {-5, 5}}}}, {"/y", {{"uniform", {-5, 5}}}}});
}

inline double quadratic(const nlohmann::json& spec, search::Trial&) {
  double x = spec["x"].get<double>(), y = spec["y"].get<double>();
  return (x - 1.3) * (x - 1.3) + (y + 2.1) * (y + 2.1);
}

}  // namespace kiln::train::testing
