// Dropout (inverted): a seeded mask when training, identity in inference.
#include "trainer/layers.h"
#include "trainer/spec.h"

namespace kiln::train {

Dims Dropout::build(const Dims& in, Rng& rng) {
  if (rate_ < 0 || rate_ >= 1) throw SpecError(name() + ": 'rate' must be in [0, 1)");
  rng_ = rng.fork();
  return in;
}

Tensor Dropout::forward(const Tensor& x, bool training) {
  if (!training) return x;
  mask_.resize(x.data.size());
  const float keep = static_cast<float>(1.0 / (1.0 - rate_));
  Tensor y = x;
  for (size_t i = 0; i < mask_.size(); ++i) {
    mask_[i] = rng_->uniform() < rate_ ? 0.0f : keep;
    y.data[i] *= mask_[i];
  }
  return y;
}

Tensor Dropout::backward(const Tensor& dy) {
  Tensor dx = dy;
  for (size_t i = 0; i < mask_.size(); ++i) dx.data[i] *= mask_[i];
  return dx;
}

std::string Dropout::exportOnnx(OnnxGraphWriter&, const std::string& x) const { return x; }

}  // namespace kiln::train
