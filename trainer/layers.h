// Keras-style layers with forward and backward passes. Per-sample shapes
// are NCHW without the batch dim: [C,H,W] for images, [F] for features.
// Conv2D, DepthwiseConv2D and SeparableConv2D all run on one grouped
// convolution (`Convolution`, on oneDNN primitives).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "trainer/initializers.h"
#include "trainer/random.h"
#include "trainer/tensor.h"

namespace kiln::train {

// A trainable tensor with the gradient of the last backward pass.
struct Param {
  std::string name;
  Tensor value;
  Tensor grad;
  bool decays = false;  // weight decay applies (kernels, not biases or BN)
};

// What a layer needs to write itself into an ONNX graph (onnx_export.h
// implements it; the layers never see protobuf).
class OnnxGraphWriter {
 public:
  using AttrValue = std::variant<int64_t, float, std::vector<int64_t>>;
  struct Attr {
    std::string name;
    AttrValue value;
  };
  virtual ~OnnxGraphWriter() = default;
  // Adds an initializer; returns its name.
  virtual std::string weight(const std::string& name, const Tensor& value) = 0;
  // Adds a node with one output named after `name`; returns the output.
  virtual std::string node(const std::string& opType, const std::vector<std::string>& inputs, const std::string& name,
                           const std::vector<Attr>& attrs = {}, const std::string& domain = "") = 0;
};

class Layer {
 public:
  explicit Layer(std::string name) : name_(std::move(name)) {}
  virtual ~Layer() = default;
  const std::string& name() const { return name_; }
  // Creates the parameters for a per-sample input shape; returns the
  // per-sample output shape. Throws SpecError for shapes it cannot take.
  virtual Dims build(const Dims& in, Rng& rng) = 0;
  // Both take their argument by value: layers that can work in place reuse
  // its buffer (Sequential moves each layer's result into the next).
  virtual Tensor forward(Tensor x, bool training) = 0;
  // dL/dy of the last forward(training=true) -> dL/dx; sets every grad.
  virtual Tensor backward(Tensor dy) = 0;
  virtual std::vector<Param*> params() { return {}; }
  // Saved with the weights but not trained by gradients (BN moving stats).
  virtual std::vector<Tensor*> buffers() { return {}; }
  // Appends the inference graph of this layer; returns its output name.
  virtual std::string exportOnnx(OnnxGraphWriter& w, const std::string& x) const = 0;
  // Cleared on a model's first layer, whose dL/dx nobody reads: layers that
  // can skip computing it (convolutions) return an empty tensor instead.
  void setInputGradientNeeded(bool needed) { inputGradientNeeded_ = needed; }
  bool inputGradientNeeded() const { return inputGradientNeeded_; }

 private:
  std::string name_;
  bool inputGradientNeeded_ = true;
};

enum class Padding { Valid, Same };

// One spatial dim of a sliding window: output size and pads (Keras/TF
// "same": out = ceil(in / stride), the odd padding pixel at the end).
struct WindowDim {
  int64_t out, padBegin, padEnd;
};
WindowDim slidingWindow(int64_t in, int64_t kernel, int64_t stride, int64_t dilation, Padding padding,
                        const std::string& layer);

enum class ActivationKind { Linear, Relu, Sigmoid, Tanh, Softmax };
ActivationKind parseActivation(const std::string& name);

// An elementwise activation (softmax: along axis 1, the channel axis), its
// backward from the cached output, and its ONNX node.
class ActivationFn {
 public:
  explicit ActivationFn(ActivationKind kind = ActivationKind::Linear) : kind_(kind) {}
  // In place: the argument's buffer becomes the result.
  Tensor forward(Tensor x);
  Tensor backward(Tensor dy) const;
  std::string exportOnnx(OnnxGraphWriter& w, const std::string& x, const std::string& name) const;
  ActivationKind kind() const { return kind_; }

 private:
  ActivationKind kind_;
  Tensor y_;
};

// Grouped 2-D convolution over NCHW: kernel [M, C/groups, kh, kw] (the ONNX
// layout), optional bias [M]. Runs on oneDNN's convolution primitives, which
// pick a blocked layout; the layer reorders at its edges.
class Convolution {
 public:
  struct Geometry {
    int64_t kernelH = 3, kernelW = 3, strideH = 1, strideW = 1, dilationH = 1, dilationW = 1;
    Padding padding = Padding::Valid;
  };
  Convolution(std::string name, Geometry g, bool useBias, Initializer init);
  ~Convolution();
  Dims build(const Dims& in, int64_t outChannels, int64_t groups, Rng& rng);
  Tensor forward(const Tensor& x);
  // Sets the kernel (and bias) gradient; returns dL/dx, or an empty tensor
  // when !inputGradient.
  Tensor backward(const Tensor& dy, bool inputGradient);
  std::vector<Param*> params();
  // Inputs (X, W[, B]) are the caller's; attributes strides, pads, dilations.
  std::vector<OnnxGraphWriter::Attr> onnxWindowAttrs() const;
  const Param& kernel() const { return kernel_; }
  const std::optional<Param>& bias() const { return bias_; }
  int64_t inChannels() const { return C_; }
  int64_t groups() const { return groups_; }

 private:
  struct Primitives;  // oneDNN primitives and buffers for one batch size
  Primitives& primitivesFor(int64_t batch);
  std::string name_;
  Geometry geo_;
  bool useBias_;
  Initializer init_;
  int64_t C_ = 0, H_ = 0, W_ = 0, M_ = 0, groups_ = 1, OH_ = 0, OW_ = 0;
  int64_t padTop_ = 0, padLeft_ = 0, padBottom_ = 0, padRight_ = 0;
  Param kernel_;
  std::optional<Param> bias_;
  std::map<int64_t, std::unique_ptr<Primitives>> primitives_;  // by batch size
  Primitives* last_ = nullptr;  // those of the last forward, for backward
};

struct ConvConfig {
  int64_t filters = 0;  // Conv2D, SeparableConv2D
  Convolution::Geometry geometry;
  int64_t depthMultiplier = 1;  // DepthwiseConv2D, SeparableConv2D
  bool useBias = true;
  ActivationKind activation = ActivationKind::Linear;
  Initializer init = Initializer::GlorotUniform;
};

class Conv2D : public Layer {
 public:
  Conv2D(std::string name, const ConvConfig& c);
  Dims build(const Dims& in, Rng& rng) override;
  Tensor forward(Tensor x, bool training) override;
  Tensor backward(Tensor dy) override;
  std::vector<Param*> params() override { return conv_.params(); }
  std::string exportOnnx(OnnxGraphWriter& w, const std::string& x) const override;

 private:
  int64_t filters_;
  Convolution conv_;
  ActivationFn act_;
};

class DepthwiseConv2D : public Layer {
 public:
  DepthwiseConv2D(std::string name, const ConvConfig& c);
  Dims build(const Dims& in, Rng& rng) override;
  Tensor forward(Tensor x, bool training) override;
  Tensor backward(Tensor dy) override;
  std::vector<Param*> params() override { return conv_.params(); }
  std::string exportOnnx(OnnxGraphWriter& w, const std::string& x) const override;

 private:
  int64_t depthMultiplier_;
  Convolution conv_;
  ActivationFn act_;
};

// Depthwise convolution (no bias) then a 1x1 convolution with the bias;
// exported as the model-local function ai.kiln.keras.SeparableConv2D.
class SeparableConv2D : public Layer {
 public:
  SeparableConv2D(std::string name, const ConvConfig& c);
  Dims build(const Dims& in, Rng& rng) override;
  Tensor forward(Tensor x, bool training) override;
  Tensor backward(Tensor dy) override;
  std::vector<Param*> params() override;
  std::string exportOnnx(OnnxGraphWriter& w, const std::string& x) const override;

 private:
  int64_t filters_, depthMultiplier_;
  Convolution depthwise_, pointwise_;
  ActivationFn act_;
};

struct BatchNormConfig {
  double momentum = 0.99;
  double epsilon = 1e-3;
  int64_t axis = -1;  // Keras axis on channels-last data; must name the channels
};

// Per-channel normalization: batch statistics when training (and the moving
// averages updated), the moving averages in inference.
class BatchNormalization : public Layer {
 public:
  BatchNormalization(std::string name, const BatchNormConfig& c) : Layer(std::move(name)), cfg_(c) {}
  Dims build(const Dims& in, Rng& rng) override;
  Tensor forward(Tensor x, bool training) override;
  Tensor backward(Tensor dy) override;
  std::vector<Param*> params() override { return {&gamma_, &beta_}; }
  std::vector<Tensor*> buffers() override { return {&movingMean_, &movingVar_}; }
  std::string exportOnnx(OnnxGraphWriter& w, const std::string& x) const override;
  // Applies a ReLU to the output (Sequential fuses a following
  // Activation("relu") into this layer): relu(gamma * xhat + beta), whose
  // mask backward recomputes from xhat. Saves the activation's passes over
  // memory and its cached copy of the output.
  void fuseRelu() { fusedRelu_ = true; }

 private:
  BatchNormConfig cfg_;
  bool fusedRelu_ = false;
  Param gamma_, beta_;
  Tensor movingMean_, movingVar_;
  Tensor xhat_;
  std::vector<double> invStd_;
  bool trainingForward_ = false;
};

class Dense : public Layer {
 public:
  Dense(std::string name, int64_t units, bool useBias, ActivationKind activation, Initializer init)
      : Layer(std::move(name)), units_(units), useBias_(useBias), init_(init), act_(activation) {}
  Dims build(const Dims& in, Rng& rng) override;
  Tensor forward(Tensor x, bool training) override;
  Tensor backward(Tensor dy) override;
  std::vector<Param*> params() override;
  std::string exportOnnx(OnnxGraphWriter& w, const std::string& x) const override;

 private:
  int64_t units_;
  bool useBias_;
  Initializer init_;
  Param kernel_;  // [in, units] as in Keras
  std::optional<Param> bias_;
  ActivationFn act_;
  Tensor x_;
};

enum class PoolKind { Max, Average };

// MaxPooling2D / AveragePooling2D (the average excludes padding, as Keras).
class Pooling2D : public Layer {
 public:
  struct Config {
    int64_t poolH = 2, poolW = 2, strideH = 2, strideW = 2;
    Padding padding = Padding::Valid;
  };
  Pooling2D(std::string name, PoolKind kind, const Config& c) : Layer(std::move(name)), kind_(kind), cfg_(c) {}
  Dims build(const Dims& in, Rng& rng) override;
  Tensor forward(Tensor x, bool training) override;
  Tensor backward(Tensor dy) override;
  std::string exportOnnx(OnnxGraphWriter& w, const std::string& x) const override;

 private:
  PoolKind kind_;
  Config cfg_;
  Dims in_;
  int64_t OH_ = 0, OW_ = 0, padTop_ = 0, padLeft_ = 0, padBottom_ = 0, padRight_ = 0;
  std::vector<int32_t> source_;  // max: each output's input index within its plane
};

// [C,H,W] -> [C].
class GlobalAveragePooling2D : public Layer {
 public:
  using Layer::Layer;
  Dims build(const Dims& in, Rng& rng) override;
  Tensor forward(Tensor x, bool training) override;
  Tensor backward(Tensor dy) override;
  std::string exportOnnx(OnnxGraphWriter& w, const std::string& x) const override;

 private:
  Dims in_;
};

class Flatten : public Layer {
 public:
  using Layer::Layer;
  Dims build(const Dims& in, Rng& rng) override;
  Tensor forward(Tensor x, bool training) override;
  Tensor backward(Tensor dy) override;
  std::string exportOnnx(OnnxGraphWriter& w, const std::string& x) const override;

 private:
  Dims in_;
};

// Inverted dropout: zeroes `rate` of the values and scales the rest by
// 1/(1-rate) when training; identity in inference (exported as nothing).
class Dropout : public Layer {
 public:
  Dropout(std::string name, double rate) : Layer(std::move(name)), rate_(rate) {}
  Dims build(const Dims& in, Rng& rng) override;
  Tensor forward(Tensor x, bool training) override;
  Tensor backward(Tensor dy) override;
  std::string exportOnnx(OnnxGraphWriter& w, const std::string& x) const override;

 private:
  double rate_;
  std::optional<Rng> rng_;
  std::vector<float> mask_;
};

class Activation : public Layer {
 public:
  Activation(std::string name, ActivationKind kind) : Layer(std::move(name)), fn_(kind) {}
  Dims build(const Dims& in, Rng& rng) override { return in; }
  Tensor forward(Tensor x, bool training) override { return appliedByPrevious_ ? x : fn_.forward(std::move(x)); }
  Tensor backward(Tensor dy) override { return appliedByPrevious_ ? dy : fn_.backward(std::move(dy)); }
  std::string exportOnnx(OnnxGraphWriter& w, const std::string& x) const override { return fn_.exportOnnx(w, x, name()); }
  ActivationKind kind() const { return fn_.kind(); }
  // The previous layer applies this activation (BatchNormalization::fuseRelu):
  // forward and backward pass through; the export still writes the node.
  void setAppliedByPreviousLayer() { appliedByPrevious_ = true; }

 private:
  ActivationFn fn_;
  bool appliedByPrevious_ = false;
};

}  // namespace kiln::train
