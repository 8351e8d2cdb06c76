// Samplers propose the next trial's parameters from the finished ones:
// random search (the prior) and TPE, the Tree-structured Parzen Estimator of
// Bergstra et al., "Algorithms for Hyper-Parameter Optimization" (NIPS 2011).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "trainer/random.h"
#include "trainer/search/space.h"
#include "trainer/search/trial.h"

namespace kiln::train::search {

class Sampler {
 public:
  virtual ~Sampler() = default;
  // Deterministic given `history` and the state of `rng`.
  virtual Assignment propose(const SearchSpace& space, const std::vector<TrialRecord>& history, Rng& rng) const = 0;
};

// One draw from a dimension's prior: choice and grid points uniform,
// loguniform uniform in log space.
double drawPrior(const Dimension& d, Rng& rng);

class RandomSampler : public Sampler {
 public:
  Assignment propose(const SearchSpace& space, const std::vector<TrialRecord>& history, Rng& rng) const override;
};

struct TpeOptions {
  // Random proposals until this many trials finished (complete or pruned).
  int64_t startupTrials = 10;
  // The best ceil(gamma * n) of n complete trials form the "good" density
  // l(x); the rest and every pruned trial form the "bad" density g(x).
  double gamma = 0.25;
  // Draws from l(x) per dimension; the one maximizing l(x)/g(x) (expected
  // improvement, for TPE) is proposed.
  int64_t candidates = 24;
  // Weight of the prior component (continuous: a Gaussian over the whole
  // range; categorical: added to every option's count).
  double priorWeight = 1.0;
};

// Each dimension is modelled independently, from the trials where it was
// active (so conditional dimensions only learn from their branch).
class TpeSampler : public Sampler {
 public:
  explicit TpeSampler(TpeOptions opts = {}) : opts_(opts) {}
  Assignment propose(const SearchSpace& space, const std::vector<TrialRecord>& history, Rng& rng) const override;

 private:
  TpeOptions opts_;
};

// "random" or "tpe".
std::unique_ptr<Sampler> makeSampler(const std::string& algo);

}  // namespace kiln::train::search
