// Categorical crossentropy against integer labels, from probabilities
// (clipped to [1e-7, 1 - 1e-7] as Keras does) or from logits, with label
// smoothing (targets t = onehot * (1 - s) + s / K). Mean over the batch.
#pragma once

#include <cstdint>
#include <span>

#include "trainer/spec.h"
#include "trainer/tensor.h"

namespace kiln::train {

class CategoricalCrossentropy {
 public:
  explicit CategoricalCrossentropy(LossConfig c) : cfg_(c) {}
  // pred [N, K]; returns the mean loss and, if `grad`, sets dLoss/dpred.
  double compute(const Tensor& pred, std::span<const uint8_t> labels, Tensor* grad) const;

 private:
  LossConfig cfg_;
};

}  // namespace kiln::train
