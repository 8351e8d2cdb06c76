// Finite-difference gradient checks for every layer and the loss. Each check
// probes L = sum(y * r) for a fixed random r: dL/dx and dL/dparams from
// backward() against central differences (x +- h), the loss summed in double.
// Tolerance: |analytic - numeric| <= 2e-3 + 2e-2 * max(|analytic|, |numeric|)
// (float forward passes; h = 1e-2, or 1e-3 around kinks with inputs spaced
// further apart than 2h).
#include <catch2/catch.hpp>

#include <cmath>

#include "tests/trainer/trainer_test_util.h"
#include "trainer/loss.h"
#include "trainer/model.h"

using namespace kiln::train;
using kiln::train::testing::specFromJson;

namespace {

struct Probe {
  double h = 1e-2;
  bool training = true;
};

double weighted(const Tensor& y, const Tensor& r) {
  double s = 0.0;
  for (int64_t i = 0; i < y.size(); ++i) s += static_cast<double>(y[i]) * r[i];
  return s;
}

void expectClose(double analytic, double numeric, const std::string& what) {
  INFO(what << ": analytic " << analytic << " numeric " << numeric);
  CHECK(std::abs(analytic - numeric) <= 2e-3 + 2e-2 * std::max(std::abs(analytic), std::abs(numeric)));
}

// Random input in [-1, 1] for shape [batch] + perSample.
Tensor randomInput(Dims shape, uint64_t seed) {
  Rng rng(seed);
  Tensor x(std::move(shape));
  for (float& v : x.data) v = static_cast<float>(rng.uniform(-1, 1));
  return x;
}

void checkLayer(std::unique_ptr<Layer> layer, const Dims& perSample, Tensor x, Probe probe = {}) {
  Rng rng(7);
  layer->build(perSample, rng);
  // Non-trivial parameters (biases and BN gamma/beta start at 0/1).
  for (Param* p : layer->params())
    for (float& v : p->value.data) v = static_cast<float>(rng.uniform(-1, 1));
  Tensor y = layer->forward(x, probe.training);
  Tensor r = randomInput(y.shape, 99);
  Tensor dx = layer->backward(r);
  std::vector<Tensor> grads;
  for (Param* p : layer->params()) grads.push_back(p->grad);
  auto loss = [&] { return weighted(layer->forward(x, probe.training), r); };
  auto numeric = [&](float& v) {
    float saved = v;
    v = static_cast<float>(saved + probe.h);
    double plus = loss();
    v = static_cast<float>(saved - probe.h);
    double minus = loss();
    v = saved;
    return (plus - minus) / (2 * probe.h);
  };
  REQUIRE(dx.shape == x.shape);
  for (int64_t i = 0; i < x.size(); ++i) expectClose(dx[i], numeric(x[i]), layer->name() + " dx[" + std::to_string(i) + "]");
  std::vector<Param*> params = layer->params();
  for (size_t k = 0; k < params.size(); ++k)
    for (int64_t i = 0; i < params[k]->value.size(); ++i)
      expectClose(grads[k][i], numeric(params[k]->value[i]), params[k]->name + "[" + std::to_string(i) + "]");
}

void checkLayer(const std::string& json, const Dims& perSample, Tensor x, Probe probe = {}) {
  checkLayer(makeLayer(nlohmann::json::parse(json), 0), perSample, std::move(x), probe);
}

// Values i * step in shuffled order: no two closer than `step` (for max/relu kinks).
Tensor spacedInput(Dims shape, float step, float offset, uint64_t seed) {
  Tensor x(std::move(shape));
  std::vector<int64_t> order(static_cast<size_t>(x.size()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  Rng rng(seed);
  rng.shuffle(order);
  for (int64_t i = 0; i < x.size(); ++i) x[i] = offset + step * static_cast<float>(order[static_cast<size_t>(i)]);
  return x;
}

}  // namespace

TEST_CASE("Conv2D gradients: valid, bias, tanh") {
  checkLayer(R"({"type":"Conv2D","filters":4,"kernel_size":3,"activation":"tanh"})", {3, 6, 6}, randomInput({2, 3, 6, 6}, 1));
}

TEST_CASE("Conv2D gradients: same padding, strides 2, dilation 2, no bias") {
  checkLayer(R"({"type":"Conv2D","filters":3,"kernel_size":[3,2],"strides":2,"dilation_rate":2,"padding":"same","use_bias":false})",
             {2, 7, 6}, randomInput({2, 2, 7, 6}, 2));
}

TEST_CASE("DepthwiseConv2D gradients: depth_multiplier 2, same, sigmoid") {
  checkLayer(R"({"type":"DepthwiseConv2D","kernel_size":3,"depth_multiplier":2,"padding":"same","activation":"sigmoid"})",
             {3, 5, 5}, randomInput({2, 3, 5, 5}, 3));
}

TEST_CASE("SeparableConv2D gradients: depth_multiplier 2, strides 2, bias") {
  checkLayer(R"({"type":"SeparableConv2D","filters":4,"kernel_size":3,"strides":2,"depth_multiplier":2,"padding":"same"})",
             {3, 6, 6}, randomInput({2, 3, 6, 6}, 4));
}

TEST_CASE("BatchNormalization gradients: training statistics, images and features") {
  checkLayer(R"({"type":"BatchNormalization","momentum":0.9,"epsilon":0.001})", {3, 4, 4}, randomInput({3, 3, 4, 4}, 5));
  checkLayer(R"({"type":"BatchNormalization"})", {5}, randomInput({4, 5}, 6));
}

// Sequential fuses BatchNormalization + Activation("relu") into the BN
// layer. h = 1e-3 keeps the probes off the ReLU's kink for these inputs.
TEST_CASE("BatchNormalization gradients: fused ReLU, training and inference") {
  for (bool training : {true, false}) {
    auto bn = std::make_unique<BatchNormalization>("bn", BatchNormConfig{});
    bn->fuseRelu();
    checkLayer(std::move(bn), {3, 4, 4}, randomInput({3, 3, 4, 4}, 11), Probe{1e-3, training});
  }
}

TEST_CASE("A model fuses BatchNormalization + ReLU and computes what the two layers compute") {
  const ModelSpec spec = specFromJson(R"({"input_shape": [5, 5, 3],
    "layers": [{"type": "BatchNormalization"}, {"type": "Activation", "activation": "relu"}, {"type": "Flatten"},
               {"type": "Dense", "units": 4}]})");
  Sequential model(spec, 3);
  // The model's Activation passes through: its BN applies the ReLU.
  CHECK(model.layers()[1]->forward(Tensor({1, 3}, -1.0f), false)[0] == -1.0f);
  const Tensor x = randomInput({4, 3, 5, 5}, 12);
  const Tensor y = model.forward(x, true);
  const Tensor r = randomInput(y.shape, 13);
  model.backward(r);
  // The same layers unfused: a fresh BN with the model's parameters, then
  // the model's own (pass-through) Activation replaced by a real ReLU.
  BatchNormalization bn("bn", BatchNormConfig{});
  Rng rng(0);
  bn.build({3, 5, 5}, rng);
  Activation relu("relu", ActivationKind::Relu);
  Tensor h = relu.forward(bn.forward(x, true), true);
  for (size_t i = 2; i < model.layers().size(); ++i) h = model.layers()[i]->forward(std::move(h), true);
  REQUIRE(h.shape == y.shape);
  for (int64_t i = 0; i < y.size(); ++i) CHECK(h[i] == y[i]);
  Tensor g = r;
  for (size_t i = model.layers().size() - 1; i >= 2; --i) g = model.layers()[i]->backward(std::move(g));
  bn.backward(relu.backward(std::move(g)));
  const std::vector<Param*> fused = model.layers()[0]->params(), plain = bn.params();
  for (size_t k = 0; k < plain.size(); ++k)
    for (int64_t i = 0; i < plain[k]->grad.size(); ++i) CHECK(plain[k]->grad[i] == Approx(fused[k]->grad[i]).margin(1e-6));
}

TEST_CASE("BatchNormalization gradients: inference statistics") {
  checkLayer(R"({"type":"BatchNormalization"})", {3, 4, 4}, randomInput({2, 3, 4, 4}, 7), Probe{1e-2, false});
}

TEST_CASE("Dense gradients: bias, sigmoid / softmax") {
  checkLayer(R"({"type":"Dense","units":4,"activation":"sigmoid"})", {6}, randomInput({3, 6}, 8));
  checkLayer(R"({"type":"Dense","units":5,"activation":"softmax","use_bias":false})", {6}, randomInput({3, 6}, 9));
}

TEST_CASE("MaxPooling2D gradients: valid and same with strides") {
  checkLayer(R"({"type":"MaxPooling2D","pool_size":2})", {2, 6, 6}, spacedInput({2, 2, 6, 6}, 0.01f, -0.7f, 10), Probe{1e-3});
  checkLayer(R"({"type":"MaxPooling2D","pool_size":3,"strides":2,"padding":"same"})", {2, 5, 5},
             spacedInput({2, 2, 5, 5}, 0.01f, -0.5f, 11), Probe{1e-3});
}

TEST_CASE("AveragePooling2D gradients: valid and same (padding excluded)") {
  checkLayer(R"({"type":"AveragePooling2D","pool_size":2})", {2, 6, 6}, randomInput({2, 2, 6, 6}, 12));
  checkLayer(R"({"type":"AveragePooling2D","pool_size":[3,2],"strides":[2,1],"padding":"same"})", {2, 5, 5},
             randomInput({2, 2, 5, 5}, 13));
}

TEST_CASE("GlobalAveragePooling2D and Flatten gradients") {
  checkLayer(R"({"type":"GlobalAveragePooling2D"})", {3, 4, 5}, randomInput({2, 3, 4, 5}, 14));
  checkLayer(R"({"type":"Flatten"})", {3, 4, 5}, randomInput({2, 3, 4, 5}, 15));
}

TEST_CASE("Activation gradients: relu, sigmoid, tanh, softmax") {
  // relu: values spaced 0.01 apart, none within 2h of 0.
  checkLayer(R"({"type":"Activation","activation":"relu"})", {3, 4, 4}, spacedInput({2, 3, 4, 4}, 0.01f, -0.955f, 16), Probe{1e-3});
  for (const char* act : {"sigmoid", "tanh", "softmax"})
    checkLayer(std::string(R"({"type":"Activation","activation":")") + act + "\"}", {4, 2, 3}, randomInput({2, 4, 2, 3}, 17));
}

TEST_CASE("Dropout: training masks and scales, backward uses the same mask, inference is identity") {
  std::unique_ptr<Layer> layer = makeLayer(nlohmann::json::parse(R"({"type":"Dropout","rate":0.5})"), 0);
  Rng rng(1);
  layer->build({100}, rng);
  Tensor x = randomInput({4, 100}, 18);
  Tensor y = layer->forward(x, true);
  Tensor dx = layer->backward(Tensor(y.shape, 1.0f));
  int64_t dropped = 0;
  for (int64_t i = 0; i < x.size(); ++i) {
    bool kept = y[i] != 0.0f;
    dropped += !kept;
    CHECK(y[i] == Approx(kept ? 2.0f * x[i] : 0.0f));
    CHECK(dx[i] == (kept ? 2.0f : 0.0f));
  }
  CHECK(dropped > 120);
  CHECK(dropped < 280);
  CHECK(layer->forward(x, false).data == x.data);
}

TEST_CASE("Categorical crossentropy gradients: probabilities and logits, with label smoothing") {
  const std::vector<uint8_t> labels{2, 0, 3};
  for (bool fromLogits : {false, true})
    for (double smoothing : {0.0, 0.1}) {
      CategoricalCrossentropy loss(LossConfig{fromLogits, smoothing});
      Tensor pred = randomInput({3, 4}, 19);
      if (!fromLogits) {  // valid probabilities
        for (int64_t n = 0; n < 3; ++n) {
          double s = 0;
          for (int64_t k = 0; k < 4; ++k) s += (pred[n * 4 + k] = std::exp(pred[n * 4 + k]));
          for (int64_t k = 0; k < 4; ++k) pred[n * 4 + k] = static_cast<float>(pred[n * 4 + k] / s);
        }
      }
      Tensor grad;
      loss.compute(pred, labels, &grad);
      for (int64_t i = 0; i < pred.size(); ++i) {
        float saved = pred[i];
        const double h = 1e-3;
        pred[i] = static_cast<float>(saved + h);
        double plus = loss.compute(pred, labels, nullptr);
        pred[i] = static_cast<float>(saved - h);
        double minus = loss.compute(pred, labels, nullptr);
        pred[i] = saved;
        expectClose(grad[i], (plus - minus) / (2 * h), "loss grad " + std::to_string(i));
      }
    }
}

TEST_CASE("Categorical crossentropy values: one-hot, smoothing, logits == softmax + probabilities") {
  Tensor probs({1, 4});
  probs.data = {0.1f, 0.2f, 0.6f, 0.1f};
  const std::vector<uint8_t> label{2};
  CHECK(CategoricalCrossentropy({false, 0.0}).compute(probs, label, nullptr) == Approx(-std::log(0.6)));
  // t = [0.05, 0.05, 0.85, 0.05]
  double expected = -(0.05 * std::log(0.1) + 0.05 * std::log(0.2) + 0.85 * std::log(0.6) + 0.05 * std::log(0.1));
  CHECK(CategoricalCrossentropy({false, 0.2}).compute(probs, label, nullptr) == Approx(expected));
  Tensor logits({1, 4});
  for (int k = 0; k < 4; ++k) logits[k] = static_cast<float>(std::log(probs[k]));
  CHECK(CategoricalCrossentropy({true, 0.2}).compute(logits, label, nullptr) == Approx(expected).epsilon(1e-5));
}

// oneDNN picks blocked layouts and primitives per batch size: a batch of 3
// must match its samples run one at a time (batch-1 primitives of another
// layer), whose gradients the small-layer checks above verify.
TEST_CASE("Conv2D: a batch matches its samples run one at a time") {
  auto conv = [] {
    std::unique_ptr<Layer> layer = makeLayer(nlohmann::json::parse(R"({"type":"Conv2D","filters":4,"padding":"same"})"), 0);
    Rng rng(7);
    layer->build({16, 56, 56}, rng);
    for (float& v : layer->params()[1]->value.data) v = static_cast<float>(rng.uniform(-1, 1));
    return layer;
  };
  std::unique_ptr<Layer> batched = conv(), single = conv();
  const Tensor x = randomInput({3, 16, 56, 56}, 1);
  const Tensor y = batched->forward(x, true);
  const Tensor r = randomInput(y.shape, 99);
  const Tensor dx = batched->backward(r);
  std::vector<double> kernelGrad(batched->params()[0]->grad.data.size(), 0.0);
  auto sample = [](const Tensor& t, int64_t n) {
    Dims shape = t.shape;
    shape[0] = 1;
    Tensor s(shape);
    std::copy(t.ptr() + n * s.size(), t.ptr() + (n + 1) * s.size(), s.ptr());
    return s;
  };
  for (int64_t n = 0; n < 3; ++n) {
    const Tensor yn = single->forward(sample(x, n), true), dxn = single->backward(sample(r, n));
    for (int64_t i = 0; i < yn.size(); ++i) REQUIRE(y[n * yn.size() + i] == Approx(yn[i]).margin(1e-5));
    for (int64_t i = 0; i < dxn.size(); ++i) REQUIRE(dx[n * dxn.size() + i] == Approx(dxn[i]).margin(1e-5));
    const Tensor& g = single->params()[0]->grad;
    for (int64_t i = 0; i < g.size(); ++i) kernelGrad[static_cast<size_t>(i)] += g[i];
  }
  for (int64_t i = 0; i < batched->params()[0]->grad.size(); ++i)
    REQUIRE(batched->params()[0]->grad[i] == Approx(kernelGrad[static_cast<size_t>(i)]).epsilon(1e-4).margin(1e-3));
}

// A model's first layer skips dL/dx (nobody reads it) but still sets its
// weight gradient, equal to that of the same layer computing dL/dx.
TEST_CASE("The first layer of a model skips its input gradient and keeps its weight gradient") {
  const ModelSpec spec = specFromJson(R"({"input_shape": [6, 6, 2],
    "layers": [{"type": "Conv2D", "filters": 3, "kernel_size": 3, "padding": "same"}, {"type": "Flatten"},
               {"type": "Dense", "units": 4}]})");
  Sequential model(spec, 3);
  Layer& first = *model.layers().front();
  REQUIRE_FALSE(first.inputGradientNeeded());
  const Tensor x = randomInput({2, 2, 6, 6}, 5);
  Tensor y = model.forward(x, true);
  model.backward(randomInput(y.shape, 6));
  const Tensor modelGrad = first.params()[0]->grad;
  // The same forward/backward through the first layer alone, with dL/dx.
  Tensor h = first.forward(x, true);
  for (size_t i = 1; i < model.layers().size(); ++i) h = model.layers()[i]->forward(std::move(h), true);
  Tensor g = randomInput(h.shape, 6);
  for (size_t i = model.layers().size() - 1; i >= 1; --i) g = model.layers()[i]->backward(std::move(g));
  first.setInputGradientNeeded(true);
  const Tensor dx = first.backward(std::move(g));
  CHECK(dx.shape == x.shape);
  REQUIRE(first.params()[0]->grad.size() == modelGrad.size());
  for (int64_t i = 0; i < modelGrad.size(); ++i) CHECK(first.params()[0]->grad[i] == modelGrad[i]);
}
