// Test helper: compiles a graph to a shared library in a temporary folder,
// loads it, and runs it like `kiln run MODEL.so` would, so tests can compare
// compiled results with the reference interpreter.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::testing {

class CompiledModel {
 public:
  // Optimizes a clone of g with -O2 (unless optimize is false), compiles it
  // for `cpu` ("native", "x86-64-v3", ...), links and loads it.
  static std::unique_ptr<CompiledModel> compile(const Graph& g, const std::string& cpu = "native", bool optimize = true);
  ~CompiledModel();

  // Runs with the batch taken from the inputs; returns one tensor per output.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs) const;

 private:
  CompiledModel() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Norm-wise relative error max|a-b| / max|b| over all outputs (inf on shape
// mismatch or NaN mismatch).
double maxRelativeError(const std::vector<Tensor>& a, const std::vector<Tensor>& b);
// The same, taken sample by sample along dim 0 (each relative to its own
// sample's peak), so one wrong sample of a batch cannot hide behind others.
double maxRelativeErrorPerSample(const std::vector<Tensor>& a, const std::vector<Tensor>& b);

}  // namespace kiln::testing
