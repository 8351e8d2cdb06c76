// Median and (asynchronous) successive-halving / Hyperband pruning (see pruners.h).
#include "trainer/search/pruners.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace kiln::train::search {

bool MedianPruner::shouldPrune(const TrialRecord& trial, int64_t step, const std::vector<TrialRecord>& all) const {
  if (step < warmupSteps_) return false;
  std::vector<double> others;
  for (const TrialRecord& t : all)
    if (t.id != trial.id && t.state == TrialState::Complete)
      if (auto it = t.intermediate.find(step); it != t.intermediate.end()) others.push_back(it->second);
  if (static_cast<int64_t>(others.size()) < minTrials_) return false;
  std::sort(others.begin(), others.end());
  size_t m = others.size() / 2;
  double median = others.size() % 2 ? others[m] : (others[m - 1] + others[m]) / 2;
  return trial.intermediate.at(step) > median;
}

std::vector<Bracket> hyperbandBrackets(int64_t maxResource, int64_t eta) {
  if (maxResource < 1 || eta < 2) throw std::invalid_argument("hyperband needs max resource >= 1 and eta >= 2");
  // Integer powers throughout: floor(log(R)/log(eta)) misrounds exact powers.
  int64_t sMax = 0;
  for (int64_t p = eta; p <= maxResource; p *= eta) ++sMax;
  auto power = [&](int64_t e) {
    int64_t p = 1;
    for (int64_t i = 0; i < e; ++i) p *= eta;
    return p;
  };
  std::vector<Bracket> out;
  for (int64_t s = sMax; s >= 0; --s) {
    int64_t num = (sMax + 1) * power(s);
    int64_t n = (num + s) / (s + 1);  // ceil(num / (s + 1))
    Bracket b{s, {}};
    for (int64_t i = 0; i <= s; ++i)
      b.rungs.push_back({n / power(i), std::max<int64_t>(1, std::llround(static_cast<double>(maxResource) / static_cast<double>(power(s - i))))});
    out.push_back(std::move(b));
  }
  return out;
}

HyperbandPruner::HyperbandPruner(int64_t maxResource, int64_t eta, bool onlyLargestBracket)
    : eta_(eta), brackets_(hyperbandBrackets(maxResource, eta)) {
  if (onlyLargestBracket) brackets_.resize(1);
}

const Bracket& HyperbandPruner::bracketOf(int64_t trialId) const {
  int64_t total = 0;
  for (const Bracket& b : brackets_) total += b.rungs.front().trials;
  int64_t slot = (trialId - 1) % total;
  for (const Bracket& b : brackets_) {
    if (slot < b.rungs.front().trials) return b;
    slot -= b.rungs.front().trials;
  }
  return brackets_.back();
}

bool HyperbandPruner::shouldPrune(const TrialRecord& trial, int64_t step, const std::vector<TrialRecord>& all) const {
  const Bracket& bracket = bracketOf(trial.id);
  bool atRung = false;
  for (size_t i = 0; i + 1 < bracket.rungs.size(); ++i) atRung = atRung || bracket.rungs[i].resource == step + 1;
  if (!atRung) return false;
  const double value = trial.intermediate.at(step);
  int64_t reported = 1, better = 0;
  for (const TrialRecord& t : all) {
    if (t.id == trial.id || bracketOf(t.id).s != bracket.s) continue;
    auto it = t.intermediate.find(step);
    if (it == t.intermediate.end()) continue;
    ++reported;
    better += it->second < value;
  }
  return better >= std::max<int64_t>(1, reported / eta_);
}

std::unique_ptr<Pruner> makePruner(const std::string& name, int64_t maxResource, int64_t eta) {
  if (name == "none") return nullptr;
  if (name == "median") return std::make_unique<MedianPruner>();
  if (name == "sha") return std::make_unique<HyperbandPruner>(maxResource, eta, true);
  if (name == "hyperband") return std::make_unique<HyperbandPruner>(maxResource, eta, false);
  throw std::invalid_argument("unknown pruner '" + name + "' (none, median, sha, hyperband)");
}

}  // namespace kiln::train::search
