#include "tools/run_io.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <span>

#include "tools/model_files.h"
#include "tools/npy.h"

namespace kiln::cli {

namespace {

// Maps a value name to a safe file name stem: ONNX names may contain '/',
// ':' and the like, and must never escape DIR.
std::string fileStem(const std::string& name) {
  std::string stem;
  for (char c : name) {
    bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                c == '-' || c == '_';
    stem += safe ? c : '_';
  }
  // Leading dots would make hidden files (or "." and "..").
  if (stem.empty() || stem[0] == '.') stem.insert(0, "_");
  return stem;
}

// Checks a file's tensor against a model input, naming both in the error,
// and the first mismatching dim when only dims differ.
void checkInput(const Port& input, const Tensor& t, const std::string& file) {
  const Shape& want = input.type.shape;
  if (t.dtype() != input.type.dtype || t.shape().rank() != want.rank())
    throw Error("input '" + input.name + "' expects " + input.type.str() + ", the file holds " + t.type().str(),
                ErrorSite{file, "", ""});
  for (size_t d = 0; d < want.rank(); ++d)
    if (want[d] != kBatch && want[d] != t.shape()[d])
      throw Error("input '" + input.name + "': dim " + std::to_string(d) + " is " + std::to_string(t.shape()[d]) +
                      ", expected " + std::to_string(want[d]) + " (the model takes " + input.type.str() + ")",
                  ErrorSite{file, "", ""});
}

std::vector<Tensor> loadInputs(const std::vector<Port>& ports, const std::vector<std::string>& specs) {
  std::map<std::string, std::string> files;  // input name -> file
  for (const std::string& spec : specs) {
    size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      throw UsageError("malformed --input '" + spec + "': expected NAME=FILE.npy");
    std::string name = spec.substr(0, eq);
    if (std::none_of(ports.begin(), ports.end(), [&](const Port& p) { return p.name == name; }))
      throw UsageError("the model has no input '" + name + "'");
    if (!files.emplace(name, spec.substr(eq + 1)).second) throw UsageError("input '" + name + "' given twice");
  }
  std::vector<Tensor> inputs;
  for (const Port& p : ports) {
    auto it = files.find(p.name);
    if (it == files.end())
      throw UsageError("input '" + p.name + "' (" + p.type.str() + ") not given; pass --input " + p.name +
                       "=FILE.npy");
    Tensor t = npy::readFile(it->second);
    checkInput(p, t, it->second);
    inputs.push_back(std::move(t));
  }
  batchOf(ports, inputs);  // fails early, for both engines, on inconsistent batches
  return inputs;
}

// Uniform [-1, 1) floats from the standard-specified mt19937_64, built from
// the top 24 bits so every platform and library yields the same values
// (std::uniform_real_distribution's algorithm is implementation-defined).
std::vector<Tensor> randomInputs(const std::vector<Port>& ports, uint64_t seed, int64_t batch) {
  std::mt19937_64 rng(seed);
  std::vector<Tensor> inputs;
  for (const Port& p : ports) {
    if (p.type.dtype != DType::F32)
      throw UsageError("--random-inputs makes f32 inputs only, but input '" + p.name + "' is " + p.type.str() +
                       "; pass the inputs with --input");
    Tensor t(DType::F32, p.type.shape.withBatch(batch));
    float* data = t.data<float>();
    for (int64_t i = 0; i < t.numElements(); ++i) data[i] = static_cast<float>(rng() >> 40) * 0x1p-23f - 1.0f;
    inputs.push_back(std::move(t));
  }
  return inputs;
}

// The outputs --top-k ranks: f32 class scores per sample.
bool isClassifierOutput(const Port& p) { return p.type.dtype == DType::F32 && p.type.shape.rank() == 2; }

// Fails before running when --top-k has nothing to rank or the labels do not
// name exactly the classes of every classifier output.
void checkTopKFits(const std::vector<Port>& outputs, const RunRequest& request) {
  if (std::none_of(outputs.begin(), outputs.end(), isClassifierOutput)) {
    std::string list;
    for (const Port& p : outputs) list += (list.empty() ? "" : ", ") + p.name + ": " + p.type.str();
    throw UsageError("--top-k needs an f32 output of shape [N, C]; the model's outputs are " + list);
  }
  if (!request.labels) return;
  for (const Port& p : outputs) {
    if (!isClassifierOutput(p)) continue;
    int64_t classes = p.type.shape[1];
    if (static_cast<int64_t>(request.labels->size()) != classes)
      throw Error(std::to_string(request.labels->size()) + " labels, but output '" + p.name + "' has " +
                      std::to_string(classes) + " classes",
                  ErrorSite{request.labelsPath, "", ""});
  }
}

// Highest score first, ties by class index; NaN ranks last so a broken
// output cannot break the ordering.
void printTopK(const std::string& name, const Tensor& scores, int64_t k, const std::vector<std::string>* labels) {
  int64_t samples = scores.shape()[0], classes = scores.shape()[1];
  int64_t shown = std::min(k, classes);
  std::vector<std::string> names(static_cast<size_t>(classes));
  size_t width = 0;
  for (int64_t c = 0; c < classes; ++c) {
    names[c] = labels ? (*labels)[c] : std::to_string(c);
    width = std::max(width, names[c].size());
  }
  std::cout << "top " << shown << " of '" << name << "' (" << classes << " classes):\n";
  std::span<const float> all = scores.values<float>();
  std::vector<int64_t> order(static_cast<size_t>(classes));
  for (int64_t s = 0; s < samples; ++s) {
    std::span<const float> row = all.subspan(static_cast<size_t>(s * classes), static_cast<size_t>(classes));
    auto key = [&](int64_t c) { return std::isnan(row[c]) ? -INFINITY : row[c]; };
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + shown, order.end(), [&](int64_t a, int64_t b) {
      return key(a) != key(b) ? key(a) > key(b) : a < b;
    });
    std::cout << "  sample " << s << ":\n";
    for (int64_t r = 0; r < shown; ++r) {
      char score[32];
      std::snprintf(score, sizeof score, "%.6g", row[order[r]]);
      std::string label = names[order[r]];
      label.resize(width, ' ');
      std::cout << "    " << r + 1 << ". " << label << "  " << score << "\n";
    }
  }
}

}  // namespace

std::vector<Port> portsOf(const std::vector<Value*>& values) {
  std::vector<Port> ports;
  for (const Value* v : values) ports.push_back({v->name, v->type});
  return ports;
}

std::string milliseconds(double ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f ms", ms);
  return text;
}

std::vector<fs::path> outputPaths(const fs::path& dir, const std::vector<Port>& ports) {
  std::vector<fs::path> paths;
  std::set<std::string> taken;
  for (const Port& p : ports) {
    std::string stem = fileStem(p.name);
    for (int suffix = 2; !taken.insert(stem).second; ++suffix) stem = fileStem(p.name) + "-" + std::to_string(suffix);
    paths.push_back(dir / (stem + ".npy"));
  }
  return paths;
}

int64_t batchOf(const std::vector<Port>& inputs, const std::vector<Tensor>& tensors) {
  std::optional<size_t> first;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].type.shape.hasSymbolicBatch()) continue;
    if (!first) {
      first = i;
    } else if (tensors[i].shape()[0] != tensors[*first].shape()[0]) {
      throw Error("input '" + inputs[i].name + "': dim 0 (the batch) is " + std::to_string(tensors[i].shape()[0]) +
                      ", but input '" + inputs[*first].name + "' has batch " +
                      std::to_string(tensors[*first].shape()[0]));
    }
  }
  return first ? tensors[*first].shape()[0] : 1;
}

std::vector<Tensor> prepareInputs(const Interface& model, const RunRequest& request) {
  std::vector<Tensor> inputs = request.seed ? randomInputs(model.inputs, *request.seed, request.batch)
                                            : loadInputs(model.inputs, request.inputSpecs);
  if (request.topK) checkTopKFits(model.outputs, request);
  fs::create_directories(request.outputDir);
  if (request.seed) {
    fs::create_directories(request.outputDir / "inputs");
    std::vector<fs::path> paths = outputPaths(request.outputDir / "inputs", model.inputs);
    for (size_t i = 0; i < inputs.size(); ++i) npy::writeFile(paths[i].string(), inputs[i]);
  }
  return inputs;
}

void finishRun(const Interface& model, const std::vector<Tensor>& outputs, const RunRequest& request) {
  std::vector<fs::path> paths = outputPaths(request.outputDir, model.outputs);
  for (size_t i = 0; i < outputs.size(); ++i) npy::writeFile(paths[i].string(), outputs[i]);
  if (request.seed)
    std::cout << "random inputs (seed " << *request.seed << ", batch " << request.batch << ") written to "
              << (request.outputDir / "inputs").string() << "\n";
  std::cout << "outputs (" << outputs.size() << "):\n";
  for (size_t i = 0; i < outputs.size(); ++i)
    std::cout << "  " << model.outputs[i].name << ": " << outputs[i].type().str() << " -> " << paths[i].string()
              << "\n";
  if (!request.topK) return;
  const std::vector<std::string>* labels = request.labels ? &*request.labels : nullptr;
  for (size_t i = 0; i < outputs.size(); ++i)
    if (isClassifierOutput(model.outputs[i])) printTopK(model.outputs[i].name, outputs[i], request.topK, labels);
}

Interface artifactInterface(const kiln_artifact& d) {
  static_assert(KILN_DIM_BATCH == kBatch);
  auto ports = [](const kiln_tensor_info* infos, int32_t count) {
    static constexpr DType kDTypes[] = {DType::F32, DType::I64, DType::I32, DType::Bool};  // by kiln_dtype - 1
    std::vector<Port> list;
    for (int32_t i = 0; i < count; ++i) {
      const kiln_tensor_info& t = infos[i];
      TensorType type{kDTypes[t.dtype - KILN_F32], Shape(std::vector<int64_t>(t.dims, t.dims + t.rank))};
      list.push_back({t.name, std::move(type)});
    }
    return list;
  };
  return {ports(d.inputs, d.num_inputs), ports(d.outputs, d.num_outputs)};
}

RunRequest parseRunRequest(const ParsedArgs& args) {
  RunRequest request;
  request.modelPath = args.positionals[0];
  std::optional<std::string> outputDir = args.value("--output-dir");
  if (!outputDir) throw UsageError("--output-dir DIR is required");
  request.outputDir = *outputDir;
  std::optional<std::string> seedText = args.value("--random-inputs");
  request.inputSpecs = args.values("--input");
  if (seedText && args.has("--input")) throw UsageError("--random-inputs and --input exclude each other");
  if (!seedText && !args.has("--input")) throw UsageError("give the inputs with --input NAME=FILE.npy or use --random-inputs SEED");
  if (args.has("--batch") && !seedText)
    throw UsageError("--batch applies to --random-inputs only; with --input the batch comes from the files");
  if (seedText) request.seed = static_cast<uint64_t>(parseInteger("--random-inputs", *seedText, 0, INT64_MAX));
  if (auto batch = args.value("--batch")) request.batch = parseInteger("--batch", *batch, 1, INT32_MAX);
  if (auto topK = args.value("--top-k")) request.topK = parseInteger("--top-k", *topK, 1, INT32_MAX);
  if (auto labelsPath = args.value("--labels")) {
    request.labelsPath = *labelsPath;
    request.labels = readLabels(*labelsPath);
  }
  return request;
}

}  // namespace kiln::cli
