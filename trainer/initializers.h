// Weight initializers (Keras definitions): Glorot-uniform, He-normal
// (truncated at 2 sigma) and He-uniform. Fans count one group of a grouped
// convolution: fan_in = in-channels-per-group * kh * kw, fan_out =
// out-channels-per-group * kh * kw; for Dense the in/out features.
#pragma once

#include <cstdint>
#include <string>

#include "trainer/random.h"
#include "trainer/tensor.h"

namespace kiln::train {

enum class Initializer { GlorotUniform, HeNormal, HeUniform };

Initializer parseInitializer(const std::string& name);
void initialize(Tensor& w, Initializer init, int64_t fanIn, int64_t fanOut, Rng& rng);

}  // namespace kiln::train
