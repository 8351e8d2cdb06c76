// What `kiln run` and `kiln predict` share: a model's inputs and outputs as
// ports, the run options (--input/--random-inputs/--batch/--output-dir/
// --top-k/--labels), reading and checking .npy inputs, writing outputs and
// printing the top classes of classifier outputs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/ir/tensor.h"
#include "kiln/artifact.h"
#include "tools/cli_common.h"

namespace kiln::cli {

namespace fs = std::filesystem;

// A model input or output as both engines describe it: the imported graph's
// values, or an artifact's descriptor entries.
struct Port {
  std::string name;
  TensorType type;
};

struct Interface {
  std::vector<Port> inputs, outputs;
};

// The options both engines take, parsed before the (possibly slow) model load.
struct RunRequest {
  std::string modelPath;
  fs::path outputDir;
  std::vector<std::string> inputSpecs;
  std::optional<uint64_t> seed;  // --random-inputs
  int64_t batch = 1;
  int64_t topK = 0;  // 0: no --top-k
  std::optional<std::vector<std::string>> labels;
  std::string labelsPath;
};

std::vector<Port> portsOf(const std::vector<Value*>& values);

// An artifact descriptor's I/O (checked by the loader: known dtypes, only
// dim 0 may be the batch, whose marker is the IR's kBatch).
Interface artifactInterface(const kiln_artifact& d);

std::string milliseconds(double ms);

// One file DIR/<name>.npy per port, distinct even when two names sanitize
// alike; names are sanitized so they never escape DIR.
std::vector<fs::path> outputPaths(const fs::path& dir, const std::vector<Port>& ports);

// The batch of a run: dim 0 of the inputs with a symbolic batch, which must
// agree; 1 when no input has one.
int64_t batchOf(const std::vector<Port>& inputs, const std::vector<Tensor>& tensors);

// Reads or makes the inputs and checks --top-k, all before running; random
// inputs are saved to DIR/inputs.
std::vector<Tensor> prepareInputs(const Interface& model, const RunRequest& request);

// Writes the outputs, lists them and prints --top-k.
void finishRun(const Interface& model, const std::vector<Tensor>& outputs, const RunRequest& request);

// The run options every running command takes; throws UsageError.
RunRequest parseRunRequest(const ParsedArgs& args);

}  // namespace kiln::cli
