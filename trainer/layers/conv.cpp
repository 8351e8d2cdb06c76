// The grouped im2col + GEMM convolution and the three Keras conv layers on
// top of it: Conv2D (groups = 1), DepthwiseConv2D (groups = C) and
// SeparableConv2D (depthwise then 1x1).
#include <algorithm>

#include "trainer/blas.h"
#include "trainer/layers.h"
#include "trainer/spec.h"

namespace kiln::train {

WindowDim slidingWindow(int64_t in, int64_t kernel, int64_t stride, int64_t dilation, Padding padding,
                        const std::string& layer) {
  if (kernel < 1 || stride < 1 || dilation < 1) throw SpecError(layer + ": kernel, strides and dilation must be positive");
  int64_t span = (kernel - 1) * dilation + 1;
  if (padding == Padding::Valid) {
    if (span > in)
      throw SpecError(layer + ": window of " + std::to_string(span) + " does not fit an input of " + std::to_string(in));
    return {(in - span) / stride + 1, 0, 0};
  }
  int64_t out = (in + stride - 1) / stride;
  int64_t total = std::max<int64_t>(0, (out - 1) * stride + span - in);
  return {out, total / 2, total - total / 2};
}

// --- Convolution ---

Dims Convolution::build(const Dims& in, int64_t outChannels, int64_t groups, Rng& rng) {
  if (in.size() != 3) throw SpecError(name_ + ": needs an image input [H,W,C], got per-sample shape " + dimsStr(in));
  C_ = in[0], H_ = in[1], W_ = in[2], M_ = outChannels, groups_ = groups;
  if (M_ < 1 || C_ % groups_ || M_ % groups_) throw SpecError(name_ + ": channel counts do not split into groups");
  WindowDim y = slidingWindow(H_, geo_.kernelH, geo_.strideH, geo_.dilationH, geo_.padding, name_);
  WindowDim x = slidingWindow(W_, geo_.kernelW, geo_.strideW, geo_.dilationW, geo_.padding, name_);
  OH_ = y.out, OW_ = x.out, padTop_ = y.padBegin, padBottom_ = y.padEnd, padLeft_ = x.padBegin, padRight_ = x.padEnd;
  Dims kshape = {M_, C_ / groups_, geo_.kernelH, geo_.kernelW};
  kernel_ = Param{name_ + "/kernel", Tensor(kshape), Tensor(kshape), true};
  int64_t receptive = geo_.kernelH * geo_.kernelW;
  initialize(kernel_.value, init_, C_ / groups_ * receptive, M_ / groups_ * receptive, rng);
  if (useBias_) bias_ = Param{name_ + "/bias", Tensor({M_}), Tensor({M_}), false};
  return {M_, OH_, OW_};
}

std::vector<Param*> Convolution::params() {
  std::vector<Param*> p{&kernel_};
  if (bias_) p.push_back(&*bias_);
  return p;
}

// cols[(c*kh + ky)*kw + kx][n*OH*OW + oy*OW + ox] = x[n, c, iy, ix] (0 in the padding).
void Convolution::im2col(const Tensor& x) {
  const int64_t P = OH_ * OW_, NP = batch_ * P;
  cols_.resize(static_cast<size_t>(C_ * geo_.kernelH * geo_.kernelW * NP));
  float* col = cols_.data();
  for (int64_t c = 0; c < C_; ++c)
    for (int64_t ky = 0; ky < geo_.kernelH; ++ky)
      for (int64_t kx = 0; kx < geo_.kernelW; ++kx)
        for (int64_t n = 0; n < batch_; ++n) {
          const float* plane = x.ptr() + (n * C_ + c) * H_ * W_;
          for (int64_t oy = 0; oy < OH_; ++oy) {
            int64_t iy = oy * geo_.strideH - padTop_ + ky * geo_.dilationH;
            for (int64_t ox = 0; ox < OW_; ++ox, ++col) {
              int64_t ix = ox * geo_.strideW - padLeft_ + kx * geo_.dilationW;
              *col = (iy >= 0 && iy < H_ && ix >= 0 && ix < W_) ? plane[iy * W_ + ix] : 0.0f;
            }
          }
        }
}

Tensor Convolution::forward(const Tensor& x) {
  if (x.shape.size() != 4 || x.dim(1) != C_ || x.dim(2) != H_ || x.dim(3) != W_)
    throw std::invalid_argument(name_ + ": input " + dimsStr(x.shape) + " does not match the built shape");
  batch_ = x.dim(0);
  const int64_t P = OH_ * OW_, NP = batch_ * P, Mg = M_ / groups_, Kg = C_ / groups_ * geo_.kernelH * geo_.kernelW;
  im2col(x);
  outCM_.resize(static_cast<size_t>(M_ * NP));
  for (int64_t g = 0; g < groups_; ++g)
    gemm(false, false, static_cast<int>(Mg), static_cast<int>(NP), static_cast<int>(Kg), 1.0f,
         kernel_.value.ptr() + g * Mg * Kg, cols_.data() + g * Kg * NP, 0.0f, outCM_.data() + g * Mg * NP);
  Tensor y({batch_, M_, OH_, OW_});
  for (int64_t m = 0; m < M_; ++m) {
    float b = bias_ ? bias_->value[m] : 0.0f;
    for (int64_t n = 0; n < batch_; ++n) {
      const float* src = outCM_.data() + m * NP + n * P;
      float* dst = y.ptr() + (n * M_ + m) * P;
      for (int64_t p = 0; p < P; ++p) dst[p] = src[p] + b;
    }
  }
  return y;
}

Tensor Convolution::backward(const Tensor& dy) {
  const int64_t P = OH_ * OW_, NP = batch_ * P, Mg = M_ / groups_, Kg = C_ / groups_ * geo_.kernelH * geo_.kernelW;
  // dy to channel-major [M, N*P], reusing the forward output buffer.
  for (int64_t m = 0; m < M_; ++m) {
    double sum = 0.0;
    for (int64_t n = 0; n < batch_; ++n) {
      const float* src = dy.ptr() + (n * M_ + m) * P;
      float* dst = outCM_.data() + m * NP + n * P;
      for (int64_t p = 0; p < P; ++p) {
        dst[p] = src[p];
        sum += src[p];
      }
    }
    if (bias_) bias_->grad[m] = static_cast<float>(sum);
  }
  std::vector<float> dcols(cols_.size());
  for (int64_t g = 0; g < groups_; ++g) {
    const float* dyg = outCM_.data() + g * Mg * NP;
    gemm(false, true, static_cast<int>(Mg), static_cast<int>(Kg), static_cast<int>(NP), 1.0f, dyg,
         cols_.data() + g * Kg * NP, 0.0f, kernel_.grad.ptr() + g * Mg * Kg);
    gemm(true, false, static_cast<int>(Kg), static_cast<int>(NP), static_cast<int>(Mg), 1.0f,
         kernel_.value.ptr() + g * Mg * Kg, dyg, 0.0f, dcols.data() + g * Kg * NP);
  }
  // col2im: the transpose of im2col, accumulating overlapping windows.
  Tensor dx({batch_, C_, H_, W_});
  const float* col = dcols.data();
  for (int64_t c = 0; c < C_; ++c)
    for (int64_t ky = 0; ky < geo_.kernelH; ++ky)
      for (int64_t kx = 0; kx < geo_.kernelW; ++kx)
        for (int64_t n = 0; n < batch_; ++n) {
          float* plane = dx.ptr() + (n * C_ + c) * H_ * W_;
          for (int64_t oy = 0; oy < OH_; ++oy) {
            int64_t iy = oy * geo_.strideH - padTop_ + ky * geo_.dilationH;
            for (int64_t ox = 0; ox < OW_; ++ox, ++col) {
              int64_t ix = ox * geo_.strideW - padLeft_ + kx * geo_.dilationW;
              if (iy >= 0 && iy < H_ && ix >= 0 && ix < W_) plane[iy * W_ + ix] += *col;
            }
          }
        }
  return dx;
}

std::vector<OnnxGraphWriter::Attr> Convolution::onnxWindowAttrs() const {
  return {{"strides", std::vector<int64_t>{geo_.strideH, geo_.strideW}},
          {"pads", std::vector<int64_t>{padTop_, padLeft_, padBottom_, padRight_}},
          {"dilations", std::vector<int64_t>{geo_.dilationH, geo_.dilationW}}};
}

namespace {

std::vector<std::string> convInputs(OnnxGraphWriter& w, const std::string& x, const Convolution& conv) {
  std::vector<std::string> in{x, w.weight(conv.kernel().name, conv.kernel().value)};
  if (conv.bias()) in.push_back(w.weight(conv.bias()->name, conv.bias()->value));
  return in;
}

std::string exportConv(OnnxGraphWriter& w, const std::string& x, const Convolution& conv, const std::string& name) {
  std::vector<OnnxGraphWriter::Attr> attrs = conv.onnxWindowAttrs();
  attrs.push_back({"group", conv.groups()});
  return w.node("Conv", convInputs(w, x, conv), name, attrs);
}

}  // namespace

// --- Conv2D ---

Conv2D::Conv2D(std::string name, const ConvConfig& c)
    : Layer(name), filters_(c.filters), conv_(name, c.geometry, c.useBias, c.init), act_(c.activation) {}

Dims Conv2D::build(const Dims& in, Rng& rng) {
  if (filters_ < 1) throw SpecError(name() + ": 'filters' must be positive");
  return conv_.build(in, filters_, 1, rng);
}
Tensor Conv2D::forward(const Tensor& x, bool) { return act_.forward(conv_.forward(x)); }
Tensor Conv2D::backward(const Tensor& dy) { return conv_.backward(act_.backward(dy)); }
std::string Conv2D::exportOnnx(OnnxGraphWriter& w, const std::string& x) const {
  return act_.exportOnnx(w, exportConv(w, x, conv_, name()), name() + "/activation");
}

// --- DepthwiseConv2D ---

DepthwiseConv2D::DepthwiseConv2D(std::string name, const ConvConfig& c)
    : Layer(name), depthMultiplier_(c.depthMultiplier), conv_(name, c.geometry, c.useBias, c.init), act_(c.activation) {}

Dims DepthwiseConv2D::build(const Dims& in, Rng& rng) {
  if (depthMultiplier_ < 1 || in.empty()) throw SpecError(name() + ": 'depth_multiplier' must be positive");
  return conv_.build(in, in[0] * depthMultiplier_, in[0], rng);
}
Tensor DepthwiseConv2D::forward(const Tensor& x, bool) { return act_.forward(conv_.forward(x)); }
Tensor DepthwiseConv2D::backward(const Tensor& dy) { return conv_.backward(act_.backward(dy)); }
std::string DepthwiseConv2D::exportOnnx(OnnxGraphWriter& w, const std::string& x) const {
  return act_.exportOnnx(w, exportConv(w, x, conv_, name()), name() + "/activation");
}

// --- SeparableConv2D ---

SeparableConv2D::SeparableConv2D(std::string name, const ConvConfig& c)
    : Layer(name),
      filters_(c.filters),
      depthMultiplier_(c.depthMultiplier),
      depthwise_(name + "/depthwise", c.geometry, false, c.init),
      pointwise_(name + "/pointwise", Convolution::Geometry{1, 1, 1, 1, 1, 1, Padding::Valid}, c.useBias, c.init),
      act_(c.activation) {}

Dims SeparableConv2D::build(const Dims& in, Rng& rng) {
  if (filters_ < 1 || depthMultiplier_ < 1 || in.empty())
    throw SpecError(name() + ": 'filters' and 'depth_multiplier' must be positive");
  return pointwise_.build(depthwise_.build(in, in[0] * depthMultiplier_, in[0], rng), filters_, 1, rng);
}
Tensor SeparableConv2D::forward(const Tensor& x, bool) { return act_.forward(pointwise_.forward(depthwise_.forward(x))); }
Tensor SeparableConv2D::backward(const Tensor& dy) { return depthwise_.backward(pointwise_.backward(act_.backward(dy))); }
std::vector<Param*> SeparableConv2D::params() {
  std::vector<Param*> p = depthwise_.params();
  for (Param* q : pointwise_.params()) p.push_back(q);
  return p;
}

// One call of the model-local function ai.kiln.keras.SeparableConv2D(X, Wd,
// Wp[, B]); `group` (= input channels) is passed because the body's
// depthwise Conv needs it as a static attribute.
std::string SeparableConv2D::exportOnnx(OnnxGraphWriter& w, const std::string& x) const {
  // X, Wd, Wp, B. Without use_bias B is zeros: ONNX's function shape
  // inference rejects calls that omit an optional input.
  std::vector<std::string> in = convInputs(w, x, depthwise_);
  std::vector<std::string> pointwise = convInputs(w, "", pointwise_);
  in.insert(in.end(), pointwise.begin() + 1, pointwise.end());
  if (!pointwise_.bias()) in.push_back(w.weight(name() + "/bias", Tensor({filters_})));
  std::vector<OnnxGraphWriter::Attr> attrs = depthwise_.onnxWindowAttrs();
  attrs.push_back({"depth_multiplier", depthMultiplier_});
  attrs.push_back({"group", depthwise_.inChannels()});
  std::string y = w.node("SeparableConv2D", in, name(), attrs, "ai.kiln.keras");
  return act_.exportOnnx(w, y, name() + "/activation");
}

}  // namespace kiln::train
