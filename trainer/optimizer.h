// Optimizers (Keras update rules) with decoupled weight decay, and the
// learning-rate schedules.
//   SGD:     v = momentum*v - lr*g;  w += v  (Nesterov: w += momentum*v - lr*g)
//   RMSprop: s = rho*s + (1-rho)*g^2;  w -= lr * g / (sqrt(s) + eps)
//   Adam:    m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
//            w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
//   weight decay (params with `decays`, before the update): w -= lr*wd*w
#pragma once

#include <map>
#include <vector>

#include "trainer/layers.h"
#include "trainer/spec.h"

namespace kiln::train {

class Optimizer {
 public:
  explicit Optimizer(OptimizerConfig c) : cfg_(c) {}
  void step(const std::vector<Param*>& params, double learningRate);

 private:
  struct Slots {
    std::vector<float> first, second;
  };
  OptimizerConfig cfg_;
  int64_t iterations_ = 0;
  std::map<const Param*, Slots> slots_;
};

// Step: lr * dropFactor^floor(epoch / everyEpochs). Cosine over the whole
// run: lr * (f + (1 - f) * (1 + cos(pi * step / totalSteps)) / 2).
class LearningRateSchedule {
 public:
  LearningRateSchedule(ScheduleConfig c, double baseRate, int64_t stepsPerEpoch, int64_t totalSteps)
      : cfg_(c), base_(baseRate), stepsPerEpoch_(stepsPerEpoch), totalSteps_(totalSteps) {}
  double at(int64_t step) const;

 private:
  ScheduleConfig cfg_;
  double base_;
  int64_t stepsPerEpoch_, totalSteps_;
};

}  // namespace kiln::train
