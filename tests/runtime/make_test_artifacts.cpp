// Writes the compiled models the runtime tests load into OUT_DIR, built as IR
// graphs and compiled with the same codegen as `kiln compile` (which has no
// way yet to embed class labels):
//   pair.so       x, y f32[N,10] -> sum = x + y, product = x * y
//   pair.o        the same as an object file (not loadable)
//   fixed.so      x f32[2,3] -> y = Relu(x), no batch dim
//   by_node.so    x f32[N,64], bias f32[64] -> y = Relu(x) + Relu(bias): the
//                 unbatched Relu makes the run go node by node, each sample
//                 of the batch in an arena of its own
//   member{0,1,2}_logits.so / member{0,1,2}_probs.so
//                 image f32[N,2,6,6] -> Conv 3x3 -> Flatten -> Gemm -> logits
//                 f32[N,5] (-> Softmax -> probs); different weights per member;
//                 members 0 and 1 carry the labels a..e, member 2 none. No
//                 activation: a NaN pixel makes the whole output row NaN
//   other_labels.so   member 0 with the labels v..z
//   three_classes.so  a member with 3 classes
//   other_input.so    a member taking f32[N,2,8,8]
//   sapphirerapids.so member 0 compiled for -mcpu=sapphirerapids (AVX512-FP16, AMX)
//   aarch64.so        member 0 compiled for aarch64-linux-gnu
//   split_plain.so / split_nchwc.so
//                 image f32[N,8,32,32] -> Conv 3x3 (32, Relu) -> depthwise
//                 Conv 3x3 -> MaxPool 2 -> Conv 1x1 (64) -> GlobalAveragePool
//                 -> Flatten -> Gemm (512) -> scores f32[N,512]: nodes heavy
//                 enough that the backend splits them into parts, in plain
//                 NCHW and in the host's NCHWc layout
//   split_4.so    the same net on f32[N,8,4,4]: small enough that the run
//                 schedules groups of several samples
//   suffix.so     image f32[N,8,16,16] -> Conv 3x3 (16, Relu) -> Flatten ->
//                 Gemm (4096x128, 2 MiB of weights, Relu) -> Gemm (10) ->
//                 scores f32[N,10]: the big Gemm makes plan-memory choose a
//                 whole-batch suffix (chunks of 32 samples), in NCHWc
//
//   make_test_artifacts OUT_DIR
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "compiler/codegen/codegen.h"
#include "compiler/passes/pipeline.h"

using namespace kiln;

namespace {

const std::vector<std::string> kLabels = {"a", "b", "c", "d", "e"};

Graph pair() {
  Graph g;
  g.name = "pair";
  Value* x = g.addInput("x", {DType::F32, Shape{kBatch, 10}});
  Value* y = g.addInput("y", {DType::F32, Shape{kBatch, 10}});
  g.addOutput(g.addNode("Add", "add", {x, y}, {}, {"sum"})->output());
  g.addOutput(g.addNode("Mul", "mul", {x, y}, {}, {"product"})->output());
  return g;
}

Graph fixed() {
  Graph g;
  g.name = "fixed";
  Value* x = g.addInput("x", {DType::F32, Shape{2, 3}});
  g.addOutput(g.addNode("Relu", "relu", {x}, {}, {"y"})->output());
  return g;
}

Graph byNode() {
  Graph g;
  g.name = "by_node";
  Value* x = g.addInput("x", {DType::F32, Shape{kBatch, 64}});
  Value* bias = g.addInput("bias", {DType::F32, Shape{64}});
  Value* rx = g.addNode("Relu", "relu_x", {x})->output();
  Value* rb = g.addNode("Relu", "relu_bias", {bias})->output();
  g.addOutput(g.addNode("Add", "add", {rx, rb}, {}, {"y"})->output());
  return g;
}

Graph classifier(uint32_t seed, int64_t classes, int64_t size, bool softmax) {
  Graph g;
  g.name = "classifier";
  Value* image = g.addInput("image", {DType::F32, Shape{kBatch, 2, size, size}});
  Attributes conv;
  conv.set("strides", std::vector<int64_t>{1, 1});
  conv.set("pads", std::vector<int64_t>{1, 1, 1, 1});
  conv.set("dilations", std::vector<int64_t>{1, 1});
  Value* w = g.addConstant("conv_w", Tensor::uniform(Shape{3, 2, 3, 3}, seed));
  Value* b = g.addConstant("conv_b", Tensor::uniform(Shape{3}, seed + 1));
  Value* features = g.addNode("Conv", "conv", {image, w, b}, conv)->output();
  features = g.addNode("Flatten", "flatten", {features})->output();
  Value* fcW = g.addConstant("fc_w", Tensor::uniform(Shape{3 * size * size, classes}, seed + 2));
  Value* fcB = g.addConstant("fc_b", Tensor::uniform(Shape{classes}, seed + 3));
  Value* logits = g.addNode("Gemm", "fc", {features, fcW, fcB}, {}, {"logits"})->output();
  g.addOutput(softmax ? g.addNode("Softmax", "softmax", {logits}, {}, {"probs"})->output() : logits);
  return g;
}

Graph splitCnn(int64_t size) {
  Graph g;
  g.name = "split";
  Value* x = g.addInput("image", {DType::F32, Shape{kBatch, 8, size, size}});
  auto conv = [&](const std::string& name, Value* in, int64_t out, int64_t kernel, int64_t group) {
    Attributes a;
    const int64_t pad = kernel / 2;
    a.set("strides", std::vector<int64_t>{1, 1});
    a.set("pads", std::vector<int64_t>{pad, pad, pad, pad});
    a.set("dilations", std::vector<int64_t>{1, 1});
    a.set("group", group);
    const int64_t inChannels = in->type.shape[1] / group;
    Value* w = g.addConstant(name + "_w", Tensor::uniform(Shape{out, inChannels, kernel, kernel}, 7));
    Value* b = g.addConstant(name + "_b", Tensor::uniform(Shape{out}, 8));
    return g.addNode("Conv", name, {in, w, b}, a)->output();
  };
  x = g.addNode("Relu", "relu", {conv("conv", x, 32, 3, 1)})->output();
  x = conv("depthwise", x, 32, 3, 32);
  Attributes pool;
  pool.set("kernel_shape", std::vector<int64_t>{2, 2});
  pool.set("strides", std::vector<int64_t>{2, 2});
  pool.set("pads", std::vector<int64_t>{0, 0, 0, 0});
  pool.set("dilations", std::vector<int64_t>{1, 1});
  x = g.addNode("MaxPool", "pool", {x}, pool)->output();
  x = conv("pointwise", x, 64, 1, 1);
  x = g.addNode("GlobalAveragePool", "gap", {x})->output();
  x = g.addNode("Flatten", "flatten", {x})->output();
  Value* fcW = g.addConstant("fc_w", Tensor::uniform(Shape{64, 512}, 9));
  g.addOutput(g.addNode("Gemm", "fc", {x, fcW}, {}, {"scores"})->output());
  return g;
}

Graph suffixNet() {
  Graph g;
  g.name = "suffix";
  Value* x = g.addInput("image", {DType::F32, Shape{kBatch, 8, 16, 16}});
  Attributes conv;
  conv.set("strides", std::vector<int64_t>{1, 1});
  conv.set("pads", std::vector<int64_t>{1, 1, 1, 1});
  conv.set("dilations", std::vector<int64_t>{1, 1});
  Value* w = g.addConstant("conv_w", Tensor::uniform(Shape{16, 8, 3, 3}, 11));
  Value* b = g.addConstant("conv_b", Tensor::uniform(Shape{16}, 12));
  x = g.addNode("Relu", "relu", {g.addNode("Conv", "conv", {x, w, b}, conv)->output()})->output();
  x = g.addNode("Flatten", "flatten", {x})->output();
  Value* fc1 = g.addConstant("fc1_w", Tensor::uniform(Shape{16 * 16 * 16, 128}, 13));
  Value* fc1b = g.addConstant("fc1_b", Tensor::uniform(Shape{128}, 14));
  x = g.addNode("Relu", "relu_fc1", {g.addNode("Gemm", "fc1", {x, fc1, fc1b})->output()})->output();
  Value* fc2 = g.addConstant("fc2_w", Tensor::uniform(Shape{128, 10}, 15));
  g.addOutput(g.addNode("Gemm", "fc2", {x, fc2}, {}, {"scores"})->output());
  return g;
}

void compile(Graph g, const std::filesystem::path& path, codegen::CompileOptions options = {},
             codegen::EmitKind kind = codegen::EmitKind::SharedLibrary, bool blocked = false) {
  PipelineOptions pipeline;
  if (blocked) pipeline.passes.channelBlock = codegen::channelBlock(options);
  runPipeline(g, pipelineForLevel(2), pipeline);
  options.modelName = path.stem().string();
  codegen::compileGraph(g, options, kind, path.string());
}

codegen::CompileOptions withLabels(std::vector<std::string> labels) {
  codegen::CompileOptions options;
  options.labels = std::move(labels);
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_test_artifacts OUT_DIR\n";
    return 2;
  }
  std::filesystem::path out = argv[1];
  try {
    std::filesystem::create_directories(out);
    compile(pair(), out / "pair.so");
    compile(pair(), out / "pair.o", {}, codegen::EmitKind::Object);
    compile(fixed(), out / "fixed.so");
    compile(byNode(), out / "by_node.so");
    for (uint32_t m = 0; m < 3; ++m) {
      std::vector<std::string> labels = m < 2 ? kLabels : std::vector<std::string>{};
      std::string name = "member" + std::to_string(m);
      compile(classifier(10 * m, 5, 6, false), out / (name + "_logits.so"), withLabels(labels));
      compile(classifier(10 * m, 5, 6, true), out / (name + "_probs.so"), withLabels(labels));
    }
    compile(classifier(0, 5, 6, true), out / "other_labels.so", withLabels({"v", "w", "x", "y", "z"}));
    compile(classifier(0, 3, 6, true), out / "three_classes.so");
    compile(classifier(0, 5, 8, true), out / "other_input.so");
    codegen::CompileOptions sapphireRapids;
    sapphireRapids.cpu = "sapphirerapids";
    compile(classifier(0, 5, 6, true), out / "sapphirerapids.so", sapphireRapids);
    codegen::CompileOptions arm;
    arm.triple = "aarch64-linux-gnu";
    arm.cpu = "cortex-a72";
    compile(classifier(0, 5, 6, true), out / "aarch64.so", arm);
    compile(splitCnn(32), out / "split_plain.so");
    compile(splitCnn(32), out / "split_nchwc.so", {}, codegen::EmitKind::SharedLibrary, true);
    compile(splitCnn(4), out / "split_4.so", {}, codegen::EmitKind::SharedLibrary, true);
    compile(suffixNet(), out / "suffix.so", {}, codegen::EmitKind::SharedLibrary, true);
  } catch (const std::exception& e) {
    std::cerr << "make_test_artifacts: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
