// Files the subcommands take besides .npy data: telling a compiled artifact
// from an ONNX model, and class-label files (one name per line).
#pragma once

#include <string>
#include <vector>

namespace kiln::cli {

// Compiled artifacts are ELF shared objects; the extension decides first so
// a broken .so is reported by the loader rather than the ONNX parser.
bool isCompiledArtifact(const std::string& path);

// One label per line, "\r\n" endings too; the final newline ends the last
// label rather than starting an empty one. Throws kiln::Error naming the
// file when it cannot be read or holds no label.
std::vector<std::string> readLabels(const std::string& path);

}  // namespace kiln::cli
