// `kiln`: the command-line entry point. Dispatches to the subcommands and
// turns every failure into "kiln: error: ..." on stderr and an exit code.
#include <exception>
#include <iostream>

#include "tools/cli_common.h"

namespace kiln::cli {
namespace {

const std::vector<const Command*>& commands() {
  static const std::vector<const Command*> all = {&inspectCommand(), &compileCommand(), &runCommand(),
                                                    &predictCommand(), &benchCommand(), &ensembleCommand()};
  return all;
}

const Command* findCommand(std::string_view name) {
  for (const Command* c : commands())
    if (c->name == name) return c;
  return nullptr;
}

std::string topLevelHelp() {
  std::string text =
      "usage: kiln COMMAND [ARGS...]\n"
      "       kiln --help | --version | help COMMAND\n"
      "\n"
      "kiln compiles Keras-style CNNs given as ONNX models, alone or as weighted\n"
      "ensembles.\n"
      "\n"
      "commands:\n";
  for (const Command* c : commands()) {
    std::string name(c->name);
    name.resize(10, ' ');
    text += "  " + name + std::string(c->summary) + "\n";
  }
  text +=
      "\n"
      "exit status: 0 success, 1 unusable model or data file or failed compile, 2 bad usage.\n"
      "Run 'kiln help COMMAND' for a command's options.\n";
  return text;
}

int reportUsageError(const std::string& message, std::string_view helpHint) {
  std::cerr << "kiln: error: " << message << "\n";
  if (!helpHint.empty()) std::cerr << "kiln: see '" << helpHint << "'\n";
  return kExitUsage;
}

// Returns the exit code; UsageError escapes to main with a help hint.
int dispatch(const std::vector<std::string>& args) {
  if (args.empty()) {
    std::cerr << topLevelHelp();
    return kExitUsage;
  }
  const std::string& first = args[0];
  if (first == "--help" || first == "-h" || (first == "help" && args.size() == 1)) {
    std::cout << topLevelHelp();
    return kExitOk;
  }
  if (first == "--version") {
    std::cout << "kiln " << KILN_VERSION << "\n";
    return kExitOk;
  }
  if (first == "help") {
    if (args.size() > 2) throw UsageError("'kiln help' takes one command name");
    const Command* c = findCommand(args[1]);
    if (!c) throw UsageError("unknown command '" + args[1] + "'");
    std::cout << c->help;
    return kExitOk;
  }
  const Command* c = findCommand(first);
  if (!c) throw UsageError(first[0] == '-' ? "unknown option '" + first + "'" : "unknown command '" + first + "'");

  std::vector<std::string> rest(args.begin() + 1, args.end());
  std::string hint = "kiln help " + std::string(c->name);
  try {
    ParsedArgs parsed = parseArgs(c->name, rest, c->options);
    if (parsed.helpRequested) {
      std::cout << c->help;
      return kExitOk;
    }
    return c->run(parsed);
  } catch (const UsageError& e) {
    return reportUsageError(e.what(), hint);
  }
}

}  // namespace
}  // namespace kiln::cli

int main(int argc, char** argv) {
  using namespace kiln::cli;
  try {
    return dispatch(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const UsageError& e) {
    return reportUsageError(e.what(), "kiln --help");
  } catch (const std::exception& e) {
    // kiln::Error names file, node and op; other library failures (file
    // system, allocation) also stem from the model or data given.
    std::cerr << "kiln: error: " << e.what() << "\n";
    return kExitBadInput;
  }
}
