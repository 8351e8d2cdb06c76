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
#include "tools/cli_common.h"
#include "tools/model_files.h"
#include "tools/npy.h"
#include "tools/pipeline_args.h"
#include "tools/predict.h"
#include "tools/run_io.h"

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

int runArtifact(const ParsedArgs& args, const RunRequest& request) {
  // Silently ignoring these would suggest they changed the run.
  if (std::string flag = firstPipelineOption(args); !flag.empty())
    throw UsageError(flag + " applies to .onnx models; " + request.modelPath +
                     " is a compiled artifact, optimized when it was compiled");
  if (args.has("--engine"))
    throw UsageError("--engine applies to .onnx models; " + request.modelPath + " is a compiled artifact");

  return runCompiledArtifact(request, {});
}

int runRun(const ParsedArgs& args) {
  if (args.positionals.size() != 1)
    throw UsageError("run takes one MODEL, given " + std::to_string(args.positionals.size()) + " arguments");
  if (args.has("--labels") && !args.has("--top-k")) throw UsageError("--labels applies to --top-k only");
  RunRequest request = parseRunRequest(args);
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
