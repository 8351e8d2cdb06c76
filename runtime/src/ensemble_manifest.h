// The kiln-ensemble manifest: which member models, their weights, how to
// combine their outputs, and the class names. One reader/writer for the
// runtime (kiln_ensemble_open), `kiln ensemble create` and
// `kiln compile --ensemble`; the format is documented in runtime/README.md.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace kiln::runtime {

// The message names the manifest file and, where it applies, the member.
class ManifestError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class EnsembleRule { Mean, Logits, Vote };
enum class MemberOutput { Probabilities, Logits };

struct EnsembleMember {
  std::string path;  // as written in the manifest (relative to its folder, or absolute)
  double weight = 0;
};

struct EnsembleManifest {
  EnsembleRule rule = EnsembleRule::Mean;
  MemberOutput memberOutput = MemberOutput::Probabilities;
  std::vector<EnsembleMember> members;
  std::vector<std::string> labels;  // empty: none given
};

const char* ruleName(EnsembleRule rule);
const char* memberOutputName(MemberOutput output);

// Parses and validates a manifest: format/version, rule, member_output, at
// least one member, every weight finite and >= 0, not all zero. Weights are
// returned normalized to sum to 1.
EnsembleManifest parseEnsembleManifest(const std::string& jsonText, const std::string& fileForMessages);
EnsembleManifest readEnsembleManifest(const std::string& path);

// `member.path` resolved against the manifest's folder (absolute paths kept).
std::string resolveMemberPath(const std::string& manifestPath, const EnsembleMember& member);

// JSON text of a manifest (weights written as given).
std::string formatEnsembleManifest(const EnsembleManifest& manifest);

}  // namespace kiln::runtime
