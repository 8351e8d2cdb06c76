#include "runtime/src/ensemble_manifest.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace kiln::runtime {

namespace {

using Json = nlohmann::json;

[[noreturn]] void fail(const std::string& file, const std::string& what) {
  throw ManifestError(file + ": " + what);
}

template <typename Enum, size_t N>
Enum parseName(const Json& doc, const char* key, Enum fallback, const std::pair<const char*, Enum> (&names)[N],
               const std::string& file) {
  if (!doc.contains(key)) return fallback;
  if (!doc[key].is_string()) fail(file, std::string("'") + key + "' must be a string");
  std::string value = doc[key].get<std::string>();
  std::string allowed;
  for (const auto& [name, e] : names) {
    if (value == name) return e;
    allowed += allowed.empty() ? std::string("'") + name + "'" : std::string(", '") + name + "'";
  }
  fail(file, std::string("'") + key + "' is '" + value + "', expected one of " + allowed);
}

constexpr std::pair<const char*, EnsembleRule> kRules[] = {
    {"mean", EnsembleRule::Mean}, {"logits", EnsembleRule::Logits}, {"vote", EnsembleRule::Vote}};
constexpr std::pair<const char*, MemberOutput> kOutputs[] = {{"probabilities", MemberOutput::Probabilities},
                                                             {"logits", MemberOutput::Logits}};

}  // namespace

const char* ruleName(EnsembleRule rule) {
  for (const auto& [name, r] : kRules)
    if (r == rule) return name;
  return "?";
}

const char* memberOutputName(MemberOutput output) {
  for (const auto& [name, o] : kOutputs)
    if (o == output) return name;
  return "?";
}

EnsembleManifest parseEnsembleManifest(const std::string& jsonText, const std::string& file) {
  Json doc = Json::parse(jsonText, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) fail(file, "not valid JSON");
  if (!doc.is_object()) fail(file, "expected a JSON object");
  if (!doc.contains("format") || doc["format"] != "kiln-ensemble")
    fail(file, "not a kiln-ensemble manifest (\"format\": \"kiln-ensemble\" missing)");
  if (!doc.contains("version") || !doc["version"].is_number_integer() || doc["version"].get<int64_t>() != 1)
    fail(file, "unsupported manifest version (this runtime reads version 1)");

  EnsembleManifest m;
  m.rule = parseName(doc, "rule", EnsembleRule::Mean, kRules, file);
  m.memberOutput = parseName(doc, "member_output", MemberOutput::Probabilities, kOutputs, file);

  if (!doc.contains("members") || !doc["members"].is_array() || doc["members"].empty())
    fail(file, "'members' must be a non-empty array");
  double total = 0;
  for (size_t i = 0; i < doc["members"].size(); ++i) {
    const Json& entry = doc["members"][i];
    std::string where = "member " + std::to_string(i);
    if (!entry.is_object() || !entry.contains("path") || !entry["path"].is_string() ||
        entry["path"].get<std::string>().empty())
      fail(file, where + ": expected an object with a non-empty \"path\" string");
    EnsembleMember member;
    member.path = entry["path"].get<std::string>();
    where += " ('" + member.path + "')";
    if (!entry.contains("weight")) {
      member.weight = 1;
    } else if (!entry["weight"].is_number()) {
      fail(file, where + ": 'weight' must be a number");
    } else {
      member.weight = entry["weight"].get<double>();
    }
    if (!std::isfinite(member.weight) || member.weight < 0)
      fail(file, where + ": weight " + entry.value("weight", Json()).dump() + " is not a finite non-negative number");
    total += member.weight;
    m.members.push_back(std::move(member));
  }
  if (!(total > 0) || !std::isfinite(total)) fail(file, "member weights are all zero");
  for (EnsembleMember& member : m.members) member.weight /= total;

  if (doc.contains("labels")) {
    if (!doc["labels"].is_array()) fail(file, "'labels' must be an array of strings");
    for (const Json& label : doc["labels"]) {
      if (!label.is_string()) fail(file, "'labels' must be an array of strings");
      m.labels.push_back(label.get<std::string>());
    }
  }
  return m;
}

EnsembleManifest readEnsembleManifest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail(path, "cannot read");
  return parseEnsembleManifest(text.str(), path);
}

std::string resolveMemberPath(const std::string& manifestPath, const EnsembleMember& member) {
  std::filesystem::path p(member.path);
  if (p.is_absolute()) return p.string();
  return (std::filesystem::path(manifestPath).parent_path() / p).lexically_normal().string();
}

std::string formatEnsembleManifest(const EnsembleManifest& manifest) {
  Json doc = {{"format", "kiln-ensemble"},
              {"version", 1},
              {"rule", ruleName(manifest.rule)},
              {"member_output", memberOutputName(manifest.memberOutput)}};
  Json members = Json::array();
  for (const EnsembleMember& m : manifest.members) members.push_back({{"path", m.path}, {"weight", m.weight}});
  doc["members"] = members;
  if (!manifest.labels.empty()) doc["labels"] = manifest.labels;
  return doc.dump(2) + "\n";
}

}  // namespace kiln::runtime
