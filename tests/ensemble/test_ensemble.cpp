// Ensembles merged into one graph (compiler/ensemble): for every rule and
// member output, the merged graph, compiled with -O2 and interpreted, equals
// the weighted combination of the members' outputs, each member run alone and
// the combination computed here in double. On small generated classifiers and
// on the demo Fashion-MNIST ensemble. Then the checks that members fit
// together, whose errors name the member and its file.
#include <catch2/catch.hpp>
#include <cmath>

#include "compiler/ensemble/ensemble.h"
#include "compiler/interp/interpreter.h"
#include "frontends/onnx/onnx_importer.h"
#include "runtime/src/ensemble_manifest.h"
#include "tests/codegen/compiled_model.h"
#include "tests/ensemble/reference_combination.h"

using namespace kiln;
using ensemble::Member;
using ensemble::MemberOutput;
using ensemble::Rule;
using testing::CompiledModel;

namespace {

struct ClassifierShape {
  std::string input = "x";
  Shape inputShape{kBatch, 6};
  DType inputType = DType::F32;
  int64_t classes = 4;
  bool extraOutput = false;
};

// x -> Gemm (weights from `seed`) -> class scores, then Softmax when the
// member outputs probabilities.
Graph classifier(uint32_t seed, MemberOutput output, const ClassifierShape& s = {}) {
  Graph g;
  g.name = "classifier" + std::to_string(seed);
  Value* x = g.addInput(s.input, {s.inputType, s.inputShape});
  Value* w = g.addConstant("w", Tensor::uniform(Shape{s.classes, s.inputShape[1]}, seed));
  Value* b = g.addConstant("b", Tensor::uniform(Shape{s.classes}, seed + 1000));
  Attributes transB;
  transB.set("transB", int64_t{1});
  Value* scores = g.addNode("Gemm", "fc", {x, w, b}, transB, {"scores"})->output();
  if (output == MemberOutput::Probabilities)
    scores = g.addNode("Softmax", "softmax", {scores}, {}, {"probs"})->output();
  g.addOutput(scores);
  if (s.extraOutput) g.addOutput(x);
  return g;
}

// x [batch, 2, 9, 9] -> Conv 3x3 (+Relu) -> MaxPool -> Flatten -> Gemm: a
// member exported with a fixed batch when `batch` is a number.
Graph convClassifier(uint32_t seed, MemberOutput output, int64_t batch) {
  Graph g;
  g.name = "conv_classifier" + std::to_string(seed);
  Value* x = g.addInput("x", {DType::F32, Shape{batch, 2, 9, 9}});
  Attributes conv;
  conv.set("strides", std::vector<int64_t>{1, 1});
  conv.set("pads", std::vector<int64_t>{1, 1, 1, 1});
  conv.set("dilations", std::vector<int64_t>{1, 1});
  Value* w = g.addConstant("w", Tensor::uniform(Shape{5, 2, 3, 3}, seed));
  Value* y = g.addNode("Conv", "conv", {x, w}, conv)->output();
  y = g.addNode("Relu", "relu", {y})->output();
  Attributes pool;
  pool.set("kernel_shape", std::vector<int64_t>{3, 3});
  pool.set("strides", std::vector<int64_t>{3, 3});
  pool.set("pads", std::vector<int64_t>{0, 0, 0, 0});
  pool.set("dilations", std::vector<int64_t>{1, 1});
  y = g.addNode("MaxPool", "pool", {y}, pool)->output();
  y = g.addNode("Flatten", "flatten", {y})->output();
  Value* fc = g.addConstant("fc", Tensor::uniform(Shape{45, 4}, seed + 1));
  y = g.addNode("Gemm", "fc", {y, fc})->output();
  if (output == MemberOutput::Probabilities) y = g.addNode("Softmax", "softmax", {y})->output();
  g.addOutput(y);
  return g;
}

// Merges `members` per rule, compiles the result with -O2 and interprets it
// unoptimized; both must equal the combination of the members run alone
// (compiled, and interpreted) to 1e-6.
void checkEnsemble(const std::vector<Member>& members, MemberOutput memberOutput, const Tensor& input) {
  std::vector<double> weights;
  std::vector<Tensor> compiled, interpreted;
  for (const Member& m : members) {
    weights.push_back(m.weight);
    compiled.push_back(CompiledModel::compile(m.graph)->run({input}).at(0));
    interpreted.push_back(interpret(m.graph, {input}).at(0));
  }
  for (Rule rule : {Rule::Mean, Rule::Logits, Rule::Vote}) {
    INFO("rule " << testing::ruleName(rule) << ", members output "
                 << (memberOutput == MemberOutput::Logits ? "logits" : "probabilities"));
    if (rule == Rule::Vote) REQUIRE(testing::topClassesAreClear(compiled));
    Graph merged = ensemble::mergeMembers(members, rule, memberOutput, "ensemble");
    verify(merged);
    REQUIRE(merged.outputs().size() == 1);
    CHECK(merged.outputs()[0]->name == ensemble::kOutputName);
    Tensor got = CompiledModel::compile(merged)->run({input}).at(0);
    CHECK(testing::maxAbsDifference(got, testing::referenceCombination(compiled, weights, rule, memberOutput)) <= 1e-6);
    got = interpret(merged, {input}).at(0);
    CHECK(testing::maxAbsDifference(got, testing::referenceCombination(interpreted, weights, rule, memberOutput)) <=
          1e-6);
  }
}

std::vector<Member> generatedMembers(MemberOutput output, const std::vector<double>& weights) {
  std::vector<Member> members;
  for (size_t i = 0; i < weights.size(); ++i)
    members.push_back({"member" + std::to_string(i), "m" + std::to_string(i) + ".onnx",
                       classifier(static_cast<uint32_t>(10 * i + 1), output), weights[i]});
  return members;
}

}  // namespace

TEST_CASE("merged generated members equal the weighted combination for every rule", "[ensemble]") {
  const Tensor input = Tensor::uniform(Shape{7, 6}, 42);
  for (MemberOutput output : {MemberOutput::Probabilities, MemberOutput::Logits})
    checkEnsemble(generatedMembers(output, {0.5, 0.3, 0.2}), output, input);
  // One member: the rules reduce to its own (transformed) output.
  checkEnsemble(generatedMembers(MemberOutput::Probabilities, {1.0}), MemberOutput::Probabilities, input);
}

TEST_CASE("members exported with a fixed batch merge and compile per sample", "[ensemble]") {
  for (MemberOutput output : {MemberOutput::Probabilities, MemberOutput::Logits}) {
    std::vector<Member> members;
    for (uint32_t i = 0; i < 3; ++i)
      members.push_back({"member" + std::to_string(i), "m" + std::to_string(i) + ".onnx",
                         convClassifier(20 * i + 3, output, 3), 0.2 + 0.2 * i});
    checkEnsemble(members, output, Tensor::uniform(Shape{3, 2, 9, 9}, 11));
  }
}

TEST_CASE("the demo ensemble compiles into one graph equal to its members combined", "[ensemble][demo]") {
  const std::string manifestPath = std::string(KILN_DEMO_ENSEMBLE_DIR) + "/ensemble.json";
  const runtime::EnsembleManifest manifest = runtime::readEnsembleManifest(manifestPath);
  REQUIRE(manifest.memberOutput == runtime::MemberOutput::Probabilities);
  std::vector<Member> members;
  for (size_t i = 0; i < manifest.members.size(); ++i) {
    const std::string file = runtime::resolveMemberPath(manifestPath, manifest.members[i]);
    members.push_back(
        {"member" + std::to_string(i), file, onnx_import::importModelFile(file), manifest.members[i].weight});
  }
  const Tensor input = Tensor::uniform(members[0].graph.inputs()[0]->type.shape.withBatch(5), 7);
  checkEnsemble(members, MemberOutput::Probabilities, input);
}

TEST_CASE("merged members share the inputs and keep their values apart", "[ensemble]") {
  Graph merged = ensemble::mergeMembers(generatedMembers(MemberOutput::Probabilities, {0.25, 0.75}), Rule::Mean,
                                        MemberOutput::Probabilities, "pair");
  CHECK(merged.name == "pair");
  REQUIRE(merged.inputs().size() == 1);
  CHECK(merged.inputs()[0]->name == "x");
  for (const char* name : {"member0/w", "member1/w", "member0/probs", "member1/probs"})
    CHECK(merged.findValue(name) != nullptr);
  CHECK(merged.outputs()[0]->type == TensorType{DType::F32, Shape{kBatch, 4}});
}

TEST_CASE("a NaN in a member's scores makes the sample's combined row NaN under every rule", "[ensemble]") {
  Tensor input = Tensor::uniform(Shape{2, 6}, 5);
  input.data<float>()[3] = NAN;  // sample 0 only
  for (Rule rule : {Rule::Mean, Rule::Logits, Rule::Vote}) {
    INFO("rule " << testing::ruleName(rule));
    Graph merged = ensemble::mergeMembers(generatedMembers(MemberOutput::Probabilities, {0.5, 0.5}), rule,
                                          MemberOutput::Probabilities, "e");
    for (const Tensor& out : {CompiledModel::compile(merged)->run({input}).at(0), interpret(merged, {input}).at(0)}) {
      for (int k = 0; k < 4; ++k) CHECK(std::isnan(out.data<float>()[k]));
      for (int k = 4; k < 8; ++k) CHECK(std::isfinite(out.data<float>()[k]));
    }
  }
}

TEST_CASE("members that do not fit together are rejected naming the member", "[ensemble]") {
  auto pair = [](const ClassifierShape& second) {
    std::vector<Member> members;
    members.push_back({"member0", "a.onnx", classifier(1, MemberOutput::Probabilities), 0.5});
    members.push_back({"member1", "b.onnx", classifier(2, MemberOutput::Probabilities, second), 0.5});
    return members;
  };
  auto requireRejected = [](const std::vector<Member>& members, const std::string& what) {
    REQUIRE_THROWS_WITH(ensemble::mergeMembers(members, Rule::Mean, MemberOutput::Probabilities, "e"),
                        Catch::StartsWith("b.onnx: ensemble member1: ") && Catch::Contains(what));
  };
  ClassifierShape s;
  s.classes = 5;
  requireRejected(pair(s), "output 'probs' is f32[Nx5], but member0 ('a.onnx') outputs f32[Nx4]");
  s = {};
  s.input = "image";
  requireRejected(pair(s), "has input 'image', which member0 ('a.onnx') lacks");
  s = {};
  s.inputShape = Shape{kBatch, 7};
  requireRejected(pair(s), "input 'x' is f32[Nx7], but member0 ('a.onnx') takes f32[Nx6]");
  s = {};
  s.extraOutput = true;
  requireRejected(pair(s), "needs exactly one output");

  // Class scores must be f32 [N, C]; the first member is checked too.
  std::vector<Member> members;
  Graph flat;
  Value* x = flat.addInput("x", {DType::F32, Shape{kBatch, 2, 3}});
  flat.addOutput(flat.addNode("Relu", "relu", {x}, {}, {"scores"})->output());
  members.push_back({"member0", "a.onnx", std::move(flat), 1.0});
  REQUIRE_THROWS_WITH(ensemble::mergeMembers(members, Rule::Mean, MemberOutput::Probabilities, "e"),
                      Catch::StartsWith("a.onnx: ensemble member0: output 'scores' is f32[Nx2x3]"));
  REQUIRE_THROWS_WITH(ensemble::mergeMembers({}, Rule::Mean, MemberOutput::Probabilities, "e"),
                      Catch::Contains("at least one member"));
}
