// Shared pieces of the `kiln` subcommands: exit codes, usage errors, the
// subcommand table entry and the argument parser every subcommand uses.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitBadInput = 1,  // the model or a data file is unusable (kiln::Error, I/O failure)
  kExitUsage = 2,     // the command line is wrong or does not fit the model's interface
};

// A command line kiln cannot act on; main prints it and exits with kExitUsage.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct OptionSpec {
  std::string name;  // with the dashes: "--dot"
  bool takesValue = false;
  bool repeatable = false;
  // The value is glued to the name, compiler style: "-O2" is "-O" with "2".
  bool attachedValue = false;
};

// One subcommand's arguments, split into options and positionals.
struct ParsedArgs {
  std::vector<std::string> positionals;
  std::map<std::string, std::vector<std::string>> options;  // flags map to one empty value
  bool helpRequested = false;

  bool has(const std::string& option) const { return options.count(option) != 0; }
  // The value of a non-repeatable option, if given.
  std::optional<std::string> value(const std::string& option) const;
  // Every value of a repeatable option, in command-line order.
  std::vector<std::string> values(const std::string& option) const;
};

// Accepts "--name VALUE", "--name=VALUE", "-nameVALUE" (attachedValue specs),
// flags, "--" (ends options) and "--help"/"-h". Throws UsageError for unknown options, missing values and
// non-repeatable options given twice.
ParsedArgs parseArgs(std::string_view command, const std::vector<std::string>& args,
                     const std::vector<OptionSpec>& specs);

// Parses a decimal integer in [min, max] given to `option`; throws UsageError.
int64_t parseInteger(std::string_view option, const std::string& text, int64_t min, int64_t max);

struct Command {
  std::string_view name;
  std::string_view summary;  // one line for `kiln --help`
  std::string_view help;     // the full text for `kiln help NAME` and `--help`
  std::vector<OptionSpec> options;
  int (*run)(const ParsedArgs& args);
};

const Command& inspectCommand();
const Command& compileCommand();
const Command& runCommand();
const Command& ensembleCommand();
const Command& predictCommand();
const Command& benchCommand();

}  // namespace kiln::cli
