// Randomized differential test of the whole compile path: seeded random CNNs
// (plain, grouped, depthwise and separable convolutions with every padding /
// stride / dilation mix the importer can produce, BatchNormalization, max and
// average pools, channel Concats, residual Adds, activations, Gemm heads,
// tf2onnx-style NHWC Transpose wrappers; channel counts that are mostly not
// multiples of the vector width, odd spatial sizes) are optimized with -O2
// (laid out in NCHWc for the compile target's vector width; "wide" nets
// with 11..40 channels put most of their nodes there), compiled, run at
// batch 1 and 7 and compared with the reference interpreter
// on both the -O2 graph (the backend's own error) and the unoptimized graph
// (what a user sees). The same nets are also built with a fixed batch of 2
// or 3 (a torch.onnx export without dynamic axes) and compared sample by
// sample. Few graphs, each rich: every compile costs ~0.5 s.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "compiled_model.h"
#include "compiler/codegen/codegen.h"
#include "compiler/interp/interpreter.h"
#include "compiler/passes/pipeline.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

// Vectorized kernels sum in another order than the interpreter's scalar
// loops; relative to an output's peak the difference stays at float32
// rounding of the longest dot product.
constexpr double kBound = 1e-5;

class RandomNet {
 public:
  // `wide`: channel counts around the NCHWc blocks (11 to 40: some whole
  // blocks of 8 or 16, most padded) so that -O2 lays out most of the net.
  // `batch`: the input's dim 0, kBatch for a symbolic batch.
  RandomNet(uint32_t seed, bool wide, int64_t batch) : rng_(seed), wide_(wide), batch_(batch) {}

  Graph g;

  int64_t uniform(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng_); }
  int64_t oneOf(std::initializer_list<int64_t> choices) {
    return *(choices.begin() + uniform(0, static_cast<int64_t>(choices.size()) - 1));
  }
  bool coin(int percent) { return uniform(0, 99) < percent; }

  // A random network on one NCHW or NHWC input.
  void build() {
    nhwc_ = coin(35);
    const int64_t c = wide_ ? oneOf({11, 13, 16, 24}) : oneOf({1, 3, 4, 5});
    const int64_t h = oneOf({7, 9, 11, 12, 13, 16}), w = oneOf({6, 9, 10, 13, 15});
    Value* x = g.addInput("x", {DType::F32, nhwc_ ? Shape{batch_, h, w, c} : Shape{batch_, c, h, w}});
    const int64_t blocks = uniform(3, 6);
    for (int64_t i = 0; i < blocks; ++i) {
      const int64_t kind = uniform(0, 9);
      if (kind < 6) x = convBlock(x);
      else if (kind < 8) x = wrapped(x, [&](Value* v) { return pool(v); });
      else x = concatBlock(x);
    }
    // Heads: a feature map, a Gemm classifier, or both as two outputs.
    const int64_t head = uniform(0, 2);
    if (head != 1) g.addOutput(x);
    if (head != 0) g.addOutput(gemmHead(x));
  }

 private:
  std::mt19937 rng_;
  bool wide_ = false;
  int64_t batch_ = kBatch;
  bool nhwc_ = false;
  int counter_ = 0;

  std::string name(const std::string& base) { return base + std::to_string(counter_++); }

  Value* constant(Shape shape, float lo, float hi) {
    Tensor t(DType::F32, std::move(shape));
    std::uniform_real_distribution<float> dist(lo, hi);
    for (int64_t i = 0; i < t.numElements(); ++i) t.data<float>()[i] = dist(rng_);
    return g.addConstant(name("w"), std::move(t));
  }
  Value* node(const std::string& op, std::vector<Value*> inputs, Attributes attrs = {}) {
    return g.addNode(op, name(op), std::move(inputs), std::move(attrs))->output();
  }
  Value* transpose(Value* x, std::vector<int64_t> perm) {
    Attributes a;
    a.set("perm", std::move(perm));
    return node("Transpose", {x}, a);
  }

  // Applies `f`, which takes and returns NCHW, to the carried tensor `x`. In
  // NHWC mode `x` is NHWC, as between the layers of a tf2onnx export, which
  // wraps every NCHW-only op in Transposes; -O2 cancels adjacent pairs and
  // the backend gets what survives.
  template <class F>
  Value* wrapped(Value* x, F f) {
    if (!nhwc_) return f(x);
    return transpose(f(transpose(x, {0, 3, 1, 2})), {0, 2, 3, 1});
  }

  // One spatial axis of a sliding window: kernel, stride, dilation, pads.
  struct Axis {
    int64_t kernel, stride, dilation, padBegin, padEnd;
    bool ceil = false;  // pools' ceil_mode
    int64_t span() const { return (kernel - 1) * dilation + 1; }
    // Window positions, ONNX's rule: in ceil mode a last window must start
    // inside the input or the begin padding.
    int64_t out(int64_t in) const {
      const int64_t reach = in + padBegin + padEnd - span();
      if (reach < 0) return 0;
      const int64_t size = reach / stride + 1;
      return ceil && reach % stride != 0 && size <= (in + padBegin - 1) / stride ? size + 1 : size;
    }
    // Pools reject windows whose taps (dilation apart) all fall in padding.
    bool everyWindowTouchesInput(int64_t in) const {
      for (int64_t o = 0; o < out(in); ++o) {
        bool touches = false;
        for (int64_t t = 0; t < kernel; ++t) {
          const int64_t i = o * stride - padBegin + t * dilation;
          touches = touches || (i >= 0 && i < in);
        }
        if (!touches) return false;
      }
      return true;
    }
  };

  // Valid geometry for an axis of size `in`: explicit symmetric pads,
  // asymmetric ones, none, or what auto_pad SAME_UPPER / SAME_LOWER become.
  // Pools keep each pad below the window span (ONNX requires it) and get a
  // given ceil_mode; AveragePool has no dilations.
  Axis randomAxis(int64_t in, bool pool, bool ceil = false, bool dilated = true) {
    for (;;) {
      Axis a{oneOf({1, 2, 3, 5}), oneOf({1, 1, 2, 3}), dilated ? oneOf({1, 1, 2, 3}) : 1, 0, 0, ceil};
      if (pool && a.kernel == 1) a.kernel = 2;
      if (a.span() > in + 2) continue;
      const int64_t maxPad = pool ? (a.span() - 1) / 2 : a.span() - 1;
      switch (uniform(0, 4)) {
        case 0: break;
        case 1: a.padBegin = a.padEnd = std::min(maxPad, a.span() / 2); break;
        case 2:
          a.padBegin = uniform(0, maxPad);
          a.padEnd = uniform(0, maxPad);
          break;
        default: {
          const int64_t needed = ((in + a.stride - 1) / a.stride - 1) * a.stride + a.span() - in;
          const int64_t total = std::min(2 * maxPad, std::max<int64_t>(0, needed));
          a.padBegin = uniform(0, 1) ? total / 2 : total - total / 2;  // SAME_UPPER or SAME_LOWER
          a.padEnd = total - a.padBegin;
        }
      }
      if (a.out(in) >= 1 && (!pool || a.everyWindowTouchesInput(in))) return a;
    }
  }

  // Geometry that keeps the size (odd kernel, stride 1, "same" pads), for
  // blocks that end in a residual Add.
  Axis sameAxis() {
    Axis a{oneOf({1, 3, 5}), 1, oneOf({1, 1, 2}), 0, 0};
    a.padBegin = a.padEnd = a.span() / 2;
    return a;
  }

  static void setWindow(Attributes& attrs, const Axis& h, const Axis& w, bool dilations) {
    attrs.set("strides", std::vector<int64_t>{h.stride, w.stride});
    attrs.set("pads", std::vector<int64_t>{h.padBegin, w.padBegin, h.padEnd, w.padEnd});
    if (dilations) attrs.set("dilations", std::vector<int64_t>{h.dilation, w.dilation});
  }

  Value* activation(Value* y) {
    Attributes a;
    switch (uniform(0, 7)) {
      case 0: return node("Relu", {y});
      case 1:
        a.set("min", 0.f);
        a.set("max", 6.f);
        return node("Clip", {y}, a);
      case 2:
        a.set("alpha", 0.1f);
        return node("LeakyRelu", {y}, a);
      case 3: return node("HardSwish", {y});
      case 4: return node("Sigmoid", {y});
      case 5: return node("Tanh", {y});
      case 6: return node("Elu", {y});
      default: return y;
    }
  }

  Value* batchNorm(Value* x) {
    Shape c{x->type.shape[1]};
    Attributes a;
    a.set("epsilon", std::uniform_real_distribution<float>(1e-5f, 1e-2f)(rng_));
    return node("BatchNormalization",
                {x, constant(c, 0.5f, 1.5f), constant(c, -1.f, 1.f), constant(c, -0.5f, 0.5f),
                 constant(c, 0.5f, 2.f)},
                a);
  }

  // A convolution of random kind (plain, grouped, depthwise with multiplier,
  // Keras separable), optional BN, activation, and often a shape-keeping
  // geometry with a residual Add (which -O2 fuses into the conv).
  Value* convBlock(Value* x) {
    const bool keepShape = coin(40);
    Value* y = wrapped(x, [&](Value* v) {
      const int64_t c = v->type.shape[1];
      const Axis h = keepShape ? sameAxis() : randomAxis(v->type.shape[2], false);
      const Axis w = keepShape ? sameAxis() : randomAxis(v->type.shape[3], false);
      const int64_t kind = uniform(0, 3);
      int64_t group = 1,
              out = keepShape ? c : wide_ ? oneOf({11, 13, 16, 24, 30, 33, 40}) : oneOf({3, 5, 7, 8, 12, 17, 20, 33});
      if (kind == 1) {
        group = c;  // depthwise
        out = keepShape || wide_ ? c : c * oneOf({1, 2, 3});
      } else if (kind == 2) {
        group = c % 3 == 0 ? 3 : c % 2 == 0 ? 2 : 1;
        out = keepShape ? c : group * oneOf({1, 2, 3, 5});
      }
      const bool bias = coin(60);
      Attributes a;
      setWindow(a, h, w, true);
      std::vector<Value*> in{v};
      std::string op = "Conv";
      if (kind == 3) {
        const int64_t multiplier = oneOf({1, 2});
        a.set("depth_multiplier", multiplier);
        in.push_back(constant(Shape{c * multiplier, 1, h.kernel, w.kernel}, -0.5f, 0.5f));
        in.push_back(constant(Shape{out, c * multiplier, 1, 1}, -0.5f, 0.5f));
        op = "SeparableConv2D";
      } else {
        a.set("group", group);
        const float bound = 1.f / std::sqrt(static_cast<float>(c / group * h.kernel * w.kernel));
        in.push_back(constant(Shape{out, c / group, h.kernel, w.kernel}, -bound, bound));
      }
      if (bias) in.push_back(constant(Shape{out}, -1.f, 1.f));
      Value* conv = node(op, in, a);
      return coin(50) ? batchNorm(conv) : conv;
    });
    // ResNet's act(conv + x), which -O2 fuses into the conv, or act(conv) + x.
    const bool residual = y->type == x->type && coin(75), before = coin(50);
    if (residual && before) y = node("Add", {y, x});
    y = activation(y);
    return residual && !before ? node("Add", {y, x}) : y;
  }

  Value* pool(Value* x) {
    const bool max = coin(50), ceil = coin(30);
    const Axis h = randomAxis(x->type.shape[2], true, ceil, max), w = randomAxis(x->type.shape[3], true, ceil, max);
    Attributes a;
    a.set("kernel_shape", std::vector<int64_t>{h.kernel, w.kernel});
    a.set("ceil_mode", int64_t{ceil});
    setWindow(a, h, w, max);
    if (max) return node("MaxPool", {x}, a);
    a.set("count_include_pad", int64_t{coin(50)});
    return node("AveragePool", {x}, a);
  }

  // Two 1x1 / 3x3 branches (a SqueezeNet fire module) concatenated along
  // channels.
  Value* concatBlock(Value* x) {
    auto branch = [&](int64_t kernel) {
      Attributes a;
      a.set("strides", std::vector<int64_t>{1, 1});
      a.set("pads", std::vector<int64_t>(4, kernel / 2));
      a.set("dilations", std::vector<int64_t>{1, 1});
      return node("Relu", {wrapped(x, [&](Value* v) {
                    const int64_t c = v->type.shape[1], out = wide_ ? oneOf({11, 16}) : oneOf({3, 4, 9});
                    const float bound = 1.f / std::sqrt(static_cast<float>(c * kernel * kernel));
                    return node("Conv",
                                {v, constant(Shape{out, c, kernel, kernel}, -bound, bound),
                                 constant(Shape{out}, -1.f, 1.f)},
                                a);
                  })});
    };
    Attributes a;
    a.set("axis", int64_t{nhwc_ ? 3 : 1});
    return node("Concat", {branch(1), branch(3)}, a);
  }

  // Global pool or flatten, one or two Gemms (either weight layout, alpha /
  // beta), BN on features, activation, optional softmax.
  Value* gemmHead(Value* x) {
    Attributes flat;
    flat.set("axis", int64_t{1});
    const std::string global = coin(70) ? "GlobalAveragePool" : "GlobalMaxPool";
    Value* y = coin(60) ? node("Flatten", {wrapped(x, [&](Value* v) { return node(global, {v}); })}, flat)
                        : node("Flatten", {x}, flat);
    for (int64_t layers = uniform(1, 2), i = 0; i < layers; ++i) {
      const int64_t k = y->type.shape[1], n = oneOf({3, 10, 17, 21});
      const bool transB = coin(50);
      const float bound = 1.f / std::sqrt(static_cast<float>(k));
      Attributes a;
      a.set("transB", int64_t{transB});
      if (coin(30)) {
        a.set("alpha", 0.5f);
        a.set("beta", 2.f);
      }
      y = node("Gemm", {y, constant(transB ? Shape{n, k} : Shape{k, n}, -bound, bound), constant(Shape{n}, -1.f, 1.f)},
               a);
      if (coin(30)) y = batchNorm(y);
      y = activation(y);
    }
    return coin(40) ? node("Softmax", {y}) : y;
  }
};

std::vector<Tensor> randomInputs(const Graph& g, int64_t batch, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<Tensor> inputs;
  for (const Value* v : g.inputs()) {
    Tensor t(DType::F32, v->type.shape.withBatch(batch));
    for (int64_t i = 0; i < t.numElements(); ++i) t.data<float>()[i] = dist(rng);
    inputs.push_back(std::move(t));
  }
  return inputs;
}

// Builds graph `seed` with input dim 0 `batch` (kBatch: symbolic, run at
// batch 1 and 7), compiles its -O2 form for `cpu` and compares; returns how
// many nodes -O2 laid out in NCHWc.
int64_t checkSeed(uint32_t seed, const std::string& cpu, bool wide = false, int64_t batch = kBatch) {
  RandomNet net(seed, wide, batch);
  net.build();
  Graph optimized = net.g.clone();
  PipelineOptions options;
  options.verifyEachPass = true;
  codegen::CompileOptions target;
  target.cpu = cpu;
  options.passes.channelBlock = codegen::channelBlock(target);
  int64_t laidOut = 0;
  for (const PassRun& run : runPipeline(optimized, pipelineForLevel(2), options))
    laidOut += run.stats.get("nodes laid out");
  INFO("seed " << seed << " for " << cpu << "\n" << printGraph(optimized));
  std::unique_ptr<CompiledModel> model;
  REQUIRE_NOTHROW(model = CompiledModel::compile(optimized, cpu, /*optimize=*/false));
  const std::vector<int64_t> runBatches = batch == kBatch ? std::vector<int64_t>{1, 7} : std::vector<int64_t>{batch};
  for (int64_t runBatch : runBatches) {
    INFO("batch " << runBatch << (batch == kBatch ? " (symbolic)" : " (fixed)"));
    const std::vector<Tensor> in = randomInputs(net.g, runBatch, seed);
    const std::vector<Tensor> got = model->run(in);
    CHECK(maxRelativeErrorPerSample(got, interpret(optimized, in)) <= kBound);
    CHECK(maxRelativeErrorPerSample(got, interpret(net.g, in)) <= kBound);
  }
  return laidOut;
}

}  // namespace

TEST_CASE("random CNNs compiled for the host match the interpreter", "[codegen][differential]") {
  for (uint32_t seed = 1; seed <= 24; ++seed) checkSeed(seed, "native");
}

TEST_CASE("random CNNs compiled for AVX2 match the interpreter", "[codegen][differential]") {
  for (uint32_t seed = 101; seed <= 108; ++seed) checkSeed(seed, "x86-64-v3");
}

// The NCHWc path: nets whose channel counts -O2 lays out in blocks of 16
// (host AVX-512) or 8 (AVX2), mostly padded, odd map sizes, batch 1 and 7.
TEST_CASE("random wide CNNs laid out in NCHWc match the interpreter", "[codegen][differential][layout]") {
  int64_t laidOut = 0;
  for (uint32_t seed = 201; seed <= 212; ++seed) laidOut += checkSeed(seed, "native", /*wide=*/true);
  for (uint32_t seed = 301; seed <= 306; ++seed) laidOut += checkSeed(seed, "x86-64-v3", /*wide=*/true);
  CHECK(laidOut > 50);
}

// A fixed batch: per-sample parallelism over static dims, every sample
// compared on its own, plain and NCHWc, for the host, AVX2 and baseline x86-64.
TEST_CASE("random CNNs with a fixed batch of 2 or 3 match the interpreter per sample", "[codegen][differential]") {
  for (const std::string cpu : {"native", "x86-64-v3", "x86-64"})
    for (uint32_t seed = 401; seed <= 404; ++seed) {
      checkSeed(seed, cpu, /*wide=*/false, 2 + seed % 2);
      checkSeed(seed + 100, cpu, /*wide=*/true, 3 - seed % 2);
    }
}
