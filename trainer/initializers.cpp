// Weight initializers (see initializers.h).
#include "trainer/initializers.h"

#include <cmath>

#include "trainer/spec.h"

namespace kiln::train {

Initializer parseInitializer(const std::string& name) {
  if (name == "glorot_uniform") return Initializer::GlorotUniform;
  if (name == "he_normal") return Initializer::HeNormal;
  if (name == "he_uniform") return Initializer::HeUniform;
  throw SpecError("unknown initializer '" + name + "' (glorot_uniform, he_normal, he_uniform)");
}

void initialize(Tensor& w, Initializer init, int64_t fanIn, int64_t fanOut, Rng& rng) {
  switch (init) {
    case Initializer::GlorotUniform: {
      double limit = std::sqrt(6.0 / static_cast<double>(fanIn + fanOut));
      for (float& v : w.data) v = static_cast<float>(rng.uniform(-limit, limit));
      break;
    }
    case Initializer::HeUniform: {
      double limit = std::sqrt(6.0 / static_cast<double>(fanIn));
      for (float& v : w.data) v = static_cast<float>(rng.uniform(-limit, limit));
      break;
    }
    case Initializer::HeNormal: {
      // Keras' truncated normal: stddev is that of the untruncated one / 0.8796.
      double stddev = std::sqrt(2.0 / static_cast<double>(fanIn)) / 0.87962566103423978;
      for (float& v : w.data) {
        double z = rng.normal();
        while (std::abs(z) > 2.0) z = rng.normal();
        v = static_cast<float>(z * stddev);
      }
      break;
    }
  }
}

}  // namespace kiln::train
