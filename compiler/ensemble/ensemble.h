// Ensembles as one graph: merges the imported graphs of several classifiers
// (the members) side by side into one IR graph whose single output is their
// weighted combination, so the whole ensemble optimizes, plans one workspace
// and compiles like any model. Depends on the IR and the op registry only;
// reading manifests and model files is the caller's business.
#pragma once

#include <string>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::ensemble {

// How member outputs combine (the kiln-ensemble manifest's "rule"):
//   Mean:   sum_i w_i * p_i
//   Logits: softmax(sum_i w_i * z_i)
//   Vote:   per class, the summed weight of the members whose first maximum
//           (Hardmax) falls on it; a member whose row holds a NaN makes the
//           sample's row NaN
// where p_i are member i's probabilities and z_i its logits.
enum class Rule { Mean, Logits, Vote };

// What members output (the manifest's "member_output"). Probabilities become
// logits as z = log(max(p, FLT_MIN)); logits become probabilities by softmax.
enum class MemberOutput { Probabilities, Logits };

struct Member {
  std::string name;  // prefixes the member's value and node names ("member0" -> "member0/conv")
  std::string file;  // names the member in errors
  Graph graph;       // as imported or optimized: one f32 [N, C] output
  double weight;     // finite and > 0; used as given (manifest readers normalize)
};

// The name of the combined output.
inline constexpr const char* kOutputName = "ensemble_probabilities";

// Merges `members` into one graph named `name`: the graph inputs are shared,
// so every member must declare the same inputs (names, dtypes, shapes; in any
// order) and exactly one f32 output of shape [N, C] with the same C. The
// combination per `rule` becomes the single output kOutputName, [N, C].
// Throws kiln::Error naming the member's file when the members do not fit.
Graph mergeMembers(const std::vector<Member>& members, Rule rule, MemberOutput memberOutput, const std::string& name);

}  // namespace kiln::ensemble
