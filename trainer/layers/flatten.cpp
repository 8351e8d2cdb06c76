// Flatten: [N, ...] -> [N, prod(...)] in NCHW order (exported as Flatten).
#include "trainer/layers.h"

namespace kiln::train {

Dims Flatten::build(const Dims& in, Rng&) {
  in_ = in;
  return {product(in)};
}

Tensor Flatten::forward(Tensor x, bool) {
  x.shape = {x.dim(0), product(in_)};
  return x;
}

Tensor Flatten::backward(Tensor dy) {
  Dims shape{dy.dim(0)};
  shape.insert(shape.end(), in_.begin(), in_.end());
  dy.shape = std::move(shape);
  return dy;
}

std::string Flatten::exportOnnx(OnnxGraphWriter& w, const std::string& x) const {
  return w.node("Flatten", {x}, name(), {{"axis", int64_t{1}}});
}

}  // namespace kiln::train
