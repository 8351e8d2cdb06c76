// The non-conv emitters and the math library, compiled and compared with the
// reference interpreter: activation accuracy over sweeps that cover the
// float range and its special values, then every tensor op over several
// shapes, broadcasts and axes at batch 1 and 5 (a subset also for AVX2).
#include <array>
#include <catch2/catch.hpp>
#include <cfloat>
#include <cmath>
#include <limits>
#include <random>

#include "compiled_model.h"
#include "compiler/interp/interpreter.h"
#include "compiler/ops/reduce.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

TensorType typeOf(Shape s, DType t = DType::F32) { return {t, std::move(s)}; }

// Uniform values in [lo, hi) (integers for integer dtypes), reproducible per seed.
Tensor randomTensor(Shape shape, unsigned seed, double lo = -3, double hi = 3, DType dtype = DType::F32) {
  Tensor t(dtype, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  for (int64_t i = 0; i < t.numElements(); ++i) {
    const double v = dist(rng);
    switch (dtype) {
      case DType::F32:
        t.data<float>()[i] = static_cast<float>(v);
        break;
      case DType::I64:
        t.data<int64_t>()[i] = static_cast<int64_t>(std::floor(v));
        break;
      case DType::I32:
        t.data<int32_t>()[i] = static_cast<int32_t>(std::floor(v));
        break;
      case DType::Bool:
        t.data<bool>()[i] = v > 0;
        break;
    }
  }
  return t;
}

// Random data for every graph input, with the symbolic batch set to `batch`.
std::vector<Tensor> randomInputs(const Graph& g, int64_t batch, unsigned seed) {
  std::vector<Tensor> inputs;
  for (const Value* v : g.inputs())
    inputs.push_back(randomTensor(v->type.shape.withBatch(batch), seed++, -3, 3, v->type.dtype));
  return inputs;
}

// Compiles g (unoptimized, so each op is emitted as written) and checks it
// against the interpreter on random inputs at batch 1 and 5.
void checkAgainstInterpreter(const Graph& g, const std::string& cpu = "native") {
  auto model = CompiledModel::compile(g, cpu, /*optimize=*/false);
  for (int64_t batch : {1, 5}) {
    const std::vector<Tensor> inputs = randomInputs(g, batch, static_cast<unsigned>(batch) * 17);
    INFO("graph " << g.name << ", batch " << batch << ", cpu " << cpu);
    CHECK(maxRelativeError(model->run(inputs), interpret(g, inputs)) <= 1e-5);
  }
}

// x[N, shape...] -> op -> y.
Graph unaryGraph(const std::string& op, Shape perSample, Attributes attrs = {}, DType dtype = DType::F32) {
  Graph g;
  g.name = op;
  Shape shape{kBatch};
  shape.dims.insert(shape.dims.end(), perSample.dims.begin(), perSample.dims.end());
  Value* x = g.addInput("x", typeOf(shape, dtype));
  g.addOutput(g.addNode(op, "n", {x}, std::move(attrs))->output());
  return g;
}

Attributes attrs(std::initializer_list<std::pair<const char*, AttrValue>> values) {
  Attributes a;
  for (const auto& [name, v] : values) a.set(name, v);
  return a;
}

// --- Math accuracy -----------------------------------------------------------

// Inputs covering the float range: magnitudes from the smallest subnormal to
// FLT_MAX geometrically, a dense walk over [-20, 20], the exp/expm1 range
// edges, and zeros, infinities and NaN.
std::vector<float> sweepValues() {
  std::vector<float> v;
  for (double m = 1e-45; m < FLT_MAX; m *= 1.07) {
    v.push_back(static_cast<float>(m));
    v.push_back(-static_cast<float>(m));
  }
  for (float x = -20.f; x <= 20.f; x += 0.00731f) v.push_back(x);
  for (float x : {0.f,    -0.f,   kInf,  -kInf,  std::nanf(""), 88.72f,    88.73f,  89.f,     -87.33f, -87.34f, -103.9f,
                  -104.f, -150.f, 1e-6f, -1e-6f, 0.34657f,      -0.34657f, FLT_MAX, -FLT_MAX, FLT_MIN, -FLT_MIN})
    v.push_back(x);
  return v;
}

// Worst relative error of `got` against `want` (exact agreement required for
// NaN and infinities); results below FLT_MIN count relative to FLT_MIN.
double worstRelativeError(const Tensor& got, const Tensor& want) {
  double worst = 0;
  for (int64_t i = 0; i < want.numElements(); ++i) {
    const float a = got.data<float>()[i], b = want.data<float>()[i];
    if (std::isnan(a) || std::isnan(b) || std::isinf(a) || std::isinf(b)) {
      if (!(std::isnan(a) && std::isnan(b)) && a != b) return kInf;
      continue;
    }
    const double scale = std::max<double>(std::fabs(b), FLT_MIN);
    worst = std::max(worst, std::fabs(double(a) - double(b)) / scale);
  }
  return worst;
}

}  // namespace

TEST_CASE("activations match the reference over the float range", "[codegen][math]") {
  const std::vector<float> sweep = sweepValues();
  const int64_t n = static_cast<int64_t>(sweep.size());
  // Selu and Elu use expm1, Tanh expm1, Sigmoid exp, Softplus exp and log1p,
  // Log the full-range log (subnormals, zero, negatives).
  const std::vector<std::pair<std::string, Attributes>> ops = {
      {"Sigmoid", {}},
      {"Tanh", {}},
      {"Softplus", {}},
      {"Elu", attrs({{"alpha", 0.7f}})},
      {"Selu", {}},
      {"Relu", {}},
      {"LeakyRelu", attrs({{"alpha", 0.1f}})},
      {"HardSigmoid", {}},
      {"HardSwish", {}},
      {"Clip", attrs({{"min", -1.5f}, {"max", 2.f}})},
      {"Log", {}},
  };
  for (const char* cpu : {"native", "x86-64-v3"}) {
    for (const auto& [op, a] : ops) {
      Graph g = unaryGraph(op, Shape{n}, a);
      auto model = CompiledModel::compile(g, cpu, /*optimize=*/false);
      for (int64_t batch : {1, 3}) {
        Tensor x(DType::F32, Shape{batch, n});
        for (int64_t b = 0; b < batch; ++b) std::copy(sweep.begin(), sweep.end(), x.data<float>() + b * n);
        const double error = worstRelativeError(model->run({x})[0], interpret(g, {x})[0]);
        INFO(op << " on " << cpu << ", batch " << batch << ": worst relative error " << error);
        CHECK(error <= 3e-7);
      }
    }
  }
}

TEST_CASE("LogSoftmax's log is accurate for row sums up to thousands", "[codegen][math]") {
  for (int64_t n : {1, 2, 7, 100, 4096}) {
    Graph g = unaryGraph("LogSoftmax", Shape{3, n});
    auto model = CompiledModel::compile(g, "native", /*optimize=*/false);
    std::vector<Tensor> in{randomTensor(Shape{2, 3, n}, 5, -8, 8)};
    const double error = worstRelativeError(model->run(in)[0], interpret(g, in)[0]);
    INFO("row length " << n << ": worst relative error " << error);
    CHECK(error <= 1e-5);
  }
}

// --- Elementwise and broadcasting -------------------------------------------

namespace {

// op(x, c) or op(c, x) with x batched and c a constant, or both batched.
Graph binaryGraph(const std::string& op, Shape xShape, Shape otherShape, bool otherIsConstant, bool constantFirst,
                  DType dtype) {
  Graph g;
  g.name = op + " " + xShape.str() + " " + otherShape.str();
  Value* x = g.addInput("x", typeOf(xShape, dtype));
  Value* other = nullptr;
  if (otherIsConstant) {
    // Integer divisors avoid 0; 1..6 and -1 (-1 exercises the wrapping rule).
    Tensor c = randomTensor(otherShape, 99, dtype == DType::F32 ? -3 : 1, dtype == DType::F32 ? 3 : 7, dtype);
    if (dtype != DType::F32 && c.numElements() > 0) {
      if (dtype == DType::I64)
        c.data<int64_t>()[0] = -1;
      else
        c.data<int32_t>()[0] = -1;
    }
    other = g.addConstant("c", c);
  } else {
    other = g.addInput("y", typeOf(otherShape, dtype));
  }
  std::vector<Value*> inputs = constantFirst ? std::vector<Value*>{other, x} : std::vector<Value*>{x, other};
  g.addOutput(g.addNode(op, "n", inputs)->output());
  return g;
}

}  // namespace

TEST_CASE("binary arithmetic broadcasts like numpy", "[codegen][elementwise]") {
  struct Case {
    Shape x, other;
    bool constant, constantFirst;
  };
  const std::vector<Case> cases = {
      {{kBatch, 3, 4}, {kBatch, 3, 4}, false, false},  // same shape
      {{kBatch, 3, 4}, {4}, true, false},              // row
      {{kBatch, 3, 4}, {3, 1}, true, false},           // column
      {{kBatch, 1, 4}, {3, 1}, true, true},            // outer product
      {{kBatch, 3, 4}, {}, true, false},               // scalar
      {{kBatch, 3, 1}, {kBatch, 1, 4}, false, false},  // both broadcast
      {{kBatch, 2, 3, 5}, {2, 1, 5}, true, true},
  };
  for (const char* op : {"Add", "Sub", "Mul", "Div"}) {
    for (const Case& c : cases) {
      checkAgainstInterpreter(binaryGraph(op, c.x, c.other, c.constant, c.constantFirst, DType::F32));
      // Random integer inputs contain 0, so they are never divisors.
      const bool isDiv = std::string(op) == "Div";
      if (isDiv && !c.constant) continue;
      for (DType t : {DType::I64, DType::I32})
        checkAgainstInterpreter(binaryGraph(op, c.x, c.other, c.constant, c.constantFirst && !isDiv, t));
    }
  }
}

TEST_CASE("integer arithmetic wraps and divides toward zero", "[codegen][elementwise]") {
  const int64_t big = std::numeric_limits<int64_t>::max(), small = std::numeric_limits<int64_t>::min();
  Tensor x = Tensor::fromVector<int64_t>(Shape{1, 6}, {small, big, -7, 7, -7, 5});
  Tensor y = Tensor::fromVector<int64_t>(Shape{1, 6}, {-1, 2, 2, -2, -1, 3});
  for (const char* op : {"Add", "Sub", "Mul", "Div"}) {
    Graph g = binaryGraph(op, Shape{kBatch, 6}, Shape{kBatch, 6}, false, false, DType::I64);
    auto model = CompiledModel::compile(g, "native", /*optimize=*/false);
    INFO(op);
    CHECK(maxRelativeError(model->run({x, y}), interpret(g, {x, y})) == 0);
  }
}

TEST_CASE("integer division by a constant zero is rejected at compile time", "[codegen][elementwise]") {
  Graph g;
  Value* x = g.addInput("x", typeOf({kBatch, 2}, DType::I64));
  Value* zero = g.addConstant("zero", Tensor::fromVector<int64_t>(Shape{2}, {1, 0}));
  g.addOutput(g.addNode("Div", "d", {x, zero})->output());
  CHECK_THROWS_AS(CompiledModel::compile(g, "native", false), Error);
}

TEST_CASE("variadic Sum, Max, Min and Mean fold broadcast inputs", "[codegen][elementwise]") {
  for (const char* op : {"Sum", "Max", "Min", "Mean"}) {
    for (size_t count : {1, 2, 3}) {
      Graph g;
      g.name = std::string(op) + " x" + std::to_string(count);
      std::vector<Value*> inputs{g.addInput("a", typeOf({kBatch, 3, 4}))};
      if (count >= 2) inputs.push_back(g.addInput("b", typeOf({kBatch, 1, 4})));
      if (count >= 3) inputs.push_back(g.addConstant("c", randomTensor(Shape{3, 1}, 3)));
      g.addOutput(g.addNode(op, "n", inputs)->output());
      checkAgainstInterpreter(g);
    }
  }
  for (const char* op : {"Max", "Min"}) {
    Graph g = binaryGraph(op, Shape{kBatch, 4, 3}, Shape{3}, true, false, DType::I64);
    checkAgainstInterpreter(g);
  }
}

TEST_CASE("Max and Min propagate NaN from either side", "[codegen][elementwise]") {
  const float nan = std::nanf("");
  Tensor a = Tensor::fromVector<float>(Shape{1, 5}, {nan, 1.f, nan, -0.f, 2.f});
  Tensor b = Tensor::fromVector<float>(Shape{1, 5}, {1.f, nan, nan, 0.f, -kInf});
  for (const char* op : {"Max", "Min"}) {
    Graph g = binaryGraph(op, Shape{kBatch, 5}, Shape{kBatch, 5}, false, false, DType::F32);
    auto model = CompiledModel::compile(g, "native", false);
    const Tensor got = model->run({a, b})[0], want = interpret(g, {a, b})[0];
    INFO(op);
    CHECK(std::memcmp(got.rawData(), want.rawData(), got.byteSize()) == 0);
  }
}

TEST_CASE("PRelu broadcasts its slope", "[codegen][activation]") {
  for (Shape slope : {Shape{3, 1, 1}, Shape{1}, Shape{3, 4, 5}, Shape{5}}) {
    Graph g;
    g.name = "PRelu " + slope.str();
    Value* x = g.addInput("x", typeOf({kBatch, 3, 4, 5}));
    g.addOutput(g.addNode("PRelu", "p", {x, g.addConstant("s", randomTensor(slope, 4))})->output());
    checkAgainstInterpreter(g);
  }
}

TEST_CASE("Clip reads min and max given at run time", "[codegen][activation]") {
  // min a rank-0 graph input, max a one-element one (neither batched, so
  // every sample reads the same value); a second Clip takes only max at run
  // time and min from its attribute. 3x37 values: vectors and a remainder.
  Graph g;
  g.name = "Clip with run-time bounds";
  Value* x = g.addInput("x", typeOf({kBatch, 3, 37}));
  Value* lo = g.addInput("lo", typeOf(Shape{}));
  Value* hi = g.addInput("hi", typeOf({1}));
  g.addOutput(g.addNode("Clip", "both", {x, lo, hi})->output());
  g.addOutput(g.addNode("Clip", "max_only", {x, nullptr, hi}, attrs({{"min", -0.5f}}))->output());
  for (const char* cpu : {"native", "x86-64-v3"}) {
    auto model = CompiledModel::compile(g, cpu, /*optimize=*/false);
    for (int64_t batch : {1, 5}) {
      Tensor xs = randomTensor(Shape{batch, 3, 37}, static_cast<unsigned>(batch));
      for (int64_t i = 0; i < 4; ++i) xs.data<float>()[i * 29] = std::array{std::nanf(""), kInf, -kInf, -0.f}[i];
      // Ordinary bounds, bounds crossed (max wins), infinite bounds.
      for (auto [minValue, maxValue] : {std::pair{-1.f, 2.f}, {0.5f, -0.5f}, {-kInf, kInf}}) {
        const std::vector<Tensor> in{xs, Tensor::scalar(minValue), Tensor::fromVector<float>({1}, {maxValue})};
        const std::vector<Tensor> got = model->run(in), want = interpret(g, in);
        INFO(cpu << ", batch " << batch << ", min " << minValue << ", max " << maxValue);
        for (size_t k = 0; k < want.size(); ++k)
          CHECK(std::memcmp(got[k].rawData(), want[k].rawData(), want[k].byteSize()) == 0);
      }
    }
  }
}

TEST_CASE("elementwise chains run in place", "[codegen][elementwise]") {
  // plan-memory lets Relu, Add, Reshape and Sigmoid reuse dying buffers.
  Graph g;
  g.name = "in-place chain";
  Value* x = g.addInput("x", typeOf({kBatch, 4, 6}));
  Value* r = g.addNode("Relu", "r", {x})->output();
  Value* a = g.addNode("Add", "a", {r, g.addConstant("c", randomTensor(Shape{6}, 8))})->output();
  Value* s = g.addNode("Reshape", "s", {a}, attrs({{"shape", std::vector<int64_t>{0, 24}}}))->output();
  Value* t = g.addNode("Mul", "m", {g.addConstant("k", randomTensor(Shape{24}, 9)), s})->output();
  g.addOutput(g.addNode("Sigmoid", "y", {t})->output());
  checkAgainstInterpreter(g);
  checkAgainstInterpreter(g, "x86-64-v3");
}

// --- Normalization, softmax, reduce ----------------------------------------

TEST_CASE("BatchNormalization and ScaleShift scale each channel", "[codegen][normalization]") {
  for (Shape shape : {Shape{kBatch, 3}, Shape{kBatch, 3, 5, 4}, Shape{kBatch, 2, 3, 2, 2}}) {
    for (bool constantParams : {true, false}) {
      Graph g;
      g.name = "BatchNormalization " + shape.str() + (constantParams ? " const" : " inputs");
      std::vector<Value*> inputs{g.addInput("x", typeOf(shape))};
      const char* names[] = {"scale", "bias", "mean", "var"};
      for (unsigned i = 0; i < 4; ++i) {
        Tensor p = randomTensor(Shape{shape[1]}, 20 + i, i == 3 ? 0.5 : -2, 2);
        inputs.push_back(g.addConstant(names[i], p));
      }
      if (!constantParams) {
        // Variances computed at run time: var = Relu(input) + constant.
        Value* v = g.addInput("v", typeOf({shape[1]}));
        inputs[4] = g.addNode("Add", "var", {g.addNode("Relu", "relu", {v})->output(), inputs[4]})->output();
      }
      g.addOutput(g.addNode("BatchNormalization", "bn", inputs, attrs({{"epsilon", 1e-3f}}))->output());
      checkAgainstInterpreter(g);
    }
    Graph ss;
    ss.name = "ScaleShift " + shape.str();
    Value* x = ss.addInput("x", typeOf(shape));
    ss.addOutput(ss.addNode("ScaleShift", "ss",
                            {x, ss.addConstant("s", randomTensor(Shape{shape[1]}, 1)),
                             ss.addConstant("t", randomTensor(Shape{shape[1]}, 2))})
                     ->output());
    checkAgainstInterpreter(ss);
  }
}

TEST_CASE("Softmax and LogSoftmax along every axis", "[codegen][softmax]") {
  for (const char* op : {"Softmax", "LogSoftmax"})
    for (int64_t axis : {-1, 1, 2, 3}) checkAgainstInterpreter(unaryGraph(op, Shape{3, 4, 5}, attrs({{"axis", axis}})));
  // Large logits stay finite (the maximum is subtracted first).
  Graph g = unaryGraph("Softmax", Shape{6});
  auto model = CompiledModel::compile(g, "native", false);
  Tensor x = Tensor::fromVector<float>(Shape{1, 6}, {1000.f, 999.f, -1000.f, 0.f, 998.f, 1000.f});
  CHECK(maxRelativeError(model->run({x}), interpret(g, {x})) <= 1e-6);
}

TEST_CASE("Hardmax along every axis, with ties, NaN and -inf rows", "[codegen][softmax]") {
  for (int64_t axis : {-1, 1, 2, 3})
    checkAgainstInterpreter(unaryGraph("Hardmax", Shape{3, 4, 5}, attrs({{"axis", axis}})));
  Graph g = unaryGraph("Hardmax", Shape{3});
  auto model = CompiledModel::compile(g, "native", false);
  Tensor x = Tensor::fromVector<float>(Shape{4, 3}, {1, 5, 2, 7, 7, -1, -kInf, -kInf, -kInf, -3, NAN, 8});
  Tensor y = model->run({x}).at(0);
  for (int i = 0; i < 9; ++i) CHECK(y.data<float>()[i] == std::vector<float>{0, 1, 0, 1, 0, 0, 1, 0, 0}[i]);
  for (int i = 9; i < 12; ++i) CHECK(std::isnan(y.data<float>()[i]));
  CHECK(maxRelativeError({y}, interpret(g, {x})) == 0);
}

TEST_CASE("ReduceMean over axis sets with and without kept dims", "[codegen][reduce]") {
  for (std::vector<int64_t> axes : {std::vector<int64_t>{1}, {2, 3}, {-1}, {1, 3}, {1, 2, 3}})
    for (int64_t keepdims : {0, 1})
      checkAgainstInterpreter(
          unaryGraph("ReduceMean", Shape{3, 4, 5}, attrs({{"axes", axes}, {"keepdims", keepdims}})));
}

TEST_CASE("every reduction over axis sets, contiguous runs and strided ones", "[codegen][reduce]") {
  // Long rows (unrolled vectors and a partial last one), short ones (scalar
  // steps) and reductions across a non-innermost axis. LogSum reads positive
  // inputs; everything else [-3, 3).
  const std::vector<std::pair<Shape, std::vector<int64_t>>> cases = {
      {Shape{3, 4, 5}, {1}}, {Shape{3, 4, 5}, {-1, 1}}, {Shape{3, 4, 5}, {1, 2, 3}}, {Shape{3, 130}, {-1}},
      {Shape{2, 5, 40}, {1}}, {Shape{6, 7, 7}, {2, 3}}, {Shape{3, 20, 11}, {1, 2}}};
  for (const Reduction& red : reductions())
    for (const auto& [shape, axes] : cases)
      for (int64_t keepdims : {0, 1}) {
        Graph g = unaryGraph(red.op, shape, attrs({{"axes", axes}, {"keepdims", keepdims}}));
        auto model = CompiledModel::compile(g, "native", /*optimize=*/false);
        Shape batched{2};
        batched.dims.insert(batched.dims.end(), shape.dims.begin(), shape.dims.end());
        // ReduceProd over up to 420 elements stays finite in [0.5, 1.5).
        const bool positive = red.finish == ReduceFinish::Log || red.combine == ReduceCombine::Mul;
        std::vector<Tensor> in{randomTensor(batched, 21, positive ? 0.5 : -3, positive ? 1.5 : 3)};
        const double error = maxRelativeError(model->run(in), interpret(g, in));
        INFO(red.op << " " << shape.str() << " keepdims " << keepdims << ": worst relative error " << error);
        CHECK(error <= 1e-5);
      }
  // i64 Max and Min; the narrower vector widths.
  for (const char* op : {"ReduceMax", "ReduceMin"})
    checkAgainstInterpreter(unaryGraph(op, Shape{3, 20}, attrs({{"axes", std::vector<int64_t>{-1}}}), DType::I64));
  for (const char* cpu : {"x86-64-v3", "x86-64"})
    for (const char* op : {"ReduceSum", "ReduceMax", "ReduceL2"})
      checkAgainstInterpreter(unaryGraph(op, Shape{3, 20, 11}, attrs({{"axes", std::vector<int64_t>{1, 2}}})), cpu);
}

TEST_CASE("Max and Min reductions let a NaN win in vectors and tails", "[codegen][reduce]") {
  for (const char* op : {"ReduceMax", "ReduceMin"}) {
    Graph g = unaryGraph(op, Shape{37}, attrs({{"axes", std::vector<int64_t>{1}}}));
    auto model = CompiledModel::compile(g, "native", false);
    for (int64_t at : {0, 15, 36}) {  // in the first vector, the last full one, the tail
      Tensor x = randomTensor(Shape{1, 37}, 5);
      x.data<float>()[at] = NAN;
      INFO(op << " NaN at " << at);
      CHECK(std::isnan(model->run({x}).at(0).data<float>()[0]));
    }
  }
}

TEST_CASE("ReduceLogSumExp shifts by the maximum in vectors and tails", "[codegen][reduce]") {
  Graph g = unaryGraph("ReduceLogSumExp", Shape{37}, attrs({{"axes", std::vector<int64_t>{1}}}));
  auto model = CompiledModel::compile(g, "native", false);
  Tensor x = randomTensor(Shape{3, 37}, 9, 995, 1005);
  for (int i = 37; i < 74; ++i) x.data<float>()[i] = -kInf;
  x.data<float>()[74 + 36] = kInf;
  const Tensor y = model->run({x}).at(0);
  CHECK(std::isfinite(y.data<float>()[0]));
  CHECK(y.data<float>()[1] == -kInf);
  CHECK(y.data<float>()[2] == kInf);
  CHECK(maxRelativeError({y}, interpret(g, {x})) <= 1e-6);
}

TEST_CASE("ArgMax and ArgMin along every axis, with ties and NaN", "[codegen][reduce]") {
  for (const char* op : {"ArgMax", "ArgMin"})
    for (int64_t axis : {1, 2, -1})
      for (int64_t last : {0, 1})
        for (DType dtype : {DType::F32, DType::I64}) {
          // i64 inputs in [-3, 3) are full of ties.
          Graph g = unaryGraph(op, Shape{4, 5, 6},
                               attrs({{"axis", axis}, {"keepdims", last}, {"select_last_index", last}}), dtype);
          checkAgainstInterpreter(g);
        }
  Graph g = unaryGraph("ArgMax", Shape{4}, attrs({{"axis", int64_t{1}}, {"select_last_index", int64_t{1}}}));
  auto model = CompiledModel::compile(g, "native", false);
  const Tensor x = Tensor::fromVector<float>(Shape{3, 4}, {1, NAN, 5, NAN, 2, 2, 1, 0, -kInf, -kInf, -kInf, -kInf});
  const Tensor y = model->run({x}).at(0);
  CHECK(std::vector<int64_t>(y.data<int64_t>(), y.data<int64_t>() + 3) == std::vector<int64_t>{3, 1, 3});
}

TEST_CASE("Split, Expand, Tile, DepthToSpace and SpaceToDepth copy by their plans", "[codegen][shape]") {
  Graph split;
  split.name = "Split";
  Value* x = split.addInput("x", typeOf(Shape{kBatch, 3, 10}));
  for (Value* part :
       split.addNode("Split", "n", {x}, attrs({{"axis", int64_t{2}}, {"split", std::vector<int64_t>{3, 0, 7}}}))->outputs)
    split.addOutput(part);
  checkAgainstInterpreter(split);
  checkAgainstInterpreter(unaryGraph("Expand", Shape{3, 1, 5}, attrs({{"shape", std::vector<int64_t>{1, 3, 4, 1}}})));
  checkAgainstInterpreter(unaryGraph("Tile", Shape{2, 3, 5}, attrs({{"repeats", std::vector<int64_t>{1, 2, 1, 3}}})));
  for (const char* mode : {"DCR", "CRD"})
    checkAgainstInterpreter(
        unaryGraph("DepthToSpace", Shape{12, 3, 5}, attrs({{"blocksize", int64_t{2}}, {"mode", std::string(mode)}})));
  checkAgainstInterpreter(unaryGraph("SpaceToDepth", Shape{3, 6, 9}, attrs({{"blocksize", int64_t{3}}})));
}

TEST_CASE("InstanceNormalization and LRN over planes with partial vectors", "[codegen][normalization]") {
  for (const Shape& perSample : {Shape{3, 7, 7}, Shape{2, 16}, Shape{4, 5, 40}, Shape{5, 1, 3}})
    for (const char* cpu : {"native", "x86-64-v3", "x86-64"}) {
      Graph norm;
      norm.name = "InstanceNormalization";
      Shape shape{kBatch};
      shape.dims.insert(shape.dims.end(), perSample.dims.begin(), perSample.dims.end());
      Value* x = norm.addInput("x", typeOf(shape));
      Value* scale = norm.addInput("scale", typeOf(Shape{perSample[0]}));
      Value* bias = norm.addInput("bias", typeOf(Shape{perSample[0]}));
      norm.addOutput(norm.addNode("InstanceNormalization", "n", {x, scale, bias}, attrs({{"epsilon", 1e-3f}}))->output());
      checkAgainstInterpreter(norm, cpu);
      for (int64_t size : {1, 2, 5})
        checkAgainstInterpreter(
            unaryGraph("LRN", perSample,
                       attrs({{"size", size}, {"alpha", 0.5f}, {"beta", 0.75f}, {"bias", 2.f}})),
            cpu);
    }
}

TEST_CASE("Softmax, LogSoftmax and ReduceMean over rows longer than a vector", "[codegen][softmax][reduce]") {
  // Contiguous rows with and without a partial last vector, rows across lanes
  // (axis not innermost) wider than a vector, and long reductions that use
  // the unrolled vector accumulators; values in [-8, 8) so exp spans ~7 decades.
  for (const char* op : {"Softmax", "LogSoftmax"})
    for (const auto& [shape, axis] : std::vector<std::pair<Shape, int64_t>>{
             {Shape{2, 1000}, -1}, {Shape{3, 17}, -1}, {Shape{2, 64}, -1}, {Shape{3, 9, 37}, 1}, {Shape{2, 5, 40}, 1}}) {
      Graph g = unaryGraph(op, shape, attrs({{"axis", axis}}));
      auto model = CompiledModel::compile(g, "native", /*optimize=*/false);
      Shape batched{2};
      batched.dims.insert(batched.dims.end(), shape.dims.begin(), shape.dims.end());
      std::vector<Tensor> in{randomTensor(batched, 11, -8, 8)};
      const double error = maxRelativeError(model->run(in), interpret(g, in));
      INFO(op << " " << shape.str() << " axis " << axis << ": worst relative error " << error);
      CHECK(error <= 1e-5);
    }
  for (const auto& [shape, axes] : std::vector<std::pair<Shape, std::vector<int64_t>>>{
           {Shape{64, 56, 56}, {2, 3}}, {Shape{5, 7, 7}, {2, 3}}, {Shape{3, 130}, {-1}}, {Shape{3, 40, 17}, {1, 3}},
           {Shape{2, 300}, {1}}, {Shape{6, 50}, {1}}}) {
    Graph g = unaryGraph("ReduceMean", shape, attrs({{"axes", axes}, {"keepdims", int64_t{1}}}));
    auto model = CompiledModel::compile(g, "native", /*optimize=*/false);
    Shape batched{2};
    batched.dims.insert(batched.dims.end(), shape.dims.begin(), shape.dims.end());
    std::vector<Tensor> in{randomTensor(batched, 12, -3, 3)};
    const double error = maxRelativeError(model->run(in), interpret(g, in));
    INFO("ReduceMean " << shape.str() << ": worst relative error " << error);
    CHECK(error <= 1e-5);
  }
  // The AVX2 width too.
  checkAgainstInterpreter(unaryGraph("Softmax", Shape{3, 100}), "x86-64-v3");
  checkAgainstInterpreter(unaryGraph("LogSoftmax", Shape{3, 20, 11}, attrs({{"axis", int64_t{1}}})), "x86-64-v3");
  checkAgainstInterpreter(unaryGraph("ReduceMean", Shape{3, 20, 11}, attrs({{"axes", std::vector<int64_t>{1, 2}}})),
                          "x86-64-v3");
}

TEST_CASE("Softmax rows with NaN or infinite logits", "[codegen][softmax]") {
  Graph g = unaryGraph("Softmax", Shape{40});
  auto model = CompiledModel::compile(g, "native", false);
  Tensor x = randomTensor(Shape{1, 40}, 3);
  x.data<float>()[33] = std::nanf("");
  Tensor y = model->run({x}).at(0);
  for (int i = 0; i < 40; ++i) CHECK(std::isnan(y.data<float>()[i]));
  x = randomTensor(Shape{1, 40}, 4);
  x.data<float>()[21] = -kInf;
  y = model->run({x}).at(0);
  CHECK(maxRelativeError({y}, interpret(g, {x})) <= 1e-6);
}

// --- Shape and data movement -------------------------------------------------

TEST_CASE("view ops copy bytes", "[codegen][shape]") {
  checkAgainstInterpreter(unaryGraph("Reshape", Shape{3, 4}, attrs({{"shape", std::vector<int64_t>{0, 2, -1}}})));
  checkAgainstInterpreter(unaryGraph("Flatten", Shape{3, 4, 2}));
  checkAgainstInterpreter(unaryGraph("Squeeze", Shape{1, 4, 1}, attrs({{"axes", std::vector<int64_t>{1, -1}}})));
  checkAgainstInterpreter(unaryGraph("Unsqueeze", Shape{4}, attrs({{"axes", std::vector<int64_t>{1, 3}}})));
  checkAgainstInterpreter(unaryGraph("Identity", Shape{5}, {}, DType::I64));
  checkAgainstInterpreter(unaryGraph("Dropout", Shape{2, 3}));
}

TEST_CASE("Transpose permutes dims", "[codegen][shape]") {
  for (std::vector<int64_t> perm : {std::vector<int64_t>{0, 2, 1}, {0, 3, 1, 2}, {0, 2, 3, 1}, {0, 1, 2, 3}}) {
    Shape s = perm.size() == 3 ? Shape{3, 4} : Shape{3, 4, 5};
    checkAgainstInterpreter(unaryGraph("Transpose", s, attrs({{"perm", perm}})));
  }
  checkAgainstInterpreter(unaryGraph("Transpose", Shape{3, 4, 5}, attrs({{"perm", std::vector<int64_t>{0, 3, 1, 2}}})),
                          "x86-64-v3");
}

TEST_CASE("Concat joins inputs along an axis", "[codegen][shape]") {
  for (int64_t axis : {1, 2, -1}) {
    Graph g;
    g.name = "Concat axis " + std::to_string(axis);
    Value* a = g.addInput("a", typeOf({kBatch, 2, 3, 4}));
    Shape other{2, 3, 4};
    other[static_cast<size_t>(axis < 0 ? 2 : axis - 1)] = 5;
    Value* b = g.addInput("b", typeOf(Shape{kBatch, other[0], other[1], other[2]}));
    Value* c = g.addInput("c", typeOf({kBatch, 2, 3, 4}));
    g.addOutput(g.addNode("Concat", "cat", {a, b, c}, attrs({{"axis", axis}}))->output());
    checkAgainstInterpreter(g);
  }
  checkAgainstInterpreter([] {
    Graph g;
    g.name = "Concat i64";
    Value* a = g.addInput("a", typeOf({kBatch, 3}, DType::I64));
    Value* b = g.addInput("b", typeOf({kBatch, 2}, DType::I64));
    g.addOutput(g.addNode("Concat", "cat", {b, a}, attrs({{"axis", 1}}))->output());
    return g;
  }());
}

TEST_CASE("Pad in constant, reflect and edge modes", "[codegen][shape]") {
  const std::vector<std::vector<int64_t>> padSets = {
      {0, 0, 1, 2, 0, 0, 2, 1},    // grow H and W
      {0, 1, 0, 1, 0, 0, 0, 2},    // grow C and W
      {0, 0, -1, 1, 0, 0, 2, -2},  // crop and grow
  };
  for (const char* mode : {"constant", "reflect", "edge"})
    for (const auto& pads : padSets)
      checkAgainstInterpreter(
          unaryGraph("Pad", Shape{2, 4, 5}, attrs({{"pads", pads}, {"mode", std::string(mode)}, {"value", 1.5f}})));
  checkAgainstInterpreter(
      unaryGraph("Pad", Shape{3}, attrs({{"pads", std::vector<int64_t>{0, 2, 0, 1}}, {"value", -2.7f}}), DType::I64));
}

TEST_CASE("Slice with steps, negative bounds and clamping", "[codegen][shape]") {
  const int64_t big = std::numeric_limits<int64_t>::max();
  struct Case {
    std::vector<int64_t> starts, ends, axes, steps;
  };
  const std::vector<Case> cases = {
      {{1}, {3}, {1}, {1}},
      {{0, -1}, {big, 0}, {2, 3}, {2, -1}},
      {{-100, 1}, {100, 5}, {1, 2}, {1, 2}},
      {{3, 4}, {0, -big}, {1, 3}, {-2, -3}},
      {{0}, {big}, {0}, {1}},
  };
  for (const Case& c : cases)
    checkAgainstInterpreter(
        unaryGraph("Slice", Shape{4, 5, 6},
                   attrs({{"starts", c.starts}, {"ends", c.ends}, {"axes", c.axes}, {"steps", c.steps}})));
}

TEST_CASE("Gather with constant and batched indices", "[codegen][shape]") {
  for (int64_t axis : {1, 2, -1}) {
    Graph g;
    g.name = "Gather axis " + std::to_string(axis);
    Value* x = g.addInput("x", typeOf({kBatch, 4, 5}));
    Value* idx = g.addConstant("i", Tensor::fromVector<int64_t>(Shape{2, 2}, {0, -1, 2, 1}));
    g.addOutput(g.addNode("Gather", "g", {x, idx}, attrs({{"axis", axis}}))->output());
    checkAgainstInterpreter(g);
  }
  Graph g;
  g.name = "Gather embedding";
  Value* idx = g.addInput("i", typeOf({kBatch, 3}, DType::I32));  // random values in [-3, 3)
  g.addOutput(g.addNode("Gather", "g", {g.addConstant("table", randomTensor(Shape{4, 6}, 3)), idx})->output());
  checkAgainstInterpreter(g);
}

TEST_CASE("Cast converts between dtypes", "[codegen][shape]") {
  const float nan = std::nanf("");
  Tensor x = Tensor::fromVector<float>(Shape{1, 8}, {1.9f, -1.9f, 0.f, nan, 1e30f, -1e30f, 3e9f, -0.5f});
  for (const char* to : {"i64", "i32", "bool", "f32"}) {
    Graph g = unaryGraph("Cast", Shape{8}, attrs({{"to", std::string(to)}}));
    auto model = CompiledModel::compile(g, "native", false);
    INFO("f32 -> " << to);
    const Tensor got = model->run({x})[0], want = interpret(g, {x})[0];
    CHECK(std::memcmp(got.rawData(), want.rawData(), got.byteSize()) == 0);
  }
  // Back from each dtype to f32 (and i64 -> i32 -> bool chains).
  for (const char* to : {"i64", "i32", "bool"}) {
    Graph g;
    g.name = std::string("Cast via ") + to;
    Value* v = g.addInput("x", typeOf({kBatch, 2, 3}));
    Value* mid = g.addNode("Cast", "a", {v}, attrs({{"to", std::string(to)}}))->output();
    Value* i32 = g.addNode("Cast", "b", {mid}, attrs({{"to", std::string("i32")}}))->output();
    Value* i64 = g.addNode("Cast", "c", {i32}, attrs({{"to", std::string("i64")}}))->output();
    g.addOutput(g.addNode("Cast", "d", {mid}, attrs({{"to", std::string("f32")}}))->output());
    g.addOutput(g.addNode("Cast", "e", {i64}, attrs({{"to", std::string("bool")}}))->output());
    checkAgainstInterpreter(g);
  }
}

TEST_CASE("Shape and ConstantOfShape produce static values", "[codegen][shape]") {
  for (const char* dtype : {"f32", "i64", "i32"}) {
    Graph g;
    g.name = std::string("ConstantOfShape ") + dtype;
    Value* x = g.addInput("x", typeOf({kBatch, 2}));
    Value* c = g.addNode("ConstantOfShape", "c", {},
                         attrs({{"shape", std::vector<int64_t>{2}}, {"value", -2.5f}, {"dtype", std::string(dtype)}}))
                   ->output();
    Value* f = g.addNode("Cast", "f", {c}, attrs({{"to", std::string("f32")}}))->output();
    g.addOutput(g.addNode("Add", "y", {x, f})->output());
    checkAgainstInterpreter(g);
  }
  // A static input's shape is known; a batched one's is not.
  Graph fixed;
  Value* x = fixed.addInput("x", typeOf({2, 3, 4}));
  fixed.addOutput(fixed.addNode("Shape", "s", {x}, attrs({{"start", int64_t{1}}}))->output());
  auto model = CompiledModel::compile(fixed, "native", false);
  const std::vector<Tensor> in{randomTensor(Shape{2, 3, 4}, 1)};
  CHECK(maxRelativeError(model->run(in), interpret(fixed, in)) == 0);
  Graph batched;
  Value* y = batched.addInput("x", typeOf({kBatch, 3, 4}));
  batched.addOutput(batched.addNode("Shape", "s", {y})->output());
  CHECK_THROWS_AS(CompiledModel::compile(batched, "native", false), Error);
}

// --- Unary math, Pow, masks, Gelu and LayerNormalization ---------------------

TEST_CASE("unary math matches the reference over the float range", "[codegen][math]") {
  std::vector<float> sweep = sweepValues();
  // Halves round to even; 2^23 - 0.5 is the largest float with a fraction.
  for (float x : {0.5f, 1.5f, 2.5f, 3.5f, 8388607.5f, 8388608.f, 16777216.f, 0.49999997f, 1e-30f})
    for (float sign : {1.f, -1.f}) sweep.push_back(sign * x);
  const int64_t n = static_cast<int64_t>(sweep.size());
  // Rounding, sign and bit ops are exact; Exp, Sqrt, Reciprocal and Erf
  // (kiln's polynomial approximation) within a few float ulp.
  const std::vector<std::pair<std::string, double>> ops = {
      {"Exp", 3e-7},  {"Sqrt", 0},  {"Erf", 3e-7},  {"Reciprocal", 0}, {"Abs", 0},  {"Neg", 0},
      {"Floor", 0},   {"Ceil", 0},  {"Round", 0},   {"Sign", 0},
  };
  for (const char* cpu : {"native", "x86-64-v3", "x86-64"}) {
    for (const auto& [op, bound] : ops) {
      Graph g = unaryGraph(op, Shape{n});
      auto model = CompiledModel::compile(g, cpu, /*optimize=*/false);
      Tensor x(DType::F32, Shape{1, n});
      std::copy(sweep.begin(), sweep.end(), x.data<float>());
      const Tensor got = model->run({x})[0], want = interpret(g, {x})[0];
      const double error = worstRelativeError(got, want);
      INFO(op << " on " << cpu << ": worst relative error " << error);
      CHECK(error <= bound);
      // Zeros keep their sign (floor(-0.3) = -0, round(-0.4) = -0).
      for (int64_t i = 0; i < n; ++i)
        if (want.data<float>()[i] == 0.f)
          CHECK(std::signbit(got.data<float>()[i]) == std::signbit(want.data<float>()[i]));
    }
  }
}

TEST_CASE("Gelu, exact and tanh-approximated", "[codegen][activation]") {
  for (const char* approximate : {"none", "tanh"}) {
    Graph g = unaryGraph("Gelu", Shape{3, 37}, attrs({{"approximate", std::string(approximate)}}));
    const std::vector<Tensor> in{randomTensor(Shape{2, 3, 37}, 11, -9, 9)};
    for (const char* cpu : {"native", "x86-64"}) {
      auto model = CompiledModel::compile(g, cpu, /*optimize=*/false);
      INFO(approximate << " on " << cpu);
      CHECK(maxRelativeError(model->run(in), interpret(g, in)) <= 1e-6);
    }
  }
}

TEST_CASE("Pow: constant exponents, run-time exponents and negative bases", "[codegen][elementwise]") {
  // Bases include negatives, zeros and +-inf; run-time exponents integral and fractional.
  const std::vector<float> bases = {-3.f, -2.f, -1.f, -0.5f, -0.f, 0.f, 0.25f, 1.f, 1.5f, 2.f, 7.f, kInf, -kInf};
  const std::vector<float> exponents = {0.f, 0.5f, 1.f, 2.f, 3.f, -1.f, -2.f, 2.5f, -0.5f, 4.f};
  const int64_t nb = static_cast<int64_t>(bases.size()), ne = static_cast<int64_t>(exponents.size());
  Tensor x = Tensor::fromVector<float>(Shape{1, nb, 1}, bases);
  for (float e : exponents) {
    Graph g;
    g.name = "Pow by " + std::to_string(e);
    Value* in = g.addInput("x", typeOf({kBatch, nb, 1}));
    g.addOutput(g.addNode("Pow", "p", {in, g.addConstant("e", Tensor::scalar<float>(e))})->output());
    auto model = CompiledModel::compile(g, "native", /*optimize=*/false);
    INFO(g.name);
    CHECK(worstRelativeError(model->run({x})[0], interpret(g, {x})[0]) <= 1e-6);
  }
  Graph g;
  Value* in = g.addInput("x", typeOf({kBatch, nb, 1}));
  Value* y = g.addInput("y", typeOf({kBatch, 1, ne}));
  g.addOutput(g.addNode("Pow", "p", {in, y})->output());
  Tensor ys = Tensor::fromVector<float>(Shape{1, 1, ne}, exponents);
  for (const char* cpu : {"native", "x86-64"}) {
    auto model = CompiledModel::compile(g, cpu, /*optimize=*/false);
    INFO("run-time exponents on " << cpu);
    CHECK(worstRelativeError(model->run({x, ys})[0], interpret(g, {x, ys})[0]) <= 1e-6);
  }
  checkAgainstInterpreter(binaryGraph("Pow", Shape{kBatch, 3, 4}, Shape{4}, true, false, DType::F32));
}

TEST_CASE("comparisons, logic ops and Where broadcast into bool masks", "[codegen][elementwise]") {
  for (const char* op : {"Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"})
    for (DType t : {DType::F32, DType::I64, DType::I32}) {
      checkAgainstInterpreter(binaryGraph(op, Shape{kBatch, 3, 4}, Shape{3, 1}, true, false, t));
      checkAgainstInterpreter(binaryGraph(op, Shape{kBatch, 3, 1}, Shape{kBatch, 1, 4}, false, false, t));
    }
  checkAgainstInterpreter(binaryGraph("Equal", Shape{kBatch, 2, 5}, Shape{5}, false, false, DType::Bool));
  for (const char* op : {"And", "Or", "Xor"})
    checkAgainstInterpreter(binaryGraph(op, Shape{kBatch, 2, 3, 4}, Shape{3, 1}, false, true, DType::Bool));
  checkAgainstInterpreter(unaryGraph("Not", Shape{4, 5}, {}, DType::Bool));
  // NaN compares false except under Not(Equal).
  Tensor x = Tensor::fromVector<float>(Shape{1, 4}, {std::nanf(""), 1.f, -0.f, kInf});
  Tensor y = Tensor::fromVector<float>(Shape{1, 4}, {std::nanf(""), std::nanf(""), 0.f, kInf});
  for (const char* op : {"Equal", "Greater", "GreaterOrEqual"}) {
    Graph g = binaryGraph(op, Shape{kBatch, 4}, Shape{kBatch, 4}, false, false, DType::F32);
    auto model = CompiledModel::compile(g, "native", /*optimize=*/false);
    INFO(op);
    CHECK(maxRelativeError(model->run({x, y}), interpret(g, {x, y})) == 0);
  }
  for (DType t : {DType::F32, DType::I64, DType::Bool}) {
    Graph g;
    Value* condition = g.addInput("c", typeOf({kBatch, 3, 1}, DType::Bool));
    Value* a = g.addInput("a", typeOf({kBatch, 1, 4}, t));
    Value* b = g.addConstant("b", randomTensor(Shape{4}, 7, -3, 3, t));
    g.addOutput(g.addNode("Where", "w", {condition, a, b})->output());
    checkAgainstInterpreter(g);
  }
}

TEST_CASE("LayerNormalization over trailing dims, with its Mean and InvStdDev", "[codegen][normalization]") {
  struct Case {
    Shape x;
    int64_t axis;
    bool bias;
  };
  // Rows shorter than a vector, with remainders, and several vectors long.
  for (const Case& c : std::vector<Case>{{{kBatch, 3, 16}, -1, true},
                                         {{kBatch, 2, 7}, -1, false},
                                         {{kBatch, 4, 5, 6}, 2, true},
                                         {{kBatch, 4, 5, 6}, 1, true},
                                         {{kBatch, 70}, 1, true},
                                         {{kBatch, 2, 300}, -1, true}}) {
    Graph g;
    g.name = "LayerNormalization " + c.x.str() + " axis " + std::to_string(c.axis);
    Value* x = g.addInput("x", typeOf(c.x));
    const size_t axis = normalizeAxis(c.axis, c.x.rank());
    const Shape row(std::vector<int64_t>(c.x.dims.begin() + static_cast<std::ptrdiff_t>(axis), c.x.dims.end()));
    std::vector<Value*> inputs{x, g.addConstant("scale", randomTensor(row, 3, 0.5, 1.5))};
    if (c.bias) inputs.push_back(g.addConstant("bias", randomTensor(row, 4)));
    Attributes a;
    a.set("axis", c.axis);
    Node* n = g.addNode("LayerNormalization", "ln", inputs, a);
    for (Value* out : n->outputs) g.addOutput(out);
    checkAgainstInterpreter(g);
    checkAgainstInterpreter(g, "x86-64");
  }
}
