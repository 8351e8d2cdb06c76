// Training behaviour: bitwise determinism with one thread, early stopping
// with best-weights restore, spec validation, and a short real Fashion-MNIST
// fit that beats chance.
#include <catch2/catch.hpp>

#include <filesystem>

#include "tests/trainer/trainer_test_util.h"
#include "trainer/kernels.h"
#include "trainer/fit.h"

using namespace kiln::train;
using kiln::train::testing::specFromJson;
using kiln::train::testing::syntheticImages;

namespace {

// Every layer kind, augmentation and dropout: all randomness goes through the seed.
const char* kSmallSpec = R"({
  "name": "small", "input_shape": [9, 9, 1],
  "layers": [
    {"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"type": "BatchNormalization", "momentum": 0.9},
    {"type": "DepthwiseConv2D", "kernel_size": 3, "depth_multiplier": 2},
    {"type": "SeparableConv2D", "filters": 6, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"type": "MaxPooling2D", "pool_size": 2, "padding": "same"},
    {"type": "AveragePooling2D", "pool_size": 2, "strides": 1},
    {"type": "Dropout", "rate": 0.2},
    {"type": "Flatten"},
    {"type": "Dense", "units": 10, "activation": "softmax"}
  ],
  "training": {"batch_size": 16, "validation_size": 32,
               "optimizer": {"type": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": true, "weight_decay": 0.001},
               "lr_schedule": {"type": "step", "drop_factor": 0.5, "every_epochs": 1},
               "augmentation": {"max_shift": 1, "horizontal_flip": true}}
})";

std::vector<Tensor> trainedState(uint64_t seed) {
  ModelSpec spec = specFromJson(kSmallSpec);
  TrainValSplit data{syntheticImages(64, 1, 9, 9, 1), syntheticImages(32, 1, 9, 9, 2)};
  Sequential model(spec, seed);
  FitOptions opts;
  opts.epochs = 2;
  opts.seed = seed;
  fit(model, spec.training, data, opts);
  return model.saveState();
}

bool sameBits(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].data != b[i].data) return false;
  return true;
}

}  // namespace

TEST_CASE("One thread and one seed give identical weights") {
  setMathThreads(1);
  std::vector<Tensor> first = trainedState(5);
  CHECK(sameBits(first, trainedState(5)));
  CHECK_FALSE(sameBits(first, trainedState(6)));
  setMathThreads(2);
}

TEST_CASE("Early stopping restores the best epoch's weights") {
  // Random labels: the validation loss stops improving quickly.
  ModelSpec spec = specFromJson(R"({
    "input_shape": [6, 6, 1],
    "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 32, "activation": "relu"},
               {"type": "BatchNormalization"}, {"type": "Dense", "units": 10}],
    "training": {"batch_size": 8, "loss": {"from_logits": true},
                 "optimizer": {"type": "adam", "learning_rate": 0.05},
                 "early_stopping": {"patience": 2, "restore_best_weights": true}}
  })");
  TrainValSplit data{syntheticImages(64, 1, 6, 6, 3), syntheticImages(40, 1, 6, 6, 4)};
  Rng rng(9);
  for (uint8_t& l : data.train.labels) l = static_cast<uint8_t>(rng.below(10));
  for (uint8_t& l : data.validation.labels) l = static_cast<uint8_t>(rng.below(10));
  Sequential model(spec, 1);
  FitOptions opts;
  opts.epochs = 30;
  FitResult r = fit(model, spec.training, data, opts);
  REQUIRE(r.stoppedEarly);
  CHECK(static_cast<int64_t>(r.history.size()) == r.bestEpoch + 1 + 2);
  for (const EpochRecord& e : r.history) CHECK(e.validation.loss >= r.history[static_cast<size_t>(r.bestEpoch)].validation.loss);
  Metrics now = evaluate(model, spec.training.loss, data.validation, 8);
  CHECK(now.loss == Approx(r.history[static_cast<size_t>(r.bestEpoch)].validation.loss).epsilon(1e-6));
}

TEST_CASE("Spec errors name the layer and key") {
  CHECK_THROWS_WITH(Sequential(specFromJson(R"({"input_shape": [4,4,1], "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 3, "unit": 4}]})"), 0),
                    Catch::Contains("unknown key 'unit'"));
  CHECK_THROWS_WITH(Sequential(specFromJson(R"({"input_shape": [4,4,1], "layers": [{"type": "Conv3D"}]})"), 0),
                    Catch::Contains("unknown layer type"));
  CHECK_THROWS_WITH(Sequential(specFromJson(R"({"input_shape": [4,4,1], "layers": [{"type": "Dense", "units": 3}]})"), 0),
                    Catch::Contains("needs a flat input"));
  CHECK_THROWS_WITH(Sequential(specFromJson(R"({"input_shape": [4,4,1], "layers": [{"type": "Conv2D", "filters": 2, "kernel_size": 5}]})"), 0),
                    Catch::Contains("does not fit"));
  CHECK_THROWS_AS(specFromJson(R"({"input_shape": [4,4,1], "layers": [{"type": "Flatten"}], "training": {"optimizer": {"type": "lamb"}}})"),
                  SpecError);
}

TEST_CASE("A short Fashion-MNIST fit (2000 samples, 1 epoch) beats chance") {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist")) {
    WARN("dataset-fashion-mnist is not installed; skipped");
    return;
  }
  ModelSpec spec = specFromJson(R"({
    "input_shape": [28, 28, 1],
    "layers": [
      {"type": "Conv2D", "filters": 8, "kernel_size": 3, "strides": 2, "activation": "relu", "kernel_initializer": "he_normal"},
      {"type": "MaxPooling2D", "pool_size": 2},
      {"type": "Flatten"},
      {"type": "Dense", "units": 10, "activation": "softmax"}
    ],
    "training": {"batch_size": 32, "optimizer": {"type": "adam", "learning_rate": 0.003}}
  })");
  TrainValSplit data = loadTrainValSplit(DatasetFolder("fashion-mnist"), 10000, 0);
  data.validation = data.validation.subset([] {
    std::vector<int64_t> first(2000);
    for (size_t i = 0; i < first.size(); ++i) first[i] = static_cast<int64_t>(i);
    return first;
  }());
  Sequential model(spec, 0);
  FitOptions opts;
  opts.trainLimit = 2000;
  FitResult r = fit(model, spec.training, data, opts);
  INFO("validation accuracy " << r.history[0].validation.accuracy);
  CHECK(r.history[0].validation.accuracy > 0.5);  // chance: 0.1
}
