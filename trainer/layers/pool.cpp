// MaxPooling2D, AveragePooling2D (padding excluded from the average) and
// GlobalAveragePooling2D, by direct loops.
#include <algorithm>
#include <limits>

#include "trainer/layers.h"
#include "trainer/spec.h"

namespace kiln::train {

Dims Pooling2D::build(const Dims& in, Rng&) {
  if (in.size() != 3) throw SpecError(name() + ": needs an image input, got per-sample shape " + dimsStr(in));
  in_ = in;
  if (in[1] * in[2] > std::numeric_limits<int32_t>::max())
    throw SpecError(name() + ": an input plane of " + std::to_string(in[1] * in[2]) + " pixels is too large");
  WindowDim y = slidingWindow(in[1], cfg_.poolH, cfg_.strideH, 1, cfg_.padding, name());
  WindowDim x = slidingWindow(in[2], cfg_.poolW, cfg_.strideW, 1, cfg_.padding, name());
  OH_ = y.out, OW_ = x.out, padTop_ = y.padBegin, padBottom_ = y.padEnd, padLeft_ = x.padBegin, padRight_ = x.padEnd;
  return {in[0], OH_, OW_};
}

Tensor Pooling2D::forward(Tensor x, bool) {
  const int64_t N = x.dim(0), C = in_[0], H = in_[1], W = in_[2];
  Tensor y({N, C, OH_, OW_});
  const bool max = kind_ == PoolKind::Max;
  source_.resize(max ? static_cast<size_t>(y.size()) : 0);
  // Planes in parallel: each writes its own outputs only.
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < N * C; ++plane) {
    const float* in = x.ptr() + plane * H * W;
    for (int64_t oy = 0; oy < OH_; ++oy) {
      const int64_t y0 = std::max<int64_t>(0, oy * cfg_.strideH - padTop_),
                    y1 = std::min(H, oy * cfg_.strideH - padTop_ + cfg_.poolH);
      for (int64_t ox = 0; ox < OW_; ++ox) {
        const int64_t x0 = std::max<int64_t>(0, ox * cfg_.strideW - padLeft_),
                      x1 = std::min(W, ox * cfg_.strideW - padLeft_ + cfg_.poolW);
        const int64_t o = (plane * OH_ + oy) * OW_ + ox;
        if (max) {
          int64_t arg = y0 * W + x0;
          for (int64_t iy = y0; iy < y1; ++iy)
            for (int64_t ix = x0; ix < x1; ++ix)
              if (in[iy * W + ix] > in[arg]) arg = iy * W + ix;
          y[o] = in[arg];
          source_[static_cast<size_t>(o)] = static_cast<int32_t>(arg);
        } else {
          double sum = 0.0;
          for (int64_t iy = y0; iy < y1; ++iy)
            for (int64_t ix = x0; ix < x1; ++ix) sum += in[iy * W + ix];
          y[o] = static_cast<float>(sum / static_cast<double>((y1 - y0) * (x1 - x0)));
        }
      }
    }
  }
  return y;
}

Tensor Pooling2D::backward(Tensor dy) {
  const int64_t N = dy.dim(0), C = in_[0], H = in_[1], W = in_[2];
  Tensor dx({N, C, H, W});
  // Planes in parallel: a plane's outputs read and write its own inputs only.
  const int64_t planeOut = OH_ * OW_;
  if (kind_ == PoolKind::Max) {
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < N * C; ++plane)
      for (int64_t o = plane * planeOut; o < (plane + 1) * planeOut; ++o)
        dx[plane * H * W + source_[static_cast<size_t>(o)]] += dy[o];
    return dx;
  }
#pragma omp parallel for schedule(static)
  for (int64_t plane = 0; plane < N * C; ++plane)
    for (int64_t oy = 0; oy < OH_; ++oy)
      for (int64_t ox = 0; ox < OW_; ++ox) {
        const int64_t o = (plane * OH_ + oy) * OW_ + ox;
        int64_t y0 = std::max<int64_t>(0, oy * cfg_.strideH - padTop_), y1 = std::min(H, oy * cfg_.strideH - padTop_ + cfg_.poolH);
        int64_t x0 = std::max<int64_t>(0, ox * cfg_.strideW - padLeft_), x1 = std::min(W, ox * cfg_.strideW - padLeft_ + cfg_.poolW);
        float share = dy[o] / static_cast<float>((y1 - y0) * (x1 - x0));
        for (int64_t iy = y0; iy < y1; ++iy)
          for (int64_t ix = x0; ix < x1; ++ix) dx[(plane * H + iy) * W + ix] += share;
      }
  return dx;
}

std::string Pooling2D::exportOnnx(OnnxGraphWriter& w, const std::string& x) const {
  std::vector<OnnxGraphWriter::Attr> attrs{{"kernel_shape", std::vector<int64_t>{cfg_.poolH, cfg_.poolW}},
                                           {"strides", std::vector<int64_t>{cfg_.strideH, cfg_.strideW}},
                                           {"pads", std::vector<int64_t>{padTop_, padLeft_, padBottom_, padRight_}}};
  if (kind_ == PoolKind::Max) return w.node("MaxPool", {x}, name(), attrs);
  attrs.push_back({"count_include_pad", int64_t{0}});
  return w.node("AveragePool", {x}, name(), attrs);
}

Dims GlobalAveragePooling2D::build(const Dims& in, Rng&) {
  if (in.size() != 3) throw SpecError(name() + ": needs an image input, got per-sample shape " + dimsStr(in));
  in_ = in;
  return {in[0]};
}

Tensor GlobalAveragePooling2D::forward(Tensor x, bool) {
  const int64_t N = x.dim(0), C = in_[0], S = in_[1] * in_[2];
  Tensor y({N, C});
  for (int64_t p = 0; p < N * C; ++p) {
    double s = 0.0;
    for (int64_t i = 0; i < S; ++i) s += x[p * S + i];
    y[p] = static_cast<float>(s / static_cast<double>(S));
  }
  return y;
}

Tensor GlobalAveragePooling2D::backward(Tensor dy) {
  const int64_t N = dy.dim(0), C = in_[0], S = in_[1] * in_[2];
  Tensor dx({N, C, in_[1], in_[2]});
  for (int64_t p = 0; p < N * C; ++p)
    for (int64_t i = 0; i < S; ++i) dx[p * S + i] = dy[p] / static_cast<float>(S);
  return dx;
}

// GlobalAveragePool keeps [N,C,1,1]; Flatten gives Keras' [N,C].
std::string GlobalAveragePooling2D::exportOnnx(OnnxGraphWriter& w, const std::string& x) const {
  return w.node("Flatten", {w.node("GlobalAveragePool", {x}, name())}, name() + "/flatten", {{"axis", int64_t{1}}});
}

}  // namespace kiln::train
