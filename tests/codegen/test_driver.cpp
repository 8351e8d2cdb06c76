// The compile -> link -> load -> run plumbing: descriptor contents, batch
// handling, workspace use, serial and parallel-for execution, emission kinds,
// atomic writes and cross targets.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "compiled_model.h"
#include "compiler/codegen/codegen.h"
#include "compiler/interp/interpreter.h"
#include "compiler/passes/pipeline.h"
#include "runtime/src/artifact_loader.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

TensorType f32(Shape s) { return {DType::F32, std::move(s)}; }

// x[N,4] -> Relu -> Sigmoid -> y, with a planned workspace for the middle.
Graph reluSigmoid() {
  Graph g;
  g.name = "relu_sigmoid";
  Value* x = g.addInput("x", f32({kBatch, 4}));
  Node* r = g.addNode("Relu", "r", {x});
  Node* s = g.addNode("Sigmoid", "s", {r->output()}, {}, {"y"});
  g.addOutput(s->output());
  return g;
}

Tensor ramp(Shape shape) {
  Tensor t(DType::F32, shape);
  for (int64_t i = 0; i < t.numElements(); ++i) t.data<float>()[i] = static_cast<float>(i % 7) - 3.f;
  return t;
}

// A folder of this test process's own, so leftovers of other runs cannot
// confuse the "no temporary file left" checks.
std::filesystem::path scratch(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("kiln-driver-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir / name;
}

}  // namespace

TEST_CASE("a compiled model matches the interpreter at several batch sizes", "[codegen]") {
  Graph g = reluSigmoid();
  auto model = CompiledModel::compile(g);
  for (int64_t batch : {1, 3, 7}) {
    std::vector<Tensor> in{ramp({batch, 4})};
    CHECK(maxRelativeError(model->run(in), interpret(g, in)) <= 1e-6);
  }
}

// A whole-batch suffix (plan-memory's choice for the 2 MiB Gemm) runs in
// chunks of 32 samples: batch 33 takes two chunks, the second of one.
TEST_CASE("a model with a whole-batch suffix matches the interpreter at every batch", "[codegen]") {
  Graph g;
  g.name = "dense_tail";
  Value* x = g.addInput("x", f32({kBatch, 64}));
  Node* fc1 = g.addNode("Gemm", "fc1", {x, g.addConstant("w1", Tensor::uniform(Shape{64, 8192}, 3))});
  Node* relu = g.addNode("Relu", "relu", {fc1->output()});
  Node* fc2 = g.addNode("Gemm", "fc2", {relu->output(), g.addConstant("w2", Tensor::uniform(Shape{8192, 10}, 4))}, {},
                        {"y"});
  g.addOutput(fc2->output());
  Graph planned = g.clone();
  runPipeline(planned, pipelineForLevel(2));
  REQUIRE(planned.batchSuffix.chunk == 32);
  auto model = CompiledModel::compile(g);
  for (int64_t batch : {1, 7, 32, 33}) {
    INFO("batch " << batch);
    std::vector<Tensor> in{Tensor::uniform(Shape{batch, 64}, static_cast<uint32_t>(batch))};
    CHECK(maxRelativeErrorPerSample(model->run(in), interpret(g, in)) <= 1e-5);
  }
}

// A suffix whose nodes read and write only graph inputs and outputs (one
// 2 MiB Gemm) runs over chunks with a batch region of 0 bytes; the loader
// must take it (it once refused it as implausible).
TEST_CASE("a lone weight-heavy node runs over chunks without a batch region", "[codegen]") {
  Graph g;
  g.name = "lone_gemm";
  Value* x = g.addInput("x", f32({kBatch, 512}));
  Node* fc = g.addNode("Gemm", "fc", {x, g.addConstant("w", Tensor::uniform(Shape{512, 1000}, 5))}, {}, {"y"});
  g.addOutput(fc->output());
  Graph planned = g.clone();
  runPipeline(planned, pipelineForLevel(2));
  REQUIRE(planned.batchSuffix.chunk == 32);
  REQUIRE(planned.batchSuffix.regionBytes == 0);
  auto model = CompiledModel::compile(g);
  for (int64_t batch : {1, 33}) {
    INFO("batch " << batch);
    std::vector<Tensor> in{Tensor::uniform(Shape{batch, 512}, static_cast<uint32_t>(batch))};
    CHECK(maxRelativeErrorPerSample(model->run(in), interpret(g, in)) <= 1e-5);
  }
}

TEST_CASE("the descriptor describes the model", "[codegen]") {
  Graph g = reluSigmoid();
  runPipeline(g, {"plan-memory"});
  codegen::CompileOptions options;
  options.modelName = "tiny";
  std::string path = scratch("descriptor.so").string();
  codegen::compileGraph(g, options, codegen::EmitKind::SharedLibrary, path);
  auto a = runtime::Artifact::open(path);
  const kiln_artifact& d = a->descriptor();
  CHECK(d.magic == KILN_ARTIFACT_MAGIC);
  CHECK(d.abi_major == KILN_ABI_MAJOR);
  CHECK(std::string(d.model_name) == "tiny");
  CHECK(std::string(d.cpu_features).find("+sse2") != std::string::npos);
  REQUIRE(d.num_inputs == 1);
  CHECK(std::string(d.inputs[0].name) == "x");
  CHECK(d.inputs[0].rank == 2);
  CHECK(d.inputs[0].dims[0] == KILN_DIM_BATCH);
  CHECK(d.inputs[0].dims[1] == 4);
  CHECK(std::string(d.outputs[0].name) == "y");
  CHECK(d.workspace_bytes_per_sample == static_cast<uint64_t>(g.arenaBytes));
  CHECK(d.workspace_bytes_per_sample > 0);
}

TEST_CASE("a parallel-for callback runs every sample task", "[codegen]") {
  Graph g = reluSigmoid();
  runPipeline(g, {"plan-memory"});
  std::string path = scratch("parallel.so").string();
  codegen::compileGraph(g, {}, codegen::EmitKind::SharedLibrary, path);
  auto a = runtime::Artifact::open(path);
  Tensor x = ramp({5, 4});
  Tensor y(DType::F32, Shape{5, 4});
  std::vector<float> workspace(static_cast<size_t>(a->workspaceBytes(5) / 4 + 16));
  const void* in[] = {x.rawData()};
  void* out[] = {y.rawData()};
  struct Pool {
    int64_t tasks = 0;
  } pool;
  // Runs tasks in reverse order: sample tasks must not depend on each other.
  kiln_parallel_for_fn reverseFor = [](void* ctx, int64_t count, kiln_task_fn task, void* taskCtx) {
    static_cast<Pool*>(ctx)->tasks += count;
    for (int64_t i = count; i-- > 0;) task(taskCtx, i);
  };
  void* ws = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(workspace.data()) + 63) / 64 * 64);
  CHECK(a->descriptor().run(5, in, out, ws, reverseFor, &pool) == 0);
  // One group of all five samples (the net is tiny, see batchSchedule),
  // running two nodes x five samples.
  REQUIRE(codegen::batchSchedule(g).samplesPerGroup >= 5);
  CHECK(pool.tasks == 1 + 10);
  std::vector<Tensor> want = interpret(g, {x});
  CHECK(maxRelativeError({y}, want) <= 1e-6);
}

TEST_CASE("object / assembly / LLVM IR emission and failures leave no file", "[codegen]") {
  Graph g = reluSigmoid();
  runPipeline(g, {"plan-memory"});
  for (const char* name : {"m.o", "m.s", "m.ll"}) {
    std::filesystem::path p = scratch(name);
    std::filesystem::remove(p);
    codegen::compileGraph(g, {}, codegen::emitKindForPath(p.string()), p.string());
    CHECK(std::filesystem::file_size(p) > 0);
  }
  std::ifstream ll(scratch("m.ll"));
  std::string text((std::istreambuf_iterator<char>(ll)), {});
  CHECK_THAT(text, Catch::Contains("model_kiln_artifact_v1"));
  CHECK_THROWS_WITH(codegen::emitKindForPath("m.bin"), Catch::Contains("use .so, .o, .s or .ll"));

  Graph unplanned = reluSigmoid();  // no plan-memory: the middle tensor has no offset
  std::filesystem::path p = scratch("unplanned.so");
  std::filesystem::remove(p);
  CHECK_THROWS_WITH(codegen::compileGraph(unplanned, {}, codegen::EmitKind::SharedLibrary, p.string()),
                    Catch::Contains("plan-memory"));
  CHECK_FALSE(std::filesystem::exists(p));
  for (const auto& entry : std::filesystem::directory_iterator(p.parent_path()))
    CHECK(entry.path().filename().string().find(".tmp-") == std::string::npos);
}

TEST_CASE("cross targets: AVX2 and AArch64 objects", "[codegen]") {
  Graph g = reluSigmoid();
  runPipeline(g, {"plan-memory"});
  codegen::CompileOptions avx2;
  avx2.triple = "x86_64-linux-gnu";
  avx2.cpu = "x86-64-v3";
  CHECK(codegen::resolveTarget(avx2).features.find("+avx2") != std::string::npos);
  CHECK(codegen::resolveTarget(avx2).features.find("+avx512f") == std::string::npos);
  codegen::CompileOptions arm;
  arm.triple = "aarch64-linux-gnu";
  arm.cpu = "cortex-a72";
  std::filesystem::path p = scratch("arm.o");
  codegen::compileGraph(g, arm, codegen::EmitKind::Object, p.string());
  std::ifstream f(p, std::ios::binary);
  char header[20] = {};
  f.read(header, sizeof header);
  CHECK(std::string(header + 1, 3) == "ELF");
  CHECK(static_cast<unsigned char>(header[18]) == 183);  // e_machine EM_AARCH64
  codegen::CompileOptions bad;
  bad.cpu = "no-such-cpu";
  CHECK_THROWS_WITH(codegen::resolveTarget(bad), Catch::Contains("unknown CPU 'no-such-cpu'"));
}

TEST_CASE("ops without an emitter are reported with node and op", "[codegen]") {
  Graph g;
  Value* x = g.addInput("x", f32({kBatch, 3}));
  Node* n = g.addNode("Shape", "shape_of_x", {x});
  g.addOutput(n->output());
  runPipeline(g, {"plan-memory"});
  CHECK_THROWS_WITH(codegen::compileGraph(g, {}, codegen::EmitKind::Object, scratch("shape.o").string()),
                    Catch::Contains("node 'shape_of_x' (Shape)"));
}

TEST_CASE("graph outputs that are constants or inputs are copied out", "[codegen]") {
  Graph g;
  Value* x = g.addInput("x", f32({kBatch, 3}));
  g.addOutput(x);
  g.addOutput(g.addConstant("c", Tensor::fromVector<int64_t>(Shape{3}, {7, -1, 5})));
  g.addOutput(g.addNode("Relu", "r", {x})->output());
  auto model = CompiledModel::compile(g, "native", /*optimize=*/false);
  std::vector<Tensor> in{ramp({4, 3})};
  std::vector<Tensor> got = model->run(in);
  std::vector<Tensor> want = interpret(g, in);
  CHECK(maxRelativeError(got, want) == 0);
}
