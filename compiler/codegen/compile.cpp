// compileGraph: target resolution, LLVM's O3 pipeline, object/assembly/IR
// emission through the target machine, and shared-library linking with lld
// used as a library (no system compiler or linker needed at compile time).
// Every output is written to a temporary file beside the destination and
// renamed into place only on success.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <unistd.h>

#include <lld/Common/Driver.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Verifier.h>
#include <llvm/MC/MCSubtargetInfo.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/FileSystem.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Transforms/IPO/MergeFunctions.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/TargetParser/Triple.h>

#include "compiler/codegen/codegen.h"
#include "compiler/codegen/module_builder.h"

LLD_HAS_DRIVER(elf)

namespace kiln::codegen {

namespace {

void initializeTargets() {
  static std::once_flag once;
  std::call_once(once, [] {
    LLVMInitializeX86TargetInfo();
    LLVMInitializeX86Target();
    LLVMInitializeX86TargetMC();
    LLVMInitializeX86AsmPrinter();
    LLVMInitializeAArch64TargetInfo();
    LLVMInitializeAArch64Target();
    LLVMInitializeAArch64TargetMC();
    LLVMInitializeAArch64AsmPrinter();
  });
}

const llvm::Target& lookupTarget(const std::string& triple) {
  std::string error;
  const llvm::Target* target = llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target) throw Error("target '" + triple + "' is not supported (kiln builds for x86-64 and AArch64): " + error);
  return *target;
}

std::unique_ptr<llvm::TargetMachine> createTargetMachine(const ResolvedTarget& t, int optLevel) {
  const llvm::Target& target = lookupTarget(t.triple);
  llvm::TargetOptions options;
  auto level = optLevel >= 3 ? llvm::CodeGenOptLevel::Aggressive
               : optLevel == 2 ? llvm::CodeGenOptLevel::Default
               : optLevel == 1 ? llvm::CodeGenOptLevel::Less
                               : llvm::CodeGenOptLevel::None;
  std::unique_ptr<llvm::TargetMachine> tm(
      target.createTargetMachine(t.triple, t.cpu, t.features, options, llvm::Reloc::PIC_, std::nullopt, level));
  if (!tm) throw Error("cannot create a code generator for " + t.triple + " / " + t.cpu);
  return tm;
}

// f32 lanes of the widest vector unit the features enable.
unsigned vectorFloats(const ResolvedTarget& t) {
  auto has = [&](const std::string& f) { return ("," + t.features + ",").find(",+" + f + ",") != std::string::npos; };
  if (has("avx512f")) return 16;
  if (has("avx2") || has("avx")) return 8;
  return 4;
}

void optimize(llvm::Module& m, llvm::TargetMachine& tm, int optLevel) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PipelineTuningOptions tuning;
  tuning.LoopVectorization = optLevel >= 2;
  tuning.SLPVectorization = optLevel >= 2;
  llvm::PassBuilder pb(&tm, tuning);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::OptimizationLevel level = optLevel >= 3   ? llvm::OptimizationLevel::O3
                                  : optLevel == 2 ? llvm::OptimizationLevel::O2
                                  : optLevel == 1 ? llvm::OptimizationLevel::O1
                                                  : llvm::OptimizationLevel::O0;
  // Identical kernels (see module_builder.cpp) are folded first, so the
  // pipeline and the code generator see each one once.
  llvm::ModulePassManager mpm;
  mpm.addPass(llvm::MergeFunctionsPass());
  mpm.addPass(level == llvm::OptimizationLevel::O0 ? pb.buildO0DefaultPipeline(level)
                                                   : pb.buildPerModuleDefaultPipeline(level));
  mpm.run(m, mam);
}

// Whether `path` exists as neither a regular file nor a folder (/dev/null,
// /dev/stdout, a FIFO): such a destination is written through, since
// renaming a file over it would replace the device node itself (as root)
// or fail for want of a writable /dev.
bool isSpecialFile(const std::string& path) {
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(path, ec);
  return !ec && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status) &&
         !std::filesystem::is_directory(status);
}

// A temporary path beside `path` (in the temporary folder when `path` is a
// special file), removed on destruction unless committed.
class TempFile {
 public:
  explicit TempFile(const std::string& path, const std::string& suffix = "") {
    static std::atomic<int> counter{0};
    const std::string base = isSpecialFile(path)
                                 ? (std::filesystem::temp_directory_path() / "kiln-output").string()
                                 : path;
    path_ = base + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + suffix;
  }
  ~TempFile() {
    if (!path_.empty()) std::filesystem::remove(path_);
  }
  const std::string& path() const { return path_; }
  void commitTo(const std::string& dest) {
    if (isSpecialFile(dest)) {
      std::ifstream in(path_, std::ios::binary);
      std::ofstream out(dest, std::ios::binary);
      out << in.rdbuf();
      out.close();
      if (!in || !out) throw Error("cannot write " + dest);
      std::filesystem::remove(path_);
    } else {
      std::filesystem::rename(path_, dest);
    }
    path_.clear();
  }

 private:
  std::string path_;
};

void emitWithTargetMachine(llvm::Module& m, llvm::TargetMachine& tm, llvm::CodeGenFileType type,
                           const std::string& path) {
  std::error_code ec;
  llvm::raw_fd_ostream out(path, ec, llvm::sys::fs::OF_None);
  if (ec) throw Error("cannot write " + path + ": " + ec.message());
  {
    // The pass manager's printer buffers into `out`: it must be gone (and
    // flushed) before the file is closed.
    llvm::legacy::PassManager pm;
    if (tm.addPassesToEmitFile(pm, out, nullptr, type))
      throw Error("the code generator cannot emit this file type for " + tm.getTargetTriple().str());
    pm.run(m);
  }
  out.close();
  if (out.has_error()) throw Error("cannot write " + path + ": " + out.error().message());
}

// `soname`: the final file's name, not the temporary `output`'s, so an
// artifact does not carry a process id (and builds are reproducible).
void linkSharedLibrary(const std::string& object, const std::string& output, const std::string& soname) {
  std::vector<const char*> args = {"ld.lld", "-shared", "-z", "noexecstack", "-z", "relro", "-z", "now",
                                   "--hash-style=gnu", "-soname", soname.c_str(), "-o", output.c_str(),
                                   object.c_str()};
  std::string diagnostics;
  llvm::raw_string_ostream stream(diagnostics);
  lld::Result result = lld::lldMain(args, stream, stream, {{lld::Gnu, &lld::elf::link}});
  stream.flush();
  if (result.retCode != 0) throw Error("linking " + output + " with lld failed: " + diagnostics);
}

}  // namespace

int channelBlock(const CompileOptions& options) {
  return static_cast<int>(vectorFloats(resolveTarget(options)));
}

ResolvedTarget resolveTarget(const CompileOptions& options) {
  initializeTargets();
  ResolvedTarget t;
  t.triple = llvm::Triple::normalize(options.triple.empty() ? llvm::sys::getDefaultTargetTriple() : options.triple);
  bool native = options.cpu == "native";
  if (native && llvm::Triple(t.triple).getArch() != llvm::Triple(llvm::sys::getDefaultTargetTriple()).getArch())
    throw Error("--cpu native needs a host target; name a CPU for " + t.triple);
  t.cpu = native ? llvm::sys::getHostCPUName().str() : options.cpu;
  std::string requested;
  if (native)
    for (const auto& feature : llvm::sys::getHostCPUFeatures())
      requested += std::string(requested.empty() ? "" : ",") + (feature.second ? "+" : "-") + feature.first().str();
  if (!options.features.empty()) requested += (requested.empty() ? "" : ",") + options.features;
  // Record every feature the resulting subtarget enables, so the loader can
  // check the host has each one.
  const llvm::Target& target = lookupTarget(t.triple);
  std::unique_ptr<llvm::MCSubtargetInfo> sti(target.createMCSubtargetInfo(t.triple, "", ""));
  if (!sti || !sti->isCPUStringValid(t.cpu)) throw Error("unknown CPU '" + t.cpu + "' for " + t.triple);
  sti.reset(target.createMCSubtargetInfo(t.triple, t.cpu, requested));
  for (const llvm::SubtargetFeatureKV& kv : sti->getAllProcessorFeatures())
    if (sti->checkFeatures(std::string("+") + kv.Key))
      t.features += std::string(t.features.empty() ? "" : ",") + "+" + kv.Key;
  return t;
}

EmitKind emitKindForPath(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".so") return EmitKind::SharedLibrary;
  if (ext == ".o") return EmitKind::Object;
  if (ext == ".s") return EmitKind::Assembly;
  if (ext == ".ll") return EmitKind::LLVMIR;
  throw Error("cannot tell what to emit from '" + path + "' (use .so, .o, .s or .ll, or --emit)");
}

void checkLabels(const Graph& g, const std::vector<std::string>& labels) {
  if (labels.empty()) return;
  const std::string count = std::to_string(labels.size());
  std::string classifiers;
  for (const Value* v : g.outputs()) {
    if (v->type.dtype != DType::F32 || v->type.shape.rank() != 2) continue;
    if (v->type.shape[1] == static_cast<int64_t>(labels.size())) return;
    classifiers += (classifiers.empty() ? "" : ", ") + ("'" + v->name + "' has " + std::to_string(v->type.shape[1]));
  }
  if (classifiers.empty())
    throw Error(count + " labels, but the model has no f32 output of shape [N, C] whose classes they could name");
  throw Error(count + " labels, but no f32 output of shape [N, C] has " + count + " classes: " + classifiers);
}

void compileGraph(const Graph& g, const CompileOptions& options, EmitKind kind, const std::string& path) {
  checkLabels(g, options.labels);
  ModuleTarget target;
  target.resolved = resolveTarget(options);
  if (kind == EmitKind::SharedLibrary && !llvm::Triple(target.resolved.triple).isOSBinFormatELF())
    throw Error("shared libraries are only linked for ELF targets; use --emit obj for " + target.resolved.triple);
  std::unique_ptr<llvm::TargetMachine> tm = createTargetMachine(target.resolved, options.optLevel);
  target.info.vectorFloats = vectorFloats(target.resolved);
  target.dataLayout = tm->createDataLayout().getStringRepresentation();

  auto phaseDone = [&](const char* phase) {
    if (options.phaseDone) options.phaseDone(phase);
  };
  llvm::LLVMContext ctx;
  std::unique_ptr<llvm::Module> module = buildModule(g, ctx, options, target, kind == EmitKind::SharedLibrary);
  std::string broken;
  llvm::raw_string_ostream verifyOut(broken);
  if (llvm::verifyModule(*module, &verifyOut))
    throw Error("internal error: the generated LLVM IR is invalid: " + verifyOut.str());
  phaseDone("IR");
  optimize(*module, *tm, options.optLevel);
  phaseDone("LLVM passes");

  TempFile out(path);
  switch (kind) {
    case EmitKind::LLVMIR: {
      std::error_code ec;
      llvm::raw_fd_ostream os(out.path(), ec, llvm::sys::fs::OF_Text);
      if (ec) throw Error("cannot write " + path + ": " + ec.message());
      module->print(os, nullptr);
      phaseDone("print");
      break;
    }
    case EmitKind::Assembly:
      emitWithTargetMachine(*module, *tm, llvm::CodeGenFileType::AssemblyFile, out.path());
      phaseDone("machine code");
      break;
    case EmitKind::Object:
      emitWithTargetMachine(*module, *tm, llvm::CodeGenFileType::ObjectFile, out.path());
      phaseDone("machine code");
      break;
    case EmitKind::SharedLibrary: {
      TempFile object(path, ".o");
      emitWithTargetMachine(*module, *tm, llvm::CodeGenFileType::ObjectFile, object.path());
      phaseDone("machine code");
      linkSharedLibrary(object.path(), out.path(), std::filesystem::path(path).filename().string());
      phaseDone("link");
      break;
    }
  }
  out.commitTo(path);
}

}  // namespace kiln::codegen
