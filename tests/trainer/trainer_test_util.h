// Shared helpers of the trainer tests: synthetic labelled images and specs
// from inline JSON.
#pragma once

#include <string>

#include "trainer/dataset.h"
#include "trainer/random.h"
#include "trainer/spec.h"

namespace kiln::train::testing {

// n images [n, c, h, w] uniform in [0, 1) with labels 0..9; class k adds a
// bright pixel block at a class-specific place, so the labels are learnable.
inline LabeledImages syntheticImages(int64_t n, int64_t c, int64_t h, int64_t w, uint64_t seed) {
  Rng rng(seed);
  LabeledImages d{Tensor({n, c, h, w}), {}};
  for (float& v : d.images.data) v = static_cast<float>(rng.uniform() * 0.5);
  for (int64_t i = 0; i < n; ++i) {
    auto label = static_cast<uint8_t>(i % 10);
    d.labels.push_back(label);
    int64_t y = label % 3 * (h / 3), x = label / 3 % 3 * (w / 3);
    for (int64_t ch = 0; ch < c; ++ch) d.images[((i * c + ch) * h + y) * w + x] = 1.0f;
  }
  return d;
}

inline ModelSpec specFromJson(const std::string& text) { return parseSpec(nlohmann::json::parse(text), "test spec"); }

}  // namespace kiln::train::testing
