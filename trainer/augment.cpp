// Random shifts and horizontal flips (see augment.h).
#include "trainer/augment.h"

#include <vector>

namespace kiln::train {

void augmentBatch(Tensor& images, const AugmentConfig& cfg, Rng& rng) {
  if (cfg.maxShift == 0 && !cfg.horizontalFlip) return;
  const int64_t N = images.dim(0), C = images.dim(1), H = images.dim(2), W = images.dim(3);
  std::vector<float> plane(static_cast<size_t>(H * W));
  for (int64_t n = 0; n < N; ++n) {
    int64_t span = 2 * cfg.maxShift + 1;
    int64_t dy = static_cast<int64_t>(rng.below(static_cast<uint64_t>(span))) - cfg.maxShift;
    int64_t dx = static_cast<int64_t>(rng.below(static_cast<uint64_t>(span))) - cfg.maxShift;
    bool flip = cfg.horizontalFlip && rng.uniform() < 0.5;
    for (int64_t c = 0; c < C; ++c) {
      float* img = images.ptr() + (n * C + c) * H * W;
      plane.assign(img, img + H * W);
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          int64_t sy = y - dy, sx = x - dx;
          if (flip) sx = W - 1 - sx;
          img[y * W + x] = (sy >= 0 && sy < H && sx >= 0 && sx < W) ? plane[static_cast<size_t>(sy * W + sx)] : 0.0f;
        }
    }
  }
}

}  // namespace kiln::train
