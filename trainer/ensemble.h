// Ensembles of trained members: learning mixture weights on validation
// probabilities (Caruana greedy selection with replacement, or log-loss
// minimization on the probability simplex), the metrics of a weighted
// mixture, the ensemble manifest (the JSON file the runtime reads, see
// trainer/README.md), and the ensemble's single final test-set evaluation.
//
// Probability matrices are [K members][N samples][C classes]; each row is a
// member's predicted class distribution for one sample.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "trainer/dataset.h"
#include "trainer/model.h"

namespace kiln::train {

struct EnsembleError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using ProbMatrix = std::vector<std::vector<double>>;  // [N][C]

struct MixtureMetrics {
  double accuracy = 0, logLoss = 0;
};

// Checks that every member has N rows of C finite, non-negative entries and
// that every label is < C; throws EnsembleError otherwise.
void checkProbabilities(const std::vector<ProbMatrix>& probs, std::span<const uint8_t> labels);

// Accuracy (argmax, ties to the lower class) and mean negative log-likelihood
// of the mixture sum_k w_k p_k; the true-class probability is clipped to
// [1e-7, 1 - 1e-7] as the trainer's crossentropy does, so a single member's
// log-loss equals its reported validation loss (without label smoothing).
// `weights` need not be normalized.
MixtureMetrics mixtureMetrics(const std::vector<ProbMatrix>& probs, std::span<const uint8_t> labels,
                              std::span<const double> weights);

// Caruana et al. ensemble selection: starts from the member with the lowest
// log-loss, then `iterations - 1` times adds (with replacement) the member
// whose addition gives the lowest mixture log-loss (ties: lower index).
// Weights are the selection counts divided by `iterations`.
std::vector<double> caruanaWeights(const std::vector<ProbMatrix>& probs, std::span<const uint8_t> labels,
                                   int64_t iterations);

struct SimplexOptions {
  int64_t maxIterations = 5000;
  double tolerance = 1e-10;  // stop when no weight moves more than this
};

// Minimizes the mixture's mean negative log-likelihood over the simplex.
// Multiplicative (EM / mirror-descent) updates from equal weights:
// w_k <- w_k * mean_n(p_k[n][y_n] / m[n]); they stay on the simplex, never
// increase the loss, and are deterministic. If the iteration budget ends
// before convergence and a single member is still better, that member wins.
std::vector<double> simplexLogLossWeights(const std::vector<ProbMatrix>& probs, std::span<const uint8_t> labels,
                                          const SimplexOptions& opts = {});

// Class probabilities [N][C] of `model` on `data` (inference mode, batched);
// a softmax is applied when the loss takes logits.
ProbMatrix predictProbabilities(Sequential& model, const LossConfig& loss, const LabeledImages& data,
                                int64_t batchSize);

// The manifest: {"format": "kiln-ensemble", "version": 1, "rule": "mean",
// "member_output": "probabilities"|"logits", "members": [{"path", "weight"}],
// "labels": [...]}. Weights must be finite and non-negative with a positive
// sum; they are normalized. Paths must be relative, without "..".
nlohmann::json ensembleManifest(const std::vector<std::string>& memberPaths, const std::vector<double>& weights,
                                const std::vector<std::string>& labels, bool memberOutputsLogits = false);

// What a member's state file is tagged with (see saveStateFile): the spec's
// text and everything else its training depends on.
std::string memberFingerprint(const std::string& specText, uint64_t seed, int64_t epochs, int64_t trainLimit,
                              uint64_t splitSeed, const std::string& data);

// The final evaluation of the members and the mixtures (equal weights and
// `weights`) on the official test set. The only caller of the test set
// besides evaluateOnTestSet; call it once, after the weights are fixed.
struct EnsembleTestReport {
  std::vector<MixtureMetrics> members;
  MixtureMetrics equal, weighted;
  int64_t samples = 0;
};

}  // namespace kiln::train
