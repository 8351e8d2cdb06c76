// BatchNormalization over the channel axis (axis 1 of NCHW / [N, F]):
// batch statistics (biased variance) when training, moving averages
// (moving = momentum * moving + (1 - momentum) * batch) in inference.
#include <algorithm>
#include <cmath>
#include <limits>

#include "trainer/layers.h"
#include "trainer/spec.h"

namespace kiln::train {

Dims BatchNormalization::build(const Dims& in, Rng&) {
  // Keras axes count the channels-last per-sample shape plus the batch dim.
  int64_t rank = static_cast<int64_t>(in.size()) + 1;
  if (cfg_.axis != -1 && cfg_.axis != rank - 1)
    throw SpecError(name() + ": only the channel axis (-1) is supported, got axis " + std::to_string(cfg_.axis));
  if (cfg_.epsilon <= 0 || cfg_.momentum < 0 || cfg_.momentum > 1)
    throw SpecError(name() + ": needs epsilon > 0 and momentum in [0, 1]");
  int64_t C = in.at(0);
  gamma_ = Param{name() + "/gamma", Tensor({C}, 1.0f), Tensor({C}), false};
  beta_ = Param{name() + "/beta", Tensor({C}), Tensor({C}), false};
  movingMean_ = Tensor({C});
  movingVar_ = Tensor({C}, 1.0f);
  return in;
}

namespace {

// Sum of f(x) over one channel of [N, C, S] data: float lanes within a
// sample's plane, double across samples, so the result does not depend on
// the thread count.
template <class F>
double channelSum(const float* x, int64_t N, int64_t C, int64_t S, int64_t c, F f) {
  double total = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    const float* p = x + (n * C + c) * S;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < S; ++i) s += f(p[i]);
    total += s;
  }
  return total;
}

}  // namespace

// One channel per task: a channel's batch (N*S floats, ~400 KB for 32x28x28
// at batch 128) stays in the core's cache between its passes.
Tensor BatchNormalization::forward(Tensor x, bool training) {
  const int64_t N = x.dim(0), C = x.dim(1), S = product(x.shape, 2);
  float* y = x.ptr();  // in place: each element is read before it is written
  xhat_.shape = x.shape;
  xhat_.data.resize(x.data.size());
  trainingForward_ = training;
  invStd_.assign(static_cast<size_t>(C), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    double mean = movingMean_[c], var = movingVar_[c];
    if (training) {
      const double m = static_cast<double>(N * S);
      mean = channelSum(x.ptr(), N, C, S, c, [](float v) { return v; }) / m;
      const float meanF = static_cast<float>(mean);
      var = channelSum(x.ptr(), N, C, S, c, [meanF](float v) { return (v - meanF) * (v - meanF); }) / m;
      movingMean_[c] = static_cast<float>(cfg_.momentum * movingMean_[c] + (1 - cfg_.momentum) * mean);
      movingVar_[c] = static_cast<float>(cfg_.momentum * movingVar_[c] + (1 - cfg_.momentum) * var);
    }
    const double inv = 1.0 / std::sqrt(var + cfg_.epsilon);
    invStd_[static_cast<size_t>(c)] = inv;
    const float meanF = static_cast<float>(mean), invF = static_cast<float>(inv), g = gamma_.value[c], b = beta_.value[c];
    const float floor = fusedRelu_ ? 0.0f : -std::numeric_limits<float>::infinity();
    for (int64_t n = 0; n < N; ++n) {
      const int64_t base = (n * C + c) * S;
      const float* xp = x.ptr() + base;
      float* hp = xhat_.ptr() + base;
      float* yp = y + base;
#pragma omp simd
      for (int64_t i = 0; i < S; ++i) {
        hp[i] = (xp[i] - meanF) * invF;
        yp[i] = std::max(g * hp[i] + b, floor);
      }
    }
  }
  return x;
}

// Training: dx = gamma * invstd / m * (m * dy - sum(dy) - xhat * sum(dy * xhat)),
// m = N*S (the batch statistics depend on x); inference: dx = gamma * invstd * dy.
// With the fused ReLU, dy is first masked where gamma * xhat + beta <= 0.
Tensor BatchNormalization::backward(Tensor dy) {
  const int64_t N = dy.dim(0), C = dy.dim(1), S = product(dy.shape, 2);
  const double m = static_cast<double>(N * S);
  float* dx = dy.ptr();  // in place, after the sums have read dy
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    const float g = gamma_.value[c], b = beta_.value[c];
    auto masked = [&](float d, float h) { return !fusedRelu_ || g * h + b > 0.0f ? d : 0.0f; };
    double sumDy = 0.0, sumDyXhat = 0.0;
    for (int64_t n = 0; n < N; ++n) {
      const int64_t base = (n * C + c) * S;
      const float *dp = dy.ptr() + base, *hp = xhat_.ptr() + base;
      float s = 0.0f, sh = 0.0f;
#pragma omp simd reduction(+ : s, sh)
      for (int64_t i = 0; i < S; ++i) {
        const float d = masked(dp[i], hp[i]);
        s += d;
        sh += d * hp[i];
      }
      sumDy += s;
      sumDyXhat += sh;
    }
    gamma_.grad[c] = static_cast<float>(sumDyXhat);
    beta_.grad[c] = static_cast<float>(sumDy);
    const double k = gamma_.value[c] * invStd_[static_cast<size_t>(c)] / m;
    const float scale = static_cast<float>(k * m), meanTerm = trainingForward_ ? static_cast<float>(k * sumDy) : 0.0f,
                varTerm = trainingForward_ ? static_cast<float>(k * sumDyXhat) : 0.0f;
    for (int64_t n = 0; n < N; ++n) {
      const int64_t base = (n * C + c) * S;
      const float *dp = dy.ptr() + base, *hp = xhat_.ptr() + base;
      float* xp = dx + base;
#pragma omp simd
      for (int64_t i = 0; i < S; ++i) xp[i] = scale * masked(dp[i], hp[i]) - meanTerm - hp[i] * varTerm;
    }
  }
  return dy;
}

std::string BatchNormalization::exportOnnx(OnnxGraphWriter& w, const std::string& x) const {
  return w.node("BatchNormalization",
                {x, w.weight(gamma_.name, gamma_.value), w.weight(beta_.name, beta_.value),
                 w.weight(name() + "/moving_mean", movingMean_), w.weight(name() + "/moving_variance", movingVar_)},
                name(), {{"epsilon", static_cast<float>(cfg_.epsilon)}});
}

}  // namespace kiln::train
