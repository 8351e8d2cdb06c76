// Runs named passes over a graph, with the -O pipelines defined in one place,
// print-after / DOT dumps for debugging, per-pass statistics, and the
// verifier after every pass when asked (always in tests and debug builds).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "compiler/passes/pass.h"

namespace kiln {

const std::vector<PassDef>& allPasses();
const PassDef& findPass(const std::string& name);  // throws kiln::Error listing known passes

// Pass names of the -O0 / -O1 / -O2 (default) pipelines.
std::vector<std::string> pipelineForLevel(int level);

struct PipelineOptions {
  std::vector<std::string> printAfter;  // pass names
  bool printAfterAll = false;
  std::string dumpDotDir;  // writes NN-<pass>.dot after each pass when set
  bool verifyEachPass = true;
  std::ostream* printStream = nullptr;  // where --print-after goes (stderr if null)
  PassOptions passes;  // target facts for the passes (the layout pass's channel block)
};

struct PassRun {
  std::string pass;
  PassStats stats;
  size_t nodesBefore = 0;
  size_t nodesAfter = 0;
  double milliseconds = 0;
};

std::vector<PassRun> runPipeline(Graph& g, const std::vector<std::string>& passes,
                                 const PipelineOptions& options = {});

}  // namespace kiln
