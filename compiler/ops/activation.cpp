// Elementwise activations and other unary math (Log): one output of the
// input's type, computed value by value. Each is a scalar function of
// (x, attributes); PRelu alone also reads a broadcast slope tensor.
#include <cmath>
#include <limits>

#include "compiler/ops/families.h"
#include "compiler/ops/helpers.h"
#include "compiler/ops/scalar_functions.h"

namespace kiln {

namespace {

// Registers a unary float op y = f(x, attrs).
template <class Fn>
void addUnary(OpRegistry& r, std::string name, std::vector<AttrSpec> attrs, Fn fn) {
  OpDef d;
  d.name = std::move(name);
  d.attrs = std::move(attrs);
  d.infer = [](const InferContext& ctx) {
    requireFloat(ctx, 0);
    return sameAsFirstInput(ctx);
  };
  d.reference = [fn](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    const float* in = x.data<float>();
    float* out = ctx.output(0).data<float>();
    const Attributes& a = ctx.attrs();
    for (int64_t i = 0; i < x.numElements(); ++i) out[i] = fn(in[i], a);
  };
  r.add(std::move(d));
}

AttrSpec floatAttr(std::string name, float v) { return {std::move(name), AttrKind::Float, AttrValue{v}}; }

}  // namespace

void registerActivationOps(OpRegistry& r) {
  addUnary(r, "Relu", {}, [](float x, const Attributes&) { return scalar::relu(x); });
  addUnary(r, "LeakyRelu", {floatAttr("alpha", 0.01f)},
           [](float x, const Attributes& a) { return scalar::leakyRelu(x, a.getFloat("alpha")); });
  addUnary(r, "Elu", {floatAttr("alpha", 1.f)},
           [](float x, const Attributes& a) { return scalar::elu(x, a.getFloat("alpha")); });
  addUnary(r, "Selu", {floatAttr("alpha", 1.67326319217681884765625f), floatAttr("gamma", 1.05070102214813232421875f)},
           [](float x, const Attributes& a) { return scalar::selu(x, a.getFloat("alpha"), a.getFloat("gamma")); });
  addUnary(r, "Sigmoid", {}, [](float x, const Attributes&) { return scalar::sigmoid(x); });
  addUnary(r, "Tanh", {}, [](float x, const Attributes&) { return std::tanh(x); });
  addUnary(r, "HardSigmoid", {floatAttr("alpha", 0.2f), floatAttr("beta", 0.5f)}, [](float x, const Attributes& a) {
    return scalar::hardSigmoid(x, a.getFloat("alpha"), a.getFloat("beta"));
  });
  addUnary(r, "HardSwish", {},
           [](float x, const Attributes&) { return scalar::hardSwish(x); });
  addUnary(r, "Softplus", {}, [](float x, const Attributes&) { return scalar::softplus(x); });
  addUnary(r, "Log", {}, [](float x, const Attributes&) { return std::log(x); });
  // Clip's bounds are attributes in the IR; the importer reads ONNX's
  // optional min/max inputs (opset >= 11) into them.
  addUnary(r, "Clip",
           {floatAttr("min", -std::numeric_limits<float>::infinity()),
            floatAttr("max", std::numeric_limits<float>::infinity())},
           [](float x, const Attributes& a) { return scalar::clip(x, a.getFloat("min"), a.getFloat("max")); });

  OpDef prelu;
  prelu.name = "PRelu";
  prelu.minInputs = prelu.maxInputs = 2;
  prelu.infer = [](const InferContext& ctx) {
    requireFloat(ctx, 0);
    requireFloat(ctx, 1);
    Shape out = broadcastShapes(ctx, ctx.input(0).shape, ctx.input(1).shape);
    ctx.check(out == ctx.input(0).shape, "slope " + ctx.input(1).shape.str() + " must broadcast to the input " +
                                             ctx.input(0).shape.str());
    return sameAsFirstInput(ctx);
  };
  prelu.reference = [](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    const Tensor& slope = ctx.input(1);
    const float* in = x.data<float>();
    const float* s = slope.data<float>();
    float* out = ctx.output(0).data<float>();
    forEachBroadcast(x.shape(), {broadcastStrides(x.shape(), x.shape()), broadcastStrides(slope.shape(), x.shape())},
                     [&](int64_t i, const std::vector<int64_t>& off) {
                       float v = in[off[0]];
                       out[i] = v >= 0.f ? v : s[off[1]] * v;
                     });
  };
  r.add(std::move(prelu));
}

}  // namespace kiln
