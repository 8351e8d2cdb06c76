// The import pipeline around op conversion: shape folding and the symbolic
// batch, function inlining and SeparableConv2D, external data, node
// ordering, input shapes, and the single report of unsupported features.
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

using Ints = std::vector<int64_t>;

Tensor randomTensor(Shape shape, unsigned seed) {
  Tensor t(DType::F32, std::move(shape));
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  for (int64_t i = 0; i < t.numElements(); ++i) t.data<float>()[i] = normal(rng);
  return t;
}

std::string readBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("x.view(x.size(0), -1) folds to a batch-preserving Reshape", "[frontend]") {
  Graph g = importTestModel("fold_view_batch");
  const Node& reshape = singleNode(g);
  CHECK(reshape.opName() == "Reshape");
  CHECK(reshape.attrs.getInts("shape") == Ints{0, -1});
  CHECK(reshape.output()->type.shape == Shape{kBatch, 48});
  CHECK(interpret(g, {randomTensor({2, 3, 4, 4}, 1)}).at(0).shape() == Shape{2, 48});
}

TEST_CASE("shape arithmetic on static shapes folds to constants", "[frontend]") {
  Graph g = importTestModel("fold_static_shape");
  const Node& reshape = singleNode(g);
  CHECK(reshape.attrs.getInts("shape") == Ints{2, 3, -1});
}

TEST_CASE("arithmetic on the symbolic batch is unsupported", "[frontend]") {
  std::string message = errorOf([] { importTestModel("fold_batch_arithmetic"); });
  CHECK(message.find("computation on the symbolic batch dimension") != std::string::npos);
  CHECK(message.find("'double' (Mul)") != std::string::npos);
}

TEST_CASE("model-local functions are inlined with attribute references", "[frontend]") {
  Graph g = importTestModel("function_inline");
  CHECK(opSequence(g) == std::vector<std::string>{"Conv", "LeakyRelu", "Conv", "LeakyRelu"});
  std::vector<Node*> nodes = g.nodes();
  CHECK(nodes[0]->name == "b1/conv");
  CHECK(nodes[1]->attrs.getFloat("alpha") == 0.3f);   // ref_attr_name 'slope' bound at the call
  CHECK(nodes[3]->attrs.getFloat("alpha") == 0.01f);  // unset reference: the op's default
  CHECK(nodes[0]->attrs.getInts("pads") == Ints{1, 1, 1, 1});
  CHECK(g.outputs().front()->name == "Y");
}

TEST_CASE("ai.kiln.keras SeparableConv2D becomes one IR op equal to its body", "[frontend]") {
  Graph keras = importTestModel("separable_keras");
  const Node& sep = singleNode(keras);
  CHECK(sep.opName() == "SeparableConv2D");
  CHECK(sep.attrs.getInts("pads") == Ints{1, 1, 1, 1});
  CHECK(sep.attrs.getInts("strides") == Ints{2, 2});
  CHECK(sep.attrs.getInt("depth_multiplier") == 2);
  Graph inlined = importTestModel("separable_inlined");
  CHECK(opSequence(inlined) == std::vector<std::string>{"Conv", "Conv"});
  Tensor x = randomTensor({2, 3, 9, 9}, 5);
  Tensor a = interpret(keras, {x}).at(0), b = interpret(inlined, {x}).at(0);
  REQUIRE(a.shape() == Shape{2, 4, 5, 5});
  REQUIRE(a.shape() == b.shape());
  for (int64_t i = 0; i < a.numElements(); ++i) CHECK(std::abs(a.data<float>()[i] - b.data<float>()[i]) < 1e-4f);
}

TEST_CASE("external data is read from the model's folder", "[frontend]") {
  std::string path = std::string(KILN_FRONTEND_MODELS) + "/external/model.onnx";
  Graph g = onnx_import::importModelFile(path);
  Tensor y = interpret(g, {Tensor::fromVector<float>(Shape{1, 3}, {1, 0, 0})}).at(0);
  CHECK(std::vector<float>(y.values<float>().begin(), y.values<float>().end()) == std::vector<float>{0, 1, 2, 3});
  std::string message = errorOf([&] { onnx_import::importModelBytes(readBytes(path), "mem.onnx"); });
  CHECK(message.find("mem.onnx: ") == 0);
  CHECK(message.find("external data") != std::string::npos);
}

TEST_CASE("every unsupported feature is listed in one error", "[frontend]") {
  std::string message = errorOf([] { importTestModel("unsupported_many"); });
  INFO(message);
  CHECK(message.find("unsupported model (4 problems)") != std::string::npos);
  CHECK(message.find("node 'det' (Det): unsupported op 'Det'") != std::string::npos);
  CHECK(message.find("node '#1(Multinomial)' (Multinomial): unsupported op 'Multinomial'") != std::string::npos);
  CHECK(message.find("node 'bn_train' (BatchNormalization): training_mode=1") != std::string::npos);
  CHECK(message.find("node 'pool_idx' (MaxPool): the Indices output") != std::string::npos);
  CHECK(std::count(message.begin(), message.end(), '\n') == 4);
  CHECK(errorOf([] { importTestModel("unsupported_dropout_training"); }).find("training_mode=1") != std::string::npos);
  CHECK(opSequence(importTestModel("dropout_training_zero_ratio")) == std::vector<std::string>{"Dropout"});
  message = errorOf([] { importTestModel("unsupported_einsum_int"); });
  INFO(message);
  CHECK(message.find("unsupported model (2 problems)") != std::string::npos);
  CHECK(message.find("node 'ein_int' (Einsum): Einsum of i64 operands is not supported (f32 only)") != std::string::npos);
  CHECK(message.find("node 'drop' (Dropout): training_mode=1") != std::string::npos);
}

TEST_CASE("Pow casts the exponent to the base's type, a float one of an integer base through f32", "[frontend]") {
  Graph g = importTestModel("pow_int_exponent");
  CHECK(opSequence(g) == std::vector<std::string>{"Cast", "Pow"});
  g = importTestModel("pow_int_base");
  CHECK(opSequence(g) == std::vector<std::string>{"Cast", "Pow", "Cast"});
  CHECK(g.outputs().front()->type.dtype == DType::I64);
  CHECK(errorOf([] { importTestModel("layernorm_stash_double"); }).find("node 'ln' (LayerNormalization): stash_type 11") !=
        std::string::npos);
}

TEST_CASE("Resize needs constant scales and sizes and keeps the batch", "[frontend][resize]") {
  std::string message = errorOf([] { importTestModel("unsupported_resize"); });
  INFO(message);
  CHECK(message.find("unsupported model (3 problems)") != std::string::npos);
  CHECK(message.find("node 'runtime_scales' (Resize): operand 'scales' (input 2) must be constant") != std::string::npos);
  CHECK(message.find("node 'batch_scaled' (Resize): scale 2 of the symbolic batch dim (only 1 is supported)") !=
        std::string::npos);
  CHECK(message.find("node 'batch_sized' (Resize): 'sizes' fixes the symbolic batch dim to 1") != std::string::npos);
  CHECK(errorOf([] { importTestModel("unsupported_resize_rounding"); })
            .find("node 'n0' (Resize): nearest_mode 'nearest_even' is not supported") != std::string::npos);
}

TEST_CASE("only the batch dimension may be symbolic", "[frontend]") {
  std::string message = errorOf([] { importTestModel("symbolic_dim"); });
  CHECK(message.find("graph input 'X': dimension 1 is symbolic ('C')") != std::string::npos);
  // The error says how to bind it, naming the input and its dims.
  CHECK(message.find("kiln compile --shape X=NxC with numbers for the named dims") != std::string::npos);
}

TEST_CASE("a dim_value of -1 is a dynamic dim that --shape binds", "[frontend]") {
  std::string message = errorOf([] { importTestModel("minus_one_dims"); });
  CHECK(message.find("graph input 'X': dimension 2 has no value") != std::string::npos);
  CHECK(message.find("--shape X=Nx3xD2xD3") != std::string::npos);
  onnx_import::ImportOptions options;
  options.inputShapes["X"] = {1, 3, 8, 5};
  Graph g = onnx_import::importModelFile(modelPath("minus_one_dims"), options);
  CHECK(g.inputs().at(0)->type.shape == Shape{{kBatch, 3, 8, 5}});
}

TEST_CASE("nodes are built in topological order", "[frontend]") {
  CHECK(opSequence(importTestModel("unsorted_nodes")) == std::vector<std::string>{"Sigmoid", "Relu"});
}

TEST_CASE("errors name the file and garbage never crashes", "[frontend]") {
  CHECK(errorOf([] { importTestModel("no_such_model"); }).find("no_such_model.onnx: cannot open") != std::string::npos);
  CHECK(errorOf([] { onnx_import::importModelBytes("", "empty.onnx"); }).find("empty") != std::string::npos);
  std::mt19937 rng(3);
  for (int round = 0; round < 200; ++round) {
    std::string bytes(static_cast<size_t>(rng() % 300), '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    CHECK(!errorOf([&] { onnx_import::importModelBytes(bytes, "noise.onnx"); }).empty());
  }
  // Prefixes and byte mutations of valid models import or fail cleanly.
  for (const char* name : {"conv_group", "separable_keras", "fold_view_batch", "op_Constant_ConstantOfShape"}) {
    std::string model = readBytes(modelPath(name));
    for (size_t cut = 0; cut < model.size(); cut += 7) {
      try {
        onnx_import::importModelBytes(model.substr(0, cut), "cut.onnx");
      } catch (const Error&) {
      }
    }
    for (int round = 0; round < 300; ++round) {
      std::string mutated = model;
      for (int k = 0; k < 3; ++k) mutated[rng() % mutated.size()] = static_cast<char>(rng());
      try {
        onnx_import::importModelBytes(mutated, "mutated.onnx");
      } catch (const Error&) {
      }
    }
  }
}

TEST_CASE("TensorProto files load", "[frontend]") {
  Tensor t = onnx_import::loadTensorProtoFile(std::string(KILN_FRONTEND_MODELS) + "/tensor_file.pb");
  CHECK(t.shape() == Shape{2, 3});
  CHECK(t.data<float>()[5] == 5.f);
}
