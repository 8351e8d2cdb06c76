// Dense: y = act(x W + b) on [N, F] with the Keras kernel layout W[F, units];
// exported as Gemm.
#include "trainer/kernels.h"
#include "trainer/layers.h"
#include "trainer/spec.h"

namespace kiln::train {

Dims Dense::build(const Dims& in, Rng& rng) {
  if (in.size() != 1) throw SpecError(name() + ": needs a flat input (add Flatten or GlobalAveragePooling2D), got " + dimsStr(in));
  if (units_ < 1) throw SpecError(name() + ": 'units' must be positive");
  kernel_ = Param{name() + "/kernel", Tensor({in[0], units_}), Tensor({in[0], units_}), true};
  initialize(kernel_.value, init_, in[0], units_, rng);
  if (useBias_) bias_ = Param{name() + "/bias", Tensor({units_}), Tensor({units_}), false};
  return {units_};
}

std::vector<Param*> Dense::params() {
  std::vector<Param*> p{&kernel_};
  if (bias_) p.push_back(&*bias_);
  return p;
}

Tensor Dense::forward(Tensor x, bool) {
  x_ = std::move(x);
  const int64_t N = x_.dim(0), F = kernel_.value.dim(0);
  Tensor y({N, units_});
  if (bias_)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t u = 0; u < units_; ++u) y[n * units_ + u] = bias_->value[u];
  gemm(false, false, static_cast<int>(N), static_cast<int>(units_), static_cast<int>(F), 1.0f, x_.ptr(),
       kernel_.value.ptr(), bias_ ? 1.0f : 0.0f, y.ptr());
  return act_.forward(std::move(y));
}

Tensor Dense::backward(Tensor dyAct) {
  Tensor dy = act_.backward(std::move(dyAct));
  const int64_t N = dy.dim(0), F = kernel_.value.dim(0);
  gemm(true, false, static_cast<int>(F), static_cast<int>(units_), static_cast<int>(N), 1.0f, x_.ptr(), dy.ptr(), 0.0f,
       kernel_.grad.ptr());
  if (bias_)
    for (int64_t u = 0; u < units_; ++u) {
      double s = 0.0;
      for (int64_t n = 0; n < N; ++n) s += dy[n * units_ + u];
      bias_->grad[u] = static_cast<float>(s);
    }
  Tensor dx({N, F});
  gemm(false, true, static_cast<int>(N), static_cast<int>(F), static_cast<int>(units_), 1.0f, dy.ptr(),
       kernel_.value.ptr(), 0.0f, dx.ptr());
  return dx;
}

std::string Dense::exportOnnx(OnnxGraphWriter& w, const std::string& x) const {
  std::vector<std::string> in{x, w.weight(kernel_.name, kernel_.value)};
  if (bias_) in.push_back(w.weight(bias_->name, bias_->value));
  return act_.exportOnnx(w, w.node("Gemm", in, name()), name() + "/activation");
}

}  // namespace kiln::train
