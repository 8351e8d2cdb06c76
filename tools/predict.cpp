// `kiln predict`: runs a compiled artifact (`kiln compile`, also a whole
// ensemble compiled with --ensemble) or an ensemble manifest of compiled
// members (`kiln ensemble create`) through the runtime's C API, exactly as
// an app embedding the runtime would, and prints the top classes.
#include "tools/predict.h"

#include <chrono>
#include <iostream>

#include "kiln/kiln.hpp"
#include "tools/model_files.h"

namespace kiln::cli {
namespace {

constexpr std::string_view kHelp =
    "usage: kiln predict MODEL.so|ENSEMBLE.json --input NAME=FILE.npy ... --output-dir DIR\n"
    "       kiln predict MODEL.so|ENSEMBLE.json --random-inputs SEED [--batch N] --output-dir DIR\n"
    "       ... [--members] [--top-k K] [--labels FILE] [--threads N] [--check-finite]\n"
    "\n"
    "Runs a compiled artifact or a kiln-ensemble manifest (JSON) whose members\n"
    "are compiled artifacts, with the kiln runtime: the loader's checks (ELF,\n"
    "ABI, weights hash, CPU features), the shared thread pool, the ensemble's\n"
    "weighted combination. Outputs go to DIR/<output name>.npy; an ensemble's\n"
    "combined prediction to DIR/ensemble.npy. For every classifier output\n"
    "(f32 [N, C]) the top classes are printed, named by --labels, else by the\n"
    "labels the artifact or manifest carries.\n"
    "\n"
    "options:\n"
    "  --input NAME=FILE.npy  the value of input NAME; give every input once\n"
    "  --random-inputs SEED   instead of --input: uniform [-1, 1) f32 inputs,\n"
    "                         also written to DIR/inputs/<input name>.npy\n"
    "  --batch N              the batch for --random-inputs (default 1)\n"
    "  --output-dir DIR       where outputs go (created if missing)\n"
    "  --members              ensembles: also write each member's own output as\n"
    "                         DIR/member<K>.npy and print its top classes\n"
    "  --top-k K              classes printed per sample (default 3)\n"
    "  --labels FILE          class names, one per line\n"
    "  --threads N            threads of the runtime's pool, the calling one\n"
    "                         included (default: KILN_NUM_THREADS, else all CPUs)\n"
    "  --check-finite         fail naming the first NaN/Inf output value\n"
    "  -h, --help             show this help\n"
    "\n"
    "exit status:\n"
    "  0  success\n"
    "  1  unusable artifact, manifest or data: refused by the loader (not an\n"
    "     artifact, truncated, other ABI, CPU features this host lacks),\n"
    "     members that disagree, .npy files that do not fit, non-finite\n"
    "     outputs with --check-finite\n"
    "  2  bad usage: unknown option, malformed NAME=FILE, an input the model\n"
    "     does not have or left out, --members for a single artifact\n";

kiln_dtype abiDType(DType dtype) {
  switch (dtype) {
    case DType::F32: return KILN_F32;
    case DType::I64: return KILN_I64;
    case DType::I32: return KILN_I32;
    case DType::Bool: return KILN_BOOL;
  }
  throw Error("a tensor dtype the runtime does not know");
}

// Views of caller-owned tensors as the C API's kiln_tensor; `dims` keeps the
// dimension arrays alive.
struct TensorViews {
  std::vector<std::vector<int64_t>> dims;
  std::vector<kiln_tensor> views;

  explicit TensorViews(std::vector<Tensor>& tensors) {
    dims.reserve(tensors.size());
    for (Tensor& t : tensors) {
      dims.push_back(t.shape().dims);
      views.push_back({abiDType(t.dtype()), static_cast<int32_t>(dims.back().size()), dims.back().data(),
                       t.rawData()});
    }
  }
};

std::vector<Tensor> allocateOutputs(const std::vector<Port>& ports, int64_t batch) {
  std::vector<Tensor> outputs;
  for (const Port& p : ports) outputs.emplace_back(p.type.dtype, p.type.shape.withBatch(batch));
  return outputs;
}

kiln::ContextOptions contextOptions(const RuntimeSettings& settings, int64_t batch) {
  return {settings.checkFinite ? static_cast<uint32_t>(KILN_CONTEXT_CHECK_NON_FINITE) : 0u, batch};
}

// Labels the model or manifest carries, unless --labels overrides them.
void adoptLabels(RunRequest& request, std::vector<std::string> carried) {
  if (request.labels || carried.empty()) return;
  request.labels = std::move(carried);
  request.labelsPath = request.modelPath;
}

// Classifiers get their top classes printed unless --top-k says how many.
void defaultTopK(RunRequest& request, const Interface& model, const RuntimeSettings& settings) {
  if (request.topK || !settings.topClassesByDefault) return;
  for (const Port& p : model.outputs)
    if (p.type.dtype == DType::F32 && p.type.shape.rank() == 2) request.topK = 3;
}

// Labels, default --top-k, inputs read and checked, outputs allocated for
// their batch: everything before a run, for artifacts and ensembles alike.
struct PreparedRun {
  std::vector<Tensor> inputs, outputs;
  int64_t batch;
};

PreparedRun prepareRun(RunRequest& request, const Interface& model, std::vector<std::string> carriedLabels,
                       const RuntimeSettings& settings) {
  adoptLabels(request, std::move(carriedLabels));
  defaultTopK(request, model, settings);
  PreparedRun run;
  run.inputs = prepareInputs(model, request);
  run.batch = batchOf(model.inputs, run.inputs);
  run.outputs = allocateOutputs(model.outputs, run.batch);
  return run;
}

// Wall milliseconds of `body`.
template <class Body>
double timed(Body body) {
  auto start = std::chrono::steady_clock::now();
  body();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

int runEnsemble(RunRequest request, const RuntimeSettings& settings, bool withMembers) {
  kiln::Ensemble ensemble = kiln::Ensemble::open(request.modelPath);
  Interface model = artifactInterface(ensemble.member(0).model.descriptor());
  Port member0 = model.outputs.at(0);  // the loader checked: one f32 [N, C] output, the same for all members
  model.outputs = {{"ensemble", member0.type}};
  if (withMembers)
    for (int32_t k = 0; k < ensemble.numMembers(); ++k)
      model.outputs.push_back({"member" + std::to_string(k), member0.type});
  PreparedRun run = prepareRun(request, model, ensemble.labels(), settings);

  kiln::EnsembleContext context(ensemble, contextOptions(settings, run.batch));
  TensorViews in(run.inputs), out(run.outputs);
  double ms = timed([&] { context.run(in.views, out.views[0], withMembers ? &out.views[1] : nullptr); });

  static constexpr const char* kRuleNames[] = {"mean", "logits", "vote"};  // by kiln_ensemble_rule
  std::cout << "ran ensemble " << request.modelPath << " (" << ensemble.numMembers() << " members, rule "
            << kRuleNames[ensemble.rule()] << ", " << kiln::numThreads() << " threads) in " << milliseconds(ms)
            << "\n";
  for (int32_t k = 0; k < ensemble.numMembers(); ++k) {
    kiln::Ensemble::Member m = ensemble.member(k);
    std::cout << "  member" << k << ": weight " << m.weight << ", " << m.model.descriptor().model_name << "\n";
  }
  finishRun(model, run.outputs, request);
  return kExitOk;
}

bool isManifest(const std::string& path) { return std::filesystem::path(path).extension() == ".json"; }

int runPredict(const ParsedArgs& args) {
  if (args.positionals.size() != 1)
    throw UsageError("predict takes one MODEL.so or ENSEMBLE.json, given " + std::to_string(args.positionals.size()) +
                     " arguments");
  RunRequest request = parseRunRequest(args);
  // The shared pool's size is fixed once it starts, so set it before loading.
  if (auto threads = args.value("--threads"))
    kiln::setNumThreads(static_cast<int32_t>(parseInteger("--threads", *threads, 1, 1024)));
  RuntimeSettings settings;
  settings.checkFinite = args.has("--check-finite");
  settings.topClassesByDefault = true;
  if (isManifest(request.modelPath)) return runEnsemble(request, settings, args.has("--members"));
  if (args.has("--members"))
    throw UsageError("--members applies to ensemble manifests; " + request.modelPath + " is one artifact");
  if (!isCompiledArtifact(request.modelPath))
    throw UsageError(request.modelPath +
                     " is neither a compiled artifact (.so) nor an ensemble manifest (.json); compile ONNX models "
                     "with 'kiln compile' first");
  return runCompiledArtifact(request, settings);
}

}  // namespace

int runCompiledArtifact(RunRequest request, const RuntimeSettings& settings) {
  kiln::Model artifact = kiln::Model::open(request.modelPath);
  const kiln_artifact& d = artifact.descriptor();
  Interface model = artifactInterface(d);
  PreparedRun run = prepareRun(request, model, artifact.labels(), settings);

  kiln::Context context(artifact, contextOptions(settings, run.batch));
  TensorViews in(run.inputs), out(run.outputs);
  double ms = timed([&] { context.run(in.views, out.views); });

  std::cout << "ran " << request.modelPath << " (compiled for " << d.target_triple << ", " << d.cpu_name << ", "
            << kiln::numThreads() << " threads) in " << milliseconds(ms) << "\n";
  finishRun(model, run.outputs, request);
  return kExitOk;
}

const Command& predictCommand() {
  static const Command command{
      "predict",
      "run a compiled artifact or ensemble with the runtime and print top classes",
      kHelp,
      {{"--input", true, true},
       {"--output-dir", true, false},
       {"--random-inputs", true, false},
       {"--batch", true, false},
       {"--members", false, false},
       {"--top-k", true, false},
       {"--labels", true, false},
       {"--threads", true, false},
       {"--check-finite", false, false}},
      runPredict,
  };
  return command;
}

}  // namespace kiln::cli
