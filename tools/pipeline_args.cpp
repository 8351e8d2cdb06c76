// Parsing of the optimizer flags shared by the subcommands (see pipeline_args.h).
#include "tools/pipeline_args.h"

#include <algorithm>
#include <iostream>
#include <sstream>

namespace kiln::cli {

namespace {

// Debug builds verify the IR after every pass, so a broken pass shows up at
// the pass that broke it; release builds skip that cost unless asked.
#ifdef NDEBUG
constexpr bool kVerifyByDefault = false;
#else
constexpr bool kVerifyByDefault = true;
#endif

std::vector<std::string> splitPassList(const std::string& list) {
  std::vector<std::string> names;
  size_t begin = 0;
  while (true) {
    size_t comma = list.find(',', begin);
    names.push_back(list.substr(begin, comma - begin));
    if (comma == std::string::npos) return names;
    begin = comma + 1;
  }
}

// findPass reports unknown names as kiln::Error (exit 1); on the command
// line they are usage errors.
void requireKnownPass(const std::string& option, const std::string& name) {
  try {
    findPass(name);
  } catch (const Error& e) {
    throw UsageError(option + ": " + e.message());
  }
}

// "  OPTION  description", the description word-wrapped in the column the
// commands' option lists use.
std::string helpEntry(std::string_view option, const std::string& description) {
  constexpr size_t kColumn = 25, kWidth = 79;
  std::string text, line = "  " + std::string(option);
  std::istringstream words(description);
  for (std::string word; words >> word;) {
    bool fresh = line.size() <= kColumn;  // nothing in the description column yet
    if (!fresh && line.size() + 1 + word.size() > kWidth) {
      text += line + "\n";
      line.clear();
      fresh = true;
    }
    if (fresh) {
      line.resize(kColumn, ' ');
    } else {
      line += ' ';
    }
    line += word;
  }
  return text + line + "\n";
}

std::string joinNames(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

void endWithPlanMemory(std::vector<std::string>& passes) {
  if (passes.empty() || passes.back() != "plan-memory") passes.push_back("plan-memory");
}

std::vector<std::string> passesForLevel(int level, const PipelineLevels& levels) {
  std::vector<std::string> passes = pipelineForLevel(level);
  if (levels.endWithPlanMemory) endWithPlanMemory(passes);
  return passes;
}

}  // namespace

const std::vector<OptionSpec>& pipelineOptionSpecs() {
  static const std::vector<OptionSpec> specs = {
      {"-O", true, false, true},          {"--passes", true, false},  {"--print-after", true, true},
      {"--print-after-all", false, false}, {"--dump-dot", true, false}, {"--verify-each", false, false},
  };
  return specs;
}

std::string pipelineOptionsHelp(const PipelineLevels& levels) {
  std::vector<std::string> known;
  for (const PassDef& pass : allPasses()) known.push_back(pass.name);
  // Pass lists come from the pipelines themselves so the help cannot go stale.
  std::string flags, meaning;
  for (int level = 0; level <= levels.maxLevel; ++level) {
    std::string flag = "-O" + std::to_string(level);
    std::vector<std::string> passes = passesForLevel(level, levels);
    flags += (level ? ", " : "") + flag;
    meaning += (level ? "; " : "") + flag + (level == levels.defaultLevel ? " (the default)" : "") + " runs ";
    meaning += level > 0 && passes == passesForLevel(level - 1, levels) ? "the passes of -O" + std::to_string(level - 1)
               : passes.empty()                                         ? "no pass"
                                                                        : joinNames(passes);
  }
  return helpEntry(flags, "the optimization pipeline: " + meaning + std::string(levels.helpNote)) +
         helpEntry("--passes A,B,...", "run exactly these passes, in this order, instead of a -O pipeline (a pass "
                                       "may repeat); the passes: " + joinNames(known)) +
         helpEntry("--print-after PASS", "print the IR to stdout after each run of PASS (repeatable)") +
         helpEntry("--print-after-all", "print the IR to stdout after every pass") +
         helpEntry("--dump-dot DIR", "write the graph after each pass as DIR/NN-PASS.dot") +
         helpEntry("--verify-each", "check the IR invariants after every pass (always on in debug builds)");
}

PipelineRequest parsePipelineArgs(const ParsedArgs& args, const PipelineLevels& levels) {
  PipelineRequest request;
  request.level = levels.defaultLevel;
  if (auto text = args.value("-O")) {
    if (text->size() != 1 || (*text)[0] < '0' || (*text)[0] > '0' + levels.maxLevel) {
      std::string known;
      for (int level = 0; level <= levels.maxLevel; ++level)
        known += (level == 0 ? "" : level == levels.maxLevel ? " or " : ", ") + ("-O" + std::to_string(level));
      throw UsageError("unknown optimization level '-O" + *text + "' (use " + known + ")");
    }
    request.level = (*text)[0] - '0';
  }
  request.label = "-O" + std::to_string(request.level);
  request.passes = passesForLevel(request.level, levels);
  if (auto list = args.value("--passes")) {
    request.passes = splitPassList(*list);
    for (const std::string& name : request.passes) requireKnownPass("--passes", name);
    if (levels.endWithPlanMemory) endWithPlanMemory(request.passes);
    request.label = "--passes";
  }

  for (const std::string& name : args.values("--print-after")) {
    requireKnownPass("--print-after", name);
    if (std::find(request.passes.begin(), request.passes.end(), name) == request.passes.end())
      throw UsageError("--print-after: pass '" + name + "' is not in the " + request.label + " pipeline");
    request.options.printAfter.push_back(name);
  }
  request.options.printAfterAll = args.has("--print-after-all");
  if (auto dir = args.value("--dump-dot")) {
    if (dir->empty()) throw UsageError("--dump-dot needs a directory name");
    request.options.dumpDotDir = *dir;
  }
  request.options.verifyEachPass = kVerifyByDefault || args.has("--verify-each");
  request.options.printStream = &std::cout;
  return request;
}

std::string firstPipelineOption(const ParsedArgs& args) {
  for (const OptionSpec& spec : pipelineOptionSpecs())
    if (args.has(spec.name)) return spec.name;
  return "";
}

}  // namespace kiln::cli
