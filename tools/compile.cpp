// `kiln compile`: imports an ONNX model, optimizes it and compiles it with the
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
#include "frontends/onnx/onnx_importer.h"
#include "tools/cli_common.h"
#include "tools/npy.h"
#include "tools/pipeline_args.h"

namespace kiln::cli {
namespace {

constexpr std::string_view kHelpHead =
    "usage: kiln compile MODEL.onnx -o OUT [--emit so|obj|asm|llvm] [--header FILE]\n"
    "                    [--target TRIPLE] [--cpu NAME|native] [--features +F,-G,...]\n"
    "                    [--shape NAME=DIMS]... [--name PREFIX] [-O0|-O1|-O2|-O3]\n"
    "                    [--passes A,B,...] [--print-after PASS]... [--print-after-all]\n"
    "                    [--dump-dot DIR] [--verify-each] [--quiet]\n"
    "\n"
    "Compiles MODEL.onnx to native code. A shared library (.so) is loaded by\n"
    "'kiln run OUT.so' or the runtime; an object file (.o) links statically\n"
    "with the C header from --header. Both export one function,\n"
    "PREFIX_kiln_artifact_v1, returning the model's descriptor (see\n"
    "kiln/artifact.h). OUT and the header are written atomically: a failed\n"
    "compile leaves neither. The time of each phase goes to stderr.\n"
    "\n"
    "options:\n"
    "  -o OUT                 the file to write\n"
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
    "                         number, N or -1 fits it\n"
    "  --name PREFIX          the entry symbol's prefix, a C identifier (default\n"
    "                         model)\n"
    "  --quiet                do not report the phases on stderr\n";

constexpr std::string_view kHelpTail =
    "  -h, --help             show this help\n"
    "\n"
    "exit status:\n"
    "  0  success\n"
    "  1  unusable model or failed compile: unreadable or malformed model, a\n"
    "     symbolic dim no --shape binds, a --shape that contradicts the model,\n"
    "     an op the backend cannot compile, an unwritable OUT or header\n"
    "  2  bad usage: unknown option or pass, bad -O level, unknown --emit kind\n"
    "     or OUT extension, malformed --shape, --name that is not a C\n"
    "     identifier, unknown --target or --cpu\n";

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
  void phase(const char* name) {
    auto now = std::chrono::steady_clock::now();
    print(std::string(name) + " " + milliseconds(now - last_));
    last_ = now;
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

int runCompile(const ParsedArgs& args) {
  if (args.positionals.size() != 1)
    throw UsageError("compile takes one MODEL.onnx, given " + std::to_string(args.positionals.size()) + " arguments");
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
  std::optional<std::string> headerPath = args.value("--header");
  if (headerPath && headerPath->empty()) throw UsageError("--header needs a file name");
  codegen::ResolvedTarget target;
  try {
    target = codegen::resolveTarget(options);
  } catch (const Error& e) {
    throw UsageError(e.message());  // an unknown triple or CPU name is a command-line mistake
  }

  Progress progress(args.has("--quiet"));
  Graph g = onnx_import::importModelFile(args.positionals[0], import);
  progress.phase("import");
  pipeline.options.passes.channelBlock = codegen::channelBlock(options);  // the layout pass's NCHWc block
  runPipeline(g, pipeline.passes, pipeline.options);
  progress.phase("optimize");
  codegen::compileGraph(g, options, kind, *out);
  if (headerPath) {
    try {
      writeFileAtomically(*headerPath, codegen::artifactHeader(g, options));
    } catch (...) {
      std::filesystem::remove(*out);  // a failed compile leaves neither file
      throw;
    }
  }
  progress.phase("codegen");
  progress.finish(*out + (headerPath ? " + " + *headerPath : "") + " (" + target.triple + ", " + target.cpu + ")");
  return kExitOk;
}

}  // namespace

const Command& compileCommand() {
  static const std::string help = std::string(kHelpHead) + pipelineOptionsHelp(kCompileLevels) + std::string(kHelpTail);
  static const Command command = [] {
    Command c{
        "compile",
        "compile a model to a native shared library, object file, assembly or LLVM IR",
        help,
        {{"-o", true, false},
         {"--emit", true, false},
         {"--header", true, false},
         {"--target", true, false},
         {"--cpu", true, false},
         {"--features", true, false},
         {"--shape", true, true},
         {"--name", true, false},
         {"--quiet", false, false}},
        runCompile,
    };
    c.options.insert(c.options.end(), pipelineOptionSpecs().begin(), pipelineOptionSpecs().end());
    return c;
  }();
  return command;
}

}  // namespace kiln::cli
