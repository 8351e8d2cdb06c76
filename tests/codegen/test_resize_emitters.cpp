// Resize's emitters against the reference interpreter: x -> 1x1 Conv (12
// channels, a multiple of no NCHWc block but 4) -> Resize, compiled
// unoptimized (the plain emitter) and at -O2, where the layout pass puts the
// Conv and a Resize of H and W into one NCHWc region (the blocked emitter;
// checked), for the host CPU and AVX2, at batch 1 and 3 (symbolic batch).
// Nearest and linear at 2x and non-integer scales and sizes, each coordinate
// transform, cubic, and two Resizes that must stay plain: one that
// extrapolates a constant into the pad lanes, one that resizes C.
#include <catch2/catch.hpp>

#include "compiled_model.h"
#include "compiler/codegen/codegen.h"
#include "compiler/interp/interpreter.h"
#include "compiler/passes/pipeline.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

constexpr int64_t kChannels = 12, kHeight = 7, kWidth = 9;

struct ResizeCase {
  std::string mode, transform, nearestMode;
  std::vector<int64_t> sizes;  // C, H, W of the output
  std::vector<float> scales;   // H, W; empty: the transforms use sizes
  bool blocked = true;         // whether -O2 lays the Resize out in NCHWc
  std::vector<float> roi = {};
  float extrapolation = 0.f;
};

Graph resizeGraph(const ResizeCase& c) {
  Graph g;
  Value* x = g.addInput("x", {DType::F32, Shape{kBatch, kChannels, kHeight, kWidth}});
  Attributes conv;
  conv.set("strides", std::vector<int64_t>{1, 1});
  conv.set("pads", std::vector<int64_t>{0, 0, 0, 0});
  conv.set("dilations", std::vector<int64_t>{1, 1});
  Value* w = g.addConstant("w", Tensor::uniform(Shape{kChannels, kChannels, 1, 1}, 7));
  Value* bias = g.addConstant("b", Tensor::uniform(Shape{kChannels}, 8));
  Value* features = g.addNode("Conv", "conv", {x, w, bias}, conv)->output();
  Attributes a;
  a.set("mode", c.mode);
  a.set("coordinate_transformation_mode", c.transform);
  a.set("nearest_mode", c.nearestMode);
  a.set("sizes", std::vector<int64_t>{kBatch, c.sizes[0], c.sizes[1], c.sizes[2]});
  if (!c.scales.empty()) a.set("scales", std::vector<float>{1.f, 1.f, c.scales[0], c.scales[1]});
  if (!c.roi.empty()) a.set("roi", c.roi);
  a.set("extrapolation_value", c.extrapolation);
  g.addOutput(g.addNode("Resize", "resize", {features}, a)->output());
  return g;
}

bool resizeLaidOutBlocked(const Graph& g, const std::string& cpu) {
  Graph copy = g.clone();
  codegen::CompileOptions target;
  target.cpu = cpu;
  PipelineOptions options;
  options.passes.channelBlock = codegen::channelBlock(target);
  runPipeline(copy, pipelineForLevel(2), options);
  for (const Node* n : copy.nodes())
    if (n->opName() == "Resize") return n->output()->type.layout == Layout::NCHWc;
  FAIL("no Resize left after -O2");
  return false;
}

}  // namespace

TEST_CASE("Resize: plain and NCHWc emitters against the interpreter", "[codegen][resize][layout]") {
  const int64_t h = kHeight, w = kWidth;
  const std::vector<ResizeCase> cases = {
      {"nearest", "asymmetric", "floor", {kChannels, 2 * h, 2 * w}, {2.f, 2.f}},
      {"nearest", "half_pixel", "round_prefer_floor", {kChannels, 10, 5}, {1.5f, 0.6f}},
      {"nearest", "align_corners", "round_prefer_ceil", {kChannels, 11, 4}, {}},
      {"nearest", "tf_half_pixel_for_nn", "round_prefer_floor", {kChannels, 3, 13}, {0.5f, 1.5f}},
      {"nearest", "asymmetric", "ceil", {kChannels, 5, 14}, {0.7f, 1.6f}},
      {"linear", "half_pixel", "round_prefer_floor", {kChannels, 2 * h, 2 * w}, {2.f, 2.f}},
      {"linear", "align_corners", "round_prefer_floor", {kChannels, 11, 5}, {}},
      {"linear", "asymmetric", "round_prefer_floor", {kChannels, 11, 22}, {1.7f, 2.5f}},
      {"linear", "pytorch_half_pixel", "round_prefer_floor", {kChannels, 1, 6}, {}},
      {"cubic", "half_pixel", "round_prefer_floor", {kChannels, 10, 13}, {1.5f, 1.5f}},
      {"linear", "tf_crop_and_resize", "round_prefer_floor", {kChannels, 6, 8}, {}, true,
       {0.f, 0.f, 0.2f, -0.1f, 1.f, 1.f, 0.9f, 0.7f}},
      // Extrapolating 0.5 would fill the pad lanes of the last channel block.
      {"linear", "tf_crop_and_resize", "round_prefer_floor", {kChannels, 6, 8}, {}, false,
       {0.f, 0.f, 0.2f, -0.1f, 1.f, 1.f, 0.9f, 0.7f}, 0.5f},
      {"linear", "half_pixel", "round_prefer_floor", {18, h, 2 * w}, {}, false},  // resizes C
  };
  for (const ResizeCase& c : cases) {
    const Graph g = resizeGraph(c);
    INFO(c.mode << " " << c.transform << " " << c.nearestMode << " to " << c.sizes[1] << "x" << c.sizes[2]);
    for (const std::string cpu : {"native", "x86-64-v3"}) {
      INFO("cpu " << cpu);
      CHECK(resizeLaidOutBlocked(g, cpu) == c.blocked);
      for (bool optimize : {false, true}) {
        auto model = CompiledModel::compile(g, cpu, optimize);
        for (int64_t batch : {1, 3}) {
          const std::vector<Tensor> in = {Tensor::uniform(Shape{batch, kChannels, h, w}, 11)};
          INFO("batch " << batch << (optimize ? ", -O2" : ", plain"));
          CHECK(maxRelativeErrorPerSample(model->run(in), interpret(g, in)) <= 1e-5);
        }
      }
    }
  }
}
