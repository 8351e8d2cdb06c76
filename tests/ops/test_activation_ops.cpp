// Spot checks of the activation ops against hand-computed values: Relu,
// LeakyRelu, Clip (bounds, NaN, bounds given at run time), HardSwish, Log
// (zero, negatives) and PRelu's broadcast slope.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>

#include "compiler/interp/interpreter.h"
#include "compiler/ir/graph.h"

using namespace kiln;

namespace {

// Runs `op` on x (the graph input declares a symbolic batch; the output must
// keep it), with an optional constant second input.
Tensor runActivation(const std::string& op, const Tensor& x, Attributes attrs = {}, const Tensor& second = {}) {
  Graph g;
  Shape declared = x.shape();
  declared[0] = kBatch;
  std::vector<Value*> inputs{g.addInput("x", TensorType{DType::F32, declared})};
  if (!second.empty()) inputs.push_back(g.addConstant("slope", second));
  Node* n = g.addNode(op, "act", inputs, std::move(attrs));
  g.addOutput(n->output());
  REQUIRE(n->output()->type.shape == declared);
  return interpret(g, {x}).at(0);
}

void requireValues(const Tensor& t, const std::vector<float>& want) {
  REQUIRE(t.numElements() == static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("element " << i);
    CHECK(t.data<float>()[i] == Approx(want[i]).margin(1e-6));
  }
}

const Tensor kRow = Tensor::fromVector<float>({1, 6}, {-4.f, -1.f, -0.f, 0.5f, 3.f, 8.f});

}  // namespace

TEST_CASE("Relu and LeakyRelu", "[ops][activation]") {
  requireValues(runActivation("Relu", kRow), {0.f, 0.f, 0.f, 0.5f, 3.f, 8.f});
  requireValues(runActivation("LeakyRelu", kRow), {-0.04f, -0.01f, 0.f, 0.5f, 3.f, 8.f});
  Attributes alpha;
  alpha.set("alpha", 0.5f);
  requireValues(runActivation("LeakyRelu", kRow, alpha), {-2.f, -0.5f, 0.f, 0.5f, 3.f, 8.f});
}

TEST_CASE("Clip bounds and NaN passthrough", "[ops][activation]") {
  Attributes relu6;
  relu6.set("min", 0.f);
  relu6.set("max", 6.f);
  requireValues(runActivation("Clip", kRow, relu6), {0.f, 0.f, 0.f, 0.5f, 3.f, 6.f});
  requireValues(runActivation("Clip", kRow), {-4.f, -1.f, 0.f, 0.5f, 3.f, 8.f});  // unbounded by default
  Tensor nan = runActivation("Clip", Tensor::fromVector<float>({1, 1}, {NAN}), relu6);
  CHECK(std::isnan(nan.data<float>()[0]));
}

TEST_CASE("Clip reads min and max given at run time", "[ops][activation]") {
  // x[N, 6] with min a rank-0 graph input and max a one-element one; an
  // omitted bound (null input) falls back to its attribute.
  Graph g;
  Value* x = g.addInput("x", TensorType{DType::F32, {kBatch, 6}});
  Value* lo = g.addInput("lo", TensorType{DType::F32, Shape{}});
  Value* hi = g.addInput("hi", TensorType{DType::F32, {1}});
  Attributes attrMin;
  attrMin.set("min", -2.f);
  g.addOutput(g.addNode("Clip", "both", {x, lo, hi})->output());
  g.addOutput(g.addNode("Clip", "max_only", {x, nullptr, hi}, attrMin)->output());
  REQUIRE(g.outputs()[0]->type.shape == Shape({kBatch, 6}));
  const Tensor xs = Tensor::fromVector<float>(
      {2, 6}, {-4.f, -1.f, -0.f, 0.5f, 3.f, 8.f, NAN, INFINITY, -INFINITY, 1.f, 2.f, -3.f});
  // Ordinary bounds, bounds crossed (max wins, as in ONNX), infinite bounds.
  for (auto [minValue, maxValue] : {std::pair{-1.f, 2.5f}, {1.f, -1.f}, {-INFINITY, INFINITY}}) {
    INFO("min " << minValue << ", max " << maxValue);
    std::vector<Tensor> y = interpret(g, {xs, Tensor::scalar(minValue), Tensor::fromVector<float>({1}, {maxValue})});
    for (int64_t i = 0; i < xs.numElements(); ++i) {
      const float v = xs.data<float>()[i];
      INFO("element " << i << " = " << v);
      const float both = std::min(std::max(v, minValue), maxValue), maxOnly = std::min(std::max(v, -2.f), maxValue);
      if (std::isnan(v)) {
        CHECK(std::isnan(y[0].data<float>()[i]));
        CHECK(std::isnan(y[1].data<float>()[i]));
      } else {
        CHECK(y[0].data<float>()[i] == both);
        CHECK(y[1].data<float>()[i] == maxOnly);
      }
    }
  }
}

TEST_CASE("Clip's run-time bounds must be one f32 value each", "[ops][activation]") {
  Graph g;
  Value* x = g.addInput("x", TensorType{DType::F32, {kBatch, 6}});
  Value* pair = g.addInput("pair", TensorType{DType::F32, {2}});
  Value* integer = g.addInput("integer", TensorType{DType::I64, Shape{}});
  Value* batched = g.addInput("batched", TensorType{DType::F32, {kBatch}});
  CHECK_THROWS_WITH(g.addNode("Clip", "c", {x, pair}), Catch::Contains("node 'c' (Clip)") && Catch::Contains("min"));
  CHECK_THROWS_WITH(g.addNode("Clip", "c", {x, nullptr, integer}), Catch::Contains("max (input 2)"));
  CHECK_THROWS_WITH(g.addNode("Clip", "c", {x, batched}), Catch::Contains("expected one f32 value"));
}

TEST_CASE("HardSwish is x * relu6(x + 3) / 6", "[ops][activation]") {
  requireValues(runActivation("HardSwish", kRow), {0.f, -1.f / 3.f, 0.f, 0.5f * 3.5f / 6.f, 3.f, 8.f});
}

TEST_CASE("Log is -inf at zero and NaN below", "[ops][activation]") {
  Tensor y = runActivation("Log", Tensor::fromVector<float>({1, 5}, {1.f, std::exp(2.f), 1e-30f, 0.f, -1.f}));
  CHECK(y.data<float>()[0] == 0.f);
  CHECK(y.data<float>()[1] == Approx(2.f).margin(1e-6));
  CHECK(y.data<float>()[2] == Approx(-30.f * std::log(10.f)).epsilon(1e-6));
  CHECK(y.data<float>()[3] == -INFINITY);
  CHECK(std::isnan(y.data<float>()[4]));
}

TEST_CASE("PRelu broadcasts a per-channel slope", "[ops][activation]") {
  Tensor x = Tensor::fromVector<float>({2, 3, 1, 2}, {-1, 1, -2, 2, -3, 3, -4, 4, -5, 5, -6, 6});
  Tensor slope = Tensor::fromVector<float>({3, 1, 1}, {0.f, 0.5f, 2.f});
  requireValues(runActivation("PRelu", x, {}, slope), {0, 1, -1, 2, -6, 3, 0, 4, -2.5f, 5, -12, 6});
  Graph g;
  Value* in = g.addInput("x", TensorType{DType::F32, {kBatch, 3, 1, 2}});
  CHECK_THROWS_WITH(g.addNode("PRelu", "p", {in, g.addConstant("s", Tensor(DType::F32, {4}))}),
                    Catch::Contains("node 'p' (PRelu)"));
}

TEST_CASE("Round halves to even; Floor, Ceil and Sign", "[ops][activation]") {
  const Tensor x = Tensor::fromVector<float>({1, 8}, {-2.5f, -1.5f, -0.5f, 0.5f, 1.5f, 2.5f, 2.7f, -2.2f});
  requireValues(runActivation("Round", x), {-2.f, -2.f, -0.f, 0.f, 2.f, 2.f, 3.f, -2.f});
  requireValues(runActivation("Floor", x), {-3.f, -2.f, -1.f, 0.f, 1.f, 2.f, 2.f, -3.f});
  requireValues(runActivation("Ceil", x), {-2.f, -1.f, -0.f, 1.f, 2.f, 3.f, 3.f, -2.f});
  requireValues(runActivation("Sign", kRow), {-1.f, -1.f, 0.f, 1.f, 1.f, 1.f});
}

TEST_CASE("Gelu: exact and tanh forms; unknown approximations are rejected", "[ops][activation]") {
  // Phi(1) = 0.8413447, Phi(-1) = 0.1586553; tanh form at 1: 0.8411920.
  const Tensor x = Tensor::fromVector<float>({1, 3}, {-1.f, 0.f, 1.f});
  requireValues(runActivation("Gelu", x), {-0.1586553f, 0.f, 0.8413447f});
  Attributes tanh;
  tanh.set("approximate", std::string("tanh"));
  requireValues(runActivation("Gelu", x, tanh), {-0.1588080f, 0.f, 0.8411920f});
  Attributes bad;
  bad.set("approximate", std::string("sigmoid"));
  CHECK_THROWS_WITH(runActivation("Gelu", x, bad), Catch::Contains("expected 'none' or 'tanh'"));
}
