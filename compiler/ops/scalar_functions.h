// Scalar activation functions, shared by the activation ops and the fused
// epilogues of Conv/Gemm so both compute bit-identical values.
#pragma once

#include <algorithm>
#include <cmath>

namespace kiln::scalar {

inline float relu(float x) { return x > 0.f ? x : 0.f; }
inline float leakyRelu(float x, float alpha) { return x >= 0.f ? x : alpha * x; }
inline float elu(float x, float alpha) { return x >= 0.f ? x : alpha * std::expm1(x); }
inline float selu(float x, float alpha, float gamma) { return gamma * (x > 0.f ? x : alpha * std::expm1(x)); }
inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }
inline float hardSigmoid(float x, float alpha, float beta) { return std::clamp(alpha * x + beta, 0.f, 1.f); }
inline float hardSwish(float x) { return x * std::clamp(x / 6.f + 0.5f, 0.f, 1.f); }
// log(1 + e^x) without overflow for large x.
inline float softplus(float x) { return x > 0.f ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }
inline float clip(float x, float lo, float hi) { return std::isnan(x) ? x : std::min(std::max(x, lo), hi); }
// Halves round to even (std::nearbyint in the default rounding mode).
inline float roundHalfToEven(float x) { return std::nearbyint(x); }
// -1, 0 or 1; zeros and NaN map to themselves.
inline float sign(float x) { return x > 0.f ? 1.f : x < 0.f ? -1.f : x; }
// GELU, exact: x * Phi(x) = x/2 * (1 + erf(x / sqrt(2))).
inline float gelu(float x) { return 0.5f * x * (1.f + std::erf(x * 0.70710678118654752440f)); }
// GELU's tanh approximation: x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))).
inline float geluTanh(float x) {
  return 0.5f * x * (1.f + std::tanh(0.79788456080286535588f * (x + 0.044715f * x * x * x)));
}

}  // namespace kiln::scalar
