#include "tools/model_files.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "compiler/ir/error.h"

namespace kiln::cli {

bool isCompiledArtifact(const std::string& path) {
  if (std::filesystem::path(path).extension() == ".so") return true;
  char magic[4] = {};
  std::ifstream in(path, std::ios::binary);
  constexpr char kElfMagic[] = {0x7f, 'E', 'L', 'F'};
  return in.read(magic, sizeof magic) && std::equal(magic, magic + 4, kElfMagic);
}

std::vector<std::string> readLabels(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot open the labels file", ErrorSite{path, "", ""});
  std::vector<std::string> labels;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    labels.push_back(std::move(line));
  }
  if (in.bad()) throw Error("cannot read the labels file", ErrorSite{path, "", ""});
  if (labels.empty()) throw Error("the labels file is empty (one class name per line)", ErrorSite{path, "", ""});
  return labels;
}

}  // namespace kiln::cli
