// `kiln inspect`: summarizes an imported model (interface, op histogram,
// parameter and MAC counts), optionally dumps its IR as text or DOT, and with
// --after-passes reports what the optimization pipeline does to it.
#include <algorithm>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <map>

#include "frontends/onnx/onnx_importer.h"
#include "tools/cli_common.h"
#include "tools/npy.h"
#include "tools/pipeline_args.h"

namespace kiln::cli {
namespace {

constexpr std::string_view kHelpHead =
    "usage: kiln inspect MODEL.onnx [--dot FILE] [--print-ir]\n"
    "       kiln inspect MODEL.onnx --after-passes [-O0|-O1|-O2] [--passes A,B,...]\n"
    "                    [--print-after PASS]... [--print-after-all] [--dump-dot DIR]\n"
    "                    [--verify-each]\n"
    "\n"
    "Imports MODEL.onnx and prints its inputs and outputs (N is the symbolic\n"
    "batch), node count, op histogram, parameter count (elements of all f32\n"
    "constants) and multiply-accumulates per sample.\n"
    "\n"
    "With --after-passes it then optimizes the graph and prints the node count\n"
    "of each op before and after, each pass's node counts, counters and time,\n"
    "and, when plan-memory ran, the workspace arena per sample next to the sum\n"
    "of the intermediate tensors it holds (64-byte aligned) and their ratio.\n"
    "\n"
    "options:\n"
    "  --dot FILE             also write the imported graph in Graphviz DOT form\n"
    "                         to FILE\n"
    "  --print-ir             also print the imported graph in text form\n"
    "  --after-passes         optimize and report; the options below need it\n";

constexpr std::string_view kHelpTail =
    "  -h, --help             show this help\n"
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

// Bytes with a binary-prefixed size: "1536 B (1.50 KiB)".
std::string humanBytes(int64_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  std::string text = std::to_string(bytes) + " B";
  if (bytes < 1024) return text;
  double v = static_cast<double>(bytes) / 1024;
  size_t i = 0;
  while (v >= 1024 && i + 1 < std::size(kUnits)) {
    v /= 1024;
    ++i;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, " (%.2f %s)", v, kUnits[i]);
  return text + buf;
}

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

void printValues(const char* title, const std::vector<Value*>& values) {
  std::cout << title << " (" << values.size() << "):\n";
  for (const Value* v : values) std::cout << "  " << v->name << ": " << v->type.str() << "\n";
}

std::map<std::string, int64_t> opCounts(const Graph& g) {
  std::map<std::string, int64_t> counts;
  for (const Node* n : g.nodes()) ++counts[n->opName()];
  return counts;
}

// Two columns, one row per op present before or after (vanished ops show 0
// after, ops the passes introduced 0 before), sorted by name.
void printOpTable(const std::map<std::string, int64_t>& before, const std::map<std::string, int64_t>& after) {
  std::map<std::string, std::pair<int64_t, int64_t>> rows;
  for (const auto& [op, n] : before) rows[op].first = n;
  for (const auto& [op, n] : after) rows[op].second = n;
  size_t width = std::string_view("total").size();
  for (const auto& row : rows) width = std::max(width, row.first.size());
  auto printRow = [&](const std::string& name, const std::string& b, const std::string& a) {
    std::cout << "  " << std::left << std::setw(static_cast<int>(width)) << name << std::right << std::setw(8) << b
              << std::setw(8) << a << "\n";
  };
  std::cout << "ops before -> after:\n";
  printRow("op", "before", "after");
  int64_t totalBefore = 0, totalAfter = 0;
  for (const auto& [op, counts] : rows) {
    printRow(op, std::to_string(counts.first), std::to_string(counts.second));
    totalBefore += counts.first;
    totalAfter += counts.second;
  }
  printRow("total", std::to_string(totalBefore), std::to_string(totalAfter));
}

void printPassRuns(const std::string& label, const std::vector<PassRun>& runs) {
  double totalMs = 0;
  size_t width = 0;
  for (const PassRun& run : runs) {
    totalMs += run.milliseconds;
    width = std::max(width, run.pass.size());
  }
  std::cout << "passes (" << label << ", " << runs.size() << " runs, " << fixed(totalMs, 3) << " ms):\n";
  for (const PassRun& run : runs) {
    std::cout << "  " << std::left << std::setw(static_cast<int>(width)) << run.pass << std::right << "  "
              << run.nodesBefore << " -> " << run.nodesAfter << " nodes  " << fixed(run.milliseconds, 3) << " ms";
    const char* separator = "  ";
    for (const auto& [counter, n] : run.stats.all()) {
      std::cout << separator << counter << ": " << n;
      separator = ", ";
    }
    std::cout << "\n";
  }
}

// The arena plan-memory chose against the sum of the tensors it placed: how
// much buffer reuse saves. Uses the last plan-memory run, whose plan is the
// one Graph::arenaBytes holds.
void printMemory(const Graph& g, const std::vector<PassRun>& runs) {
  auto plan = std::find_if(runs.rbegin(), runs.rend(), [](const PassRun& r) { return r.pass == "plan-memory"; });
  if (plan == runs.rend()) return;
  int64_t tensors = plan->stats.get("tensor bytes per sample");
  std::cout << "memory per sample (plan-memory):\n";
  std::cout << "  arena:                " << humanBytes(g.arenaBytes) << "\n";
  std::cout << "  intermediate tensors: " << humanBytes(tensors) << "\n";
  std::cout << "  arena / tensors:      "
            << (tensors > 0 ? fixed(static_cast<double>(g.arenaBytes) / static_cast<double>(tensors), 3) : "n/a")
            << "\n";
}

int runInspect(const ParsedArgs& args) {
  if (args.positionals.size() != 1)
    throw UsageError("inspect takes one MODEL.onnx, given " + std::to_string(args.positionals.size()) + " arguments");
  bool afterPasses = args.has("--after-passes");
  std::string pipelineFlag = firstPipelineOption(args);
  if (!afterPasses && !pipelineFlag.empty()) throw UsageError(pipelineFlag + " needs --after-passes");
  // Parse every option before the (possibly slow) import.
  PipelineRequest pipeline = afterPasses ? parsePipelineArgs(args, kGraphLevels) : PipelineRequest{};

  const std::string& modelPath = args.positionals[0];
  Graph g = onnx_import::importModelFile(modelPath);

  std::cout << "model: " << modelPath << "\n";
  printValues("inputs", g.inputs());
  printValues("outputs", g.outputs());

  std::map<std::string, int64_t> histogram = opCounts(g);
  int64_t macs = 0;
  for (const Node* n : g.nodes())
    if (n->op->macs) macs += n->op->macs(*n);
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

  if (afterPasses) {
    std::vector<PassRun> runs = runPipeline(g, pipeline.passes, pipeline.options);
    printOpTable(histogram, opCounts(g));
    printPassRuns(pipeline.label, runs);
    printMemory(g, runs);
  }
  return kExitOk;
}

}  // namespace

const Command& inspectCommand() {
  static const std::string help = std::string(kHelpHead) + pipelineOptionsHelp(kGraphLevels) + std::string(kHelpTail);
  static const Command command = [] {
    Command c{
        "inspect",
        "summarize a model; with --after-passes, what the optimizer does",
        help,
        {{"--dot", true, false}, {"--print-ir", false, false}, {"--after-passes", false, false}},
        runInspect,
    };
    c.options.insert(c.options.end(), pipelineOptionSpecs().begin(), pipelineOptionSpecs().end());
    return c;
  }();
  return command;
}

}  // namespace kiln::cli
