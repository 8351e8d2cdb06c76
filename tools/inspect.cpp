// `kiln inspect`: summarizes an imported model (interface, op histogram,
// parameter and MAC counts) and optionally dumps its IR as text or DOT.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>

#include "frontends/onnx/onnx_importer.h"
#include "tools/cli_common.h"
#include "tools/npy.h"

namespace kiln::cli {
namespace {

constexpr std::string_view kHelp =
    "usage: kiln inspect MODEL.onnx [--dot FILE] [--print-ir]\n"
    "\n"
    "Imports MODEL.onnx and prints its inputs and outputs (N is the symbolic\n"
    "batch), node count, op histogram, parameter count (elements of all f32\n"
    "constants) and multiply-accumulates per sample.\n"
    "\n"
    "options:\n"
    "  --dot FILE    also write the IR graph in Graphviz DOT form to FILE\n"
    "  --print-ir    also print the IR in text form\n"
    "  -h, --help    show this help\n"
    "\n"
    "exit status: 0 success, 1 unusable model, 2 bad usage.\n";

// "5.57 M" style: three significant digits with a metric suffix.
std::string humanCount(int64_t n) {
  static constexpr const char* kSuffixes[] = {"", " K", " M", " G", " T", " P", " E"};
  double v = static_cast<double>(n);
  size_t i = 0;
  while (v >= 1000 && i + 1 < std::size(kSuffixes)) {
    v /= 1000;
    ++i;
  }
  if (i == 0) return std::to_string(n);
  char buf[32];
  std::snprintf(buf, sizeof buf, v >= 100 ? "%.0f%s" : v >= 10 ? "%.1f%s" : "%.2f%s", v, kSuffixes[i]);
  return buf;
}

void printValues(const char* title, const std::vector<Value*>& values) {
  std::cout << title << " (" << values.size() << "):\n";
  for (const Value* v : values) std::cout << "  " << v->name << ": " << v->type.str() << "\n";
}

int runInspect(const ParsedArgs& args) {
  if (args.positionals.size() != 1)
    throw UsageError("inspect takes one MODEL.onnx, given " + std::to_string(args.positionals.size()) + " arguments");
  const std::string& modelPath = args.positionals[0];
  Graph g = onnx_import::importModelFile(modelPath);

  std::cout << "model: " << modelPath << "\n";
  printValues("inputs", g.inputs());
  printValues("outputs", g.outputs());

  std::map<std::string, int64_t> histogram;
  int64_t macs = 0;
  for (const Node* n : g.nodes()) {
    ++histogram[n->opName()];
    if (n->op->macs) macs += n->op->macs(*n);
  }
  std::vector<std::pair<std::string, int64_t>> ops(histogram.begin(), histogram.end());
  // Most frequent first, ties by name.
  std::sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  std::cout << "nodes: " << g.numNodes() << "\n";
  std::cout << "ops (" << ops.size() << " kinds):\n";
  for (const auto& [name, count] : ops) std::cout << "  " << name << ": " << count << "\n";

  int64_t parameters = 0;
  for (const Value* v : g.values())
    if (v->isConstant() && v->constant.dtype() == DType::F32) parameters += v->constant.numElements();
  std::cout << "parameters: " << parameters << " (" << humanCount(parameters) << ")\n";
  std::cout << "MACs: " << humanCount(macs) << " per sample\n";

  if (auto dotPath = args.value("--dot")) writeFileAtomically(*dotPath, graphToDot(g));
  if (args.has("--print-ir")) std::cout << printGraph(g);
  return kExitOk;
}

}  // namespace

const Command& inspectCommand() {
  static const Command command{
      "inspect",
      "summarize a model: interface, ops, parameters, MACs",
      kHelp,
      {{"--dot", true, false}, {"--print-ir", false, false}},
      runInspect,
  };
  return command;
}

}  // namespace kiln::cli
