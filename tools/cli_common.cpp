// Argument parsing shared by the kiln subcommands (see cli_common.h).
#include "tools/cli_common.h"

#include <algorithm>
#include <charconv>

namespace kiln::cli {

std::optional<std::string> ParsedArgs::value(const std::string& option) const {
  auto it = options.find(option);
  if (it == options.end()) return std::nullopt;
  return it->second.front();
}

std::vector<std::string> ParsedArgs::values(const std::string& option) const {
  auto it = options.find(option);
  return it == options.end() ? std::vector<std::string>{} : it->second;
}

ParsedArgs parseArgs(std::string_view command, const std::vector<std::string>& args,
                     const std::vector<OptionSpec>& specs) {
  ParsedArgs parsed;
  bool optionsEnded = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (optionsEnded || arg.size() < 2 || arg[0] != '-') {
      parsed.positionals.push_back(arg);
      continue;
    }
    if (arg == "--") {
      optionsEnded = true;
      continue;
    }
    if (arg == "--help" || arg == "-h") {
      parsed.helpRequested = true;
      continue;
    }
    size_t eq = arg.find('=');
    std::string name = arg.substr(0, eq);
    auto spec = std::find_if(specs.begin(), specs.end(), [&](const OptionSpec& s) {
      return s.attachedValue ? arg.starts_with(s.name) : s.name == name;
    });
    if (spec == specs.end())
      throw UsageError("unknown option '" + name + "' for 'kiln " + std::string(command) + "'");
    std::string value;
    if (spec->attachedValue) {
      name = spec->name;
      value = arg.substr(name.size());
      if (value.empty()) throw UsageError("option '" + name + "' needs its value attached, as in '" + name + "VALUE'");
    } else if (!spec->takesValue) {
      if (eq != std::string::npos) throw UsageError("option '" + name + "' takes no value");
    } else if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      throw UsageError("option '" + name + "' needs a value");
    }
    std::vector<std::string>& slot = parsed.options[name];
    if (!slot.empty() && !spec->repeatable) throw UsageError("option '" + name + "' given more than once");
    slot.push_back(std::move(value));
  }
  return parsed;
}

int64_t parseInteger(std::string_view option, const std::string& text, int64_t min, int64_t max) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < min || v > max)
    throw UsageError("option '" + std::string(option) + "' expects an integer in [" + std::to_string(min) + ", " +
                     std::to_string(max) + "], got '" + text + "'");
  return v;
}

}  // namespace kiln::cli
