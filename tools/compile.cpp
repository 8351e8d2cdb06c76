// `kiln compile`: imports an ONNX model (or every member of an ensemble
// manifest, merged into one graph), optimizes it and compiles it with the
// LLVM backend into a shared library, object file, assembly or LLVM IR, plus
// an optional C header. Reports the time of each phase on stderr.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>

#include "compiler/codegen/codegen.h"
#include "compiler/ensemble/ensemble.h"
#include "frontends/onnx/onnx_importer.h"
#include "runtime/src/ensemble_manifest.h"
#include "tools/cli_common.h"
#include "tools/model_files.h"
#include "tools/npy.h"
#include "tools/pipeline_args.h"

namespace kiln::cli {
namespace {

constexpr std::string_view kHelpHead =
    "usage: kiln compile MODEL.onnx -o OUT [--labels FILE] [OPTIONS]\n"
    "       kiln compile --ensemble ENS.json -o OUT [OPTIONS]\n"
    "OPTIONS: [--emit so|obj|asm|llvm] [--header FILE] [--target TRIPLE]\n"
    "         [--cpu NAME|native] [--features +F,-G,...] [--shape NAME=DIMS]...\n"
    "         [--name PREFIX] [-O0|-O1|-O2|-O3] [--passes A,B,...]\n"
    "         [--print-after PASS]... [--print-after-all] [--dump-dot DIR]\n"
    "         [--verify-each] [--profile] [--quiet]\n"
    "\n"
    "Compiles MODEL.onnx to native code. A shared library (.so) is loaded by\n"
    "'kiln run OUT.so' or the runtime; an object file (.o) links statically\n"
    "with the C header from --header. Both export one function,\n"
    "PREFIX_kiln_artifact_v1, returning the model's descriptor (see\n"
    "kiln/artifact.h). OUT and the header are written atomically: a failed\n"
    "compile leaves neither. The time of each phase goes to stderr: import,\n"
    "optimize (kiln's graph passes), then LLVM's: IR (emitting the kernels),\n"
    "LLVM passes, machine code and link.\n"
    "\n"
    "With --ensemble, the members of a kiln-ensemble manifest (ONNX models,\n"
    "see 'kiln ensemble') are compiled into ONE artifact: their graphs are\n"
    "merged side by side on shared inputs (member K's values renamed\n"
    "memberK/...), the manifest's rule combines their outputs, and the single\n"
    "output is ensemble_probabilities [N, C]:\n"
    "  mean    sum of w_i * p_i (softmax first when members output logits)\n"
    "  logits  softmax(sum of w_i * z_i), z_i = log(max(p_i, FLT_MIN)) when\n"
    "          members output probabilities\n"
    "  vote    per class, the summed weight of the members whose first\n"
    "          maximum it is\n"
    "with the weights normalized to sum to 1. Members of weight 0 are left out\n"
    "(noted on stderr). The members must take the same inputs and have one\n"
    "f32 [N, C] output each with the same C; the manifest's labels, if any,\n"
    "are recorded in the artifact.\n"
    "\n"
    "options:\n"
    "  -o OUT                 the file to write\n"
    "  --ensemble ENS.json    compile this ensemble manifest instead of a MODEL\n"
    "  --labels FILE          class names, one per line, recorded in the artifact\n"
    "                         (descriptor labels, ABI 1.1) and listed in the\n"
    "                         header; as many as the classes C of an [N, C]\n"
    "                         output. With --ensemble, only for a manifest\n"
    "                         without labels\n"
    "  --emit KIND            so (shared library), obj (object file), asm\n"
    "                         (assembly) or llvm (LLVM IR text); default from OUT's\n"
    "                         extension: .so, .o, .s, .ll\n"
    "  --header FILE          also write the C header declaring the entry function,\n"
    "                         the I/O indices and the workspace size\n"
    "  --target TRIPLE        the target triple (default: the host's), e.g.\n"
    "                         aarch64-linux-gnu\n"
    "  --cpu NAME             the CPU to tune and select instructions for, e.g.\n"
    "                         skylake-avx512, cortex-a72; native (the default) is\n"
    "                         the host's CPU and its features\n"
    "  --features LIST        extra target features, e.g. +avx512f,-avx512vl\n"
    "  --shape NAME=DIMS      bind the symbolic dims of input NAME, DIMS as in\n"
    "                         1x3x64x64 (repeatable). The leading dim is the batch:\n"
    "                         a symbolic batch stays a run-time argument, so any\n"
    "                         number, N or -1 fits it; a model exported with a\n"
    "                         fixed batch takes exactly that many samples, its\n"
    "                         convolutions and pools spread over the threads\n"
    "                         sample by sample as with a symbolic batch\n"
    "  --name PREFIX          the entry symbol's prefix, a C identifier (default\n"
    "                         model)\n"
    "  --profile              count the cycles of every layer in the artifact's\n"
    "                         profile counters (ABI 1.2) for 'kiln bench --profile';\n"
    "                         off by default, and then the code has no counters\n"
    "  --quiet                do not report the phases on stderr\n";

constexpr std::string_view kHelpTail =
    "  -h, --help             show this help\n"
    "\n"
    "exit status:\n"
    "  0  success\n"
    "  1  unusable model or failed compile: unreadable or malformed model, a\n"
    "     symbolic dim no --shape binds, a --shape that contradicts the model,\n"
    "     an op the backend cannot compile, an unwritable OUT or header, an\n"
    "     unreadable labels file or one whose line count is no output's class\n"
    "     count; with --ensemble also an invalid manifest, a member that is not\n"
    "     an ONNX model, members that differ in inputs or output shape\n"
    "  2  bad usage: unknown option or pass, bad -O level, unknown --emit kind\n"
    "     or OUT extension, malformed --shape, --name that is not a C\n"
    "     identifier, unknown --target or --cpu, both or neither of MODEL and\n"
    "     --ensemble, --labels for a manifest with labels\n";

constexpr int64_t kMaxDim = int64_t{1} << 40;

codegen::EmitKind emitKind(const ParsedArgs& args, const std::string& out) {
  static const std::map<std::string, codegen::EmitKind> kinds = {{"so", codegen::EmitKind::SharedLibrary},
                                                                 {"obj", codegen::EmitKind::Object},
                                                                 {"asm", codegen::EmitKind::Assembly},
                                                                 {"llvm", codegen::EmitKind::LLVMIR}};
  if (auto kind = args.value("--emit")) {
    auto it = kinds.find(*kind);
    if (it == kinds.end()) throw UsageError("unknown --emit kind '" + *kind + "' (use so, obj, asm or llvm)");
    return it->second;
  }
  try {
    return codegen::emitKindForPath(out);
  } catch (const Error& e) {
    throw UsageError(e.message());  // the file name is the user's choice, not a model problem
  }
}

// "NAME=1x3x64x64" -> {NAME, {1, 3, 64, 64}}; a leading N or -1 is kBatch.
std::pair<std::string, std::vector<int64_t>> parseShape(const std::string& spec) {
  auto malformed = [&](const std::string& why) {
    return UsageError("malformed --shape '" + spec + "': " + why);
  };
  size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) throw malformed("expected NAME=DIMS, e.g. x=1x3x64x64");
  std::vector<int64_t> dims;
  for (size_t begin = eq + 1;;) {
    size_t end = std::min(spec.find('x', begin), spec.size());
    std::string dim = spec.substr(begin, end - begin);
    if (dims.empty() && (dim == "N" || dim == "-1")) {
      dims.push_back(kBatch);
    } else {
      int64_t v = 0;
      auto [last, ec] = std::from_chars(dim.data(), dim.data() + dim.size(), v);
      if (dim.empty() || ec != std::errc() || last != dim.data() + dim.size() || v < 1 || v > kMaxDim)
        throw malformed("dim " + std::to_string(dims.size()) + " is '" + dim +
                        "'; dims are positive integers, and only the leading one (the batch) may be N or -1");
      dims.push_back(v);
    }
    if (end == spec.size()) break;
    begin = end + 1;
  }
  return {spec.substr(0, eq), dims};
}

onnx_import::ImportOptions importOptions(const ParsedArgs& args) {
  onnx_import::ImportOptions options;
  for (const std::string& spec : args.values("--shape")) {
    auto [name, dims] = parseShape(spec);
    if (!options.inputShapes.emplace(name, std::move(dims)).second)
      throw UsageError("--shape given twice for input '" + name + "'");
  }
  return options;
}

// The prefix becomes part of a C symbol name.
std::string symbolPrefix(const ParsedArgs& args) {
  std::string name = args.value("--name").value_or("model");
  auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  bool valid = !name.empty() && letter(name[0]) &&
               std::all_of(name.begin(), name.end(), [&](char c) { return letter(c) || (c >= '0' && c <= '9'); });
  if (!valid) throw UsageError("--name '" + name + "' is not a C identifier (letters, digits and '_', not starting with a digit)");
  return name;
}

// "kiln: import 12 ms, optimize 3 ms, ..." on one stderr line, a phase at a
// time, so a slow compile shows which phase it is in. An error ends the line
// first, keeping the "kiln: error:" line whole.
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet) {}
  ~Progress() {
    if (open_) std::cerr << std::endl;
  }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Reports the phase begun at the last report (or construction).
  void phase(const std::string& name) {
    auto now = std::chrono::steady_clock::now();
    print(name + " " + milliseconds(now - last_));
    last_ = now;
  }
  // A line of its own, between phases.
  void note(const std::string& text) {
    if (quiet_) return;
    if (open_) std::cerr << std::endl;
    open_ = false;
    std::cerr << "kiln: note: " << text << std::endl;
  }
  void finish(const std::string& result) {
    print("total " + milliseconds(std::chrono::steady_clock::now() - start_) + " -> " + result);
    if (open_) std::cerr << std::endl;
    open_ = false;
  }

 private:
  static std::string milliseconds(std::chrono::steady_clock::duration d) {
    double ms = std::chrono::duration<double, std::milli>(d).count();
    char text[32];
    std::snprintf(text, sizeof text, ms < 10 ? "%.1f ms" : "%.0f ms", ms);
    return text;
  }
  void print(const std::string& part) {
    if (quiet_) return;
    std::cerr << (open_ ? ", " : "kiln: ") << part << std::flush;
    open_ = true;
  }

  bool quiet_;
  bool open_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_ = start_;
};

// The manifest's enums as the graph builder's (which knows no manifest).
ensemble::Rule ensembleRule(runtime::EnsembleRule rule) {
  return rule == runtime::EnsembleRule::Mean     ? ensemble::Rule::Mean
         : rule == runtime::EnsembleRule::Logits ? ensemble::Rule::Logits
                                                 : ensemble::Rule::Vote;
}

ensemble::MemberOutput memberOutput(runtime::MemberOutput output) {
  return output == runtime::MemberOutput::Logits ? ensemble::MemberOutput::Logits
                                                 : ensemble::MemberOutput::Probabilities;
}

// The graph to compile and the class labels to record, with the file the
// labels came from (for errors).
struct Source {
  Graph graph;
  std::vector<std::string> labels;
  std::string labelsFile;
};

Source importModel(const std::string& path, const std::optional<std::string>& labelsPath,
                   const onnx_import::ImportOptions& import, Progress& progress) {
  Source source;
  if (labelsPath) {
    source.labels = readLabels(*labelsPath);
    source.labelsFile = *labelsPath;
  }
  source.graph = onnx_import::importModelFile(path, import);
  progress.phase("import");
  return source;
}

// Imports the manifest's members of non-zero weight (noting the others) and
// merges them into one graph named after the manifest.
Source importEnsemble(const std::string& manifestPath, const std::optional<std::string>& labelsPath,
                      const onnx_import::ImportOptions& import, Progress& progress) {
  runtime::EnsembleManifest manifest = runtime::readEnsembleManifest(manifestPath);
  Source source;
  source.labels = manifest.labels;
  source.labelsFile = manifestPath;
  if (labelsPath) {
    if (!manifest.labels.empty())
      throw UsageError("--labels: " + manifestPath + " already names the classes; edit its \"labels\" instead");
    source.labels = readLabels(*labelsPath);
    source.labelsFile = *labelsPath;
  }
  std::vector<ensemble::Member> members;
  for (size_t i = 0; i < manifest.members.size(); ++i) {
    const std::string name = "member" + std::to_string(i);
    const std::string file = runtime::resolveMemberPath(manifestPath, manifest.members[i]);
    if (manifest.members[i].weight == 0) {
      progress.note(name + " ('" + file + "') has weight 0 and is left out");
      continue;
    }
    if (isCompiledArtifact(file))
      throw Error("ensemble " + name + ": compile --ensemble needs ONNX members, and this is a compiled artifact",
                  ErrorSite{file, "", ""});
    members.push_back({name, file, onnx_import::importModelFile(file, import), manifest.members[i].weight});
  }
  progress.phase("import " + std::to_string(members.size()) + (members.size() == 1 ? " member" : " members"));
  source.graph = ensemble::mergeMembers(members, ensembleRule(manifest.rule), memberOutput(manifest.memberOutput),
                                        std::filesystem::path(manifestPath).stem().string());
  progress.phase(std::string("merge (") + runtime::ruleName(manifest.rule) + ")");
  return source;
}

int runCompile(const ParsedArgs& args) {
  std::optional<std::string> ensemblePath = args.value("--ensemble");
  if (ensemblePath ? !args.positionals.empty() : args.positionals.size() != 1)
    throw UsageError(ensemblePath ? "compile --ensemble takes no MODEL argument"
                                  : "compile takes one MODEL.onnx (or --ensemble ENS.json), given " +
                                        std::to_string(args.positionals.size()) + " arguments");
  std::optional<std::string> out = args.value("-o");
  if (!out || out->empty()) throw UsageError("-o OUT is required");
  // Every option is checked before the (possibly slow) import.
  codegen::EmitKind kind = emitKind(args, *out);
  onnx_import::ImportOptions import = importOptions(args);
  PipelineRequest pipeline = parsePipelineArgs(args, kCompileLevels);
  codegen::CompileOptions options;
  options.triple = args.value("--target").value_or("");
  options.cpu = args.value("--cpu").value_or("native");
  options.features = args.value("--features").value_or("");
  options.optLevel = pipeline.level;
  options.symbolPrefix = symbolPrefix(args);
  options.profile = args.has("--profile");
  std::optional<std::string> headerPath = args.value("--header");
  if (headerPath && headerPath->empty()) throw UsageError("--header needs a file name");
  std::optional<std::string> labelsPath = args.value("--labels");
  if (labelsPath && labelsPath->empty()) throw UsageError("--labels needs a file name");
  codegen::ResolvedTarget target;
  try {
    target = codegen::resolveTarget(options);
  } catch (const Error& e) {
    throw UsageError(e.message());  // an unknown triple or CPU name is a command-line mistake
  }

  Progress progress(args.has("--quiet"));
  Source source = ensemblePath ? importEnsemble(*ensemblePath, labelsPath, import, progress)
                               : importModel(args.positionals[0], labelsPath, import, progress);
  Graph& g = source.graph;
  try {
    codegen::checkLabels(g, source.labels);
  } catch (const Error& e) {
    throw e.withFile(source.labelsFile);
  }
  options.labels = std::move(source.labels);
  pipeline.options.passes.channelBlock = codegen::channelBlock(options);  // the layout pass's NCHWc block
  runPipeline(g, pipeline.passes, pipeline.options);
  progress.phase("optimize");
  options.phaseDone = [&](const std::string& phase) { progress.phase(phase); };
  codegen::compileGraph(g, options, kind, *out);
  if (headerPath) {
    try {
      writeFileAtomically(*headerPath, codegen::artifactHeader(g, options));
    } catch (...) {
      std::filesystem::remove(*out);  // a failed compile leaves neither file
      throw;
    }
  }
  const codegen::BatchSchedule schedule = codegen::batchSchedule(g);
  const std::string groups = schedule.samplesPerGroup == 0 ? "batches node by node"
                             : schedule.samplesPerGroup == 1
                                 ? "batches one sample at a time"
                                 : "batches in groups of " + std::to_string(schedule.samplesPerGroup) + " samples";
  auto kib = [](int64_t bytes) { return std::to_string((bytes + 1023) / 1024) + " KiB"; };
  // A grouped run keeps one group in flight per thread of the pool.
  const std::string workspace =
      schedule.samplesPerGroup > 0
          ? "workspace " + kib(schedule.samplesPerGroup * g.arenaBytes) + " per thread for any batch"
      : schedule.workspaceSamples > 0 ? "workspace " + kib(schedule.workspaceSamples * g.arenaBytes) + " for any batch"
                                      : "workspace " + kib(g.arenaBytes) + " per sample of max_batch";
  const Graph::BatchSuffix& suffix = g.batchSuffix;
  const std::string wholeBatch =
      suffix.chunk == 0 ? ""
                        : ", the last " + std::to_string(g.numNodes() - static_cast<size_t>(suffix.firstNode)) +
                              " nodes (from '" + g.nodes()[static_cast<size_t>(suffix.firstNode)]->name +
                              "') node by node over chunks of " + std::to_string(suffix.chunk) + " samples, + " +
                              kib(suffix.chunk * suffix.regionBytes) + " for a chunk";
  progress.finish(*out + (headerPath ? " + " + *headerPath : "") + " (" + target.triple + ", " + target.cpu + "; " +
                  groups + ", " + kib(schedule.sampleBytes) + " per sample, " + workspace + wholeBatch + ")");
  return kExitOk;
}

}  // namespace

const Command& compileCommand() {
  static const std::string help = std::string(kHelpHead) + pipelineOptionsHelp(kCompileLevels) + std::string(kHelpTail);
  static const Command command = [] {
    Command c{
        "compile",
        "compile a model or ensemble to a native shared library, object file, assembly or LLVM IR",
        help,
        {{"-o", true, false},
         {"--ensemble", true, false},
         {"--labels", true, false},
         {"--emit", true, false},
         {"--header", true, false},
         {"--target", true, false},
         {"--cpu", true, false},
         {"--features", true, false},
         {"--shape", true, true},
         {"--name", true, false},
         {"--profile", false, false},
         {"--quiet", false, false}},
        runCompile,
    };
    c.options.insert(c.options.end(), pipelineOptionSpecs().begin(), pipelineOptionSpecs().end());
    return c;
  }();
  return command;
}

}  // namespace kiln::cli
