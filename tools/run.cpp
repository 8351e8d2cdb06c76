// `kiln run`: optimizes a model, runs it on .npy inputs (or seeded random
// ones) with an engine, writes every graph output as DIR/<name>.npy and can
// print the top classes of classifier outputs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "compiler/interp/interpreter.h"
#include "frontends/onnx/onnx_importer.h"
#include "tools/cli_common.h"
#include "tools/npy.h"
#include "tools/pipeline_args.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kHelpHead =
    "usage: kiln run MODEL.onnx --input NAME=FILE.npy ... --output-dir DIR [--engine interp]\n"
    "       kiln run MODEL.onnx --random-inputs SEED [--batch N] --output-dir DIR [--engine interp]\n"
    "       ... [-O0|-O1|-O2] [--passes A,B,...] [--print-after PASS]... [--print-after-all]\n"
    "       ... [--dump-dot DIR] [--verify-each] [--top-k K [--labels FILE]]\n"
    "\n"
    "Optimizes MODEL.onnx (-O2 unless told otherwise; -O0 runs the graph as\n"
    "imported), runs it and writes each graph output to DIR/<output name>.npy\n"
    "(characters other than letters, digits, '.', '-' and '_' become '_').\n"
    "Optimization keeps the output names.\n"
    "\n"
    "options:\n"
    "  --input NAME=FILE.npy  the value of graph input NAME; give every input once.\n"
    "                         f32 inputs take <f4 files, i64 inputs <i8 files;\n"
    "                         the batch N comes from the files' leading dim\n"
    "  --random-inputs SEED   instead of --input: uniform [-1, 1) f32 inputs from\n"
    "                         SEED (reproducible); they are also written to\n"
    "                         DIR/inputs/<input name>.npy\n"
    "  --batch N              the symbolic batch for --random-inputs (default 1)\n"
    "  --output-dir DIR       where outputs go (created if missing)\n"
    "  --engine ENGINE        interp (the reference interpreter; the default)\n"
    "  --top-k K              for each f32 output of shape [N, C] (a classifier),\n"
    "                         print the K highest-scoring classes of each sample\n"
    "  --labels FILE          with --top-k: class names, one per line (line i names\n"
    "                         class i); else classes print as indices\n";

constexpr std::string_view kHelpTail =
    "  -h, --help             show this help\n"
    "\n"
    "exit status:\n"
    "  0  success\n"
    "  1  unusable model or data: unreadable or malformed model or .npy file,\n"
    "     an input file whose dtype or shape does not fit the model, a labels\n"
    "     file whose line count is not the class count C\n"
    "  2  bad usage: unknown option or pass, bad -O level, malformed NAME=FILE,\n"
    "     an input NAME the model does not have, an input given twice or left\n"
    "     out, --random-inputs for a model with non-f32 inputs, --top-k for a\n"
    "     model without [N, C] outputs\n";

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
std::vector<fs::path> outputPaths(const fs::path& dir, const std::vector<Value*>& values) {
  std::vector<fs::path> paths;
  std::set<std::string> taken;
  for (const Value* v : values) {
    std::string stem = fileStem(v->name);
    for (int suffix = 2; !taken.insert(stem).second; ++suffix) stem = fileStem(v->name) + "-" + std::to_string(suffix);
    paths.push_back(dir / (stem + ".npy"));
  }
  return paths;
}

// Checks a file's tensor against a graph input, naming both in the error.
void checkInput(const Value& input, const Tensor& t, const std::string& file) {
  const Shape& want = input.type.shape;
  bool fits = t.dtype() == input.type.dtype && t.shape().rank() == want.rank();
  for (size_t d = 0; fits && d < want.rank(); ++d) fits = want[d] == kBatch || want[d] == t.shape()[d];
  if (!fits)
    throw Error("input '" + input.name + "' expects " + input.type.str() + ", the file holds " + t.type().str(),
                ErrorSite{file, "", ""});
}

std::vector<Tensor> loadInputs(const Graph& g, const std::vector<std::string>& specs) {
  std::map<std::string, std::string> files;  // input name -> file
  for (const std::string& spec : specs) {
    size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      throw UsageError("malformed --input '" + spec + "': expected NAME=FILE.npy");
    std::string name = spec.substr(0, eq);
    if (std::none_of(g.inputs().begin(), g.inputs().end(), [&](const Value* v) { return v->name == name; }))
      throw UsageError("the model has no input '" + name + "'");
    if (!files.emplace(name, spec.substr(eq + 1)).second) throw UsageError("input '" + name + "' given twice");
  }
  std::vector<Tensor> inputs;
  for (const Value* v : g.inputs()) {
    auto it = files.find(v->name);
    if (it == files.end())
      throw UsageError("input '" + v->name + "' (" + v->type.str() + ") not given; pass --input " + v->name +
                       "=FILE.npy");
    Tensor t = npy::readFile(it->second);
    checkInput(*v, t, it->second);
    inputs.push_back(std::move(t));
  }
  return inputs;
}

// Uniform [-1, 1) floats from the standard-specified mt19937_64, built from
// the top 24 bits so every platform and library yields the same values
// (std::uniform_real_distribution's algorithm is implementation-defined).
std::vector<Tensor> randomInputs(const Graph& g, uint64_t seed, int64_t batch) {
  std::mt19937_64 rng(seed);
  std::vector<Tensor> inputs;
  for (const Value* v : g.inputs()) {
    if (v->type.dtype != DType::F32)
      throw UsageError("--random-inputs makes f32 inputs only, but input '" + v->name + "' is " + v->type.str() +
                       "; pass the inputs with --input");
    Tensor t(DType::F32, v->type.shape.withBatch(batch));
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numElements(); ++i) p[i] = static_cast<float>(rng() >> 40) * 0x1p-23f - 1.0f;
    inputs.push_back(std::move(t));
  }
  return inputs;
}

// One label per line, "\r\n" endings too; the final newline ends the last
// label rather than starting an empty one.
std::vector<std::string> readLabels(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot open the labels file", ErrorSite{path, "", ""});
  std::vector<std::string> labels;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    labels.push_back(std::move(line));
  }
  return labels;
}

// The outputs --top-k ranks: f32 class scores per sample.
bool isClassifierOutput(const Value& v) { return v.type.dtype == DType::F32 && v.type.shape.rank() == 2; }

// Fails before running when --top-k has nothing to rank or the labels do not
// name exactly the classes of every classifier output.
void checkTopKFits(const Graph& g, const std::vector<std::string>* labels, const std::string& labelsPath) {
  if (std::none_of(g.outputs().begin(), g.outputs().end(), [](const Value* v) { return isClassifierOutput(*v); })) {
    std::string outputs;
    for (const Value* v : g.outputs()) outputs += (outputs.empty() ? "" : ", ") + v->name + ": " + v->type.str();
    throw UsageError("--top-k needs an f32 output of shape [N, C]; the model's outputs are " + outputs);
  }
  if (!labels) return;
  for (const Value* v : g.outputs()) {
    if (!isClassifierOutput(*v)) continue;
    int64_t classes = v->type.shape[1];
    if (static_cast<int64_t>(labels->size()) != classes)
      throw Error(std::to_string(labels->size()) + " labels, but output '" + v->name + "' has " +
                      std::to_string(classes) + " classes",
                  ErrorSite{labelsPath, "", ""});
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

int runRun(const ParsedArgs& args) {
  if (args.positionals.size() != 1)
    throw UsageError("run takes one MODEL.onnx, given " + std::to_string(args.positionals.size()) + " arguments");
  std::optional<std::string> outputDir = args.value("--output-dir");
  if (!outputDir) throw UsageError("--output-dir DIR is required");
  std::string engine = args.value("--engine").value_or("interp");
  if (engine != "interp") throw UsageError("unknown engine '" + engine + "' (available: interp)");
  std::optional<std::string> seedText = args.value("--random-inputs");
  if (seedText && args.has("--input")) throw UsageError("--random-inputs and --input exclude each other");
  if (!seedText && !args.has("--input")) throw UsageError("give the inputs with --input NAME=FILE.npy or use --random-inputs SEED");
  if (args.has("--batch") && !seedText)
    throw UsageError("--batch applies to --random-inputs only; with --input the batch comes from the files");
  // Parse every option before the (possibly slow) import.
  uint64_t seed = seedText ? static_cast<uint64_t>(parseInteger("--random-inputs", *seedText, 0, INT64_MAX)) : 0;
  int64_t batch = args.has("--batch") ? parseInteger("--batch", *args.value("--batch"), 1, INT32_MAX) : 1;
  PipelineRequest pipeline = parsePipelineArgs(args);
  std::optional<std::string> topKText = args.value("--top-k");
  std::optional<std::string> labelsPath = args.value("--labels");
  if (labelsPath && !topKText) throw UsageError("--labels applies to --top-k only");
  int64_t topK = topKText ? parseInteger("--top-k", *topKText, 1, INT32_MAX) : 0;
  std::optional<std::vector<std::string>> labels;
  if (labelsPath) labels = readLabels(*labelsPath);

  const std::string& modelPath = args.positionals[0];
  Graph g = onnx_import::importModelFile(modelPath);
  std::vector<Tensor> inputs = seedText ? randomInputs(g, seed, batch) : loadInputs(g, args.values("--input"));
  if (topK) checkTopKFits(g, labels ? &*labels : nullptr, labelsPath.value_or(""));

  fs::path dir(*outputDir);
  fs::create_directories(dir);
  if (seedText) {
    fs::create_directories(dir / "inputs");
    std::vector<fs::path> paths = outputPaths(dir / "inputs", g.inputs());
    for (size_t i = 0; i < inputs.size(); ++i) npy::writeFile(paths[i].string(), inputs[i]);
  }

  size_t importedNodes = g.numNodes();
  std::vector<PassRun> runs = runPipeline(g, pipeline.passes, pipeline.options);
  double optimizeMs = 0;
  for (const PassRun& run : runs) optimizeMs += run.milliseconds;

  auto start = std::chrono::steady_clock::now();
  std::vector<Tensor> outputs = interpret(g, inputs);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  std::vector<fs::path> paths = outputPaths(dir, g.outputs());
  for (size_t i = 0; i < outputs.size(); ++i) npy::writeFile(paths[i].string(), outputs[i]);

  char elapsed[32];
  std::snprintf(elapsed, sizeof elapsed, "%.3f ms", optimizeMs);
  std::cout << "optimized with " << pipeline.label << " (" << runs.size() << " passes): " << importedNodes << " -> "
            << g.numNodes() << " nodes in " << elapsed << "\n";
  std::snprintf(elapsed, sizeof elapsed, "%.3f ms", ms);
  std::cout << "ran " << modelPath << " with " << engine << " in " << elapsed << "\n";
  if (seedText)
    std::cout << "random inputs (seed " << seed << ", batch " << batch << ") written to " << (dir / "inputs").string()
              << "\n";
  std::cout << "outputs (" << outputs.size() << "):\n";
  for (size_t i = 0; i < outputs.size(); ++i)
    std::cout << "  " << g.outputs()[i]->name << ": " << outputs[i].type().str() << " -> " << paths[i].string() << "\n";
  if (topK) {
    for (size_t i = 0; i < outputs.size(); ++i) {
      const Value& output = *g.outputs()[i];
      if (isClassifierOutput(output)) printTopK(output.name, outputs[i], topK, labels ? &*labels : nullptr);
    }
  }
  return kExitOk;
}

}  // namespace

const Command& runCommand() {
  static const std::string help = std::string(kHelpHead) + pipelineOptionsHelp() + std::string(kHelpTail);
  static const Command command = [] {
    Command c{
        "run",
        "optimize and run a model on .npy inputs with the reference interpreter",
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
