// One test per ONNX -> IR conversion rule: the IR op(s) a model becomes and
// the attributes the importer resolves (auto_pad, shape operands, defaults).
#include <cmath>
#include <limits>

#include "compiler/interp/interpreter.h"
#include "tests/frontend/frontend_test_util.h"

using namespace kiln;
using namespace kiln::test;

namespace {

using Ints = std::vector<int64_t>;

const Node& importSingle(const std::string& name, Graph& g) {
  g = importTestModel(name);
  return singleNode(g);
}

}  // namespace

TEST_CASE("ops with the ONNX form import as the same IR op", "[frontend]") {
  for (const char* op : {"Relu", "Sigmoid", "Tanh", "Softplus", "HardSwish", "Identity", "PRelu", "Add", "Sub", "Mul",
                         "Div", "Sum", "Max", "Min", "Mean", "GlobalAveragePool", "GlobalMaxPool", "MatMul",
                         "BatchNormalization", "Flatten", "Dropout", "LogSoftmax"}) {
    INFO(op);
    Graph g;
    CHECK(importSingle(std::string("op_") + op, g).opName() == op);
    CHECK(g.inputs().front()->type.shape.hasSymbolicBatch());
  }
}

TEST_CASE("activation attributes carry over", "[frontend]") {
  Graph g;
  CHECK(importSingle("op_LeakyRelu", g).attrs.getFloat("alpha") == 0.25f);
  CHECK(importSingle("op_Elu", g).attrs.getFloat("alpha") == 0.5f);
  const Node& selu = importSingle("op_Selu", g);
  CHECK(selu.attrs.getFloat("alpha") == 1.5f);
  CHECK(selu.attrs.getFloat("gamma") == 1.25f);
  const Node& hs = importSingle("op_HardSigmoid", g);
  CHECK(hs.attrs.getFloat("alpha") == 0.3f);
  CHECK(hs.attrs.getFloat("beta") == 0.4f);
  CHECK(importSingle("op_BatchNormalization", g).attrs.getFloat("epsilon") == 1e-3f);
}

TEST_CASE("Clip's min/max inputs become attributes", "[frontend]") {
  Graph g;
  const Node& both = importSingle("op_Clip", g);
  CHECK(both.inputs.size() == 1);
  CHECK(both.attrs.getFloat("min") == -1.f);
  CHECK(both.attrs.getFloat("max") == 2.f);
  const Node& maxOnly = importSingle("op_Clip_max_only", g);
  CHECK(maxOnly.attrs.getFloat("min") == -std::numeric_limits<float>::infinity());
  CHECK(maxOnly.attrs.getFloat("max") == 6.f);
}

TEST_CASE("Conv auto_pad resolves to explicit pads", "[frontend]") {
  // 8x8 input, 3x3 kernel, stride 2: 4x4 output needs one padding row/column.
  const std::vector<std::pair<const char*, Ints>> cases = {{"conv_same_upper", {0, 0, 1, 1}},
                                                           {"conv_same_lower", {1, 1, 0, 0}},
                                                           {"conv_valid", {0, 0, 0, 0}},
                                                           {"conv_notset", {1, 0, 1, 0}}};
  for (const auto& [name, pads] : cases) {
    INFO(name);
    Graph g;
    const Node& conv = importSingle(name, g);
    CHECK(conv.opName() == "Conv");
    CHECK(conv.attrs.getInts("pads") == pads);
    CHECK(conv.attrs.getInts("strides") == Ints{2, 2});
    CHECK(conv.attrs.getInts("dilations") == Ints{1, 1});
    CHECK(conv.attrs.getInt("group") == 1);
  }
  Graph g;
  CHECK(importSingle("conv_same_upper", g).output()->type.shape == Shape{kBatch, 4, 4, 4});
}

TEST_CASE("Conv group, dilations and bias", "[frontend]") {
  Graph g;
  const Node& conv = importSingle("conv_group", g);
  CHECK(conv.attrs.getInt("group") == 2);
  CHECK(conv.attrs.getInts("dilations") == Ints{2, 2});
  CHECK(conv.inputs.size() == 3);
  CHECK(conv.output()->type.shape == Shape{kBatch, 6, 5, 5});
}

TEST_CASE("ConvTranspose auto_pad and output_shape resolve to pads and output_padding", "[frontend]") {
  // 4x4 input, 3x3 kernel, stride 2: the natural output is 9x9.
  struct Case {
    const char* model;
    Ints pads, outputPadding;
    int64_t size, group;
  };
  for (const Case& c : {Case{"convtranspose_same_upper", {0, 0, 1, 1}, {0, 0}, 8, 1},
                        Case{"convtranspose_same_lower", {1, 1, 0, 0}, {0, 0}, 8, 1},
                        Case{"convtranspose_output_shape", {1, 1, 1, 1}, {0, 0}, 7, 1},
                        Case{"convtranspose_output_shape_all_dims", {0, 0, 0, 0}, {1, 1}, 10, 2}}) {
    INFO(c.model);
    Graph g;
    const Node& n = importSingle(c.model, g);
    CHECK(n.opName() == "ConvTranspose");
    CHECK(n.attrs.getInts("pads") == c.pads);
    CHECK(n.attrs.getInts("output_padding") == c.outputPadding);
    CHECK(n.attrs.getInts("strides") == Ints{2, 2});
    CHECK(n.attrs.getInt("group") == c.group);
    CHECK(n.output()->type.shape == Shape{kBatch, 6, c.size, c.size});
  }
}

TEST_CASE("pools resolve windows", "[frontend]") {
  Graph g;
  const Node& maxPool = importSingle("op_MaxPool", g);
  CHECK(maxPool.opName() == "MaxPool");
  CHECK(maxPool.attrs.getInts("pads") == Ints{0, 0, 1, 1});
  CHECK(maxPool.attrs.getInts("kernel_shape") == Ints{3, 3});
  CHECK(maxPool.attrs.getInts("dilations") == Ints{1, 1});
  CHECK(maxPool.outputs.size() == 1);
  const Node& avg = importSingle("op_AveragePool", g);
  CHECK(avg.attrs.getInts("pads") == Ints{1, 1, 0, 0});
  CHECK(avg.attrs.getInts("strides") == Ints{1, 1});
  CHECK(avg.attrs.getInt("count_include_pad") == 1);
}

TEST_CASE("Gemm attributes", "[frontend]") {
  Graph g;
  const Node& gemm = importSingle("op_Gemm", g);
  CHECK(gemm.attrs.getFloat("alpha") == 0.5f);
  CHECK(gemm.attrs.getInt("transB") == 1);
  CHECK(gemm.output()->type.shape == Shape{kBatch, 5});
}

TEST_CASE("shape operands become attributes", "[frontend]") {
  Graph g;
  CHECK(importSingle("op_Reshape", g).attrs.getInts("shape") == Ints{0, 2, -1});
  CHECK(importSingle("op_Transpose", g).attrs.getInts("perm") == Ints{2, 1, 0});
  CHECK(importSingle("op_Squeeze_noaxes", g).attrs.getInts("axes") == Ints{1, 3});
  CHECK(importSingle("op_Squeeze_opset11", g).attrs.getInts("axes") == Ints{1});
  CHECK(importSingle("op_Unsqueeze", g).attrs.getInts("axes") == Ints{1, -1});
  CHECK(importSingle("op_Concat", g).attrs.getInt("axis") == 1);
  const Node& pad = importSingle("op_Pad", g);
  CHECK(pad.attrs.getInts("pads") == Ints{0, 1, 0, 2});
  CHECK(pad.attrs.getString("mode") == "reflect");
  CHECK(importSingle("op_Pad_value", g).attrs.getFloat("value") == 3.f);
  const Node& slice = importSingle("op_Slice", g);
  CHECK(slice.attrs.getInts("starts") == Ints{1});
  CHECK(slice.attrs.getInts("ends") == Ints{5});
  CHECK(slice.attrs.getInts("axes") == Ints{1});
  CHECK(slice.attrs.getInts("steps") == Ints{2});
  CHECK(importSingle("op_Gather", g).attrs.getInt("axis") == 1);
  CHECK(importSingle("op_Cast", g).attrs.getString("to") == "i64");
  const Node& mean = importSingle("op_ReduceMean", g);
  CHECK(mean.attrs.getInts("axes") == Ints{2, 3});
  CHECK(mean.attrs.getInt("keepdims") == 0);
}

TEST_CASE("reduction, Split, Tile and Expand operands become attributes", "[frontend]") {
  Graph g;
  const Node& sum = importSingle("op_ReduceSum_axes_input", g);
  CHECK(sum.opName() == "ReduceSum");
  CHECK(sum.attrs.getInts("axes") == Ints{-1});
  CHECK(sum.output()->type.shape == Shape{kBatch, 3});
  CHECK(importSingle("op_ReduceSum_opset11", g).attrs.getInts("axes") == Ints{1});
  // noop_with_empty_axes and no axes: the identity, not a reduction over everything.
  CHECK(importSingle("op_ReduceSum_noop", g).opName() == "Identity");
  const Node& equal = importSingle("op_Split_equal", g);
  CHECK(equal.attrs.getInts("split") == Ints{2, 2, 2});
  CHECK(equal.outputs.size() == 3);
  const Node& sized = importSingle("op_Split_opset11", g);
  CHECK(sized.attrs.getInts("split") == Ints{1, 3});
  CHECK(sized.output(1)->type.shape == Shape{kBatch, 3});
  CHECK(importSingle("op_Tile", g).attrs.getInts("repeats") == Ints{1, 2});
  g = importTestModel("op_Expand_batch");
  CHECK(opSequence(g) == std::vector<std::string>{"ReduceMean", "Expand"});
  CHECK(g.nodes().back()->attrs.getInts("shape") == Ints{1, 3, 4});
  CHECK(g.outputs().front()->type.shape == Shape{kBatch, 3, 4});
}

TEST_CASE("Constant and ConstantOfShape", "[frontend]") {
  Graph g = importTestModel("op_Constant_ConstantOfShape");
  CHECK(opSequence(g) == std::vector<std::string>{"ConstantOfShape", "Add", "Add"});
  const Node& fill = *g.nodes().front();
  CHECK(fill.attrs.getInts("shape") == Ints{1, 4});
  CHECK(fill.attrs.getFloat("value") == 1.5f);
  CHECK(fill.attrs.getString("dtype") == "f32");
  std::vector<Tensor> out = interpret(g, {Tensor::fromVector<float>(Shape{1, 4}, {0, 0, 0, 0})});
  CHECK(std::vector<float>(out[0].values<float>().begin(), out[0].values<float>().end()) ==
        std::vector<float>{2.5f, 3.5f, 4.5f, 5.5f});
}

TEST_CASE("Einsum lowers to a batched MatMul and a Transpose to the output's order", "[frontend]") {
  Graph g = importTestModel("einsum_attention");
  // K moves to [b, h, d, j]; the last Transpose is the identity (removed at -O2).
  CHECK(opSequence(g) == std::vector<std::string>{"Transpose", "MatMul", "Transpose"});
  CHECK(g.nodes().front()->attrs.getInts("perm") == Ints{0, 1, 3, 2});
  Tensor q = onnx_import::loadTensorProtoFile(std::string(KILN_FRONTEND_MODELS) + "/einsum_attention_input.pb");
  Tensor want = onnx_import::loadTensorProtoFile(std::string(KILN_FRONTEND_MODELS) + "/einsum_attention_expected.pb");
  Tensor got = interpret(g, {q}).at(0);
  REQUIRE(got.shape() == want.shape());
  for (int64_t i = 0; i < got.numElements(); ++i) CHECK(std::abs(got.data<float>()[i] - want.data<float>()[i]) < 1e-5f);
  // Implicit output: the letters used once, alphabetically ("ij,jk" is "ij,jk->ik").
  g = importTestModel("einsum_implicit");
  CHECK(g.outputs().front()->type.shape == Shape{3, 5});
}

TEST_CASE("Range takes its size from the constant operands", "[frontend]") {
  Graph g = importTestModel("range_f32");
  CHECK(opSequence(g) == std::vector<std::string>{"Range", "Add"});
  CHECK(g.nodes().front()->attrs.getInt("size") == 20);  // ceil((-9.25 - 0.5) / -0.5)
  std::vector<Tensor> out = interpret(g, {Tensor::fromVector<float>(Shape{1, 20}, std::vector<float>(20, 0.f))});
  CHECK(out[0].data<float>()[0] == 0.5f);
  CHECK(out[0].data<float>()[19] == -9.f);
  // Integer ranges fold at import like other shape arithmetic: 10, 7, 4.
  g = importTestModel("range_i64");
  CHECK(opSequence(g) == std::vector<std::string>{"Add"});
  out = interpret(g, {Tensor::fromVector<float>(Shape{1, 3}, {0, 0, 0})});
  CHECK(std::vector<float>(out[0].values<float>().begin(), out[0].values<float>().end()) ==
        std::vector<float>{10, 7, 4});
}

TEST_CASE("Softmax before opset 13 keeps its coerced-2D meaning", "[frontend]") {
  Graph last = importTestModel("softmax11_last");
  CHECK(opSequence(last) == std::vector<std::string>{"Softmax"});
  Graph g = importTestModel("softmax11_axis1");
  CHECK(opSequence(g) == std::vector<std::string>{"Flatten", "Softmax", "Reshape"});
  Tensor x = onnx_import::loadTensorProtoFile(std::string(KILN_FRONTEND_MODELS) + "/softmax11_input.pb");
  Tensor want = onnx_import::loadTensorProtoFile(std::string(KILN_FRONTEND_MODELS) + "/softmax11_expected.pb");
  Tensor got = interpret(g, {x}).at(0);
  REQUIRE(got.shape() == want.shape());
  for (int64_t i = 0; i < got.numElements(); ++i) CHECK(std::abs(got.data<float>()[i] - want.data<float>()[i]) < 1e-6f);
}
