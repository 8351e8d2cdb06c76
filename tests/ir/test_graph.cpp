// Graph construction, rewriting helpers, verifier, printer and interpreter
// plumbing (batch binding, input checks), using only activation ops.
#include <catch2/catch.hpp>

#include "compiler/interp/interpreter.h"
#include "compiler/ir/graph.h"

using namespace kiln;

namespace {

TensorType f32(Shape s) { return TensorType{DType::F32, std::move(s)}; }

}  // namespace

TEST_CASE("addNode fills defaults and infers types", "[ir]") {
  Graph g;
  Value* x = g.addInput("x", f32({kBatch, 4}));
  Node* n = g.addNode("LeakyRelu", "act", {x});
  g.addOutput(n->output());
  CHECK(n->attrs.getFloat("alpha") == Approx(0.01f));
  CHECK(n->output()->type == f32({kBatch, 4}));
  REQUIRE_NOTHROW(verify(g));
}

TEST_CASE("addNode rejects unknown ops, bad arity and bad attributes", "[ir]") {
  Graph g;
  Value* x = g.addInput("x", f32({1, 4}));
  CHECK_THROWS_WITH(g.addNode("NoSuchOp", "n", {x}), Catch::Contains("unknown op 'NoSuchOp'"));
  CHECK_THROWS_WITH(g.addNode("Relu", "r", {x, x}), Catch::Contains("node 'r' (Relu): has 2 inputs, expected 1"));
  Attributes bad;
  bad.set("beta", 1.f);
  CHECK_THROWS_WITH(g.addNode("LeakyRelu", "l", {x}, bad), Catch::Contains("unknown attribute 'beta'"));
  Attributes wrongKind;
  wrongKind.set("alpha", int64_t{1});
  CHECK_THROWS_WITH(g.addNode("LeakyRelu", "l", {x}, wrongKind), Catch::Contains("expected float"));
}

TEST_CASE("verify catches a use before definition", "[ir]") {
  Graph g;
  Value* x = g.addInput("x", f32({2}));
  Node* a = g.addNode("Relu", "a", {x});
  Node* b = g.addNode("Sigmoid", "b", {a->output()});
  g.addOutput(b->output());
  REQUIRE_NOTHROW(verify(g));
  a->inputs[0] = b->output();  // a now depends on b: a cycle
  CHECK_THROWS_WITH(verify(g), Catch::Contains("not defined before use"));
  CHECK_THROWS_WITH(g.topoSort(), Catch::Contains("cycle"));
}

TEST_CASE("verify catches stale types and duplicate outputs", "[ir]") {
  Graph g;
  Value* x = g.addInput("x", f32({2}));
  Node* a = g.addNode("Relu", "a", {x});
  g.addOutput(a->output());
  a->output()->type = f32({3});
  CHECK_THROWS_WITH(verify(g), Catch::Contains("inference gives f32[2]"));
  a->output()->type = f32({2});
  g.addOutput(a->output());
  CHECK_THROWS_WITH(verify(g), Catch::Contains("listed twice"));
}

TEST_CASE("topoSort restores order after an out-of-order insertion", "[ir]") {
  Graph g;
  Value* x = g.addInput("x", f32({2}));
  Node* a = g.addNode("Relu", "a", {x});
  Node* b = g.addNode("Tanh", "b", {x});
  Node* c = g.addNode("Sigmoid", "c", {b->output()});
  g.addOutput(c->output());
  // Rewire a to consume c: a now must come after c.
  a->inputs[0] = c->output();
  g.replaceAllUsesWith(c->output(), c->output());
  g.topoSort();
  std::vector<Node*> order = g.nodes();
  CHECK(order[0] == b);
  CHECK(order[1] == c);
  CHECK(order[2] == a);
  g.eraseNode(a);
  CHECK(g.numNodes() == 2);
  CHECK_THROWS_WITH(g.eraseNode(c), Catch::Contains("still used"));
  REQUIRE_NOTHROW(verify(g));
}

TEST_CASE("replaceAllUsesWith redirects graph outputs; clone is deep", "[ir]") {
  Graph g;
  Value* x = g.addInput("x", f32({kBatch, 3}));
  Node* a = g.addNode("Relu", "a", {x});
  Node* b = g.addNode("Relu", "b", {a->output()});
  g.addOutput(b->output());
  g.replaceAllUsesWith(b->output(), a->output());
  g.eraseNode(b);
  g.pruneValues();
  CHECK(g.outputs()[0] == a->output());
  Graph copy = g.clone();
  REQUIRE_NOTHROW(verify(copy));
  CHECK(copy.nodes()[0] != a);
  CHECK(printGraph(copy) == printGraph(g));
}

TEST_CASE("printer and DOT show ops, types and names", "[ir]") {
  Graph g;
  Value* x = g.addInput("x", f32({kBatch, 3}));
  Value* slope = g.addConstant("slope", Tensor::fromVector<float>(Shape{3}, {0.1f, 0.2f, 0.3f}));
  Node* p = g.addNode("PRelu", "prelu1", {x, slope}, {}, {"y"});
  g.addOutput(p->output());
  std::string text = printGraph(g);
  CHECK_THAT(text, Catch::Contains("%y: f32[Nx3] = PRelu(%x, %slope)  # prelu1"));
  CHECK_THAT(text, Catch::Contains("%slope: f32[3] = constant"));
  std::string dot = graphToDot(g);
  CHECK_THAT(dot, Catch::StartsWith("digraph"));
  CHECK_THAT(dot, Catch::Contains("PRelu"));
}

TEST_CASE("interpreter binds the batch and checks inputs", "[ir][interp]") {
  Graph g;
  Value* x = g.addInput("x", f32({kBatch, 2}));
  Value* slope = g.addConstant("slope", Tensor::fromVector<float>(Shape{2}, {0.5f, 0.25f}));
  Node* p = g.addNode("PRelu", "p", {x, slope});
  g.addOutput(p->output());

  Tensor in = Tensor::fromVector<float>(Shape{3, 2}, {-2.f, -4.f, 1.f, 2.f, -1.f, 0.f});
  std::vector<Tensor> out = interpret(g, {in});
  REQUIRE(out.size() == 1);
  CHECK(out[0].shape() == Shape{3, 2});
  std::vector<float> want{-1.f, -1.f, 1.f, 2.f, -0.5f, 0.f};
  for (size_t i = 0; i < want.size(); ++i) CHECK(out[0].data<float>()[i] == want[i]);

  CHECK_THROWS_WITH(interpret(g, {Tensor(DType::F32, Shape{3, 5})}), Catch::Contains("dim 1 is 5, expected 2"));
  CHECK_THROWS_WITH(interpret(g, {Tensor(DType::I64, Shape{3, 2})}), Catch::Contains("wrong dtype"));
  CHECK_THROWS_WITH(interpret(g, {}), Catch::Contains("takes 1 inputs"));
}
