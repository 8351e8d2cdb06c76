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

// Elementwise kinds run as one parallel vector loop each, in place; y_
// keeps a copy of the output (its buffer reused across calls).
Tensor ActivationFn::forward(Tensor x) {
  if (kind_ == ActivationKind::Linear) return x;
  float* v = x.ptr();
  const int64_t n = x.size();
  switch (kind_) {
    case ActivationKind::Linear: break;
    case ActivationKind::Relu:
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < n; ++i) v[i] = v[i] > 0.0f ? v[i] : 0.0f;
      break;
    case ActivationKind::Sigmoid:
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) v[i] = 1.0f / (1.0f + std::exp(-v[i]));
      break;
    case ActivationKind::Tanh:
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) v[i] = std::tanh(v[i]);
      break;
    case ActivationKind::Softmax: softmaxAxis1(x); break;
  }
  y_ = x;
  return x;
}

Tensor ActivationFn::backward(Tensor dy) const {
  if (kind_ == ActivationKind::Linear) return dy;
  const int64_t n = dy.size();
  const float *g = dy.ptr(), *y = y_.ptr();
  float* out = dy.ptr();
  switch (kind_) {
    case ActivationKind::Linear: break;
    case ActivationKind::Relu:
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < n; ++i) out[i] = y[i] > 0.0f ? g[i] : 0.0f;
      break;
    case ActivationKind::Sigmoid:
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < n; ++i) out[i] = g[i] * y[i] * (1.0f - y[i]);
      break;
    case ActivationKind::Tanh:
#pragma omp parallel for simd schedule(static)
      for (int64_t i = 0; i < n; ++i) out[i] = g[i] * (1.0f - y[i] * y[i]);
      break;
    case ActivationKind::Softmax: {
      // dx_c = y_c * (dy_c - sum_k dy_k y_k); the dot is taken before any
      // element of its column is overwritten.
      const int64_t N = dy.dim(0), C = dy.dim(1), inner = product(dy.shape, 2);
      for (int64_t b = 0; b < N; ++b)
        for (int64_t i = 0; i < inner; ++i) {
          int64_t base = b * C * inner + i;
          double dot = 0.0;
          for (int64_t c = 0; c < C; ++c) dot += static_cast<double>(g[base + c * inner]) * y[base + c * inner];
          for (int64_t c = 0; c < C; ++c) out[base + c * inner] = static_cast<float>(y[base + c * inner] * (g[base + c * inner] - dot));
        }
      break;
    }
  }
  return dy;
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
