// BatchNormalization over the channel axis (axis 1 of NCHW / [N, F]):
// batch statistics (biased variance) when training, moving averages
// (moving = momentum * moving + (1 - momentum) * batch) in inference.
#include <cmath>

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

Tensor BatchNormalization::forward(const Tensor& x, bool training) {
  const int64_t N = x.dim(0), C = x.dim(1), S = product(x.shape, 2);
  Tensor y(x.shape);
  xhat_ = Tensor(x.shape);
  trainingForward_ = training;
  invStd_.assign(static_cast<size_t>(C), 0.0);
  for (int64_t c = 0; c < C; ++c) {
    double mean = movingMean_[c], var = movingVar_[c];
    if (training) {
      double sum = 0.0, sq = 0.0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t s = 0; s < S; ++s) sum += x[(n * C + c) * S + s];
      mean = sum / static_cast<double>(N * S);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t s = 0; s < S; ++s) {
          double d = x[(n * C + c) * S + s] - mean;
          sq += d * d;
        }
      var = sq / static_cast<double>(N * S);
      movingMean_[c] = static_cast<float>(cfg_.momentum * movingMean_[c] + (1 - cfg_.momentum) * mean);
      movingVar_[c] = static_cast<float>(cfg_.momentum * movingVar_[c] + (1 - cfg_.momentum) * var);
    }
    double inv = 1.0 / std::sqrt(var + cfg_.epsilon);
    invStd_[static_cast<size_t>(c)] = inv;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) {
        int64_t i = (n * C + c) * S + s;
        xhat_[i] = static_cast<float>((x[i] - mean) * inv);
        y[i] = gamma_.value[c] * xhat_[i] + beta_.value[c];
      }
  }
  return y;
}

// Training: dx = gamma * invstd / m * (m * dy - sum(dy) - xhat * sum(dy * xhat)),
// m = N*S (the batch statistics depend on x); inference: dx = gamma * invstd * dy.
Tensor BatchNormalization::backward(const Tensor& dy) {
  const int64_t N = dy.dim(0), C = dy.dim(1), S = product(dy.shape, 2);
  const double m = static_cast<double>(N * S);
  Tensor dx(dy.shape);
  for (int64_t c = 0; c < C; ++c) {
    double sumDy = 0.0, sumDyXhat = 0.0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) {
        int64_t i = (n * C + c) * S + s;
        sumDy += dy[i];
        sumDyXhat += static_cast<double>(dy[i]) * xhat_[i];
      }
    gamma_.grad[c] = static_cast<float>(sumDyXhat);
    beta_.grad[c] = static_cast<float>(sumDy);
    double k = gamma_.value[c] * invStd_[static_cast<size_t>(c)] / m;
    double meanTerm = trainingForward_ ? sumDy : 0.0, varTerm = trainingForward_ ? sumDyXhat : 0.0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) {
        int64_t i = (n * C + c) * S + s;
        dx[i] = static_cast<float>(k * (m * dy[i] - meanTerm - xhat_[i] * varTerm));
      }
  }
  return dx;
}

std::string BatchNormalization::exportOnnx(OnnxGraphWriter& w, const std::string& x) const {
  return w.node("BatchNormalization",
                {x, w.weight(gamma_.name, gamma_.value), w.weight(beta_.name, beta_.value),
                 w.weight(name() + "/moving_mean", movingMean_), w.weight(name() + "/moving_variance", movingVar_)},
                name(), {{"epsilon", static_cast<float>(cfg_.epsilon)}});
}

}  // namespace kiln::train
