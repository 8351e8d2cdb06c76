// `kiln run`: runs a model on .npy inputs (or seeded random ones) and writes
// every output as DIR/<name>.npy, optionally printing the top classes of
// classifier outputs. An .onnx model is optimized and run by the reference
// interpreter; a compiled artifact (`kiln compile`, a .so) runs its own code.
// Both engines share the input checks, the random inputs, the output files
// and --top-k, so their results are directly comparable.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <set>

#include "compiler/interp/interpreter.h"
#include "frontends/onnx/onnx_importer.h"
#include "runtime/src/artifact_loader.h"
#include "tools/cli_common.h"
#include "tools/model_files.h"
#include "tools/npy.h"
#include "tools/pipeline_args.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kHelpHead =
    "usage: kiln run MODEL --input NAME=FILE.npy ... --output-dir DIR\n"
    "       kiln run MODEL --random-inputs SEED [--batch N] --output-dir DIR\n"
    "       ... [--top-k K [--labels FILE]]\n"
    "       .onnx only: [--engine interp] [-O0|-O1|-O2] [--passes A,B,...]\n"
    "       ... [--print-after PASS]... [--print-after-all] [--dump-dot DIR] [--verify-each]\n"
    "\n"
    "MODEL is an ONNX model or an artifact compiled by 'kiln compile' (a file\n"
    "named *.so or any ELF shared object). An ONNX model is optimized (-O2\n"
    "unless told otherwise; -O0 runs the graph as imported) and run by the\n"
    "reference interpreter; an artifact runs its compiled code, optimized when\n"
    "it was compiled. Each output goes to DIR/<output name>.npy (characters\n"
    "other than letters, digits, '.', '-' and '_' become '_'). Optimization\n"
    "keeps the output names.\n"
    "\n"
    "options:\n"
    "  --input NAME=FILE.npy  the value of graph input NAME; give every input once.\n"
    "                         f32 inputs take <f4 files, i64 inputs <i8 files;\n"
    "                         the batch N comes from the files' leading dim\n"
    "  --random-inputs SEED   instead of --input: uniform [-1, 1) f32 inputs from\n"
    "                         SEED (reproducible, the same for both engines); they\n"
    "                         are also written to DIR/inputs/<input name>.npy\n"
    "  --batch N              the symbolic batch for --random-inputs (default 1)\n"
    "  --output-dir DIR       where outputs go (created if missing)\n"
    "  --top-k K              for each f32 output of shape [N, C] (a classifier),\n"
    "                         print the K highest-scoring classes of each sample\n"
    "  --labels FILE          with --top-k: class names, one per line (line i names\n"
    "                         class i); else classes print as indices\n"
    "  --engine ENGINE        .onnx models: interp (the reference interpreter; the\n"
    "                         default)\n";

constexpr std::string_view kHelpTail =
    "  -h, --help             show this help\n"
    "\n"
    "exit status:\n"
    "  0  success\n"
    "  1  unusable model or data: unreadable or malformed model, artifact or\n"
    "     .npy file, an input file whose dtype or shape does not fit the model,\n"
    "     inputs disagreeing on the batch, a labels file whose line count is not\n"
    "     the class count C\n"
    "  2  bad usage: unknown option or pass, bad -O level, malformed NAME=FILE,\n"
    "     an input NAME the model does not have, an input given twice or left\n"
    "     out, --random-inputs for a model with non-f32 inputs, --top-k for a\n"
    "     model without [N, C] outputs, optimizer flags or --engine for an\n"
    "     artifact\n";

// A model input or output as both engines describe it: the imported graph's
// values, or an artifact's descriptor entries.
struct Port {
  std::string name;
  TensorType type;
};

struct Interface {
  std::vector<Port> inputs, outputs;
};

std::vector<Port> portsOf(const std::vector<Value*>& values) {
  std::vector<Port> ports;
  for (const Value* v : values) ports.push_back({v->name, v->type});
  return ports;
}

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

std::string milliseconds(double ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f ms", ms);
  return text;
}

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

// One file per value, distinct even when two names sanitize alike.
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

// The batch of a run: dim 0 of the inputs with a symbolic batch, which must
// agree; 1 when no input has one.
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

// Reads or makes the inputs and checks --top-k, all before running; random
// inputs are saved to DIR/inputs.
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

// Writes the outputs, lists them and prints --top-k.
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

int runInterpreter(const ParsedArgs& args, const RunRequest& request) {
  std::string engine = args.value("--engine").value_or("interp");
  if (engine != "interp") throw UsageError("unknown engine '" + engine + "' (available: interp)");
  PipelineRequest pipeline = parsePipelineArgs(args, kGraphLevels);

  Graph g = onnx_import::importModelFile(request.modelPath);
  Interface model{portsOf(g.inputs()), portsOf(g.outputs())};
  std::vector<Tensor> inputs = prepareInputs(model, request);

  size_t importedNodes = g.numNodes();
  std::vector<PassRun> runs = runPipeline(g, pipeline.passes, pipeline.options);
  double optimizeMs = 0;
  for (const PassRun& run : runs) optimizeMs += run.milliseconds;

  auto start = std::chrono::steady_clock::now();
  std::vector<Tensor> outputs = interpret(g, inputs);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  std::cout << "optimized with " << pipeline.label << " (" << runs.size() << " passes): " << importedNodes << " -> "
            << g.numNodes() << " nodes in " << milliseconds(optimizeMs) << "\n";
  std::cout << "ran " << request.modelPath << " with " << engine << " in " << milliseconds(ms) << "\n";
  finishRun(model, outputs, request);
  return kExitOk;
}

// The descriptor's I/O, checked by the loader (known dtypes,
// only dim 0 may be the batch), whose marker is the IR's kBatch.
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

int runArtifact(const ParsedArgs& args, const RunRequest& request) {
  // Silently ignoring these would suggest they changed the run.
  if (std::string flag = firstPipelineOption(args); !flag.empty())
    throw UsageError(flag + " applies to .onnx models; " + request.modelPath +
                     " is a compiled artifact, optimized when it was compiled");
  if (args.has("--engine"))
    throw UsageError("--engine applies to .onnx models; " + request.modelPath + " is a compiled artifact");

  std::shared_ptr<runtime::Artifact> artifact = runtime::Artifact::open(request.modelPath);
  const kiln_artifact& d = artifact->descriptor();
  Interface model = artifactInterface(d);
  std::vector<Tensor> inputs = prepareInputs(model, request);
  int64_t batch = batchOf(model.inputs, inputs);

  std::vector<const void*> in;
  for (const Tensor& t : inputs) in.push_back(t.rawData());
  std::vector<Tensor> outputs;
  std::vector<void*> out;
  for (const Port& p : model.outputs) {
    outputs.emplace_back(p.type.dtype, p.type.shape.withBatch(batch));
    out.push_back(outputs.back().rawData());
  }
  // aligned_alloc wants a multiple of the alignment, and a workspace of 0
  // bytes still needs a valid pointer.
  uint64_t workspaceBytes = (std::max<uint64_t>(artifact->workspaceBytes(batch), 1) + 63) / 64 * 64;
  std::unique_ptr<void, decltype(&std::free)> workspace(std::aligned_alloc(64, workspaceBytes), &std::free);
  if (!workspace) throw Error("cannot allocate the " + std::to_string(workspaceBytes) + "-byte workspace");

  auto start = std::chrono::steady_clock::now();
  artifact->run(batch, in.data(), out.data(), workspace.get());
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  std::cout << "ran " << request.modelPath << " (compiled for " << d.target_triple << ", " << d.cpu_name << ") in "
            << milliseconds(ms) << "\n";
  finishRun(model, outputs, request);
  return kExitOk;
}

int runRun(const ParsedArgs& args) {
  if (args.positionals.size() != 1)
    throw UsageError("run takes one MODEL, given " + std::to_string(args.positionals.size()) + " arguments");
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
  std::optional<std::string> topKText = args.value("--top-k");
  std::optional<std::string> labelsPath = args.value("--labels");
  if (labelsPath && !topKText) throw UsageError("--labels applies to --top-k only");
  if (topKText) request.topK = parseInteger("--top-k", *topKText, 1, INT32_MAX);
  if (labelsPath) {
    request.labelsPath = *labelsPath;
    request.labels = readLabels(*labelsPath);
  }
  return isCompiledArtifact(request.modelPath) ? runArtifact(args, request) : runInterpreter(args, request);
}

}  // namespace

const Command& runCommand() {
  static const std::string help = std::string(kHelpHead) + pipelineOptionsHelp(kGraphLevels) + std::string(kHelpTail);
  static const Command command = [] {
    Command c{
        "run",
        "run a model or compiled artifact on .npy inputs",
        help,
        {{"--input", true, true},
         {"--output-dir", true, false},
         {"--engine", true, false},
         {"--random-inputs", true, false},
         {"--batch", true, false},
         {"--top-k", true, false},
         {"--labels", true, false}},
        runRun,
    };
    c.options.insert(c.options.end(), pipelineOptionSpecs().begin(), pipelineOptionSpecs().end());
    return c;
  }();
  return command;
}

}  // namespace kiln::cli
