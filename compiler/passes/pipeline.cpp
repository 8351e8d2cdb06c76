#include "compiler/passes/pipeline.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "compiler/passes/passes.h"

namespace kiln {

const std::vector<PassDef>& allPasses() {
  static const std::vector<PassDef> passes = {
      eliminateIdentityPass(), constantFoldPass(),   cancelTransposesPass(),
      splitSeparablePass(),    foldBatchNormPass(),  fuseActivationPass(),
      fuseGeluPass(),          fuseLayerNormPass(),  winogradPass(),
      csePass(),               dcePass(),            layoutPass(),
      planMemoryPass(),
  };
  return passes;
}

const PassDef& findPass(const std::string& name) {
  std::string known;
  for (const PassDef& p : allPasses()) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  throw Error("unknown pass '" + name + "' (known: " + known + ")");
}

std::vector<std::string> pipelineForLevel(int level) {
  if (level <= 0) return {};
  if (level == 1) return {"eliminate-identity", "constant-fold", "cse", "dce"};
  // Order matters: separable convs split before BN folding so a BN after one
  // folds into its pointwise half; transposes cancel before fusion so the
  // conv -> activation chains are adjacent; LayerNorm and GELU chains are
  // matched after constant folding resolved their constants; layouts are
  // chosen on the final graph (a no-op without PassOptions::channelBlock,
  // as is winograd, which picks its convs by the block and runs after the
  // epilogues are fused so they move with the conv);
  // memory is planned last, sized by the laid-out types.
  return {"eliminate-identity", "constant-fold",  "cancel-transposes", "split-separable", "fold-batchnorm",
          "eliminate-identity", "fuse-layernorm", "fuse-gelu",         "fuse-activation", "cse",
          "winograd",           "dce",            "layout",            "plan-memory"};
}

std::vector<PassRun> runPipeline(Graph& g, const std::vector<std::string>& passes, const PipelineOptions& options) {
  std::ostream& print = options.printStream ? *options.printStream : std::cerr;
  std::vector<PassRun> runs;
  for (size_t i = 0; i < passes.size(); ++i) {
    const PassDef& pass = findPass(passes[i]);
    PassRun run;
    run.pass = pass.name;
    run.nodesBefore = g.numNodes();
    auto start = std::chrono::steady_clock::now();
    pass.run(g, run.stats, options.passes);
    run.milliseconds = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    run.nodesAfter = g.numNodes();
    if (options.verifyEachPass) {
      try {
        verify(g);
      } catch (const Error& e) {
        throw Error("after pass '" + pass.name + "': " + e.message(), e.site());
      }
    }
    bool printThis = options.printAfterAll || std::find(options.printAfter.begin(), options.printAfter.end(),
                                                        pass.name) != options.printAfter.end();
    if (printThis) print << "// ----- IR after " << pass.name << " -----\n" << printGraph(g);
    if (!options.dumpDotDir.empty()) {
      std::filesystem::create_directories(options.dumpDotDir);
      std::string prefix = (i + 1 < 10 ? "0" : "") + std::to_string(i + 1) + "-";
      std::ofstream(std::filesystem::path(options.dumpDotDir) / (prefix + pass.name + ".dot")) << graphToDot(g);
    }
    runs.push_back(std::move(run));
  }
  return runs;
}

}  // namespace kiln
