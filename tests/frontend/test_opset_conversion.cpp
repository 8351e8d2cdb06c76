// Models of opsets below 11, which the importer upgrades with ONNX's version
// converter: they compute what the same models written at opset 13 do, and
// what the converter cannot upgrade is reported naming the node.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include "compiler/interp/interpreter.h"
#include "tests/frontend/frontend_test_util.h"

using namespace kiln;
using namespace kiln::test;

namespace {

// Imports both models, checks they have the same ops, and runs both on `x`;
// the outputs must agree to float32 rounding.
void requireSameModel(const std::string& old, const std::string& reference, const Tensor& x) {
  INFO(old << " vs " << reference);
  Graph a = importTestModel(old), b = importTestModel(reference);
  CHECK(opSequence(a) == opSequence(b));
  Tensor ya = interpret(a, {x}).at(0), yb = interpret(b, {x}).at(0);
  REQUIRE(ya.shape() == yb.shape());
  float worst = 0;
  for (int64_t i = 0; i < ya.numElements(); ++i)
    worst = std::max(worst, std::abs(ya.data<float>()[i] - yb.data<float>()[i]));
  CHECK(worst <= 1e-6f);
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("an opset-9 CNN imports and computes what it does at opset 13", "[frontend][opset]") {
  requireSameModel("cnn_opset9", "cnn_opset13", Tensor::uniform({2, 3, 6, 6}, 1));
}

TEST_CASE("opset-6 and opset-8 forms import like their opset-13 equivalents", "[frontend][opset]") {
  // BatchNormalization's spatial=1 (opsets 7-8).
  requireSameModel("cnn_opset8_spatial", "cnn_opset13", Tensor::uniform({3, 3, 6, 6}, 2));
  // IR 3 (initializers listed as inputs), is_test, Clip's and Pad's
  // attributes, broadcast=1: the converter adds initializers that are not
  // inputs, which IR 3 forbids.
  requireSameModel("legacy_opset6", "legacy_opset13", Tensor::uniform({1, 3, 6, 6}, 3));
  // A constant Pad without `value`, which the converter reads as required.
  requireSameModel("pad_opset10", "pad_opset13", Tensor::uniform({2, 3, 5, 5}, 4));
}

// The converter turns them into opset-11 Resizes with the opset-11 defaults
// (half_pixel); the importer writes their own semantics out (asymmetric,
// floor when upsampling, ceil when downsampling).
TEST_CASE("Upsample (opsets 7, 9) and Resize-10 keep their sampling", "[frontend][opset][resize]") {
  const std::string dir = std::string(KILN_FRONTEND_MODELS) + "/";
  const Tensor x = onnx_import::loadTensorProtoFile(dir + "legacy_resize_input.pb");
  for (const char* name : {"upsample7_nearest", "upsample9_linear", "resize10_nearest_down", "resize10_linear"}) {
    INFO(name);
    Graph g = importTestModel(name);
    CHECK(opSequence(g) == std::vector<std::string>{"Resize"});
    const Tensor want = onnx_import::loadTensorProtoFile(dir + name + "_expected.pb");
    const Tensor got = interpret(g, {x}).at(0);
    REQUIRE(got.shape() == want.shape());
    for (int64_t i = 0; i < got.numElements(); ++i) CHECK(std::abs(got.data<float>()[i] - want.data<float>()[i]) < 1e-6f);
  }
  CHECK(contains(errorOf([] { importTestModel("resize10_nearest_mixed"); }), "scales some axes up and others down"));
}

TEST_CASE("an opset-9 model's external data is read after the conversion", "[frontend][opset]") {
  Graph g = onnx_import::importModelFile(std::string(KILN_FRONTEND_MODELS) + "/external/model_opset9.onnx");
  Tensor y = interpret(g, {Tensor::fromVector<float>(Shape{1, 3}, {0, 1, 0})}).at(0);
  CHECK(std::vector<float>(y.values<float>().begin(), y.values<float>().end()) == std::vector<float>{4, 5, 6, 7});
}

TEST_CASE("what the converter cannot upgrade is reported naming the node", "[frontend][opset]") {
  std::string message = errorOf([] { importTestModel("opset8_bn_spatial0"); });
  INFO(message);
  CHECK(contains(message, "opset8_bn_spatial0.onnx: unsupported model (1 problem)"));
  CHECK(contains(message, "node 'bn' (BatchNormalization): ONNX's version converter cannot upgrade it from opset 8 to "
                          "11: Attribute spatial must have value 1"));
  CHECK(contains(message, "kiln imports opsets 11 to 17, and opsets 1 to 10 upgraded by ONNX's version converter"));
  // The node is unnamed, third in the file.
  message = errorOf([] { importTestModel("opset7_unnamed_bn_spatial0"); });
  CHECK(contains(message, "node '#2(BatchNormalization)' (BatchNormalization): ONNX's version converter cannot "
                          "upgrade it from opset 7 to 11"));
  message = errorOf([] { importTestModel("opset6_bias_axis1"); });
  CHECK(contains(message, "node 'bias' (Add): ONNX's version converter would line input 'B' (broadcast along axis 1) "
                          "up with axis 0"));
  message = errorOf([] { importTestModel("opset10_function"); });
  CHECK(contains(message, "node 'act' (Act): the op is of domain 'custom', not ONNX's"));
}

TEST_CASE("an old model kiln cannot import is reported as the file has it", "[frontend][opset]") {
  std::string message = errorOf([] { importTestModel("opset9_upsample"); });
  INFO(message);
  CHECK(contains(message, "unsupported model (1 problem):\n  node 'up' (Upsample): mode 'cubic' is not supported"));
  CHECK(!contains(message, "Resize"));
}

TEST_CASE("mutated old models import or fail cleanly", "[frontend][opset]") {
  std::mt19937 rng(5);
  for (const char* name : {"cnn_opset9", "legacy_opset6"}) {
    std::ifstream in(modelPath(name), std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    const std::string model = bytes.str();
    REQUIRE(!model.empty());
    int imported = 0;  // mutations of weights change no structure
    for (int round = 0; round < 300; ++round) {
      std::string mutated = model;
      for (int k = 0; k < 3; ++k) mutated[rng() % mutated.size()] = static_cast<char>(rng());
      try {
        onnx_import::importModelBytes(mutated, "mutated.onnx");
        ++imported;
      } catch (const Error&) {
      }
    }
    CHECK(imported > 0);
  }
}
