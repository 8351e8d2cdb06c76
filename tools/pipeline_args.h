// The optimizer flags `kiln inspect --after-passes` and `kiln run` share:
// -O LEVEL, --passes, --print-after, --print-after-all, --dump-dot and
// --verify-each, turned into the pass list and PipelineOptions for
// runPipeline.
#pragma once

#include <string>
#include <vector>

#include "compiler/passes/pipeline.h"
#include "tools/cli_common.h"

namespace kiln::cli {

// Appended to a command's own option specs.
const std::vector<OptionSpec>& pipelineOptionSpecs();

// Help lines for those options, aligned like the commands' option lists.
std::string pipelineOptionsHelp();

struct PipelineRequest {
  std::string label;  // how the pipeline was chosen, for reports: "-O2", "--passes"
  std::vector<std::string> passes;
  PipelineOptions options;
};

// Validates the flags before any model is loaded; throws UsageError for a bad
// level, an unknown pass, or --print-after naming a pass the pipeline skips.
// Without -O or --passes the pipeline is -O2.
PipelineRequest parsePipelineArgs(const ParsedArgs& args);

// The first pipeline flag given, or "" (inspect rejects them without
// --after-passes rather than ignoring them).
std::string firstPipelineOption(const ParsedArgs& args);

}  // namespace kiln::cli
