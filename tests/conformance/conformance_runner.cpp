// kiln_conformance: runs ONNX test cases (ONNX's node suite, the PyTorch
// fixtures) through the ONNX importer and the reference interpreter and
// compares the outputs with the expected ones.
//
// With --optimize LEVEL each case is also run through the -O LEVEL pass
// pipeline (verifier after every pass) and interpreted again: the optimized
// outputs must match the unoptimized ones to 1e-5 relative to each output's
// peak magnitude, and the expected ones at the usual tolerances. A case that
// passes unoptimized but not optimized fails the run whatever the pass rate,
// since that is a pass bug, never a kernel gap. --expect-after-O2 adds
// structural checks on the optimized graph (what -O2 must have removed).
//
// With --engine compiled the -O2 graph is also compiled by the LLVM backend
// (for the host CPU or --cpu NAME), loaded and run: its outputs must match
// the interpreter's on the same -O2 graph to 1e-5 relative to each output's
// peak, and the expected ones at the usual tolerances. A case that the
// interpreter passes and the compiled model fails (no emitter, a failed
// compile, wrong numbers) is a backend bug and fails the run whatever the
// pass rate, like an -O2-only failure.
//
// A case is a folder holding model.onnx and test_data_set_*/{input,output}_*.pb.
// Every case runs at its own opset: the importer upgrades models of opsets
// below 11 with ONNX's version converter, and the summary counts those.
// Cases using ops kiln has no IR op for, or non-float inputs/outputs, are out
// of scope and counted apart. Expected failures live in one skip list
// ("name  # reason" per line). Each case runs in a forked child so a crash or
// hang in one case is reported as that case's failure, not the run's end.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "compiler/codegen/codegen.h"
#include "compiler/interp/interpreter.h"
#include "compiler/ir/graph.h"
#include "compiler/ir/op.h"
#include "compiler/passes/pipeline.h"
#include "frontends/onnx/onnx_importer.h"
#include "tests/codegen/compiled_model.h"

namespace fs = std::filesystem;

namespace {

// One structural check on the -O2 graph, optionally limited to the cases
// whose name matches a regex ("check@regex").
struct Expectation {
  enum Kind { NoBatchNorm, NoSeparable, NoTransposePair, MaxTransposes, ArenaHalf, GeluFused, LayerNormFused, IndexMathFolded } kind;
  int64_t limit = 0;  // MaxTransposes
  std::optional<std::regex> cases;
  std::string text;  // as given, for messages
};

struct Options {
  std::string casesDir;
  std::vector<std::string> skipsFiles;  // --skips may repeat: one shared list, one per engine
  double rtol = 1e-4;
  double atol = 1e-5;
  double minPassRate = 1.0;
  std::optional<std::regex> only;
  std::string onlyText;
  bool requireInScope = false;  // out-of-scope cases count as failures
  bool fork = true;
  bool verbose = false;
  unsigned caseTimeoutS = 120;
  int optimizeLevel = -1;  // -1: interpret the imported graph only
  bool compiled = false;   // --engine compiled: also compile and run the -O2 graph
  std::string cpu = "native";
  std::vector<Expectation> expectations;
};

[[noreturn]] void usage(const std::string& problem) {
  std::cerr << "kiln_conformance: " << problem << "\n"
            << "usage: kiln_conformance --cases DIR [--skips FILE] [--rtol R] [--atol A]\n"
            << "         [--min-pass-rate P] [--only REGEX] [--require-in-scope] [--no-fork]\n"
            << "         [--case-timeout SECONDS] [--verbose]\n"
            << "         [--optimize LEVEL] [--expect-after-O2 CHECK[@REGEX],...]\n"
            << "         [--engine interp|compiled] [--cpu NAME]\n"
            << "  checks: no-batchnorm, no-separable, no-transpose-pair (no Transpose fed by a\n"
            << "  Transpose), max-transposes=N, arena-half (arena bytes * 2 <= the bytes of all\n"
            << "  intermediates), gelu-fused (no Erf or Tanh left), layernorm-fused (no\n"
            << "  ReduceMean or Sqrt left), index-math-folded (no Range, Mod or ScatterND left:\n"
            << "  Swin's padding and shift mask are constant); @REGEX limits a check to\n"
            << "  matching case names\n"
            << "  --engine compiled also compiles the -O2 graph for --cpu (default native), runs\n"
            << "  it and compares it with the interpreter and the expected outputs\n";
  std::exit(2);
}

double parseNumber(const std::string& flag, const std::string& text) {
  try {
    size_t used = 0;
    double v = std::stod(text, &used);
    if (used == text.size() && std::isfinite(v) && v >= 0) return v;
  } catch (const std::exception&) {
  }
  usage(flag + " expects a non-negative number, got '" + text + "'");
}

Expectation parseExpectation(const std::string& text) {
  Expectation e;
  e.text = text;
  const size_t at = text.find('@');
  const std::string check = text.substr(0, at);
  if (at != std::string::npos) {
    try {
      e.cases = std::regex(text.substr(at + 1));
    } catch (const std::regex_error& err) {
      usage("bad regex in --expect-after-O2 check '" + text + "': " + err.what());
    }
  }
  const std::string maxPrefix = "max-transposes=";
  if (check == "no-batchnorm") e.kind = Expectation::NoBatchNorm;
  else if (check == "no-separable") e.kind = Expectation::NoSeparable;
  else if (check == "no-transpose-pair") e.kind = Expectation::NoTransposePair;
  else if (check == "arena-half") e.kind = Expectation::ArenaHalf;
  else if (check == "gelu-fused") e.kind = Expectation::GeluFused;
  else if (check == "layernorm-fused") e.kind = Expectation::LayerNormFused;
  else if (check == "index-math-folded") e.kind = Expectation::IndexMathFolded;
  else if (check.rfind(maxPrefix, 0) == 0) {
    e.kind = Expectation::MaxTransposes;
    e.limit = static_cast<int64_t>(parseNumber("max-transposes", check.substr(maxPrefix.size())));
  } else {
    usage("unknown --expect-after-O2 check '" + check + "'");
  }
  return e;
}

Options parseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--cases") o.casesDir = value();
    else if (a == "--skips") o.skipsFiles.push_back(value());
    else if (a == "--rtol") o.rtol = parseNumber(a, value());
    else if (a == "--atol") o.atol = parseNumber(a, value());
    else if (a == "--min-pass-rate") o.minPassRate = parseNumber(a, value());
    else if (a == "--case-timeout") o.caseTimeoutS = static_cast<unsigned>(parseNumber(a, value()));
    else if (a == "--optimize") {
      double level = parseNumber(a, value());
      if (level != std::floor(level) || level > 2) usage("--optimize expects a level 0, 1 or 2");
      o.optimizeLevel = static_cast<int>(level);
    } else if (a == "--expect-after-O2") {
      // Comma-separated, so a check's regex cannot hold a comma.
      std::stringstream list(value());
      for (std::string item; std::getline(list, item, ',');)
        if (!item.empty()) o.expectations.push_back(parseExpectation(item));
    }
    else if (a == "--only") {
      o.onlyText = value();
      try {
        o.only = std::regex(o.onlyText);
      } catch (const std::regex_error& e) {
        usage("bad --only regex: " + std::string(e.what()));
      }
    } else if (a == "--engine") {
      const std::string engine = value();
      if (engine != "interp" && engine != "compiled")
        usage("--engine expects interp or compiled, got '" + engine + "'");
      o.compiled = engine == "compiled";
    } else if (a == "--cpu") o.cpu = value();
    else if (a == "--require-in-scope") o.requireInScope = true;
    else if (a == "--no-fork") o.fork = false;
    else if (a == "--verbose") o.verbose = true;
    else usage("unknown argument '" + a + "'");
  }
  if (o.casesDir.empty()) usage("--cases is required");
  if (o.minPassRate > 1) usage("--min-pass-rate is a fraction in [0, 1]");
  if (!o.expectations.empty() && o.optimizeLevel != 2) usage("--expect-after-O2 needs --optimize 2");
  // The backend compiles what -O2 produces (it needs plan-memory's plan).
  if (o.compiled && o.optimizeLevel == -1) o.optimizeLevel = 2;
  if (o.compiled && o.optimizeLevel != 2) usage("--engine compiled runs the -O2 pipeline; --optimize must be 2");
  if (!o.compiled && o.cpu != "native") usage("--cpu needs --engine compiled");
  return o;
}

// ---------------------------------------------------------------- skip list

struct SkipList {
  std::map<std::string, std::string> reasons;  // case name -> reason
};

void readSkipList(const std::string& path, SkipList& s) {
  std::ifstream in(path);
  if (!in) usage("cannot read skip list " + path);
  std::string line;
  int lineNo = 0;
  while (std::getline(in, line)) {
    ++lineNo;
    size_t hash = line.find('#');
    std::string reason = hash == std::string::npos ? "" : line.substr(hash + 1);
    std::string name = line.substr(0, hash);
    auto trim = [](std::string& t) {
      t.erase(0, t.find_first_not_of(" \t\r"));
      t.erase(t.find_last_not_of(" \t\r") + 1);
    };
    trim(name);
    trim(reason);
    if (name.empty()) continue;  // blank or comment-only line
    if (name.find_first_of(" \t") != std::string::npos)
      usage(path + ":" + std::to_string(lineNo) + ": expected 'test_name  # reason'");
    if (reason.empty()) usage(path + ":" + std::to_string(lineNo) + ": skip of '" + name + "' gives no reason");
    s.reasons[name] = reason;
  }
}

// ---------------------------------------------------------------- scope

std::string readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Inputs kiln needs as compile-time constants: the importer turns them into
// IR attributes (see compiler/ops/README.md). ONNX's node tests feed them as
// graph inputs; the runner freezes those into initializers from the test
// data, which is how they appear in exported CNNs. Gather's indices are
// included because exporters only ever emit them as constants.
const std::map<std::string, std::set<int>>& staticOperandSlots() {
  static const std::map<std::string, std::set<int>> slots = {
      {"Reshape", {1}},        {"Slice", {1, 2, 3, 4}}, {"Squeeze", {1}}, {"Unsqueeze", {1}},
      {"Pad", {1, 2, 3}},      {"ConstantOfShape", {0}},
      {"ReduceMean", {1}},     {"Gather", {1}},
      {"ReduceSum", {1}},      {"Split", {1}},          {"Expand", {1}},  {"Tile", {1}},
      {"Resize", {1, 2, 3}},   {"Upsample", {1}},       {"Range", {0, 1, 2}},
  };
  return slots;
}

const char* elemTypeName(int t) {
  switch (t) {
    case onnx::TensorProto::FLOAT: return "float32";
    case onnx::TensorProto::DOUBLE: return "float64";
    case onnx::TensorProto::FLOAT16: return "float16";
    case onnx::TensorProto::BFLOAT16: return "bfloat16";
    case onnx::TensorProto::INT64: return "int64";
    case onnx::TensorProto::INT32: return "int32";
    case onnx::TensorProto::INT16: return "int16";
    case onnx::TensorProto::INT8: return "int8";
    case onnx::TensorProto::UINT8: return "uint8";
    case onnx::TensorProto::UINT16: return "uint16";
    case onnx::TensorProto::UINT32: return "uint32";
    case onnx::TensorProto::UINT64: return "uint64";
    case onnx::TensorProto::BOOL: return "bool";
    case onnx::TensorProto::STRING: return "string";
    default: return "other";
  }
}

// "", or the element type of a tensor-typed value ("sequence"/"optional"/...
// for the others).
std::string valueKind(const onnx::ValueInfoProto& v, int* elemType) {
  const onnx::TypeProto& t = v.type();
  if (t.has_tensor_type()) {
    *elemType = t.tensor_type().elem_type();
    return "";
  }
  if (t.has_sequence_type()) return "sequence";
  if (t.has_optional_type()) return "optional";
  if (t.has_map_type()) return "map";
  if (t.has_sparse_tensor_type()) return "sparse tensor";
  return "untyped";
}

struct Scope {
  // Empty when in scope; else why not, as short keys for the summary
  // ("op Exp", "int64 input", ...).
  std::vector<std::string> outOfScope;
  std::set<std::string> staticInputs;  // graph inputs to freeze from the test data
  std::vector<std::string> dataInputs;  // non-initializer graph inputs, in file order
};

bool isDefaultDomain(const std::string& d) { return d.empty() || d == "ai.onnx"; }

// The importer takes opsets from 11 on as they are and upgrades older models
// with ONNX's version converter (frontends/onnx/importer_internal.h).
constexpr int64_t kFirstUnconvertedOpset = 11;

// Whether the importer converts the model: its default-domain opset is below 11.
bool importerConverts(const onnx::ModelProto& model) {
  int64_t opset = 0;
  for (const onnx::OperatorSetIdProto& o : model.opset_import())
    if (isDefaultDomain(o.domain())) opset = o.version();
  return opset > 0 && opset < kFirstUnconvertedOpset;
}

// The IR op an ONNX op imports as: its own name but for the ops the
// importer maps onto others (Upsample is upgraded to Resize; Einsum is
// lowered into MatMul, Transpose, Reshape, ReduceSum...).
std::string irOpOf(const std::string& onnxOp) {
  if (onnxOp == "Upsample") return "Resize";
  if (onnxOp == "Einsum") return "MatMul";
  return onnxOp;
}

using LocalFunctions = std::map<std::pair<std::string, std::string>, const onnx::FunctionProto*>;

// Adds to `missing` what node `n` needs that kiln lacks. The importer inlines
// calls of model-local functions (so their bodies count), except the Keras
// composites it keeps as one IR op (frontends/onnx/function_inliner.cpp).
void collectUnsupported(const onnx::NodeProto& n, const LocalFunctions& functions, const std::set<std::string>& kilnOps,
                        int depth, std::set<std::string>& missing) {
  const std::string& domain = n.domain();
  if (domain == "ai.kiln.keras" && n.op_type() == "SeparableConv2D") return;
  // The importer's nesting limit; deeper calls are reported as their domain.
  constexpr int kMaxCallDepth = 16;
  auto fn = functions.find({domain, n.op_type()});
  if (fn != functions.end() && depth < kMaxCallDepth) {
    for (const onnx::NodeProto& inner : fn->second->node())
      collectUnsupported(inner, functions, kilnOps, depth + 1, missing);
    return;
  }
  if (!isDefaultDomain(domain)) missing.insert("domain " + domain);
  // Constant never reaches the IR: the importer folds it into a constant value.
  else if (!kilnOps.count(irOpOf(n.op_type())) && n.op_type() != "Constant") missing.insert("op " + n.op_type());
}

// The ONNX element types kiln's tensors hold (f32, i64, i32, bool).
bool isKilnElemType(int elem) {
  using TP = onnx::TensorProto;
  return elem == TP::FLOAT || elem == TP::INT64 || elem == TP::INT32 || elem == TP::BOOL;
}

Scope classify(const onnx::ModelProto& model, const std::set<std::string>& kilnOps) {
  Scope s;
  const onnx::GraphProto& g = model.graph();
  LocalFunctions functions;
  for (const onnx::FunctionProto& f : model.functions()) functions[{f.domain(), f.name()}] = &f;
  std::set<std::string> missing;
  for (const onnx::NodeProto& n : g.node()) collectUnsupported(n, functions, kilnOps, 0, missing);
  s.outOfScope.assign(missing.begin(), missing.end());

  std::set<std::string> initializers;
  for (const onnx::TensorProto& t : g.initializer()) initializers.insert(t.name());

  // Which graph inputs are consumed only in static-operand slots.
  std::map<std::string, bool> onlyStatic;
  for (const onnx::NodeProto& n : g.node()) {
    auto slots = staticOperandSlots().find(n.op_type());
    for (int i = 0; i < n.input_size(); ++i) {
      const std::string& name = n.input(i);
      if (name.empty()) continue;
      bool isStatic = slots != staticOperandSlots().end() && slots->second.count(i);
      auto [it, inserted] = onlyStatic.emplace(name, isStatic);
      if (!inserted) it->second = it->second && isStatic;
    }
  }
  for (const onnx::ValueInfoProto& v : g.output()) onlyStatic[v.name()] = false;

  std::set<std::string> reasons;
  for (const onnx::ValueInfoProto& v : g.input()) {
    if (initializers.count(v.name())) continue;
    s.dataInputs.push_back(v.name());
    int elem = 0;
    std::string kind = valueKind(v, &elem);
    if (!kind.empty()) {
      reasons.insert(kind + " input");
      continue;
    }
    auto it = onlyStatic.find(v.name());
    if (it != onlyStatic.end() && it->second) {
      if (elem == onnx::TensorProto::INT64 || elem == onnx::TensorProto::INT32 || elem == onnx::TensorProto::FLOAT)
        s.staticInputs.insert(v.name());
      else
        reasons.insert(std::string(elemTypeName(elem)) + " static operand");
    } else if (!isKilnElemType(elem)) {
      reasons.insert(std::string(elemTypeName(elem)) + " input");
    }
  }
  // Non-float outputs (shapes, comparison masks, indices) are compared exactly.
  for (const onnx::ValueInfoProto& v : g.output()) {
    int elem = 0;
    std::string kind = valueKind(v, &elem);
    if (!kind.empty()) reasons.insert(kind + " output");
    else if (!isKilnElemType(elem))
      reasons.insert(std::string(elemTypeName(elem)) + " output");
  }
  s.outOfScope.insert(s.outOfScope.end(), reasons.begin(), reasons.end());
  return s;
}

// ---------------------------------------------------------------- comparing

std::string oneLine(const std::string& text, size_t maxLen = 400) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\n' && text[i] != '\r') {
      out += text[i];
      continue;
    }
    while (i + 1 < text.size() && std::isspace(static_cast<unsigned char>(text[i + 1]))) ++i;
    if (i + 1 < text.size()) out += " | ";
  }
  if (out.size() > maxLen) out = out.substr(0, maxLen) + "...";
  return out;
}

std::string indexString(int64_t flat, const kiln::Shape& shape) {
  std::vector<int64_t> idx(shape.rank());
  for (size_t d = shape.rank(); d-- > 0;) {
    idx[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
  std::string s = "[";
  for (size_t d = 0; d < idx.size(); ++d) s += (d ? "," : "") + std::to_string(idx[d]);
  return s + "]";
}

std::string fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.8g", v);
  return buf;
}

// "" when `got` matches `want`; else what differs.
std::string compareTensors(const kiln::Tensor& want, const kiln::Tensor& got, double rtol, double atol) {
  if (want.dtype() != got.dtype())
    return std::string("dtype ") + kiln::dtypeName(got.dtype()) + ", expected " + kiln::dtypeName(want.dtype());
  if (want.shape() != got.shape()) return "shape " + got.shape().str() + ", expected " + want.shape().str();
  const int64_t n = want.numElements();
  if (want.dtype() == kiln::DType::F32) {
    const float* w = want.data<float>();
    const float* g = got.data<float>();
    int64_t bad = 0, worst = -1;
    double worstExcess = -1;
    for (int64_t i = 0; i < n; ++i) {
      const double a = g[i], b = w[i];
      bool ok;
      double excess = 0;
      if (std::isnan(b) || std::isnan(a)) {
        ok = std::isnan(a) && std::isnan(b);
        excess = INFINITY;
      } else if (a == b) {  // also equal infinities
        ok = true;
      } else {
        const double diff = std::fabs(a - b), tol = atol + rtol * std::fabs(b);
        ok = diff <= tol;
        excess = std::isfinite(diff) ? diff / tol : INFINITY;
      }
      if (!ok) {
        ++bad;
        if (excess > worstExcess) worstExcess = excess, worst = i;
      }
    }
    if (!bad) return "";
    const std::string how = std::isnan(w[worst]) || std::isnan(g[worst])
                                ? "NaN mismatch"
                                : "|diff| " + fmt(std::fabs(double(g[worst]) - w[worst])) + ", tolerance " +
                                      fmt(atol + rtol * std::fabs(double(w[worst])));
    return std::to_string(bad) + " of " + std::to_string(n) + " values differ; worst at " +
           indexString(worst, want.shape()) + ": expected " + fmt(w[worst]) + ", got " + fmt(g[worst]) + " (" + how +
           ")";
  }
  if (want.dtype() == kiln::DType::I64) {
    const int64_t* w = want.data<int64_t>();
    const int64_t* g = got.data<int64_t>();
    for (int64_t i = 0; i < n; ++i)
      if (w[i] != g[i])
        return "at " + indexString(i, want.shape()) + ": expected " + std::to_string(w[i]) + ", got " +
               std::to_string(g[i]);
    return "";
  }
  if (std::memcmp(want.rawData(), got.rawData(), want.byteSize()) != 0) return "values differ (exact compare)";
  return "";
}

// "" when `got` (an optimized graph's output) matches `ref` (the unoptimized
// graph's) to `bound` relative to ref's peak magnitude. Passes reassociate
// float arithmetic (a folded BN scale, a fused bias), so elementwise relative
// error blows up near zero while the error against the output's scale stays
// at float32 rounding. NaNs must sit where ref has them.
std::string compareNormwise(const kiln::Tensor& ref, const kiln::Tensor& got, double bound) {
  if (ref.dtype() != kiln::DType::F32 || got.dtype() != kiln::DType::F32 || ref.shape() != got.shape())
    return compareTensors(ref, got, 0, 0);
  const float* r = ref.data<float>();
  const float* g = got.data<float>();
  double peak = 0, worstDiff = 0;
  int64_t worst = -1;
  for (int64_t i = 0; i < ref.numElements(); ++i) {
    const double a = g[i], b = r[i];
    if (std::isnan(a) || std::isnan(b)) {
      if (std::isnan(a) && std::isnan(b)) continue;
      return "NaN mismatch at " + indexString(i, ref.shape()) + ": unoptimized " + fmt(b) + ", optimized " + fmt(a);
    }
    if (a == b) continue;  // also equal infinities
    const double diff = std::fabs(a - b);
    if (!std::isfinite(diff))
      return "at " + indexString(i, ref.shape()) + ": unoptimized " + fmt(b) + ", optimized " + fmt(a);
    if (diff > worstDiff) worstDiff = diff, worst = i;
  }
  for (int64_t i = 0; i < ref.numElements(); ++i)
    if (std::isfinite(r[i])) peak = std::max(peak, std::fabs(double(r[i])));
  const double relative = peak > 0 ? worstDiff / peak : worstDiff;
  if (worst < 0 || relative <= bound) return "";
  return "max|diff| " + fmt(worstDiff) + " = " + fmt(relative) + " of max|unoptimized| " + fmt(peak) + " (bound " +
         fmt(bound) + "); worst at " + indexString(worst, ref.shape()) + ": unoptimized " + fmt(r[worst]) +
         ", optimized " + fmt(g[worst]);
}

// ---------------------------------------------------------------- optimizing

struct GraphCounts {
  size_t nodes = 0;
  int batchNorms = 0, separables = 0, transposes = 0;
  int transposePairs = 0;  // Transposes whose input another Transpose produces
  int geluParts = 0;       // Erf and Tanh nodes (what fuse-gelu removes)
  int layerNormParts = 0;  // ReduceMean and Sqrt nodes (what fuse-layernorm removes)
  int indexMath = 0;       // Range, Mod and ScatterND nodes (constant in Swin: what constant-fold removes)
  int64_t intermediateBytes = 0;
};

// Intermediates are the values a node produces that are not graph outputs:
// what plan-memory places in its arena, so their total is the memory a
// program without buffer reuse would need. Counted per batch item as
// plan-memory does (a symbolic batch dim left out, a static one included).
GraphCounts countGraph(const kiln::Graph& g) {
  GraphCounts c;
  c.nodes = g.numNodes();
  for (const kiln::Node* n : g.nodes()) {
    const std::string& op = n->opName();
    c.batchNorms += op == "BatchNormalization";
    c.separables += op == "SeparableConv2D";
    c.geluParts += op == "Erf" || op == "Tanh";
    c.layerNormParts += op == "ReduceMean" || op == "Sqrt";
    c.indexMath += op == "Range" || op == "Mod" || op == "ScatterND";
    if (op == "Transpose") {
      ++c.transposes;
      const kiln::Node* from = n->input(0) ? n->input(0)->producer : nullptr;
      c.transposePairs += from && from->opName() == "Transpose";
    }
    for (const kiln::Value* v : n->outputs) {
      if (g.isGraphOutput(v)) continue;
      const kiln::Shape& s = v->type.shape;
      c.intermediateBytes += s.product(s.hasSymbolicBatch() ? 1 : 0, s.rank()) *
                             static_cast<int64_t>(kiln::dtypeSize(v->type.dtype));
    }
  }
  return c;
}

std::string optimizationReport(const GraphCounts& before, const GraphCounts& after, int64_t arenaBytes) {
  std::string r = "nodes " + std::to_string(before.nodes) + " -> " + std::to_string(after.nodes) +
                  ", BatchNormalization " + std::to_string(before.batchNorms) + " -> " +
                  std::to_string(after.batchNorms) + ", SeparableConv2D " + std::to_string(before.separables) +
                  " -> " + std::to_string(after.separables) + ", Transpose " + std::to_string(before.transposes) +
                  " -> " + std::to_string(after.transposes);
  if (arenaBytes > 0) {
    char ratio[32];
    std::snprintf(ratio, sizeof ratio, "%.1f%%", 100.0 * double(arenaBytes) / double(after.intermediateBytes));
    r += ", arena " + std::to_string(arenaBytes) + " B vs intermediates " + std::to_string(after.intermediateBytes) +
         " B (" + ratio + ")";
  }
  return r;
}

// "" when the optimized graph meets every expectation that applies to the
// case; else the broken ones.
std::string checkExpectations(const std::string& caseName, const GraphCounts& c, int64_t arenaBytes,
                              const std::vector<Expectation>& expectations) {
  std::string broken;
  auto fail = [&](const Expectation& e, const std::string& why) {
    broken += (broken.empty() ? "" : "; ") + e.text + ": " + why;
  };
  for (const Expectation& e : expectations) {
    if (e.cases && !std::regex_search(caseName, *e.cases)) continue;
    switch (e.kind) {
      case Expectation::NoBatchNorm:
        if (c.batchNorms) fail(e, std::to_string(c.batchNorms) + " BatchNormalization left");
        break;
      case Expectation::NoSeparable:
        if (c.separables) fail(e, std::to_string(c.separables) + " SeparableConv2D left");
        break;
      case Expectation::NoTransposePair:
        if (c.transposePairs) fail(e, std::to_string(c.transposePairs) + " Transpose fed by a Transpose");
        break;
      case Expectation::MaxTransposes:
        if (c.transposes > e.limit) fail(e, std::to_string(c.transposes) + " Transposes left");
        break;
      case Expectation::GeluFused:
        if (c.geluParts) fail(e, std::to_string(c.geluParts) + " Erf/Tanh left");
        break;
      case Expectation::LayerNormFused:
        if (c.layerNormParts) fail(e, std::to_string(c.layerNormParts) + " ReduceMean/Sqrt left");
        break;
      case Expectation::IndexMathFolded:
        if (c.indexMath) fail(e, std::to_string(c.indexMath) + " Range/Mod/ScatterND left");
        break;
      case Expectation::ArenaHalf:
        if (arenaBytes * 2 > c.intermediateBytes)
          fail(e, "arena " + std::to_string(arenaBytes) + " B is over half of the " +
                      std::to_string(c.intermediateBytes) + " B of intermediates");
        break;
    }
  }
  return broken;
}

// ---------------------------------------------------------------- running

// What running one case found: why it fails (empty when it passes), why only
// its optimized graph fails (empty when fine or not optimized), why only its
// compiled model fails (empty when fine or not compiled), and the
// optimizer's summary of the case.
struct CaseResult {
  std::string problem;
  std::string optimizedProblem;
  std::string compiledProblem;
  std::string report;
};

std::vector<fs::path> dataSets(const fs::path& caseDir) {
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(caseDir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
  std::sort(sets.begin(), sets.end());
  return sets;
}

std::vector<fs::path> numberedFiles(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> files;
  for (int i = 0;; ++i) {
    fs::path p = dir / (prefix + std::to_string(i) + ".pb");
    if (!fs::exists(p)) break;
    files.push_back(p);
  }
  return files;
}

// Runs every data set of one in-scope case, the imported graph and (with
// --optimize) the optimized one; reports the first problem of each. Throws
// nothing.
CaseResult runCase(const fs::path& caseDir, const onnx::ModelProto& model, const Scope& scope, const Options& opt) {
  const fs::path modelPath = caseDir / "model.onnx";
  const std::string level = "-O" + std::to_string(opt.optimizeLevel);
  std::string stage = "import";
  enum { Reference, Optimizing, Compiling } phase = Reference;
  CaseResult result;
  auto fail = [&](std::string problem) {
    (phase == Reference    ? result.problem
     : phase == Optimizing ? result.optimizedProblem
                           : result.compiledProblem) = std::move(problem);
    return result;
  };
  try {
    std::vector<fs::path> sets = dataSets(caseDir);
    if (sets.empty()) return fail("no test_data_set_* folder");
    for (const fs::path& set : sets) {
      const std::string setName = set.filename().string();
      std::vector<fs::path> inputFiles = numberedFiles(set, "input_");
      std::vector<fs::path> outputFiles = numberedFiles(set, "output_");
      if (inputFiles.size() != scope.dataInputs.size())
        return fail(setName + ": " + std::to_string(inputFiles.size()) + " input files for " +
               std::to_string(scope.dataInputs.size()) + " graph inputs");

      // Import; from a rewritten copy when static operands get frozen in.
      stage = "import";
      kiln::Graph graph;
      std::map<std::string, fs::path> runtimeInputs;
      if (scope.staticInputs.empty()) {
        for (size_t i = 0; i < inputFiles.size(); ++i) runtimeInputs[scope.dataInputs[i]] = inputFiles[i];
        graph = kiln::onnx_import::importModelFile(modelPath.string());
      } else {
        onnx::ModelProto frozen = model;
        onnx::GraphProto* g = frozen.mutable_graph();
        g->clear_input();
        for (const onnx::ValueInfoProto& v : model.graph().input()) {
          auto pos = std::find(scope.dataInputs.begin(), scope.dataInputs.end(), v.name());
          if (pos == scope.dataInputs.end() || !scope.staticInputs.count(v.name())) {
            *g->add_input() = v;
            if (pos != scope.dataInputs.end()) runtimeInputs[v.name()] = inputFiles[pos - scope.dataInputs.begin()];
            continue;
          }
          onnx::TensorProto t;
          if (!t.ParseFromString(readFile(inputFiles[pos - scope.dataInputs.begin()])))
            return fail(setName + ": cannot parse " + inputFiles[pos - scope.dataInputs.begin()].filename().string());
          t.set_name(v.name());
          *g->add_initializer() = t;
        }
        std::string bytes;
        frozen.SerializeToString(&bytes);
        graph = kiln::onnx_import::importModelBytes(bytes, modelPath.string() + " (static operands frozen)",
                                                    caseDir.string());
      }

      stage = "load data";
      std::vector<kiln::Tensor> inputs;
      for (const kiln::Value* in : graph.inputs()) {
        auto it = runtimeInputs.find(in->name);
        if (it == runtimeInputs.end())
          return fail(setName + ": imported graph has input '" + in->name + "' the model lacks");
        inputs.push_back(kiln::onnx_import::loadTensorProtoFile(it->second.string()));
      }
      if (graph.outputs().size() != outputFiles.size())
        return fail(setName + ": graph has " + std::to_string(graph.outputs().size()) + " outputs, data has " +
                    std::to_string(outputFiles.size()));

      stage = "interpret";
      std::vector<kiln::Tensor> got = kiln::interpret(graph, inputs);
      if (got.size() != outputFiles.size())
        return fail(setName + ": interpret returned " + std::to_string(got.size()) + " outputs, expected " +
                    std::to_string(outputFiles.size()));

      stage = "compare";
      std::vector<kiln::Tensor> wants;
      for (size_t i = 0; i < got.size(); ++i) {
        wants.push_back(kiln::onnx_import::loadTensorProtoFile(outputFiles[i].string()));
        std::string diff = compareTensors(wants[i], got[i], opt.rtol, opt.atol);
        if (!diff.empty())
          return fail(setName + ": output " + std::to_string(i) + " '" + graph.outputs()[i]->name + "': " + diff);
      }
      if (opt.optimizeLevel < 0) continue;

      phase = Optimizing;
      stage = level + " pipeline";
      kiln::Graph optimized = graph.clone();
      kiln::PipelineOptions pipelineOptions;
      pipelineOptions.verifyEachPass = true;
      if (opt.compiled) {  // lay the graph out for the target it is compiled for
        kiln::codegen::CompileOptions target;
        target.cpu = opt.cpu;
        pipelineOptions.passes.channelBlock = kiln::codegen::channelBlock(target);
      }
      kiln::runPipeline(optimized, kiln::pipelineForLevel(opt.optimizeLevel), pipelineOptions);
      stage = "interpret " + level;
      std::vector<kiln::Tensor> gotOptimized = kiln::interpret(optimized, inputs);
      if (gotOptimized.size() != got.size())
        return fail(setName + ": " + level + " graph returned " + std::to_string(gotOptimized.size()) +
                    " outputs, expected " + std::to_string(got.size()));
      stage = "compare " + level;
      // Optimizations reassociate float32 arithmetic; beyond that they must
      // not change a result.
      constexpr double kOptimizedBound = 1e-5;
      for (size_t i = 0; i < got.size(); ++i) {
        const std::string output = setName + ": output " + std::to_string(i) + " '" + graph.outputs()[i]->name + "' ";
        std::string diff = compareNormwise(got[i], gotOptimized[i], kOptimizedBound);
        if (!diff.empty()) return fail(output + "vs unoptimized: " + diff);
        diff = compareTensors(wants[i], gotOptimized[i], opt.rtol, opt.atol);
        if (!diff.empty()) return fail(output + "vs expected: " + diff);
      }
      const GraphCounts after = countGraph(optimized);
      if (result.report.empty()) result.report = optimizationReport(countGraph(graph), after, optimized.arenaBytes);
      std::string broken =
          checkExpectations(caseDir.filename().string(), after, optimized.arenaBytes, opt.expectations);
      if (!broken.empty()) return fail(broken);
      if (!opt.compiled) {
        phase = Reference;
        continue;
      }

      phase = Compiling;
      stage = "compile";
      // The -O2 graph already carries its memory plan; compile it as it is.
      auto model = kiln::testing::CompiledModel::compile(optimized, opt.cpu, /*optimize=*/false);
      stage = "run compiled";
      std::vector<kiln::Tensor> gotCompiled = model->run(inputs);
      stage = "compare compiled";
      // Same graph as the -O2 interpretation, so beyond float32 rounding of
      // vectorized (reassociated) kernels any difference is the backend's.
      constexpr double kCompiledBound = 1e-5;
      for (size_t i = 0; i < got.size(); ++i) {
        const std::string output = setName + ": output " + std::to_string(i) + " '" + graph.outputs()[i]->name + "' ";
        std::string diff = compareNormwise(gotOptimized[i], gotCompiled[i], kCompiledBound);
        if (!diff.empty()) return fail(output + "vs interpreter: " + diff);
        diff = compareTensors(wants[i], gotCompiled[i], opt.rtol, opt.atol);
        if (!diff.empty()) return fail(output + "vs expected: " + diff);
      }
      phase = Reference;
    }
    return result;
  } catch (const std::exception& e) {
    return fail(stage + " failed: " + oneLine(e.what()));
  } catch (...) {
    return fail(stage + " failed: unknown exception");
  }
}

// Runs runCase in a child process so that crashes and hangs are contained.
CaseResult runIsolated(const fs::path& caseDir, const onnx::ModelProto& model, const Scope& scope,
                       const Options& opt) {
  if (!opt.fork) return runCase(caseDir, model, scope, opt);
  auto failed = [](std::string problem) { return CaseResult{std::move(problem), "", "", ""}; };
  std::cout.flush();
  std::cerr.flush();
  int fds[2];
  if (pipe(fds) != 0) return failed("pipe failed: " + std::string(std::strerror(errno)));
  pid_t pid = fork();
  if (pid < 0) return failed("fork failed: " + std::string(std::strerror(errno)));
  if (pid == 0) {
    close(fds[0]);
    alarm(opt.caseTimeoutS);
    // Kernels may print diagnostics; keep them out of the report.
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
    // "=" problem NUL optimizedProblem NUL compiledProblem NUL report: none
    // of them holds a NUL.
    CaseResult r = runCase(caseDir, model, scope, opt);
    std::string result = "=" + r.problem + '\0' + r.optimizedProblem + '\0' + r.compiledProblem + '\0' + r.report;
    size_t off = 0;
    while (off < result.size()) {
      ssize_t w = write(fds[1], result.data() + off, result.size() - off);
      if (w <= 0) break;
      off += static_cast<size_t>(w);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string result;
  char buf[4096];
  ssize_t r;
  while ((r = read(fds[0], buf, sizeof buf)) > 0) result.append(buf, static_cast<size_t>(r));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    if (sig == SIGALRM) return failed("timed out after " + std::to_string(opt.caseTimeoutS) + " s");
    return failed(std::string("crashed: ") + strsignal(sig));
  }
  std::vector<std::string> fields;
  for (size_t begin = 1; !result.empty() && result[0] == '=';) {
    const size_t end = result.find('\0', begin);
    fields.push_back(result.substr(begin, end - begin));
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  if (fields.size() != 4) return failed("child exited with status " + std::to_string(WEXITSTATUS(status)));
  return CaseResult{fields[0], fields[1], fields[2], fields[3]};
}

// CompiledModel writes its .so files into a folder per process under the
// temporary directory and leaves the folder; every case runs in a child
// process of its own, so the children get one shared temporary directory
// that the runner removes when it ends.
class ScratchFolder {
 public:
  explicit ScratchFolder(bool needed) {
    if (!needed) return;
    std::string pattern = (fs::temp_directory_path() / "kiln-conformance-XXXXXX").string();
    if (!mkdtemp(pattern.data())) usage("cannot create a temporary folder: " + std::string(std::strerror(errno)));
    path_ = pattern;
    setenv("TMPDIR", path_.c_str(), 1);
  }
  ~ScratchFolder() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;

 private:
  std::string path_;
};

std::string percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", 100 * fraction);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  GOOGLE_PROTOBUF_VERIFY_VERSION;
  const Options opt = parseOptions(argc, argv);
  SkipList skips;
  for (const std::string& path : opt.skipsFiles) readSkipList(path, skips);
  const ScratchFolder scratch(opt.compiled);

  std::set<std::string> kilnOps;
  for (const std::string& name : kiln::OpRegistry::instance().names()) kilnOps.insert(name);

  std::vector<fs::path> cases;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(opt.casesDir, ec))
    if (e.is_directory() && fs::exists(e.path() / "model.onnx")) cases.push_back(e.path());
  if (ec) usage("cannot list " + opt.casesDir + ": " + ec.message());
  std::sort(cases.begin(), cases.end());

  int found = 0, outOfScope = 0, skipped = 0, passed = 0, failed = 0;
  int converted = 0, convertedPassed = 0;  // in-scope cases the importer upgrades from an opset below 11
  int optimizedOnlyFailures = 0;  // pass unoptimized, fail optimized: pass bugs
  int compiledOnlyFailures = 0;   // pass interpreted, fail compiled: backend bugs
  const std::string level = "-O" + std::to_string(opt.optimizeLevel);
  std::map<std::string, int> outOfScopeWhy;  // key -> cases
  std::vector<std::string> skippedButPassing, skippedNames, skipsOutOfScope;
  std::set<std::string> seen;

  for (const fs::path& dir : cases) {
    const std::string name = dir.filename().string();
    if (opt.only && !std::regex_search(name, *opt.only)) continue;
    ++found;
    seen.insert(name);

    onnx::ModelProto model;
    Scope scope;
    std::string parseError;
    try {
      if (!model.ParseFromString(readFile(dir / "model.onnx"))) parseError = "model.onnx is not a ModelProto";
      else scope = classify(model, kilnOps);
    } catch (const std::exception& e) {
      parseError = e.what();
    }
    const bool isSkipped = skips.reasons.count(name) > 0;

    if (parseError.empty() && !scope.outOfScope.empty()) {
      ++outOfScope;
      for (const std::string& why : scope.outOfScope) ++outOfScopeWhy[why];
      if (isSkipped) skipsOutOfScope.push_back(name);
      std::string all;
      for (const std::string& why : scope.outOfScope) all += (all.empty() ? "" : ", ") + why;
      if (opt.requireInScope) {
        ++failed;
        std::cout << "FAIL " << name << ": out of scope (" << all << ")\n";
      } else if (opt.verbose) {
        std::cout << "out of scope " << name << ": " << all << "\n";
      }
      continue;
    }

    const bool isConverted = parseError.empty() && importerConverts(model);
    converted += isConverted;
    const CaseResult result =
        parseError.empty() ? runIsolated(dir, model, scope, opt) : CaseResult{parseError, "", "", ""};
    const bool optimizedOnly = result.problem.empty() && !result.optimizedProblem.empty();
    const bool compiledOnly =
        result.problem.empty() && result.optimizedProblem.empty() && !result.compiledProblem.empty();
    const std::string problem = optimizedOnly  ? level + ": " + result.optimizedProblem
                                : compiledOnly ? "compiled for " + opt.cpu + ": " + result.compiledProblem
                                               : result.problem;
    if (!result.report.empty() && (opt.verbose || !opt.expectations.empty()))
      std::cout << level << " " << name << ": " << result.report << "\n";
    if (isSkipped) {
      ++skipped;
      skippedNames.push_back(name);
      if (problem.empty()) skippedButPassing.push_back(name);
      else if (opt.verbose) std::cout << "skip " << name << ": " << problem << "\n";
    } else if (problem.empty()) {
      ++passed;
      convertedPassed += isConverted;
      if (opt.verbose) std::cout << "pass " << name << "\n";
    } else {
      ++failed;
      optimizedOnlyFailures += optimizedOnly;
      compiledOnlyFailures += compiledOnly;
      std::cout << "FAIL " << name << ": " << problem << "\n";
    }
    std::cout.flush();
  }

  const int run = passed + failed;
  const double rate = run ? double(passed) / run : 0.0;
  std::cout << "\nkiln_conformance " << opt.casesDir << (opt.only ? " (--only " + opt.onlyText + ")" : "")
            << (opt.optimizeLevel >= 0 ? " " + level : "") << (opt.compiled ? ", compiled for " + opt.cpu : "")
            << "  [rtol " << opt.rtol << ", atol " << opt.atol
            << "]\n";
  std::cout << "  cases:        " << found << "\n";
  std::cout << "  out of scope: " << outOfScope << (opt.requireInScope ? " (counted as failures)" : "") << "\n";
  if (!outOfScopeWhy.empty()) {
    std::vector<std::pair<int, std::string>> why;
    for (const auto& [k, v] : outOfScopeWhy) why.emplace_back(v, k);
    std::sort(why.begin(), why.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    std::string line;
    for (size_t i = 0; i < why.size(); ++i) {
      std::string item = why[i].second + " (" + std::to_string(why[i].first) + ")";
      if (line.size() + item.size() > 100) {
        std::cout << "      " << line << "\n";
        line.clear();
      }
      line += (line.empty() ? "" : ", ") + item;
    }
    if (!line.empty()) std::cout << "      " << line << "\n";
  }
  std::cout << "  in scope:     " << (found - outOfScope) << " (" << converted << " at an opset below "
            << kFirstUnconvertedOpset << ", converted by the importer; " << convertedPassed << " of them passed)\n";
  std::cout << "  skipped:      " << skipped << " (expected failures from the skip list)\n";
  for (const std::string& n : skippedNames) std::cout << "      " << n << "  # " << skips.reasons.at(n) << "\n";
  std::cout << "  passed:       " << passed << "\n";
  std::cout << "  failed:       " << failed << "\n";
  if (opt.optimizeLevel >= 0)
    std::cout << "  of which " << level << " only: " << optimizedOnlyFailures
              << " (passing unoptimized, failing optimized: fails the run at any pass rate)\n";
  if (opt.compiled)
    std::cout << "  of which compiled only: " << compiledOnlyFailures
              << " (passing interpreted, failing compiled: fails the run at any pass rate)\n";
  std::cout << "  pass rate:    " << percent(rate) << " of " << run << " run (required " << percent(opt.minPassRate)
            << ")\n";
  for (const std::string& n : skippedButPassing)
    std::cout << "  note: skipped case " << n << " now passes; remove it from the skip list\n";
  for (const std::string& n : skipsOutOfScope)
    std::cout << "  note: skipped case " << n << " is out of scope anyway; its skip entry is unneeded\n";
  if (!opt.only)
    for (const auto& [n, reason] : skips.reasons)
      if (!seen.count(n)) std::cout << "  note: skip entry " << n << " matches no case\n";

  if (found == 0) {
    std::cout << "no cases found\n";
    return 1;
  }
  if (run == 0 && !opt.requireInScope) {
    std::cout << "no in-scope case ran\n";
    return 1;
  }
  return rate + 1e-12 >= opt.minPassRate && optimizedOnlyFailures == 0 && compiledOnlyFailures == 0 ? 0 : 1;
}
