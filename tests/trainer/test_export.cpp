// ONNX export round trip: models with every exportable layer, trained a few
// steps (so BN statistics are not the defaults), exported, imported by
// kiln's ONNX frontend and run by the reference interpreter; the outputs
// must match the trainer's own inference within 1e-5.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <filesystem>

#include "compiler/interp/interpreter.h"
#include "frontends/onnx/onnx_importer.h"
#include "tests/trainer/trainer_test_util.h"
#include "trainer/fit.h"
#include "trainer/onnx_export.h"

using namespace kiln::train;
using kiln::train::testing::specFromJson;
using kiln::train::testing::syntheticImages;

namespace {

void roundTrip(const std::string& specJson, const std::string& file) {
  ModelSpec spec = specFromJson(specJson);
  const Dims& in = spec.inputShape;
  TrainValSplit data{syntheticImages(48, in[0], in[1], in[2], 1), syntheticImages(16, in[0], in[1], in[2], 2)};
  Sequential model(spec, 3);
  FitOptions opts;
  opts.epochs = 1;
  fit(model, spec.training, data, opts);

  std::string path = (std::filesystem::temp_directory_path() / file).string();
  exportOnnx(model, path);
  kiln::Graph graph = kiln::onnx_import::importModelFile(path);

  Tensor x = syntheticImages(5, in[0], in[1], in[2], 7).images;
  Tensor expected = model.forward(x, false);
  kiln::Tensor input = kiln::Tensor::fromVector<float>(kiln::Shape{5, in[0], in[1], in[2]}, x.data);
  std::vector<kiln::Tensor> outputs = kiln::interpret(graph, {input});
  REQUIRE(outputs.size() == 1);
  REQUIRE(outputs[0].shape() == kiln::Shape{5, expected.dim(1)});
  std::span<const float> got = outputs[0].values<float>();
  double worst = 0;
  for (int64_t i = 0; i < expected.size(); ++i) worst = std::max(worst, static_cast<double>(std::abs(got[static_cast<size_t>(i)] - expected[i])));
  INFO(file << ": max |interpreter - trainer| = " << worst);
  CHECK(worst <= 1e-5);
}

}  // namespace

TEST_CASE("Export round trip: convolutions with bias/activations, both pools, Flatten, Dense, BN on features") {
  roundTrip(R"({
    "name": "every_conv", "input_shape": [12, 12, 2],
    "layers": [
      {"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "dilation_rate": 2, "activation": "relu"},
      {"type": "BatchNormalization", "momentum": 0.5},
      {"type": "DepthwiseConv2D", "kernel_size": 3, "depth_multiplier": 2, "activation": "tanh"},
      {"type": "SeparableConv2D", "filters": 6, "kernel_size": 3, "strides": 2, "padding": "same", "depth_multiplier": 2, "activation": "sigmoid"},
      {"type": "MaxPooling2D", "pool_size": 2, "padding": "same"},
      {"type": "AveragePooling2D", "pool_size": 2, "strides": 1, "padding": "same"},
      {"type": "Flatten"},
      {"type": "Dense", "units": 8, "activation": "relu"},
      {"type": "BatchNormalization", "momentum": 0.5},
      {"type": "Dropout", "rate": 0.3},
      {"type": "Dense", "units": 10},
      {"type": "Activation", "activation": "softmax"}
    ],
    "training": {"batch_size": 16}
  })", "kiln_trainer_every_conv.onnx");
}

TEST_CASE("Export round trip: no-bias convs, BN + ReLU, SeparableConv2D, GlobalAveragePooling2D, logits") {
  roundTrip(R"({
    "name": "separable_gap", "input_shape": [10, 10, 1],
    "layers": [
      {"type": "Conv2D", "filters": 4, "kernel_size": [3, 2], "strides": 2, "use_bias": false},
      {"type": "BatchNormalization", "momentum": 0.5, "epsilon": 0.01},
      {"type": "Activation", "activation": "relu"},
      {"type": "SeparableConv2D", "filters": 8, "kernel_size": 3, "padding": "same", "use_bias": false},
      {"type": "BatchNormalization", "momentum": 0.5},
      {"type": "Activation", "activation": "tanh"},
      {"type": "GlobalAveragePooling2D"},
      {"type": "Dense", "units": 10, "use_bias": false}
    ],
    "training": {"batch_size": 16, "loss": {"from_logits": true}, "optimizer": {"type": "rmsprop", "learning_rate": 0.01}}
  })", "kiln_trainer_separable_gap.onnx");
}

TEST_CASE("The shipped Fashion-MNIST spec builds and exports") {
  ModelSpec spec = loadSpecFile(std::string(KILN_SOURCE_DIR_FOR_TRAINER) + "/examples/fashion_mnist/separable_cnn.json");
  Sequential model(spec, 0);
  CHECK(model.outputShape() == Dims{10});
  std::string path = (std::filesystem::temp_directory_path() / "kiln_trainer_shipped.onnx").string();
  exportOnnx(model, path);
  CHECK(kiln::onnx_import::importModelFile(path).nodes().size() > 0);
}

// A failed export leaves neither a partial model nor its temporary file.
TEST_CASE("An export that cannot be put in place leaves nothing behind") {
  namespace fs = std::filesystem;
  ModelSpec spec = loadSpecFile(std::string(KILN_SOURCE_DIR_FOR_TRAINER) + "/examples/fashion_mnist/separable_cnn.json");
  Sequential model(spec, 0);
  const fs::path dir = fs::temp_directory_path() / ("kiln_trainer_export_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "model.onnx" / "occupied");  // a folder where the file should go
  CHECK_THROWS_AS(exportOnnx(model, (dir / "model.onnx").string()), ExportError);
  CHECK(fs::is_directory(dir / "model.onnx" / "occupied"));
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);  // no temporary left
  exportOnnx(model, (dir / "fine.onnx").string());
  CHECK(kiln::onnx_import::importModelFile((dir / "fine.onnx").string()).nodes().size() > 0);
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 2);
  fs::remove_all(dir);
}
