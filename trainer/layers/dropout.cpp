// Dropout (inverted): a seeded mask when training, identity in inference.
#include "trainer/layers.h"
#include "trainer/spec.h"

namespace kiln::train {

Dims Dropout::build(const Dims& in, Rng& rng) {
  if (rate_ < 0 || rate_ >= 1) throw SpecError(name() + ": 'rate' must be in [0, 1)");
  rng_ = rng.fork();
  return in;
}

Tensor Dropout::forward(Tensor x, bool training) {
  if (!training) return x;
  mask_.resize(x.data.size());
  const float keep = static_cast<float>(1.0 / (1.0 - rate_));
  for (size_t i = 0; i < mask_.size(); ++i) {
    mask_[i] = rng_->uniform() < rate_ ? 0.0f : keep;
    x.data[i] *= mask_[i];
  }
  return x;
}

Tensor Dropout::backward(Tensor dy) {
  for (size_t i = 0; i < mask_.size(); ++i) dy.data[i] *= mask_[i];
  return dy;
}

std::string Dropout::exportOnnx(OnnxGraphWriter&, const std::string& x) const { return x; }

}  // namespace kiln::train
