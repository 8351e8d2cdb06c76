// Pruners stop poor trials early from their per-epoch validation losses:
// the median rule and successive halving / Hyperband (Li et al., JMLR 2018)
// run asynchronously, as trials arrive at each rung.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "trainer/search/trial.h"

namespace kiln::train::search {

class Pruner {
 public:
  virtual ~Pruner() = default;
  // Whether `trial`, which just reported `trial.intermediate[step]`, stops;
  // `all` is every trial of the study (`trial` among them or not).
  virtual bool shouldPrune(const TrialRecord& trial, int64_t step, const std::vector<TrialRecord>& all) const = 0;
};

// Prunes at epoch `step` when the trial's loss is worse than the median of
// the losses the complete trials had at `step`: only from step `warmupSteps`
// on and once `minTrials` complete trials reached that step.
class MedianPruner : public Pruner {
 public:
  MedianPruner(int64_t warmupSteps = 1, int64_t minTrials = 3) : warmupSteps_(warmupSteps), minTrials_(minTrials) {}
  bool shouldPrune(const TrialRecord& trial, int64_t step, const std::vector<TrialRecord>& all) const override;

 private:
  int64_t warmupSteps_, minTrials_;
};

struct Rung {
  int64_t trials;    // n_i: trials that reach this rung (synchronous count)
  int64_t resource;  // r_i: epochs done at this rung
  bool operator==(const Rung&) const = default;
};
struct Bracket {
  int64_t s;  // s_max .. 0: the number of halvings
  std::vector<Rung> rungs;
  bool operator==(const Bracket&) const = default;
};

// Hyperband's brackets for max resource R and reduction eta:
// s_max = floor(log_eta R), B = (s_max + 1) R; bracket s starts
// n = ceil(B / R * eta^s / (s + 1)) trials at r = R eta^-s epochs, and rung i
// keeps floor(n eta^-i) trials at r eta^i epochs (rounded, at least 1).
std::vector<Bracket> hyperbandBrackets(int64_t maxResource, int64_t eta);

// Trials are dealt to the brackets in proportion to their first-rung sizes
// by trial id ((id - 1) modulo their sum). At a rung (not the last) of its
// bracket, a trial continues when its loss ranks within the best
// max(1, floor(k / eta)) of the k trials of the bracket that reported at that
// epoch so far (itself included), as in asynchronous successive halving.
// With `onlyLargestBracket` it is plain successive halving (bracket s_max).
class HyperbandPruner : public Pruner {
 public:
  HyperbandPruner(int64_t maxResource, int64_t eta, bool onlyLargestBracket);
  bool shouldPrune(const TrialRecord& trial, int64_t step, const std::vector<TrialRecord>& all) const override;
  const Bracket& bracketOf(int64_t trialId) const;
  const std::vector<Bracket>& brackets() const { return brackets_; }

 private:
  int64_t eta_;
  std::vector<Bracket> brackets_;
};

// "none" (nullptr), "median", "sha" or "hyperband"; R is the epochs per trial.
std::unique_ptr<Pruner> makePruner(const std::string& name, int64_t maxResource, int64_t eta);

}  // namespace kiln::train::search
