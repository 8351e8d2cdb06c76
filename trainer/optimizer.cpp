// Optimizer updates and learning-rate schedules (see optimizer.h).
#include "trainer/optimizer.h"

#include <cmath>
#include <numbers>

namespace kiln::train {

void Optimizer::step(const std::vector<Param*>& params, double lr) {
  ++iterations_;
  const double t = static_cast<double>(iterations_);
  for (Param* p : params) {
    Slots& s = slots_[p];
    const size_t n = p->value.data.size();
    if (s.first.empty()) s.first.assign(n, 0.0f), s.second.assign(n, 0.0f);
    float* w = p->value.ptr();
    const float* g = p->grad.ptr();
    if (p->decays && cfg_.weightDecay > 0)
      for (size_t i = 0; i < n; ++i) w[i] -= static_cast<float>(lr * cfg_.weightDecay * w[i]);
    switch (cfg_.kind) {
      case OptimizerConfig::Kind::SGD:
        for (size_t i = 0; i < n; ++i) {
          double v = cfg_.momentum * s.first[i] - lr * g[i];
          s.first[i] = static_cast<float>(v);
          w[i] += static_cast<float>(cfg_.nesterov ? cfg_.momentum * v - lr * g[i] : v);
        }
        break;
      case OptimizerConfig::Kind::RMSprop:
        for (size_t i = 0; i < n; ++i) {
          double sq = cfg_.rho * s.second[i] + (1 - cfg_.rho) * g[i] * g[i];
          s.second[i] = static_cast<float>(sq);
          w[i] -= static_cast<float>(lr * g[i] / (std::sqrt(sq) + cfg_.epsilon));
        }
        break;
      case OptimizerConfig::Kind::Adam: {
        const double c1 = 1 - std::pow(cfg_.beta1, t), c2 = 1 - std::pow(cfg_.beta2, t);
        for (size_t i = 0; i < n; ++i) {
          double m = cfg_.beta1 * s.first[i] + (1 - cfg_.beta1) * g[i];
          double v = cfg_.beta2 * s.second[i] + (1 - cfg_.beta2) * g[i] * g[i];
          s.first[i] = static_cast<float>(m);
          s.second[i] = static_cast<float>(v);
          w[i] -= static_cast<float>(lr * (m / c1) / (std::sqrt(v / c2) + cfg_.epsilon));
        }
        break;
      }
    }
  }
}

double LearningRateSchedule::at(int64_t step) const {
  switch (cfg_.kind) {
    case ScheduleConfig::Kind::Constant: return base_;
    case ScheduleConfig::Kind::Step:
      return base_ * std::pow(cfg_.dropFactor, static_cast<double>(step / stepsPerEpoch_ / cfg_.everyEpochs));
    case ScheduleConfig::Kind::Cosine: {
      double progress = std::min(1.0, static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, totalSteps_)));
      return base_ * (cfg_.finalFraction + (1 - cfg_.finalFraction) * 0.5 * (1 + std::cos(std::numbers::pi * progress)));
    }
  }
  return base_;
}

}  // namespace kiln::train
