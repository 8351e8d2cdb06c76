// The optimizer flags `kiln inspect --after-passes`, `kiln run` and
// `kiln compile` share: -O LEVEL, --passes, --print-after, --print-after-all,
// --dump-dot and --verify-each, turned into the pass list and
// PipelineOptions for runPipeline.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "compiler/passes/pipeline.h"
#include "tools/cli_common.h"

namespace kiln::cli {

// Appended to a command's own option specs.
const std::vector<OptionSpec>& pipelineOptionSpecs();

// What the -O levels mean to a command.
struct PipelineLevels {
  int maxLevel;
  int defaultLevel;
  // Code generation reads the memory plan, so the compiler's pipelines all
  // end in plan-memory (added to -O0, -O1 and --passes lists lacking it).
  bool endWithPlanMemory;
  std::string_view helpNote;  // appended to the -O help line
};
// inspect and run: -O0..-O2, default -O2, the pipelines as defined.
inline constexpr PipelineLevels kGraphLevels{2, 2, false, ""};
// compile: -O0..-O3, default -O3; -O3 runs -O2's graph pipeline, the level
// also goes to LLVM.
inline constexpr PipelineLevels kCompileLevels{
    3, 3, true,
    "; LLVM optimizes at the same level. Code generation needs the memory plan: plan-memory ends every pipeline, "
    "--passes lists too"};

// Help lines for those options, aligned like the commands' option lists.
std::string pipelineOptionsHelp(const PipelineLevels& levels);

struct PipelineRequest {
  std::string label;  // how the pipeline was chosen, for reports: "-O2", "--passes"
  int level = 0;      // the -O level given or defaulted (also with --passes)
  std::vector<std::string> passes;
  PipelineOptions options;
};

// Validates the flags before any model is loaded; throws UsageError for a bad
// level, an unknown pass, or --print-after naming a pass the pipeline skips.
// Without -O or --passes the pipeline is the default level's.
PipelineRequest parsePipelineArgs(const ParsedArgs& args, const PipelineLevels& levels);

// The first pipeline flag given, or "" (inspect rejects them without
// --after-passes, run for compiled models, rather than ignoring them).
std::string firstPipelineOption(const ParsedArgs& args);

}  // namespace kiln::cli
