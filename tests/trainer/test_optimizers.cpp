// Optimizer steps and learning-rate schedules against hand-computed values
// (w = [1, -2], g = [0.5, 0.25] throughout).
#include <catch2/catch.hpp>

#include <cmath>

#include "trainer/initializers.h"
#include "trainer/optimizer.h"

using namespace kiln::train;

namespace {

Param makeParam(bool decays = false) {
  Param p{"w", Tensor({2}), Tensor({2}), decays};
  p.value.data = {1.0f, -2.0f};
  p.grad.data = {0.5f, 0.25f};
  return p;
}

std::vector<float> run(OptimizerConfig cfg, double lr, int steps, bool decays = false) {
  Param p = makeParam(decays);
  Optimizer opt(cfg);
  for (int i = 0; i < steps; ++i) opt.step({&p}, lr);
  return p.value.data;
}

void expectValues(const std::vector<float>& got, std::initializer_list<double> want) {
  REQUIRE(got.size() == want.size());
  size_t i = 0;
  for (double w : want) CHECK(got[i++] == Approx(w).margin(1e-6));
}

OptimizerConfig config(OptimizerConfig::Kind kind) {
  OptimizerConfig c;
  c.kind = kind;
  return c;
}

}  // namespace

TEST_CASE("SGD: plain, momentum, Nesterov") {
  OptimizerConfig sgd = config(OptimizerConfig::Kind::SGD);
  expectValues(run(sgd, 0.1, 1), {0.95, -2.025});
  sgd.momentum = 0.9;
  // v1 = -lr g = [-0.05, -0.025]; v2 = 0.9 v1 - lr g = [-0.095, -0.0475]
  expectValues(run(sgd, 0.1, 2), {1 - 0.05 - 0.095, -2 - 0.025 - 0.0475});
  sgd.nesterov = true;
  // w += 0.9 v - lr g: step 1 -0.095, step 2 0.9*(-0.095) - 0.05 = -0.1355
  expectValues(run(sgd, 0.1, 2), {1 - 0.095 - 0.1355, -2 - 0.0475 - 0.06775});
}

TEST_CASE("RMSprop") {
  // s = 0.1 g^2; w -= 0.01 g / (sqrt(s) + 1e-7)
  double step0 = 0.01 * 0.5 / (std::sqrt(0.1 * 0.25) + 1e-7), step1 = 0.01 * 0.25 / (std::sqrt(0.1 * 0.0625) + 1e-7);
  expectValues(run(config(OptimizerConfig::Kind::RMSprop), 0.01, 1), {1 - step0, -2 - step1});
}

TEST_CASE("Adam: bias-corrected first steps move by lr") {
  // With a constant gradient m_hat = g and v_hat = g^2 at every step.
  double d0 = 0.001 * 0.5 / (0.5 + 1e-7), d1 = 0.001 * 0.25 / (0.25 + 1e-7);
  expectValues(run(config(OptimizerConfig::Kind::Adam), 0.001, 1), {1 - d0, -2 - d1});
  expectValues(run(config(OptimizerConfig::Kind::Adam), 0.001, 2), {1 - 2 * d0, -2 - 2 * d1});
}

TEST_CASE("Decoupled weight decay applies to decaying params only") {
  OptimizerConfig sgd = config(OptimizerConfig::Kind::SGD);
  sgd.weightDecay = 0.1;
  // w -= lr*wd*w, then w -= lr*g
  expectValues(run(sgd, 0.1, 1, true), {0.99 - 0.05, -1.98 - 0.025});
  expectValues(run(sgd, 0.1, 1, false), {0.95, -2.025});
}

TEST_CASE("Learning-rate schedules: constant, step, cosine") {
  ScheduleConfig constant;
  CHECK(LearningRateSchedule(constant, 0.5, 10, 100).at(77) == 0.5);
  ScheduleConfig step;
  step.kind = ScheduleConfig::Kind::Step;
  step.dropFactor = 0.5;
  step.everyEpochs = 2;
  LearningRateSchedule s(step, 1.0, 10, 100);
  CHECK(s.at(0) == 1.0);
  CHECK(s.at(19) == 1.0);
  CHECK(s.at(20) == 0.5);
  CHECK(s.at(45) == 0.25);
  ScheduleConfig cosine;
  cosine.kind = ScheduleConfig::Kind::Cosine;
  cosine.finalFraction = 0.1;
  LearningRateSchedule c(cosine, 1.0, 10, 100);
  CHECK(c.at(0) == Approx(1.0));
  CHECK(c.at(50) == Approx(0.55));
  CHECK(c.at(100) == Approx(0.1));
}

TEST_CASE("Initializers: Glorot and He ranges and spread") {
  Rng rng(3);
  Tensor w({200, 50});
  initialize(w, Initializer::GlorotUniform, 200, 50, rng);
  double limit = std::sqrt(6.0 / 250.0), sq = 0;
  for (float v : w.data) {
    CHECK(std::abs(v) <= limit);
    sq += v * v;
  }
  CHECK(std::sqrt(sq / 10000.0) == Approx(limit / std::sqrt(3.0)).epsilon(0.05));
  initialize(w, Initializer::HeNormal, 200, 50, rng);
  sq = 0;
  for (float v : w.data) {
    CHECK(std::abs(v) <= 2 * std::sqrt(2.0 / 200) / 0.8796 + 1e-6);
    sq += v * v;
  }
  CHECK(std::sqrt(sq / 10000.0) == Approx(std::sqrt(2.0 / 200)).epsilon(0.05));
}
