// `kiln ensemble create`: writes a kiln-ensemble manifest (the member models,
// their weights, the combination rule and the class names) with the
// runtime's manifest writer, the format kiln_ensemble_open and
// `kiln compile --ensemble` read.
#include <charconv>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <system_error>

#include "runtime/src/ensemble_manifest.h"
#include "tools/cli_common.h"
#include "tools/model_files.h"
#include "tools/npy.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kHelp =
    "usage: kiln ensemble create -o ENS.json --member PATH[:WEIGHT]...\n"
    "                            [--rule mean|logits|vote]\n"
    "                            [--member-output probabilities|logits] [--labels FILE]\n"
    "\n"
    "Writes a kiln-ensemble manifest: the member models (compiled artifacts for\n"
    "the runtime's kiln_ensemble_open, ONNX models for 'kiln compile\n"
    "--ensemble'), their weights, the rule that combines their outputs and\n"
    "the class names. Member paths are recorded relative to the manifest's\n"
    "folder when they resolve back to the same file from there, else\n"
    "absolute. ENS.json is written atomically.\n"
    "\n"
    "options:\n"
    "  -o ENS.json            the manifest to write\n"
    "  --member PATH[:WEIGHT] a member model and its weight (default 1), in\n"
    "                         order (repeatable). Weights are finite, >= 0 and\n"
    "                         not all 0; readers normalize them to sum to 1. The\n"
    "                         weight follows the last ':', so a PATH holding a\n"
    "                         ':' needs an explicit weight\n"
    "  --rule RULE            how member outputs combine: mean (the weighted\n"
    "                         mean of probabilities; the default), logits (softmax\n"
    "                         of the weighted mean of logits) or vote (per class,\n"
    "                         the summed weight of the members whose top class it\n"
    "                         is); see 'kiln help compile'\n"
    "  --member-output KIND   what the members output: probabilities (the\n"
    "                         default) or logits\n"
    "  --labels FILE          class names, one per line (line i names class i)\n"
    "  -h, --help             show this help\n"
    "\n"
    "exit status:\n"
    "  0  success\n"
    "  1  unusable input: a member file that does not exist, an unreadable or\n"
    "     empty labels file, an unwritable ENS.json\n"
    "  2  bad usage: unknown subcommand or option, no -o or --member, a\n"
    "     malformed, negative or non-finite weight, all weights 0, an unknown\n"
    "     --rule or --member-output\n";

// A name of the manifest format (ruleName, memberOutputName) back to its enum.
template <class Enum>
Enum parseChoice(const std::string& option, const std::string& text, std::initializer_list<Enum> choices,
                 const char* (*nameOf)(Enum)) {
  std::string allowed;
  for (Enum e : choices) {
    if (text == nameOf(e)) return e;
    allowed += (allowed.empty() ? "" : ", ") + std::string(nameOf(e));
  }
  throw UsageError("unknown " + option + " '" + text + "' (use " + allowed + ")");
}

// "PATH[:WEIGHT]" -> the member as given on the command line.
runtime::EnsembleMember parseMember(const std::string& spec) {
  runtime::EnsembleMember member{spec, 1.0};
  const size_t colon = spec.rfind(':');
  if (colon != std::string::npos) {
    member.path = spec.substr(0, colon);
    const std::string weight = spec.substr(colon + 1);
    auto [end, ec] = std::from_chars(weight.data(), weight.data() + weight.size(), member.weight);
    if (weight.empty() || ec != std::errc() || end != weight.data() + weight.size())
      throw UsageError("malformed --member '" + spec + "': the weight after the last ':' is '" + weight +
                       "', not a number (PATH[:WEIGHT])");
  }
  if (member.path.empty()) throw UsageError("malformed --member '" + spec + "': the path is empty");
  if (!std::isfinite(member.weight) || member.weight < 0)
    throw UsageError("--member '" + spec + "': the weight must be a finite number >= 0");
  return member;
}

// The member's path as the manifest records it: relative to the manifest's
// folder when that resolves (as readers resolve it) to the same file, else
// absolute.
std::string recordedPath(const std::string& manifestPath, const std::string& memberPath) {
  const fs::path absolute = fs::absolute(memberPath).lexically_normal();
  const fs::path relative = absolute.lexically_relative(fs::absolute(manifestPath).parent_path().lexically_normal());
  std::error_code ec;
  if (!relative.empty() &&
      fs::equivalent(runtime::resolveMemberPath(manifestPath, {relative.string(), 0}), memberPath, ec))
    return relative.string();
  return absolute.string();
}

int runCreate(const ParsedArgs& args) {
  std::optional<std::string> out = args.value("-o");
  if (!out || out->empty()) throw UsageError("-o ENS.json is required");
  std::vector<std::string> specs = args.values("--member");
  if (specs.empty()) throw UsageError("give the members with --member PATH[:WEIGHT]");
  runtime::EnsembleManifest manifest;
  using runtime::EnsembleRule, runtime::MemberOutput;
  if (auto rule = args.value("--rule"))
    manifest.rule =
        parseChoice("--rule", *rule, {EnsembleRule::Mean, EnsembleRule::Logits, EnsembleRule::Vote}, runtime::ruleName);
  if (auto output = args.value("--member-output"))
    manifest.memberOutput = parseChoice("--member-output", *output, {MemberOutput::Probabilities, MemberOutput::Logits},
                                        runtime::memberOutputName);
  double total = 0;
  for (const std::string& spec : specs) {
    manifest.members.push_back(parseMember(spec));
    total += manifest.members.back().weight;
  }
  if (!(total > 0) || !std::isfinite(total)) throw UsageError("the member weights are all 0 (or sum to infinity)");

  for (runtime::EnsembleMember& member : manifest.members) {
    if (!fs::is_regular_file(member.path))
      throw Error("the member file does not exist", ErrorSite{member.path, "", ""});
    member.path = recordedPath(*out, member.path);
  }
  if (auto labels = args.value("--labels")) manifest.labels = readLabels(*labels);
  writeFileAtomically(*out, runtime::formatEnsembleManifest(manifest));

  std::cout << "wrote " << *out << ": " << manifest.members.size() << " members, rule "
            << runtime::ruleName(manifest.rule) << ", member output "
            << runtime::memberOutputName(manifest.memberOutput) << ", "
            << (manifest.labels.empty() ? "no" : std::to_string(manifest.labels.size())) << " labels\n";
  return kExitOk;
}

int runEnsemble(const ParsedArgs& args) {
  if (args.positionals.empty()) throw UsageError("ensemble needs a subcommand: create");
  if (args.positionals[0] != "create")
    throw UsageError("unknown ensemble subcommand '" + args.positionals[0] + "' (available: create)");
  if (args.positionals.size() > 1)
    throw UsageError("ensemble create takes no arguments besides its options, given '" + args.positionals[1] + "'");
  return runCreate(args);
}

}  // namespace

const Command& ensembleCommand() {
  static const Command command{
      "ensemble",
      "write a kiln-ensemble manifest (ensemble create)",
      kHelp,
      {{"-o", true, false},
       {"--member", true, true},
       {"--rule", true, false},
       {"--member-output", true, false},
       {"--labels", true, false}},
      runEnsemble,
  };
  return command;
}

}  // namespace kiln::cli
