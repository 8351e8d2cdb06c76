// Light training-time augmentation of an NCHW batch, in place: a random
// shift of up to maxShift pixels per axis (zero fill) and a horizontal flip
// with probability 1/2.
#pragma once

#include "trainer/random.h"
#include "trainer/spec.h"
#include "trainer/tensor.h"

namespace kiln::train {

void augmentBatch(Tensor& images, const AugmentConfig& cfg, Rng& rng);

}  // namespace kiln::train
