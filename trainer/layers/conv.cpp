// The grouped convolution (oneDNN primitives) and the three Keras conv
// layers on top of it: Conv2D (groups = 1), DepthwiseConv2D (groups = C)
// and SeparableConv2D (depthwise then 1x1).
#include <algorithm>
#include <dnnl.hpp>
#include <stdexcept>
#include <unordered_map>

#include "trainer/kernels.h"
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

namespace {

using dnnl::memory;
using Tag = memory::format_tag;

// oneDNN reports failures as dnnl::error; name the layer in them.
template <class F>
auto withLayerName(const std::string& layer, F f) {
  try {
    return f();
  } catch (const dnnl::error& e) {
    throw std::runtime_error(layer + ": oneDNN: " + e.what());
  }
}

memory userMemory(const memory::dims& dims, Tag tag, const float* data) {
  return memory({dims, memory::data_type::f32, tag}, cpuEngine(), const_cast<float*>(data));
}

// `scratch`, (re)allocated for `desc` when it does not describe it yet.
memory scratchFor(const memory::desc& desc, memory& scratch) {
  if (!scratch || scratch.get_desc() != desc) scratch = memory(desc, cpuEngine());
  return scratch;
}

// `from` in the layout `want` describes: `from` itself when they agree, else
// reordered into `scratch`.
memory inLayout(const memory& from, const memory::desc& want, memory& scratch) {
  if (from.get_desc() == want) return from;
  memory to = scratchFor(want, scratch);
  dnnl::reorder(from, to).execute(cpuStream(), const_cast<memory&>(from), to);
  return to;
}

// Where a primitive writes an output that belongs in `user`: `user` itself
// when the primitive's layout `produced` agrees, else `scratch` (then
// copyInto(scratch, user)).
memory outputBuffer(const memory::desc& produced, const memory& user, memory& scratch) {
  return produced == user.get_desc() ? user : scratchFor(produced, scratch);
}

// The kernel (or its gradient) as oneDNN sees it: [M, C/g, kh, kw] is oihw,
// and goihw when grouped ([g, M/g, C/g, kh, kw], the same bytes).
memory weightMemory(const memory::dims& dims, const Tensor& t) {
  return userMemory(dims, dims.size() == 4 ? Tag::oihw : Tag::goihw, t.ptr());
}

void copyInto(const memory& from, const memory& to) {
  if (from.get_data_handle() == to.get_data_handle()) return;
  dnnl::reorder(from, to).execute(cpuStream(), const_cast<memory&>(from), const_cast<memory&>(to));
}

}  // namespace

// Primitive descriptors for one batch size, and the blocked buffers that
// live from a training forward to its backward (the input in the forward's
// layout, for the weight gradient).
struct Convolution::Primitives {
  dnnl::convolution_forward::primitive_desc forwardDesc;
  dnnl::convolution_backward_data::primitive_desc backwardDataDesc;
  dnnl::convolution_backward_weights::primitive_desc backwardWeightsDesc;
  dnnl::convolution_forward forward;
  dnnl::convolution_backward_data backwardData;
  dnnl::convolution_backward_weights backwardWeights;
  memory::dims srcDims, dstDims, weightDims;
  memory src;  // the last forward's input as the forward read it
  memory srcScratch, weightScratch, dstScratch, diffDstScratch, diffDstScratchW, srcScratchW, diffSrcScratch,
      diffWeightScratch, backwardWeightScratch;
};

Convolution::Convolution(std::string name, Geometry g, bool useBias, Initializer init)
    : name_(std::move(name)), geo_(g), useBias_(useBias), init_(init) {}
Convolution::~Convolution() = default;

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
  primitives_.clear();
  last_ = nullptr;
  return {M_, OH_, OW_};
}

std::vector<Param*> Convolution::params() {
  std::vector<Param*> p{&kernel_};
  if (bias_) p.push_back(&*bias_);
  return p;
}

Convolution::Primitives& Convolution::primitivesFor(int64_t batch) {
  std::unique_ptr<Primitives>& slot = primitives_[batch];
  if (slot) return *slot;
  return *(slot = withLayerName(name_, [&] {
    auto p = std::make_unique<Primitives>();
    p->srcDims = {batch, C_, H_, W_};
    p->dstDims = {batch, M_, OH_, OW_};
    p->weightDims = groups_ == 1 ? memory::dims{M_, C_, geo_.kernelH, geo_.kernelW}
                                 : memory::dims{groups_, M_ / groups_, C_ / groups_, geo_.kernelH, geo_.kernelW};
    auto any = [](const memory::dims& d) { return memory::desc(d, memory::data_type::f32, Tag::any); };
    memory::desc src = any(p->srcDims), dst = any(p->dstDims), weights = any(p->weightDims);
    memory::desc bias = bias_ ? memory::desc({M_}, memory::data_type::f32, Tag::x) : memory::desc();
    const memory::dims strides{geo_.strideH, geo_.strideW}, dilations{geo_.dilationH - 1, geo_.dilationW - 1},
        padBegin{padTop_, padLeft_}, padEnd{padBottom_, padRight_};
    const auto algo = dnnl::algorithm::convolution_direct;
    p->forwardDesc = {{dnnl::prop_kind::forward_training, algo, src, weights, bias, dst, strides, dilations, padBegin, padEnd},
                      cpuEngine()};
    p->backwardDataDesc = {{algo, src, weights, dst, strides, dilations, padBegin, padEnd}, cpuEngine(), p->forwardDesc};
    p->backwardWeightsDesc = {{algo, src, weights, bias, dst, strides, dilations, padBegin, padEnd}, cpuEngine(),
                              p->forwardDesc};
    p->forward = dnnl::convolution_forward(p->forwardDesc);
    p->backwardData = dnnl::convolution_backward_data(p->backwardDataDesc);
    p->backwardWeights = dnnl::convolution_backward_weights(p->backwardWeightsDesc);
    return p;
  }));
}

Tensor Convolution::forward(const Tensor& x) {
  if (x.shape.size() != 4 || x.dim(1) != C_ || x.dim(2) != H_ || x.dim(3) != W_)
    throw std::invalid_argument(name_ + ": input " + dimsStr(x.shape) + " does not match the built shape");
  Primitives& p = primitivesFor(x.dim(0));
  last_ = &p;
  Tensor y({x.dim(0), M_, OH_, OW_});
  withLayerName(name_, [&] {
    memory src = inLayout(userMemory(p.srcDims, Tag::nchw, x.ptr()), p.forwardDesc.src_desc(), p.srcScratch);
    // The input is kept (in the forward's layout) for the weight gradient;
    // x itself is the caller's and gone by then.
    if (src.get_data_handle() == x.ptr()) {
      memory copy = scratchFor(src.get_desc(), p.src);
      copyInto(src, copy);
    } else {
      p.src = src;
    }
    memory weights = inLayout(weightMemory(p.weightDims, kernel_.value), p.forwardDesc.weights_desc(), p.weightScratch);
    memory userDst = userMemory(p.dstDims, Tag::nchw, y.ptr());
    memory dst = outputBuffer(p.forwardDesc.dst_desc(), userDst, p.dstScratch);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, p.src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
    if (bias_) args.emplace(DNNL_ARG_BIAS, userMemory({M_}, Tag::x, bias_->value.ptr()));
    p.forward.execute(cpuStream(), args);
    copyInto(dst, userDst);
    cpuStream().wait();
  });
  return y;
}

Tensor Convolution::backward(const Tensor& dy, bool inputGradient) {
  if (!last_) throw std::logic_error(name_ + ": backward before forward");
  Primitives& p = *last_;
  Tensor dx;
  withLayerName(name_, [&] {
    memory userDiffDst = userMemory(p.dstDims, Tag::nchw, dy.ptr());
    // Weight (and bias) gradient.
    memory diffDstW = inLayout(userDiffDst, p.backwardWeightsDesc.diff_dst_desc(), p.diffDstScratchW);
    memory srcW = inLayout(p.src, p.backwardWeightsDesc.src_desc(), p.srcScratchW);
    memory userDiffWeights = weightMemory(p.weightDims, kernel_.grad);
    memory diffWeights = outputBuffer(p.backwardWeightsDesc.diff_weights_desc(), userDiffWeights, p.diffWeightScratch);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, srcW}, {DNNL_ARG_DIFF_DST, diffDstW}, {DNNL_ARG_DIFF_WEIGHTS, diffWeights}};
    if (bias_) args.emplace(DNNL_ARG_DIFF_BIAS, userMemory({M_}, Tag::x, bias_->grad.ptr()));
    p.backwardWeights.execute(cpuStream(), args);
    copyInto(diffWeights, userDiffWeights);
    if (!inputGradient) {
      cpuStream().wait();
      return;
    }
    dx = Tensor({p.srcDims[0], C_, H_, W_});
    // Both backward primitives usually want dy in the same blocked layout.
    memory diffDst = inLayout(diffDstW.get_desc() == p.backwardDataDesc.diff_dst_desc() ? diffDstW : userDiffDst,
                              p.backwardDataDesc.diff_dst_desc(), p.diffDstScratch);
    memory weights = inLayout(weightMemory(p.weightDims, kernel_.value), p.backwardDataDesc.weights_desc(), p.backwardWeightScratch);
    memory userDiffSrc = userMemory(p.srcDims, Tag::nchw, dx.ptr());
    memory diffSrc = outputBuffer(p.backwardDataDesc.diff_src_desc(), userDiffSrc, p.diffSrcScratch);
    p.backwardData.execute(cpuStream(), {{DNNL_ARG_DIFF_DST, diffDst}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DIFF_SRC, diffSrc}});
    copyInto(diffSrc, userDiffSrc);
    cpuStream().wait();
  });
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
Tensor Conv2D::forward(Tensor x, bool) { return act_.forward(conv_.forward(x)); }
Tensor Conv2D::backward(Tensor dy) { return conv_.backward(act_.backward(std::move(dy)), inputGradientNeeded()); }
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
Tensor DepthwiseConv2D::forward(Tensor x, bool) { return act_.forward(conv_.forward(x)); }
Tensor DepthwiseConv2D::backward(Tensor dy) { return conv_.backward(act_.backward(std::move(dy)), inputGradientNeeded()); }
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
Tensor SeparableConv2D::forward(Tensor x, bool) { return act_.forward(pointwise_.forward(depthwise_.forward(x))); }
Tensor SeparableConv2D::backward(Tensor dy) { return depthwise_.backward(pointwise_.backward(act_.backward(std::move(dy)), true), inputGradientNeeded()); }
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
