// Activations: relu, sigmoid, tanh, softmax (along the channel axis 1) and
// linear; backward from the cached output.
#include <cmath>

#include "trainer/layers.h"
#include "trainer/spec.h"

namespace kiln::train {

ActivationKind parseActivation(const std::string& name) {
  if (name == "linear") return ActivationKind::Linear;
  if (name == "relu") return ActivationKind::Relu;
  if (name == "sigmoid") return ActivationKind::Sigmoid;
  if (name == "tanh") return ActivationKind::Tanh;
  if (name == "softmax") return ActivationKind::Softmax;
  throw SpecError("unknown activation '" + name + "' (linear, relu, sigmoid, tanh, softmax)");
}

namespace {

// Softmax over axis 1 of [N, C, inner...].
void softmaxAxis1(Tensor& y) {
  const int64_t N = y.dim(0), C = y.dim(1), inner = product(y.shape, 2);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < inner; ++i) {
      float* base = y.ptr() + n * C * inner + i;
      float mx = base[0];
      for (int64_t c = 1; c < C; ++c) mx = std::max(mx, base[c * inner]);
      double sum = 0.0;
      for (int64_t c = 0; c < C; ++c) sum += (base[c * inner] = std::exp(base[c * inner] - mx));
      for (int64_t c = 0; c < C; ++c) base[c * inner] = static_cast<float>(base[c * inner] / sum);
    }
}

}  // namespace

Tensor ActivationFn::forward(const Tensor& x) {
  y_ = x;
  switch (kind_) {
    case ActivationKind::Linear: break;
    case ActivationKind::Relu:
      for (float& v : y_.data) v = v > 0.0f ? v : 0.0f;
      break;
    case ActivationKind::Sigmoid:
      for (float& v : y_.data) v = 1.0f / (1.0f + std::exp(-v));
      break;
    case ActivationKind::Tanh:
      for (float& v : y_.data) v = std::tanh(v);
      break;
    case ActivationKind::Softmax: softmaxAxis1(y_); break;
  }
  return y_;
}

Tensor ActivationFn::backward(const Tensor& dy) const {
  Tensor dx(dy.shape);
  const int64_t n = dy.size();
  switch (kind_) {
    case ActivationKind::Linear: return dy;
    case ActivationKind::Relu:
      for (int64_t i = 0; i < n; ++i) dx[i] = y_[i] > 0.0f ? dy[i] : 0.0f;
      break;
    case ActivationKind::Sigmoid:
      for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * y_[i] * (1.0f - y_[i]);
      break;
    case ActivationKind::Tanh:
      for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (1.0f - y_[i] * y_[i]);
      break;
    case ActivationKind::Softmax: {
      // dx_c = y_c * (dy_c - sum_k dy_k y_k)
      const int64_t N = dy.dim(0), C = dy.dim(1), inner = product(dy.shape, 2);
      for (int64_t b = 0; b < N; ++b)
        for (int64_t i = 0; i < inner; ++i) {
          int64_t base = b * C * inner + i;
          double dot = 0.0;
          for (int64_t c = 0; c < C; ++c) dot += static_cast<double>(dy[base + c * inner]) * y_[base + c * inner];
          for (int64_t c = 0; c < C; ++c)
            dx[base + c * inner] = static_cast<float>(y_[base + c * inner] * (dy[base + c * inner] - dot));
        }
      break;
    }
  }
  return dx;
}

std::string ActivationFn::exportOnnx(OnnxGraphWriter& w, const std::string& x, const std::string& name) const {
  switch (kind_) {
    case ActivationKind::Linear: return x;
    case ActivationKind::Relu: return w.node("Relu", {x}, name);
    case ActivationKind::Sigmoid: return w.node("Sigmoid", {x}, name);
    case ActivationKind::Tanh: return w.node("Tanh", {x}, name);
    case ActivationKind::Softmax: return w.node("Softmax", {x}, name, {{"axis", int64_t{1}}});
  }
  return x;
}

}  // namespace kiln::train
