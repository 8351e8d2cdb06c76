// Per-pass before/after tests: each pass fires where it should, leaves the
// graph alone where it must not, and keeps the interpreter's results
// (norm-wise relative error <= 1e-5, see maxRelativeError).
#include <catch2/catch.hpp>

#include "compiler/passes/pipeline.h"
#include "graph_builder.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

constexpr double kTolerance = 1e-5;

// Runs `passes` on a clone of g and checks numerical equivalence at batch 1
// and 3; returns the optimized graph and its stats.
Graph optimize(const Graph& g, const std::vector<std::string>& passes, std::vector<PassRun>* runs = nullptr) {
  Graph opt = g.clone();
  std::vector<PassRun> r = runPipeline(opt, passes);
  if (runs) *runs = r;
  for (int64_t batch : {1, 3}) {
    std::vector<Tensor> in = randomInputs(g, batch, 42);
    CHECK(maxRelativeError(interpret(opt, in), interpret(g, in)) <= kTolerance);
  }
  return opt;
}

Attributes ints(const std::string& name, std::vector<int64_t> v) {
  Attributes a;
  a.set(name, std::move(v));
  return a;
}

}  // namespace

TEST_CASE("fold-batchnorm folds BN into Conv, depthwise Conv, Gemm and MatMul+Add", "[passes]") {
  GraphBuilder b(1);
  Value* x = b.input("x", {kBatch, 3, 9, 9});
  Value* y = b.batchNorm(b.conv(x, 6, 3, 1, 1, 1, /*bias=*/false));
  y = b.batchNorm(b.conv(y, 6, 3, 2, 1, /*group=*/6, /*bias=*/true));
  y = b.op("Flatten", {b.op("GlobalAveragePool", {y})});
  y = b.batchNorm(b.gemm(y, 5, true));
  Value* w = b.constant(Shape{5, 4});
  y = b.batchNorm(b.op("Add", {b.op("MatMul", {y, w}), b.constant(Shape{4})}));
  y = b.batchNorm(b.op("MatMul", {y, b.constant(Shape{4, 3})}));
  b.output(y);
  std::vector<PassRun> runs;
  Graph opt = optimize(b.graph, {"fold-batchnorm"}, &runs);
  CHECK(countOps(opt, "BatchNormalization") == 0);
  CHECK(countOps(opt, "ScaleShift") == 0);
  CHECK(runs[0].stats.get("BN folded") == 5);
  CHECK(opt.outputs()[0]->name == b.graph.outputs()[0]->name);
}

// W is [C, M/group, k, k]: with groups the BN's channel g*M/group + j is W's
// dim 1 index j in group g's rows, which a fold along dim 0 would get wrong.
TEST_CASE("fold-batchnorm folds BN into ConvTranspose, grouped or not; fuse-activation fuses Relu and residual",
          "[passes]") {
  GraphBuilder b(3);
  Value* x = b.input("x", {kBatch, 6, 5, 5});
  Attributes a = ints("strides", {2, 2});
  a.set("pads", std::vector<int64_t>{1, 1, 1, 1});
  a.set("dilations", std::vector<int64_t>{1, 1});
  a.set("output_padding", std::vector<int64_t>{1, 1});
  Value* y = b.op("Relu", {b.batchNorm(b.op("ConvTranspose", {x, b.constant(Shape{6, 6, 3, 3})}, a))});
  a.set("group", int64_t{3});
  y = b.batchNorm(b.op("ConvTranspose", {y, b.constant(Shape{6, 2, 3, 3}), b.constant(Shape{6})}, a));
  b.output(b.op("Relu", {b.op("Add", {y, b.input("skip", {kBatch, 6, 20, 20})})}));
  std::vector<PassRun> runs;
  Graph opt = optimize(b.graph, {"fold-batchnorm", "fuse-activation"}, &runs);
  CHECK(runs[0].stats.get("BN folded") == 2);
  CHECK(runs[1].stats.get("activations fused") == 2);
  CHECK(runs[1].stats.get("residual adds fused") == 1);
  CHECK(countOps(opt, "Add") == 0);
  CHECK(countOps(opt, "BatchNormalization") == 0);
  CHECK(countOps(opt, "Relu") == 0);
  CHECK(countOps(opt, "ConvTranspose") == 2);
}

TEST_CASE("fold-batchnorm leaves a BN whose producer has other users as ScaleShift", "[passes]") {
  GraphBuilder b(2);
  Value* x = b.input("x", {kBatch, 4, 5, 5});
  Value* c = b.conv(x, 4, 1);
  b.output(b.op("Add", {b.batchNorm(c), c}));  // c has two users: folding would change the Add's other input
  Graph opt = optimize(b.graph, {"fold-batchnorm"});
  CHECK(countOps(opt, "BatchNormalization") == 0);
  CHECK(countOps(opt, "ScaleShift") == 1);
  CHECK(countOps(opt, "Conv") == 1);
}

TEST_CASE("split-separable splits into depthwise + pointwise and the BN after it folds", "[passes]") {
  GraphBuilder b(3);
  Value* x = b.input("x", {kBatch, 3, 8, 8});
  b.output(b.op("Relu", {b.batchNorm(b.separable(x, 5, 3, /*multiplier=*/2, 1, 1, /*bias=*/true))}));
  Graph opt = optimize(b.graph, {"split-separable", "fold-batchnorm"});
  CHECK(countOps(opt, "SeparableConv2D") == 0);
  CHECK(countOps(opt, "BatchNormalization") == 0);
  REQUIRE(countOps(opt, "Conv") == 2);
  std::vector<Node*> convs;
  for (Node* n : opt.nodes())
    if (n->opName() == "Conv") convs.push_back(n);
  CHECK(convs[0]->attrs.getInt("group") == 3);
  CHECK(convs[0]->attrs.getString("fusion_group") == convs[1]->attrs.getString("fusion_group"));
  CHECK_FALSE(convs[0]->attrs.getString("fusion_group").empty());
}

TEST_CASE("eliminate-identity removes no-op nodes and keeps output names", "[passes]") {
  GraphBuilder b(4);
  Value* x = b.input("x", {kBatch, 2, 3, 4});
  Value* y = b.op("Relu", {x});
  y = b.op("Dropout", {y});
  y = b.op("Identity", {y});
  y = b.transpose(y, {0, 1, 2, 3});
  y = b.op("Reshape", {y}, ints("shape", {0, 2, 3, 4}));
  Attributes pad = ints("pads", {0, 0, 0, 0, 0, 0, 0, 0});
  y = b.op("Pad", {y}, pad);
  y = b.op("Reshape", {y}, ints("shape", {0, 6, 4}));  // a real reshape: must stay
  b.output(y);
  std::string outName = y->name;
  Graph opt = optimize(b.graph, {"eliminate-identity"});
  CHECK(opt.numNodes() == 2);
  CHECK(countOps(opt, "Reshape") == 1);
  CHECK(opt.outputs()[0]->name == outName);
}

TEST_CASE("eliminate-identity keeps an identity between graph input and output", "[passes]") {
  GraphBuilder b(5);
  b.output(b.op("Identity", {b.input("x", {2})}));
  Graph opt = optimize(b.graph, {"eliminate-identity"});
  CHECK(opt.numNodes() == 1);
}

TEST_CASE("cancel-transposes removes tf2onnx NHWC wrappers around convolutions", "[passes]") {
  GraphBuilder b(6);
  Value* x = b.input("x", {kBatch, 8, 8, 3});  // NHWC
  Value* y = b.transpose(x, {0, 3, 1, 2});
  y = b.transpose(b.conv(y, 4, 3, 1, 1), {0, 2, 3, 1});
  y = b.op("Relu", {y});
  y = b.op("Add", {y, b.constant(Shape{4})});  // per-channel bias in NHWC
  y = b.transpose(y, {0, 3, 1, 2});
  y = b.transpose(b.conv(y, 4, 3, 1, 1), {0, 2, 3, 1});
  b.output(y);
  REQUIRE(countOps(b.graph, "Transpose") == 4);
  std::vector<PassRun> runs;
  Graph opt = optimize(b.graph, {"cancel-transposes"}, &runs);
  CHECK(countOps(opt, "Transpose") == 2);  // only the graph edges remain
  CHECK(runs[0].stats.get("transpose pairs cancelled") == 1);
}

TEST_CASE("cancel-transposes does not cancel transposes that are not inverse, nor across a Conv", "[passes]") {
  GraphBuilder b(7);
  Value* x = b.input("x", {kBatch, 4, 5, 6});
  Value* y = b.transpose(x, {0, 2, 3, 1});
  y = b.transpose(y, {0, 2, 3, 1});  // composes to {0,3,1,2}: merged, not cancelled
  Value* z = b.transpose(b.conv(x, 4, 1), {0, 2, 3, 1});
  b.output(y);
  b.output(z);
  std::vector<PassRun> runs;
  Graph opt = optimize(b.graph, {"cancel-transposes"}, &runs);
  CHECK(countOps(opt, "Transpose") == 2);
  CHECK(runs[0].stats.get("transpose pairs cancelled") == 0);
}

TEST_CASE("constant-fold evaluates constant subgraphs; cse and dce clean up", "[passes]") {
  GraphBuilder b(8);
  Value* x = b.input("x", {kBatch, 4});
  Value* c = b.op("Relu", {b.constant(Shape{4})});
  Value* s1 = b.op("Sigmoid", {x});
  Value* s2 = b.op("Sigmoid", {x});
  b.op("Tanh", {x});  // dead
  b.output(b.op("Add", {b.op("Mul", {s1, s2}), c}));
  std::vector<PassRun> runs;
  Graph opt = optimize(b.graph, {"constant-fold", "cse", "dce"}, &runs);
  CHECK(runs[0].stats.get("nodes folded") == 1);
  CHECK(runs[1].stats.get("nodes merged") == 1);
  CHECK(runs[2].stats.get("nodes removed") == 1);
  CHECK(opt.numNodes() == 3);
}

TEST_CASE("fuse-activation fuses residual Add then activation into the Conv", "[passes]") {
  GraphBuilder b(9);
  Value* x = b.input("x", {kBatch, 4, 6, 6});
  Value* c1 = b.conv(x, 4, 3, 1, 1);
  Value* y = b.op("Relu", {b.op("Add", {b.conv(c1, 4, 3, 1, 1), x})});
  Attributes clip;
  clip.set("min", 0.f);
  clip.set("max", 6.f);
  y = b.op("Clip", {b.conv(y, 4, 1)}, clip);
  Value* shared = b.conv(y, 4, 1);
  b.output(b.op("Add", {b.op("Sigmoid", {shared}), shared}));  // two users: not fused
  std::vector<PassRun> runs;
  Graph opt = optimize(b.graph, {"fuse-activation"}, &runs);
  CHECK(runs[0].stats.get("residual adds fused") == 1);
  CHECK(runs[0].stats.get("activations fused") == 2);
  CHECK(countOps(opt, "Relu") == 0);
  CHECK(countOps(opt, "Clip") == 0);
  CHECK(countOps(opt, "Sigmoid") == 1);
}

TEST_CASE("a Clip with run-time bounds is not fused, stays plain and keeps its bounds", "[passes]") {
  GraphBuilder b(11);
  Value* x = b.input("x", {kBatch, 16, 6, 6});
  Value* lo = b.input("lo", Shape{});
  Value* hi = b.input("hi", Shape{1});
  Value* y = b.op("Clip", {b.conv(x, 16, 3, 1, 1), lo, hi});  // the epilogue cannot carry run-time bounds
  y = b.op("Clip", {b.conv(y, 16, 1), nullptr, hi});
  // Sunk through by cancel-transposes with its bounds: the pair cancels.
  y = b.transpose(b.op("Clip", {b.transpose(b.conv(y, 16, 1), {0, 2, 3, 1}), lo}), {0, 3, 1, 2});
  b.output(b.conv(y, 16, 1));
  std::vector<PassRun> runs;
  Graph opt = optimize(b.graph, {"cancel-transposes", "fuse-activation"}, &runs);
  CHECK(runs[0].stats.get("transpose pairs cancelled") == 1);
  CHECK(runs[1].stats.get("activations fused") == 0);
  CHECK(countOps(opt, "Clip") == 3);
  CHECK(countOps(opt, "Transpose") == 0);

  PipelineOptions options;
  options.passes.channelBlock = 16;
  runPipeline(opt, {"layout", "plan-memory"}, options);
  INFO(printGraph(opt));
  REQUIRE_NOTHROW(verify(opt));
  for (Node* n : opt.nodes())
    if (n->opName() == "Clip") CHECK(n->output()->type.layout == Layout::Plain);
  for (int64_t batch : {1, 3}) {
    std::vector<Tensor> in = randomInputs(b.graph, batch, 42);
    CHECK(maxRelativeError(interpret(opt, in), interpret(b.graph, in)) <= kTolerance);
  }
}

namespace {

// The values plan-memory placed, with the nodes that write and last read
// them and their bytes [begin, end) (in the arena or the batch region).
struct PlacedValue {
  const Value* v;
  size_t def, last;
  int64_t begin, end;
};
std::vector<PlacedValue> placedValues(const Graph& g) {
  std::vector<PlacedValue> placed;
  std::vector<Node*> nodes = g.nodes();
  for (size_t i = 0; i < nodes.size(); ++i)
    for (Value* out : nodes[i]->outputs) {
      if (out->arenaOffset < 0) continue;
      size_t last = i;
      for (size_t j = i + 1; j < nodes.size(); ++j)
        for (Value* in : nodes[j]->inputs)
          if (in == out) last = j;
      const int64_t bytes = out->type.shape.product(1, out->type.shape.rank()) * 4;
      placed.push_back({out, i, last, out->arenaOffset, out->arenaOffset + bytes});
    }
  return placed;
}

// Values live at the same time never share bytes; a value written by the
// node that reads another for the last time may reuse exactly its offset
// (in place) but not overlap it partially; all fit in `limit` bytes.
void checkNoOverlap(const std::vector<PlacedValue>& placed, int64_t limit) {
  for (const PlacedValue& a : placed)
    for (const PlacedValue& b : placed) {
      if (&a == &b || b.def < a.def) continue;
      const bool disjoint = a.end <= b.begin || b.end <= a.begin;
      if (b.def < a.last) CHECK(disjoint);
      if (b.def == a.last) CHECK((disjoint || a.begin == b.begin));
      CHECK(b.end <= limit);
    }
}

}  // namespace

TEST_CASE("plan-memory packs tensors and never overlaps live ones", "[passes]") {
  GraphBuilder b(10);
  Value* x = b.input("x", {kBatch, 8, 16, 16});
  Value* y = x;
  for (int i = 0; i < 6; ++i) y = b.op("Relu", {b.conv(y, 8, 3, 1, 1)});
  b.output(y);
  Graph opt = b.graph.clone();
  std::vector<PassRun> runs = runPipeline(opt, {"plan-memory"});
  int64_t arena = runs[0].stats.get("arena bytes per sample");
  int64_t total = runs[0].stats.get("tensor bytes per sample");
  CHECK(arena == opt.arenaBytes);
  CHECK(arena * 4 <= total);  // a chain needs two buffers; relus run in place
  CHECK(runs[0].stats.get("in-place tensors") == 5);
  // 12 tensors, the last is the graph output.
  const std::vector<PlacedValue> placed = placedValues(opt);
  REQUIRE(placed.size() == 11);
  checkNoOverlap(placed, arena);
}

namespace {

// Conv -> Relu -> Flatten -> Gemm (4096 x hidden) -> Relu -> Gemm (10).
Graph convThenDense(int64_t hidden) {
  GraphBuilder b(12);
  Value* y = b.op("Relu", {b.conv(b.input("x", {kBatch, 8, 16, 16}), 16, 3, 1, 1)});
  y = b.op("Relu", {b.gemm(b.op("Flatten", {y}), hidden, false)});
  b.output(b.gemm(y, 10, true));
  return b.graph.clone();
}

}  // namespace

TEST_CASE("plan-memory runs a weight-heavy tail over the whole batch, in a region of its own", "[passes]") {
  Graph g = convThenDense(128);  // the first Gemm's weights: 2 MiB
  std::vector<PassRun> runs = runPipeline(g, {"plan-memory"});
  std::vector<Node*> nodes = g.nodes();
  const Graph::BatchSuffix& suffix = g.batchSuffix;
  REQUIRE(suffix.chunk > 0);
  CHECK(suffix.chunk == 32);  // the region is small: the most samples a chunk takes
  // It starts at the big Gemm: earlier nodes would add activation traffic
  // and no weights worth saving.
  REQUIRE(suffix.firstNode >= 0);
  const auto first = static_cast<size_t>(suffix.firstNode);
  CHECK(nodes[first]->opName() == "Gemm");
  CHECK(nodes[first]->inputs[1]->type.shape == Shape{4096, 128});
  CHECK(runs[0].stats.get("whole-batch nodes") == static_cast<int64_t>(nodes.size() - first));
  CHECK(runs[0].stats.get("batch region bytes per sample") == suffix.regionBytes);
  // In the region exactly the planned values a suffix node reads or writes,
  // and planned there like the arena.
  std::vector<PlacedValue> region, arena;
  for (const PlacedValue& p : placedValues(g)) {
    INFO(p.v->name);
    CHECK(p.v->inBatchRegion == (p.last >= first));
    (p.v->inBatchRegion ? region : arena).push_back(p);
  }
  CHECK(region.size() >= 3);  // Flatten's output, the Gemm's, the Relu's
  checkNoOverlap(region, suffix.regionBytes);
  checkNoOverlap(arena, g.arenaBytes);
  Graph small = convThenDense(16);  // 256 KiB of weights stay in cache: no suffix
  runPipeline(small, {"plan-memory"});
  CHECK(small.batchSuffix.chunk == 0);
  for (const Value* v : small.values()) CHECK_FALSE(v->inBatchRegion);
}

TEST_CASE("pipeline reports unknown passes and prints after a pass", "[passes]") {
  GraphBuilder b(11);
  b.output(b.op("Relu", {b.op("Dropout", {b.input("x", {2})})}));
  CHECK_THROWS_WITH(runPipeline(b.graph, {"no-such-pass"}), Catch::Contains("unknown pass 'no-such-pass'"));
  std::ostringstream out;
  PipelineOptions options;
  options.printAfter = {"eliminate-identity"};
  options.printStream = &out;
  runPipeline(b.graph, {"eliminate-identity", "dce"}, options);
  CHECK_THAT(out.str(), Catch::Contains("IR after eliminate-identity"));
  CHECK_THAT(out.str(), !Catch::Contains("Dropout"));
}

TEST_CASE("layout lays out conv regions in NCHWc with Reorders at the edges only", "[passes][layout]") {
  GraphBuilder b(7);
  Value* x = b.input("x", {kBatch, 3, 12, 12});
  Value* stem = b.conv(x, 24, 3, 1, 1);  // 3 input channels: reads them plain, writes NCHW16c
  Value* y = b.op("Relu", {b.conv(b.op("Relu", {stem}), 24, 3, 1, 1)});
  Value* z = b.op("Add", {b.conv(y, 24, 3, 1, 1, /*group=*/24), y});  // depthwise + residual
  Attributes pool;
  pool.set("kernel_shape", std::vector<int64_t>{2, 2});
  pool.set("strides", std::vector<int64_t>{2, 2});
  pool.set("pads", std::vector<int64_t>{0, 0, 0, 0});
  pool.set("dilations", std::vector<int64_t>{1, 1});
  Value* p = b.op("MaxPool", {b.op("Sigmoid", {z})}, pool);  // Sigmoid(0) != 0 on padded channels: an edge
  Attributes flat;
  flat.set("axis", int64_t{1});
  b.output(b.op("Flatten", {p}, flat));
  b.output(z);  // a laid-out value that is also a graph output

  Graph opt = b.graph.clone();
  PipelineOptions options;
  options.passes.channelBlock = 16;
  std::vector<PassRun> runs = runPipeline(opt, {"fuse-activation", "layout", "plan-memory"}, options);
  INFO(printGraph(opt));
  REQUIRE_NOTHROW(verify(opt));
  CHECK(runs[1].stats.get("nodes laid out") == 3);  // the stem and the convs after it (Relu and residual Add fused)
  CHECK(runs[1].stats.get("convs entering NCHWc") == 1);
  CHECK(countOps(opt, "Reorder") == 1);  // out of z (to Sigmoid and as graph output)
  for (Node* n : opt.nodes()) {
    if (n->opName() == "Reorder") continue;
    const bool blocked = n->output()->type.layout == Layout::NCHWc;
    CHECK(blocked == (n->opName() == "Conv"));
    if (n->opName() == "Conv") CHECK((n->attrs.getInt("out_block") == 16) == (n->input(0)->type.shape[1] == 3));
    if (blocked) CHECK(n->output()->type.storageShape() == Shape({kBatch, 2, 12, 12, 16}));
  }
  for (Value* out : opt.outputs()) CHECK(out->type.layout == Layout::Plain);
  CHECK(opt.outputs()[1]->name == b.graph.outputs()[1]->name);
  for (int64_t batch : {1, 3}) {
    std::vector<Tensor> in = randomInputs(b.graph, batch, 42);
    CHECK(maxRelativeError(interpret(opt, in), interpret(b.graph, in)) <= kTolerance);
  }
  // No channel block (a pipeline without a target): nothing changes.
  Graph plain = b.graph.clone();
  runPipeline(plain, {"layout"});
  CHECK(countOps(plain, "Reorder") == 0);
}

// A decoder stage: Conv, a ConvTranspose upsampling it (fused Relu) and a
// Conv after the Concat with a skip stay in one NCHWc region; a grouped
// ConvTranspose has no NCHWc form and is an edge.
TEST_CASE("layout keeps a dense ConvTranspose inside its conv region", "[passes][layout]") {
  GraphBuilder b(8);
  Value* x = b.input("x", {kBatch, 16, 6, 6});
  Value* skip = b.input("skip", {kBatch, 16, 12, 12});
  Attributes up;
  up.set("strides", std::vector<int64_t>{2, 2});
  up.set("pads", std::vector<int64_t>{0, 0, 0, 0});
  up.set("dilations", std::vector<int64_t>{1, 1});
  up.set("output_padding", std::vector<int64_t>{0, 0});
  Value* u = b.op("Relu", {b.op("ConvTranspose", {b.conv(x, 16, 3, 1, 1), b.constant(Shape{16, 16, 2, 2})}, up)});
  Attributes channels;
  channels.set("axis", int64_t{1});
  Value* d = b.conv(b.op("Concat", {u, skip}, channels), 16, 3, 1, 1);
  up.set("group", int64_t{4});
  b.output(b.op("ConvTranspose", {d, b.constant(Shape{16, 2, 2, 2})}, up));

  Graph opt = b.graph.clone();
  PipelineOptions options;
  options.passes.channelBlock = 16;
  std::vector<PassRun> runs = runPipeline(opt, {"fuse-activation", "layout"}, options);
  INFO(printGraph(opt));
  REQUIRE_NOTHROW(verify(opt));
  CHECK(runs[1].stats.get("nodes laid out") == 4);  // Conv, ConvTranspose (Relu fused), Concat, Conv
  CHECK(countOps(opt, "Reorder") == 3);             // x and skip in, d out to the grouped ConvTranspose
  for (Node* n : opt.nodes())
    if (n->opName() == "ConvTranspose")
      CHECK((n->output()->type.layout == Layout::NCHWc) == (n->attrs.getInt("group") == 1));
  for (int64_t batch : {1, 3}) {
    std::vector<Tensor> in = randomInputs(b.graph, batch, 42);
    CHECK(maxRelativeError(interpret(opt, in), interpret(b.graph, in)) <= kTolerance);
  }
}

namespace {

Value* scalar(GraphBuilder& b, float v) {
  return b.graph.addConstant(b.graph.uniqueName("c"), Tensor::scalar<float>(v));
}

// 0.5 * x * (1 + gate): the three factors in the association `order` picks.
Value* geluTail(GraphBuilder& b, Value* x, Value* gate, int order) {
  Value* s = order % 2 ? b.op("Add", {scalar(b, 1.f), gate}) : b.op("Add", {gate, scalar(b, 1.f)});
  if (order == 0) return b.op("Mul", {b.op("Mul", {x, s}), scalar(b, 0.5f)});
  if (order == 1) return b.op("Mul", {b.op("Mul", {scalar(b, 0.5f), s}), x});
  return b.op("Mul", {s, b.op("Mul", {x, scalar(b, 0.5f)})});
}

Value* erfGelu(GraphBuilder& b, Value* x, int order, float divisor = 1.41421356f) {
  Value* u = order == 1 ? b.op("Mul", {scalar(b, 1.f / divisor), x}) : b.op("Div", {x, scalar(b, divisor)});
  return geluTail(b, x, b.op("Erf", {u}), order);
}

Value* tanhGelu(GraphBuilder& b, Value* x, bool powCube, float coefficient = 0.044715f) {
  Value* cube = powCube ? b.op("Pow", {x, scalar(b, 3.f)}) : b.op("Mul", {x, b.op("Mul", {x, x})});
  Value* inner = b.op("Add", {x, b.op("Mul", {scalar(b, coefficient), cube})});
  return geluTail(b, x, b.op("Tanh", {b.op("Mul", {scalar(b, 0.7978845608f), inner})}), powCube ? 2 : 1);
}

// torch.onnx's LayerNorm at opset < 17 over `axes`; gamma/beta of shape
// `param` (none when empty); the square as Pow(d, 2) or d * d.
Value* decomposedLayerNorm(GraphBuilder& b, Value* x, std::vector<int64_t> axes, Shape param, bool powSquare = true,
                           std::vector<int64_t> varianceAxes = {}) {
  Attributes reduce = ints("axes", axes);
  Value* d = b.op("Sub", {x, b.op("ReduceMean", {x}, reduce)});
  Value* square = powSquare ? b.op("Pow", {d, scalar(b, 2.f)}) : b.op("Mul", {d, d});
  Value* variance =
      b.op("ReduceMean", {square}, varianceAxes.empty() ? reduce : ints("axes", std::move(varianceAxes)));
  Value* y = b.op("Div", {d, b.op("Sqrt", {b.op("Add", {variance, scalar(b, 1e-5f)})})});
  if (param.rank() == 0) return y;
  y = b.op("Mul", {b.constant(param, 0.5f, 1.5f), y});
  return b.op("Add", {y, b.constant(param)});
}

}  // namespace

TEST_CASE("fuse-gelu fuses erf and tanh GELU chains in every operand order", "[passes][gelu]") {
  GraphBuilder b(21);
  Value* x = b.input("x", {kBatch, 3, 8});
  Value* y = x;
  for (int order = 0; order < 3; ++order) y = erfGelu(b, y, order);
  y = tanhGelu(b, tanhGelu(b, y, false), true);
  b.output(y);
  std::vector<PassRun> runs;
  Graph opt = optimize(b.graph, {"fuse-gelu"}, &runs);
  CHECK(runs[0].stats.get("erf gelus fused") == 3);
  CHECK(runs[0].stats.get("tanh gelus fused") == 2);
  CHECK(opt.numNodes() == 5);
  CHECK(countOps(opt, "Gelu") == 5);
  CHECK(opt.outputs()[0]->name == b.graph.outputs()[0]->name);
}

TEST_CASE("fuse-gelu leaves chains with other constants or shared intermediates alone", "[passes][gelu]") {
  GraphBuilder b(22);
  Value* x = b.input("x", {kBatch, 3, 8});
  Value* wrongDivisor = erfGelu(b, x, 0, 1.5f);
  Value* wrongCoefficient = tanhGelu(b, x, false, 0.05f);
  Value* erf = b.op("Erf", {b.op("Div", {x, scalar(b, 1.41421356f)})});
  Value* sharedErf = geluTail(b, x, erf, 0);
  b.output(b.op("Add", {b.op("Add", {wrongDivisor, wrongCoefficient}), sharedErf}));
  b.output(erf);  // the erf is read outside the chain
  std::vector<PassRun> runs;
  Graph opt = optimize(b.graph, {"fuse-gelu"}, &runs);
  CHECK(countOps(opt, "Gelu") == 0);
  CHECK(opt.numNodes() == b.graph.numNodes());
}

TEST_CASE("fuse-layernorm fuses torch.onnx's decomposition over trailing axes", "[passes][layernorm]") {
  GraphBuilder b(23);
  Value* x = b.input("x", {kBatch, 4, 6, 8});
  Value* y = decomposedLayerNorm(b, x, {-1}, Shape{8});
  y = decomposedLayerNorm(b, y, {2, 3}, Shape{}, /*powSquare=*/false);
  y = decomposedLayerNorm(b, y, {3, 2}, Shape{1, 6, 8});
  b.output(y);
  std::vector<PassRun> runs;
  Graph opt = optimize(b.graph, {"fuse-layernorm"}, &runs);
  CHECK(runs[0].stats.get("layernorms fused") == 3);
  CHECK(opt.numNodes() == 3);
  std::vector<int64_t> axes;
  for (const Node* n : opt.nodes()) {
    REQUIRE(n->opName() == "LayerNormalization");
    axes.push_back(n->attrs.getInt("axis"));
    CHECK(n->attrs.getFloat("epsilon") == 1e-5f);
  }
  CHECK(axes == std::vector<int64_t>{3, 2, 2});
}

TEST_CASE("fuse-layernorm does not fuse over leading or mismatched axes", "[passes][layernorm]") {
  GraphBuilder b(24);
  Value* x = b.input("x", {kBatch, 4, 8});
  Value* leading = decomposedLayerNorm(b, x, {1}, Shape{});
  Value* mismatched = decomposedLayerNorm(b, x, {-1}, Shape{}, true, {1, 2});
  // gamma varies along dim 1, not per row element: the LayerNorm fuses, its Mul stays.
  Value* outerGamma = decomposedLayerNorm(b, x, {-1}, Shape{4, 1});
  b.output(b.op("Add", {b.op("Add", {leading, mismatched}), outerGamma}));
  std::vector<PassRun> runs;
  Graph opt = optimize(b.graph, {"fuse-layernorm"}, &runs);
  CHECK(runs[0].stats.get("layernorms fused") == 1);
  CHECK(countOps(opt, "ReduceMean") == 4);
  CHECK(countOps(opt, "Mul") == 1);
}

// ResNet's stride-1 3x3 convs become Winograd F(2x2,3x3) transforms around a
// 16-group 1x1 conv, bias, residual and activation moving to the output
// transform; odd maps (partial tiles) and asymmetric pads included. Other
// convs and channel counts that do not fill blocks stay as they are.
TEST_CASE("winograd rewrites 3x3 stride-1 convs; layout keeps the three nodes in NCHWc", "[passes][winograd]") {
  GraphBuilder b(11);
  Value* x = b.input("x", {kBatch, 32, 9, 11});
  Value* y = b.op("Relu", {b.conv(x, 48, 3, 1, 1)});
  Value* z = b.op("Relu", {b.op("Add", {b.conv(y, 32, 3, 1, 1), x})});  // residual then Relu
  Attributes pads;
  pads.set("pads", std::vector<int64_t>{0, 2, 1, 0});
  Value* p = b.op("Pad", {z}, pads);  // 10x13: a valid 3x3 conv gives 8x11
  Value* w = b.conv(p, 32, 3, 1, 0);
  Value* strided = b.conv(w, 32, 3, 2, 1);  // stride 2: direct
  Value* narrow = b.conv(strided, 24, 3, 1, 1);  // 24 channels: not whole blocks of 16
  b.output(narrow);
  b.output(w);

  Graph opt = b.graph.clone();
  PipelineOptions options;
  options.passes.channelBlock = 16;
  std::vector<PassRun> runs = runPipeline(opt, {"fuse-activation", "winograd", "dce", "layout", "plan-memory"}, options);
  INFO(printGraph(opt));
  REQUIRE_NOTHROW(verify(opt));
  CHECK(runs[1].stats.get("convs as Winograd F(2x2,3x3)") == 3);
  CHECK(countOps(opt, "WinogradInput") == 3);
  CHECK(countOps(opt, "WinogradOutput") == 3);
  CHECK(countOps(opt, "Conv") == 5);  // 3 products + the strided and the narrow conv
  for (Node* n : opt.nodes())
    if (n->opName().rfind("Winograd", 0) == 0) CHECK(n->output()->type.layout == Layout::NCHWc);
  for (int64_t batch : {1, 2}) {
    std::vector<Tensor> in = randomInputs(b.graph, batch, 5);
    CHECK(maxRelativeError(interpret(opt, in), interpret(b.graph, in)) <= kTolerance);
  }
  // Without a channel block (no vector target) the convs stay direct.
  Graph plain = b.graph.clone();
  runPipeline(plain, {"winograd"});
  CHECK(countOps(plain, "WinogradInput") == 0);
}
