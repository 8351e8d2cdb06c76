// Random search and TPE (see samplers.h).
#include "trainer/search/samplers.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

namespace kiln::train::search {

namespace {

double normalCdf(double z) { return 0.5 * std::erfc(-z / std::numbers::sqrt2); }

// A mixture of Gaussians truncated to [a, b]: one component per observation
// plus the prior (centred, as wide as the range). An observation's width is
// the larger gap to its sorted neighbours (the prior's centre and the bounds
// included), clipped to [range / min(100, n + 1), range] so the estimate
// neither collapses onto a point nor goes flatter than the prior.
class ParzenEstimator {
 public:
  ParzenEstimator(std::vector<double> obs, double a, double b, double priorWeight) : a_(a), b_(b) {
    const double range = b - a;
    std::vector<double> points = obs;
    points.push_back((a + b) / 2);
    std::sort(points.begin(), points.end());
    const double minSigma = range / std::min(100.0, static_cast<double>(obs.size()) + 1);
    for (double x : obs) {
      auto it = std::lower_bound(points.begin(), points.end(), x);
      double left = x - (it == points.begin() ? a : *(it - 1));
      double right = (it + 1 == points.end() ? b : *(it + 1)) - x;
      add(x, std::clamp(std::max(left, right), minSigma, range), 1.0);
    }
    add((a + b) / 2, range, priorWeight);
    double total = 0;
    for (double w : weights_) total += w;
    for (double& w : weights_) w /= total;
  }

  double sample(Rng& rng) const {
    double u = rng.uniform(), acc = 0;
    size_t k = 0;
    while (k + 1 < weights_.size() && (acc += weights_[k]) <= u) ++k;
    // Every centre lies in [a, b] and every width is at most the range, so
    // at least a third of each component's mass is inside: few rejections.
    for (;;) {
      double x = mus_[k] + sigmas_[k] * rng.normal();
      if (x >= a_ && x <= b_) return x;
    }
  }

  // log density at x, or log mass of [x - half, x + half] when half > 0.
  double logDensity(double x, double half) const {
    double sum = 0;
    for (size_t k = 0; k < mus_.size(); ++k) {
      double m = mus_[k], s = sigmas_[k];
      double inside = normalCdf((b_ - m) / s) - normalCdf((a_ - m) / s);
      double p = half > 0 ? normalCdf((std::min(b_, x + half) - m) / s) - normalCdf((std::max(a_, x - half) - m) / s)
                          : std::exp(-0.5 * (x - m) * (x - m) / (s * s)) / (s * std::sqrt(2 * std::numbers::pi));
      sum += weights_[k] * p / inside;
    }
    return std::log(std::max(sum, 1e-300));
  }

 private:
  void add(double mu, double sigma, double weight) {
    mus_.push_back(mu);
    sigmas_.push_back(sigma);
    weights_.push_back(weight);
  }
  double a_, b_;
  std::vector<double> mus_, sigmas_, weights_;
};

// The dimension's modelling space: log for loguniform; for grids, the
// interval whose rounding gives every grid point the same width q.
struct Continuous {
  double a, b, half;  // half: half the bin width (0 = continuous)
  bool log;
};

Continuous continuousOf(const Dimension& d) {
  switch (d.kind) {
    case Dimension::Kind::Uniform: return {d.lo, d.hi, 0, false};
    case Dimension::Kind::LogUniform: return {std::log(d.lo), std::log(d.hi), 0, true};
    default: return {d.lo - d.q / 2, d.lo + static_cast<double>(d.gridSize() - 1) * d.q + d.q / 2, d.q / 2, false};
  }
}

std::vector<double> valuesOf(const std::vector<const TrialRecord*>& trials, const std::string& label) {
  std::vector<double> out;
  for (const TrialRecord* t : trials)
    if (auto it = t->params.find(label); it != t->params.end()) out.push_back(it->second);
  return out;
}

double proposeChoice(const Dimension& d, const std::vector<double>& good, const std::vector<double>& bad, const TpeOptions& o, Rng& rng) {
  const size_t k = d.options.size();
  auto probabilities = [&](const std::vector<double>& obs) {
    std::vector<double> p(k, o.priorWeight);
    for (double v : obs) p.at(static_cast<size_t>(v)) += 1;
    double total = 0;
    for (double x : p) total += x;
    for (double& x : p) x /= total;
    return p;
  };
  std::vector<double> l = probabilities(good), g = probabilities(bad);
  double best = 0, bestScore = -1e300;
  for (int64_t c = 0; c < o.candidates; ++c) {
    double u = rng.uniform(), acc = 0;
    size_t i = 0;
    while (i + 1 < k && (acc += l[i]) <= u) ++i;
    double score = std::log(l[i]) - std::log(g[i]);
    if (score > bestScore) bestScore = score, best = static_cast<double>(i);
  }
  return best;
}

double proposeNumber(const Dimension& d, const std::vector<double>& good, const std::vector<double>& bad, const TpeOptions& o, Rng& rng) {
  Continuous c = continuousOf(d);
  auto toSpace = [&](std::vector<double> v) {
    if (c.log)
      for (double& x : v) x = std::log(x);
    return v;
  };
  ParzenEstimator l(toSpace(good), c.a, c.b, o.priorWeight), g(toSpace(bad), c.a, c.b, o.priorWeight);
  double best = 0, bestScore = -1e300;
  for (int64_t k = 0; k < o.candidates; ++k) {
    double x = l.sample(rng);
    double value = c.log ? std::exp(x) : d.snap(x);
    double at = c.log ? x : value;
    double score = l.logDensity(at, c.half) - g.logDensity(at, c.half);
    if (score > bestScore) bestScore = score, best = value;
  }
  return std::clamp(best, d.lo, d.hi);  // exp(log(hi)) may round past hi
}

}  // namespace

double drawPrior(const Dimension& d, Rng& rng) {
  switch (d.kind) {
    case Dimension::Kind::Choice: return static_cast<double>(rng.below(d.options.size()));
    case Dimension::Kind::Uniform: return rng.uniform(d.lo, d.hi);
    case Dimension::Kind::LogUniform: return std::clamp(std::exp(rng.uniform(std::log(d.lo), std::log(d.hi))), d.lo, d.hi);
    default: return d.lo + static_cast<double>(rng.below(static_cast<uint64_t>(d.gridSize()))) * d.q;
  }
}

Assignment RandomSampler::propose(const SearchSpace& space, const std::vector<TrialRecord>&, Rng& rng) const {
  return space.sample([&](const Dimension& d) { return drawPrior(d, rng); });
}

Assignment TpeSampler::propose(const SearchSpace& space, const std::vector<TrialRecord>& history, Rng& rng) const {
  std::vector<const TrialRecord*> complete, pruned;
  for (const TrialRecord& t : history) {
    if (!t.value) continue;
    if (t.state == TrialState::Complete) complete.push_back(&t);
    else if (t.state == TrialState::Pruned) pruned.push_back(&t);
  }
  if (complete.empty() || static_cast<int64_t>(complete.size() + pruned.size()) < opts_.startupTrials)
    return RandomSampler().propose(space, history, rng);
  std::stable_sort(complete.begin(), complete.end(), [](const TrialRecord* x, const TrialRecord* y) { return *x->value < *y->value; });
  auto nGood = static_cast<size_t>(std::ceil(opts_.gamma * static_cast<double>(complete.size())));
  std::vector<const TrialRecord*> good(complete.begin(), complete.begin() + static_cast<ptrdiff_t>(nGood));
  std::vector<const TrialRecord*> bad(complete.begin() + static_cast<ptrdiff_t>(nGood), complete.end());
  bad.insert(bad.end(), pruned.begin(), pruned.end());
  return space.sample([&](const Dimension& d) {
    std::vector<double> l = valuesOf(good, d.label), g = valuesOf(bad, d.label);
    return d.kind == Dimension::Kind::Choice ? proposeChoice(d, l, g, opts_, rng) : proposeNumber(d, l, g, opts_, rng);
  });
}

std::unique_ptr<Sampler> makeSampler(const std::string& algo) {
  if (algo == "random") return std::make_unique<RandomSampler>();
  if (algo == "tpe") return std::make_unique<TpeSampler>();
  throw std::invalid_argument("unknown search algorithm '" + algo + "' (random, tpe)");
}

}  // namespace kiln::train::search
