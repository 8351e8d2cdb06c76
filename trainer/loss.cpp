// Categorical crossentropy (see loss.h).
#include "trainer/loss.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace kiln::train {

double CategoricalCrossentropy::compute(const Tensor& pred, std::span<const uint8_t> labels, Tensor* grad) const {
  if (pred.shape.size() != 2 || pred.dim(0) != static_cast<int64_t>(labels.size()))
    throw std::invalid_argument("loss: predictions " + dimsStr(pred.shape) + " for " + std::to_string(labels.size()) + " labels");
  const int64_t N = pred.dim(0), K = pred.dim(1);
  const double smooth = cfg_.labelSmoothing, eps = 1e-7;
  if (grad) *grad = Tensor(pred.shape);
  double total = 0.0;
  for (int64_t n = 0; n < N; ++n) {
    const float* p = pred.ptr() + n * K;
    if (labels[static_cast<size_t>(n)] >= K) throw std::invalid_argument("loss: label out of range");
    auto target = [&](int64_t k) { return (k == labels[static_cast<size_t>(n)] ? 1.0 - smooth : 0.0) + smooth / static_cast<double>(K); };
    if (cfg_.fromLogits) {
      double mx = *std::max_element(p, p + K), sum = 0.0;
      for (int64_t k = 0; k < K; ++k) sum += std::exp(p[k] - mx);
      double logSum = mx + std::log(sum);
      for (int64_t k = 0; k < K; ++k) {
        total -= target(k) * (p[k] - logSum);
        if (grad) (*grad)[n * K + k] = static_cast<float>((std::exp(p[k] - logSum) - target(k)) / static_cast<double>(N));
      }
    } else {
      for (int64_t k = 0; k < K; ++k) {
        double clipped = std::clamp(static_cast<double>(p[k]), eps, 1.0 - eps);
        total -= target(k) * std::log(clipped);
        bool inside = p[k] > eps && p[k] < 1.0 - eps;
        if (grad) (*grad)[n * K + k] = inside ? static_cast<float>(-target(k) / clipped / static_cast<double>(N)) : 0.0f;
      }
    }
  }
  return total / static_cast<double>(N);
}

}  // namespace kiln::train
