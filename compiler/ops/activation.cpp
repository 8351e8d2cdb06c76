// Elementwise activations (Relu ... Gelu) and other unary math (Log, Exp,
// Sqrt, Erf, Abs, Neg, Reciprocal, Floor, Ceil, Round, Sign): one output of
// the input's type, computed value by value. Each is a scalar function of
// (x, attributes); PRelu also reads a broadcast slope tensor, and Clip may
// read its bounds from scalar inputs.
#include <cmath>
#include <limits>

#include "compiler/ops/families.h"
#include "compiler/ops/helpers.h"
#include "compiler/ops/scalar_functions.h"

namespace kiln {

namespace {

// out[i] = fn(x[i]) over input 0 into output 0 (f32).
template <class Fn>
void mapValues(KernelContext& ctx, Fn fn) {
  const Tensor& x = ctx.input(0);
  const float* in = x.data<float>();
  float* out = ctx.output(0).data<float>();
  for (int64_t i = 0; i < x.numElements(); ++i) out[i] = fn(in[i]);
}

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
    const Attributes& a = ctx.attrs();
    mapValues(ctx, [&](float x) { return fn(x, a); });
  };
  r.add(std::move(d));
}

AttrSpec floatAttr(std::string name, float v) { return {std::move(name), AttrKind::Float, AttrValue{v}}; }

// Clip's bound inputs: 1 (min) and 2 (max), each optional.
constexpr size_t kClipMin = 1, kClipMax = 2;

// A given bound input holds one f32 value (rank 0 or one element).
void requireScalarBound(const InferContext& ctx, size_t i, const char* what) {
  if (!ctx.hasInput(i)) return;
  const TensorType& t = ctx.input(i);
  ctx.check(t.dtype == DType::F32 && t.shape.isStatic() && t.shape.numElements() == 1,
            std::string(what) + " (input " + std::to_string(i) + ") is " + t.str() + ", expected one f32 value");
}

// A bound given as an input takes the place of its attribute.
float clipBound(const KernelContext& ctx, size_t i, const char* attr) {
  return ctx.hasInput(i) ? ctx.input(i).data<float>()[0] : ctx.attrs().getFloat(attr);
}

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
  addUnary(r, "Exp", {}, [](float x, const Attributes&) { return std::exp(x); });
  addUnary(r, "Sqrt", {}, [](float x, const Attributes&) { return std::sqrt(x); });
  addUnary(r, "Erf", {}, [](float x, const Attributes&) { return std::erf(x); });
  addUnary(r, "Abs", {}, [](float x, const Attributes&) { return std::fabs(x); });
  addUnary(r, "Neg", {}, [](float x, const Attributes&) { return -x; });
  addUnary(r, "Reciprocal", {}, [](float x, const Attributes&) { return 1.f / x; });
  addUnary(r, "Floor", {}, [](float x, const Attributes&) { return std::floor(x); });
  addUnary(r, "Ceil", {}, [](float x, const Attributes&) { return std::ceil(x); });
  addUnary(r, "Round", {}, [](float x, const Attributes&) { return scalar::roundHalfToEven(x); });
  addUnary(r, "Sign", {}, [](float x, const Attributes&) { return scalar::sign(x); });
  // Only the fuse-gelu pass creates Gelu (ONNX has it from opset 20 only).
  OpDef gelu;
  gelu.name = "Gelu";
  gelu.attrs = {{"approximate", AttrKind::String, AttrValue{std::string("none")}}};
  gelu.infer = [](const InferContext& ctx) {
    requireFloat(ctx, 0);
    const std::string& approximate = ctx.attrs().getString("approximate");
    ctx.check(approximate == "none" || approximate == "tanh",
              "approximate is '" + approximate + "', expected 'none' or 'tanh'");
    return sameAsFirstInput(ctx);
  };
  gelu.reference = [](KernelContext& ctx) {
    if (ctx.attrs().getString("approximate") == "tanh")
      mapValues(ctx, scalar::geluTanh);
    else
      mapValues(ctx, scalar::gelu);
  };
  r.add(std::move(gelu));
  // ONNX's optional min/max inputs (opset >= 11): the importer folds constant
  // ones into the attributes (what fused epilogues read) and passes bounds
  // known only at run time as inputs 1 and 2.
  OpDef clip;
  clip.name = "Clip";
  clip.maxInputs = 3;
  clip.attrs = {floatAttr("min", -std::numeric_limits<float>::infinity()),
                floatAttr("max", std::numeric_limits<float>::infinity())};
  clip.infer = [](const InferContext& ctx) {
    requireFloat(ctx, 0);
    requireScalarBound(ctx, kClipMin, "min");
    requireScalarBound(ctx, kClipMax, "max");
    return sameAsFirstInput(ctx);
  };
  clip.reference = [](KernelContext& ctx) {
    const float lo = clipBound(ctx, kClipMin, "min"), hi = clipBound(ctx, kClipMax, "max");
    mapValues(ctx, [&](float x) { return scalar::clip(x, lo, hi); });
  };
  r.add(std::move(clip));

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
