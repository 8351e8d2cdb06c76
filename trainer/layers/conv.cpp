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

namespace {

// The outputs o in [first, last) whose input o * stride + offset lies in [0, in).
std::pair<int64_t, int64_t> validOutputs(int64_t offset, int64_t stride, int64_t in, int64_t out) {
  int64_t first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  int64_t last = offset >= in ? 0 : (in - 1 - offset) / stride + 1;
  return {std::min(first, out), std::clamp(last, std::min(first, out), out)};
}

}  // namespace

// Visits the rows of one sample's column matrix whose input row is inside
// the image: f(k, p, in, x0, x1) for column row k = (c*kh + ky)*kw + kx and
// output row start p = oy*OW, with [x0, x1) the outputs whose input
// in + ox * strideW lies inside the row (`in`, the offset of output 0's
// input, may lie before the row).
template <class F>
void Convolution::forEachColumnRow(F f) const {
  for (int64_t c = 0, k = 0; c < C_; ++c)
    for (int64_t ky = 0; ky < geo_.kernelH; ++ky)
      for (int64_t kx = 0; kx < geo_.kernelW; ++kx, ++k) {
        const int64_t offX = kx * geo_.dilationW - padLeft_;
        auto [x0, x1] = validOutputs(offX, geo_.strideW, W_, OW_);
        for (int64_t oy = 0; oy < OH_; ++oy) {
          const int64_t iy = oy * geo_.strideH - padTop_ + ky * geo_.dilationH;
          if (iy >= 0 && iy < H_) f(k, oy * OW_, (c * H_ + iy) * W_ + offX, x0, x1);
        }
      }
}

int64_t Convolution::samplesPerGemm(int64_t batch) const {
  // ~4 MB of columns: stays in cache, yet one GEMM call (and one wake-up of
  // OpenBLAS' threads) serves several samples of the deeper layers.
  constexpr int64_t kColumnFloats = int64_t{1} << 20;
  return std::clamp<int64_t>(kColumnFloats / (C_ * geo_.kernelH * geo_.kernelW * OH_ * OW_), 1, batch);
}

// `count` samples from x [count,C,H,W]: cols[(c*kh + ky)*kw + kx][j*OH*OW +
// oy*OW + ox] = x[j, c, iy, ix] (0 in the padding), copied over each row's
// in-bounds span without a test per element.
void Convolution::im2col(const float* x, int64_t count) {
  const int64_t P = OH_ * OW_, stride = geo_.strideW;
  cols_.assign(static_cast<size_t>(C_ * geo_.kernelH * geo_.kernelW * count * P), 0.0f);
  for (int64_t j = 0; j < count; ++j) {
    const float* xj = x + j * C_ * H_ * W_;
    forEachColumnRow([&](int64_t k, int64_t p, int64_t in, int64_t x0, int64_t x1) {
      float* dst = cols_.data() + (k * count + j) * P + p;
      if (stride == 1)
        std::copy(xj + in + x0, xj + in + x1, dst + x0);
      else
        for (int64_t ox = x0; ox < x1; ++ox) dst[ox] = xj[in + ox * stride];
    });
  }
}

// The transpose of im2col: adds the column gradients into dx [count,C,H,W].
void Convolution::col2im(float* dx, int64_t count) const {
  const int64_t P = OH_ * OW_, stride = geo_.strideW;
  for (int64_t j = 0; j < count; ++j) {
    float* dxj = dx + j * C_ * H_ * W_;
    forEachColumnRow([&](int64_t k, int64_t p, int64_t in, int64_t x0, int64_t x1) {
      const float* src = dcols_.data() + (k * count + j) * P + p;
      for (int64_t ox = x0; ox < x1; ++ox) dxj[in + ox * stride] += src[ox];
    });
  }
}

// A few samples per GEMM (samplesPerGemm): the whole batch's columns would
// be ~100 MB for a 32-channel 28x28 layer. outCM_ holds the chunk's output
// (or output gradient) channel-major, [M, count*OH*OW].
Tensor Convolution::forward(const Tensor& x) {
  if (x.shape.size() != 4 || x.dim(1) != C_ || x.dim(2) != H_ || x.dim(3) != W_)
    throw std::invalid_argument(name_ + ": input " + dimsStr(x.shape) + " does not match the built shape");
  x_ = x;
  const int64_t N = x.dim(0), P = OH_ * OW_, Mg = M_ / groups_, Kg = C_ / groups_ * geo_.kernelH * geo_.kernelW;
  const int64_t chunk = samplesPerGemm(N);
  Tensor y({N, M_, OH_, OW_});
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t count = std::min(chunk, N - n0), NP = count * P;
    im2col(x.ptr() + n0 * C_ * H_ * W_, count);
    outCM_.resize(static_cast<size_t>(M_ * NP));
    for (int64_t g = 0; g < groups_; ++g)
      gemm(false, false, static_cast<int>(Mg), static_cast<int>(NP), static_cast<int>(Kg), 1.0f,
           kernel_.value.ptr() + g * Mg * Kg, cols_.data() + g * Kg * NP, 0.0f, outCM_.data() + g * Mg * NP);
    for (int64_t m = 0; m < M_; ++m) {
      const float b = bias_ ? bias_->value[m] : 0.0f;
      for (int64_t j = 0; j < count; ++j) {
        const float* src = outCM_.data() + (m * count + j) * P;
        float* dst = y.ptr() + ((n0 + j) * M_ + m) * P;
        for (int64_t p = 0; p < P; ++p) dst[p] = src[p] + b;
      }
    }
  }
  return y;
}

Tensor Convolution::backward(const Tensor& dy) {
  const int64_t N = x_.dim(0), P = OH_ * OW_, Mg = M_ / groups_, Kg = C_ / groups_ * geo_.kernelH * geo_.kernelW;
  const int64_t chunk = samplesPerGemm(N);
  if (bias_)
    for (int64_t m = 0; m < M_; ++m) {
      double sum = 0.0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t p = 0; p < P; ++p) sum += dy[(n * M_ + m) * P + p];
      bias_->grad[m] = static_cast<float>(sum);
    }
  Tensor dx({N, C_, H_, W_});
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t count = std::min(chunk, N - n0), NP = count * P;
    im2col(x_.ptr() + n0 * C_ * H_ * W_, count);  // recomputed: cheaper than keeping the batch's
    outCM_.resize(static_cast<size_t>(M_ * NP));
    for (int64_t m = 0; m < M_; ++m)
      for (int64_t j = 0; j < count; ++j) {
        const float* src = dy.ptr() + ((n0 + j) * M_ + m) * P;
        std::copy(src, src + P, outCM_.data() + (m * count + j) * P);
      }
    dcols_.resize(cols_.size());
    for (int64_t g = 0; g < groups_; ++g) {
      const float* dyg = outCM_.data() + g * Mg * NP;
      gemm(false, true, static_cast<int>(Mg), static_cast<int>(Kg), static_cast<int>(NP), 1.0f, dyg,
           cols_.data() + g * Kg * NP, n0 == 0 ? 0.0f : 1.0f, kernel_.grad.ptr() + g * Mg * Kg);
      gemm(true, false, static_cast<int>(Kg), static_cast<int>(NP), static_cast<int>(Mg), 1.0f,
           kernel_.value.ptr() + g * Mg * Kg, dyg, 0.0f, dcols_.data() + g * Kg * NP);
    }
    col2im(dx.ptr() + n0 * C_ * H_ * W_, count);
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
