#include "trainer/ensemble.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace kiln::train {

namespace {

// The trainer's crossentropy clip (loss.h), so log-losses agree with it.
constexpr double kClip = 1e-7;

double clipped(double p) { return std::clamp(p, kClip, 1.0 - kClip); }

// q[k][n] = member k's probability of sample n's true class: the log-loss of
// any mixture depends on these only, so the weight searches work on them.
std::vector<std::vector<double>> trueClassProbs(const std::vector<ProbMatrix>& probs, std::span<const uint8_t> labels) {
  std::vector<std::vector<double>> q(probs.size(), std::vector<double>(labels.size()));
  for (size_t k = 0; k < probs.size(); ++k)
    for (size_t n = 0; n < labels.size(); ++n) q[k][n] = probs[k][n][labels[n]];
  return q;
}

// Mean NLL of the mixture whose true-class probabilities are mix[n] / total.
double meanNll(const std::vector<double>& mix, double total) {
  double sum = 0;
  for (double m : mix) sum -= std::log(clipped(m / total));
  return sum / static_cast<double>(mix.size());
}

std::vector<double> normalized(std::vector<double> w) {
  double total = std::accumulate(w.begin(), w.end(), 0.0);
  for (double& x : w) x /= total;
  return w;
}

}  // namespace

void checkProbabilities(const std::vector<ProbMatrix>& probs, std::span<const uint8_t> labels) {
  if (probs.empty()) throw EnsembleError("an ensemble needs at least one member");
  if (labels.empty()) throw EnsembleError("no samples to weight the members on");
  const size_t classes = probs[0].empty() ? 0 : probs[0][0].size();
  if (classes == 0) throw EnsembleError("empty probability rows");
  for (size_t k = 0; k < probs.size(); ++k) {
    if (probs[k].size() != labels.size())
      throw EnsembleError("member " + std::to_string(k) + " has " + std::to_string(probs[k].size()) + " rows for " +
                          std::to_string(labels.size()) + " labels");
    for (const std::vector<double>& row : probs[k]) {
      if (row.size() != classes) throw EnsembleError("member " + std::to_string(k) + ": ragged probability rows");
      for (double p : row)
        if (!std::isfinite(p) || p < 0) throw EnsembleError("member " + std::to_string(k) + ": bad probability");
    }
  }
  for (uint8_t y : labels)
    if (y >= classes) throw EnsembleError("label " + std::to_string(y) + " >= " + std::to_string(classes) + " classes");
}

MixtureMetrics mixtureMetrics(const std::vector<ProbMatrix>& probs, std::span<const uint8_t> labels,
                              std::span<const double> weights) {
  checkProbabilities(probs, labels);
  if (weights.size() != probs.size()) throw EnsembleError("one weight per member needed");
  double total = 0;
  for (double w : weights) {
    if (!std::isfinite(w) || w < 0) throw EnsembleError("weights must be finite and non-negative");
    total += w;
  }
  if (total <= 0) throw EnsembleError("weights sum to zero");
  const size_t classes = probs[0][0].size();
  std::vector<double> mix(classes);
  double nll = 0;
  int64_t correct = 0;
  for (size_t n = 0; n < labels.size(); ++n) {
    std::fill(mix.begin(), mix.end(), 0.0);
    for (size_t k = 0; k < probs.size(); ++k)
      if (weights[k] > 0)
        for (size_t c = 0; c < classes; ++c) mix[c] += weights[k] / total * probs[k][n][c];
    correct += static_cast<size_t>(std::max_element(mix.begin(), mix.end()) - mix.begin()) == labels[n];
    nll -= std::log(clipped(mix[labels[n]]));
  }
  const auto count = static_cast<double>(labels.size());
  return {static_cast<double>(correct) / count, nll / count};
}

std::vector<double> caruanaWeights(const std::vector<ProbMatrix>& probs, std::span<const uint8_t> labels,
                                   int64_t iterations) {
  checkProbabilities(probs, labels);
  if (iterations < 1) throw EnsembleError("Caruana selection needs at least one iteration");
  const auto q = trueClassProbs(probs, labels);
  const size_t members = probs.size(), samples = labels.size();
  std::vector<double> sum(samples, 0.0), counts(members, 0.0), trial(samples);
  // Iteration 0 on an empty ensemble picks the best single member.
  for (int64_t it = 0; it < iterations; ++it) {
    size_t best = 0;
    double bestLoss = INFINITY;
    for (size_t k = 0; k < members; ++k) {
      for (size_t n = 0; n < samples; ++n) trial[n] = sum[n] + q[k][n];
      double loss = meanNll(trial, static_cast<double>(it + 1));
      if (loss < bestLoss) bestLoss = loss, best = k;  // strict: ties keep the lower index
    }
    for (size_t n = 0; n < samples; ++n) sum[n] += q[best][n];
    counts[best] += 1;
  }
  return normalized(counts);
}

std::vector<double> simplexLogLossWeights(const std::vector<ProbMatrix>& probs, std::span<const uint8_t> labels,
                                          const SimplexOptions& opts) {
  checkProbabilities(probs, labels);
  const auto q = trueClassProbs(probs, labels);
  const size_t members = probs.size(), samples = labels.size();
  // Clipped like the loss, so a member that gives the truth probability 0
  // cannot make the ratio below divide by zero.
  std::vector<std::vector<double>> qc = q;
  for (auto& row : qc)
    for (double& p : row) p = std::max(p, kClip);
  std::vector<double> w(members, 1.0 / static_cast<double>(members)), mix(samples), next(members);
  for (int64_t it = 0; it < opts.maxIterations; ++it) {
    for (size_t n = 0; n < samples; ++n) {
      mix[n] = 0;
      for (size_t k = 0; k < members; ++k) mix[n] += w[k] * qc[k][n];
    }
    // EM step = exponentiated gradient with the gradient's log-linearization:
    // w_k * (-dL/dw_k), whose sum is 1 by construction.
    double moved = 0, total = 0;
    for (size_t k = 0; k < members; ++k) {
      double ratio = 0;
      for (size_t n = 0; n < samples; ++n) ratio += qc[k][n] / mix[n];
      next[k] = w[k] * ratio / static_cast<double>(samples);
      total += next[k];
    }
    for (size_t k = 0; k < members; ++k) {
      next[k] /= total;  // removes rounding drift only
      moved = std::max(moved, std::abs(next[k] - w[k]));
    }
    w.swap(next);
    if (moved < opts.tolerance) break;
  }
  // The optimum is never worse than a vertex; an unconverged run might be.
  double loss = mixtureMetrics(probs, labels, w).logLoss;
  for (size_t k = 0; k < members; ++k) {
    std::vector<double> vertex(members, 0.0);
    vertex[k] = 1;
    double vertexLoss = mixtureMetrics(probs, labels, vertex).logLoss;
    if (vertexLoss < loss) loss = vertexLoss, w = vertex;
  }
  return w;
}

ProbMatrix predictProbabilities(Sequential& model, const LossConfig& loss, const LabeledImages& data,
                                int64_t batchSize) {
  ProbMatrix out;
  out.reserve(static_cast<size_t>(data.size()));
  for (int64_t begin = 0; begin < data.size(); begin += batchSize) {
    std::vector<int64_t> idx(static_cast<size_t>(std::min(batchSize, data.size() - begin)));
    std::iota(idx.begin(), idx.end(), begin);
    Tensor y = model.forward(data.subset(idx).images, false);
    const int64_t classes = y.dim(1);
    for (int64_t n = 0; n < y.dim(0); ++n) {
      const float* row = y.ptr() + n * classes;
      std::vector<double> p(row, row + classes);
      if (loss.fromLogits) {
        double top = *std::max_element(p.begin(), p.end()), total = 0;
        for (double& v : p) total += (v = std::exp(v - top));
        for (double& v : p) v /= total;
      }
      out.push_back(std::move(p));
    }
  }
  return out;
}

nlohmann::json ensembleManifest(const std::vector<std::string>& memberPaths, const std::vector<double>& weights,
                                const std::vector<std::string>& labels, bool memberOutputsLogits) {
  if (memberPaths.empty()) throw EnsembleError("an ensemble needs at least one member");
  if (memberPaths.size() != weights.size()) throw EnsembleError("one weight per member needed");
  double total = 0;
  for (double w : weights) {
    if (!std::isfinite(w) || w < 0) throw EnsembleError("member weights must be finite and non-negative");
    total += w;
  }
  if (!(total > 0) || !std::isfinite(total)) throw EnsembleError("member weights must have a positive, finite sum");
  nlohmann::json members = nlohmann::json::array();
  for (size_t k = 0; k < memberPaths.size(); ++k) {
    const std::string& p = memberPaths[k];
    // The runtime resolves paths against the manifest's folder; keep them inside it.
    if (p.empty() || p.front() == '/' || p == ".." || p.starts_with("../") || p.find("/../") != std::string::npos ||
        p.ends_with("/.."))
      throw EnsembleError("member path '" + p + "' must be relative to the manifest, without ..");
    members.push_back({{"path", p}, {"weight", weights[k] / total}});
  }
  return {{"format", "kiln-ensemble"},   {"version", 1},      {"rule", "mean"},
          {"member_output", memberOutputsLogits ? "logits" : "probabilities"},
          {"members", members},          {"labels", labels}};
}

std::string memberFingerprint(const std::string& specText, uint64_t seed, int64_t epochs, int64_t trainLimit,
                              uint64_t splitSeed, const std::string& data) {
  return specText + "\nseed " + std::to_string(seed) + " epochs " + std::to_string(epochs) + " train_limit " +
         std::to_string(trainLimit) + " split_seed " + std::to_string(splitSeed) + " data " + data;
}

EnsembleTestReport evaluateEnsembleOnTestSet(const std::vector<Sequential*>& members, std::span<const double> weights,
                                             const TrainingConfig& cfg, const DatasetFolder& folder) {
  TestSet test = TestSet::load(folder);
  std::vector<ProbMatrix> probs;
  for (Sequential* m : members) probs.push_back(predictProbabilities(*m, cfg.loss, test.data_, cfg.batchSize));
  const std::span<const uint8_t> labels(test.data_.labels);
  EnsembleTestReport r;
  for (size_t k = 0; k < members.size(); ++k) {
    std::vector<double> one(members.size(), 0.0);
    one[k] = 1;
    r.members.push_back(mixtureMetrics(probs, labels, one));
  }
  r.equal = mixtureMetrics(probs, labels, std::vector<double>(members.size(), 1.0));
  r.weighted = mixtureMetrics(probs, labels, weights);
  r.samples = test.data_.size();
  return r;
}

}  // namespace kiln::train
