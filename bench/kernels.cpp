// kiln_bench_kernels: Google Benchmark over the hot kernels of Keras-style
// CNNs. Each case is a one-op graph (shapes from ResNet / MobileNet layers),
// optimized with -O2 and compiled once with the LLVM backend for the host CPU,
// then its artifact's run function is timed at batch 1 on the calling thread
// (serial: the runtime's parallel_for is NULL). Compute-bound ops report
// GFLOP/s (2 x OpDef::macs per run) and the fraction of the measured FMA
// peak; memory-bound ops report bytes/s (tensors read + written once).
// Every kernel also reports %roofline: its bytes/s against memcpy's between
// buffers of the same total size, so a kernel whose tensors fit in L2 is
// held to L2's rate and one streaming megabytes of weights (a 3x3 conv on a
// 4x4 map at batch 1) to L3's or DRAM's; the higher of %peak and %roofline
// says which bound a kernel is up against.
// Rates are per CPU second (see fma_peak.cpp for why); wall time is printed too.
//
//   kiln_bench_kernels [--benchmark_filter=REGEX] [--benchmark_min_time=0.5]
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "compiler/codegen/codegen.h"
#include "compiler/ir/graph.h"
#include "compiler/passes/pipeline.h"
#include "runtime/src/artifact_loader.h"
#include "tools/fma_peak.h"

using namespace kiln;

namespace {

double gPeakGflops = 0;  // measured once in main, before any benchmark

TensorType f32(Shape s) { return {DType::F32, std::move(s)}; }

Attributes convAttrs(int64_t stride, int64_t pad, int64_t group) {
  Attributes a;
  a.set("strides", std::vector<int64_t>{stride, stride});
  a.set("pads", std::vector<int64_t>{pad, pad, pad, pad});
  a.set("dilations", std::vector<int64_t>{1, 1});
  a.set("group", group);
  return a;
}

// A compiled one-op graph plus the buffers to run it.
struct Kernel {
  std::shared_ptr<runtime::Artifact> artifact;
  std::vector<Tensor> inputs, outputs;
  std::vector<const void*> in;
  std::vector<void*> out;
  void* workspace = nullptr;
  int64_t macs = 0;   // per run, summed over the graph's nodes before -O2
  int64_t bytes = 0;  // graph inputs + outputs + constants, each touched once

  ~Kernel() { std::free(workspace); }
  void run() const { artifact->run(1, in.data(), out.data(), workspace); }
};

// The CPU the kernels are compiled for: the host's, or KILN_BENCH_CPU (e.g.
// znver1, to time the AVX2 code on an AVX-512 host; the host must run it).
codegen::CompileOptions kernelTarget() {
  codegen::CompileOptions options;
  const char* cpu = std::getenv("KILN_BENCH_CPU");
  options.cpu = cpu && *cpu ? cpu : "native";
  return options;
}

// Optimizes and compiles `g` for the host (like `kiln compile -O2 --cpu
// native`), loads it and allocates batch-1 buffers. The .so is unlinked
// right after loading; the mapping outlives the file.
//
// `blocked` picks the layout: false compiles the kernel in plain NCHW (the
// layout pass off), true in the target's NCHWc with the graph's inputs and
// outputs taken as NCHWc too (the Reorders the layout pass puts at a lone
// kernel's edges are dropped), so both variants time the kernel alone. The
// blocked variant needs channel counts that are whole blocks (the buffers
// are sized by the descriptor's logical dims).
std::unique_ptr<Kernel> compileKernel(Graph g, bool blocked) {
  auto k = std::make_unique<Kernel>();
  for (Node* n : g.nodes())
    if (n->op->macs) k->macs += n->op->macs(*n);
  for (Value* v : g.values())
    if (v->isConstant()) k->bytes += v->constant.byteSize();
  const codegen::CompileOptions options = kernelTarget();
  PipelineOptions pipeline;
  pipeline.passes.channelBlock = blocked ? codegen::channelBlock(options) : 0;
  runPipeline(g, pipelineForLevel(2), pipeline);
  if (blocked) {
    bool laidOut = false;
    for (Node* n : g.nodes()) {
      if (n->opName() != "Reorder") continue;
      laidOut = true;
      Value *in = n->input(0), *out = n->output();
      const Shape storage = out->type.storageShape();
      if (storage.product(1, storage.rank()) != out->type.shape.product(1, out->type.shape.rank()))
        throw Error("the blocked variant needs whole channel blocks");
      if (out->type.layout == Layout::NCHWc) {  // graph input -> NCHWc: the input is NCHWc
        in->type = out->type;
        g.replaceAllUsesWith(out, in);
      } else {  // NCHWc -> graph output: the output is NCHWc
        g.replaceAllUsesWith(out, in);
        std::swap(in->name, out->name);
      }
      g.eraseNode(n);
    }
    if (!laidOut) throw Error("the layout pass left this kernel plain");
    g.pruneValues();
    runPipeline(g, {"plan-memory"});
  }
  auto path = std::filesystem::temp_directory_path() /
              ("kiln-bench-" + std::to_string(::getpid()) + "-" + std::to_string(reinterpret_cast<uintptr_t>(k.get())) + ".so");
  codegen::compileGraph(g, options, codegen::EmitKind::SharedLibrary, path.string());
  k->artifact = runtime::Artifact::open(path.string());
  std::filesystem::remove(path);
  const kiln_artifact& d = k->artifact->descriptor();
  auto shapeOf = [](const kiln_tensor_info& info) {
    std::vector<int64_t> dims(info.dims, info.dims + info.rank);
    if (!dims.empty() && dims[0] == KILN_DIM_BATCH) dims[0] = 1;
    return Shape(std::move(dims));
  };
  for (int32_t i = 0; i < d.num_inputs; ++i) {
    k->inputs.push_back(Tensor::uniform(shapeOf(d.inputs[i]), 100 + static_cast<uint32_t>(i)));
    k->bytes += k->inputs.back().byteSize();
  }
  for (int32_t i = 0; i < d.num_outputs; ++i) {
    k->outputs.emplace_back(DType::F32, shapeOf(d.outputs[i]));
    k->bytes += k->outputs.back().byteSize();
  }
  for (const Tensor& t : k->inputs) k->in.push_back(t.rawData());
  for (Tensor& t : k->outputs) k->out.push_back(t.rawData());
  uint64_t ws = std::max<uint64_t>(k->artifact->workspaceBytes(1), 64);
  k->workspace = std::aligned_alloc(64, (ws + 63) / 64 * 64);
  return k;
}

// Graph builders: inputs carry the symbolic batch, weights are constants
// (as after import), so the backend may pack them at compile time.
Graph convGraph(int64_t cin, int64_t cout, int64_t hw, int64_t kernel, int64_t group, int64_t stride = 1) {
  Graph g;
  Value* x = g.addInput("x", f32({kBatch, cin, hw, hw}));
  Value* w = g.addConstant("w", Tensor::uniform(Shape({cout, cin / group, kernel, kernel}), 1));
  Value* b = g.addConstant("b", Tensor::uniform(Shape({cout}), 2));
  g.addOutput(g.addNode("Conv", "conv", {x, w, b}, convAttrs(stride, kernel / 2, group))->output());
  return g;
}

Graph separableGraph(int64_t c, int64_t cout, int64_t hw) {
  Graph g;
  Value* x = g.addInput("x", f32({kBatch, c, hw, hw}));
  Value* wd = g.addConstant("wd", Tensor::uniform(Shape({c, 1, 3, 3}), 1));
  Value* wp = g.addConstant("wp", Tensor::uniform(Shape({cout, c, 1, 1}), 2));
  Value* b = g.addConstant("b", Tensor::uniform(Shape({cout}), 3));
  Attributes a;
  a.set("strides", std::vector<int64_t>{1, 1});
  a.set("pads", std::vector<int64_t>{1, 1, 1, 1});
  a.set("dilations", std::vector<int64_t>{1, 1});
  g.addOutput(g.addNode("SeparableConv2D", "sep", {x, wd, wp, b}, a)->output());
  return g;
}

// Y = A * B^T + C with B as [N, K] (transB = 1: how PyTorch exports Linear).
// m == 1 gives the classifier head at batch 1 (A with the symbolic batch);
// m > 1 a static M, e.g. a token MLP.
Graph gemmGraph(int64_t m, int64_t k, int64_t n) {
  Graph g;
  Value* a = g.addInput("a", f32(m == 1 ? Shape({kBatch, k}) : Shape({m, k})));
  Value* b = g.addConstant("b", Tensor::uniform(Shape({n, k}), 1));
  Value* c = g.addConstant("c", Tensor::uniform(Shape({n}), 2));
  Attributes attrs;
  attrs.set("transB", int64_t{1});
  g.addOutput(g.addNode("Gemm", "gemm", {a, b, c}, attrs)->output());
  return g;
}

// MaxPool kernel k x k, stride s, pad p (ResNet stem: 3/2/1; VGG: 2/2/0).
Graph maxPoolGraph(int64_t c, int64_t hw, int64_t k, int64_t s, int64_t p) {
  Graph g;
  Value* x = g.addInput("x", f32({kBatch, c, hw, hw}));
  Attributes a;
  a.set("kernel_shape", std::vector<int64_t>{k, k});
  a.set("strides", std::vector<int64_t>{s, s});
  a.set("pads", std::vector<int64_t>{p, p, p, p});
  a.set("dilations", std::vector<int64_t>{1, 1});
  g.addOutput(g.addNode("MaxPool", "pool", {x}, a)->output());
  return g;
}

// ReduceMean over the spatial dims (a GlobalAveragePool written as a reduce).
Graph reduceMeanGraph(int64_t c, int64_t hw) {
  Graph g;
  Value* x = g.addInput("x", f32({kBatch, c, hw, hw}));
  Attributes a;
  a.set("axes", std::vector<int64_t>{2, 3});
  a.set("keepdims", int64_t{1});
  g.addOutput(g.addNode("ReduceMean", "mean", {x}, a)->output());
  return g;
}

Graph globalAveragePoolGraph(int64_t c, int64_t hw) {
  Graph g;
  Value* x = g.addInput("x", f32({kBatch, c, hw, hw}));
  g.addOutput(g.addNode("GlobalAveragePool", "gap", {x})->output());
  return g;
}

Graph addReluGraph(int64_t c, int64_t hw) {
  Graph g;
  Value* x = g.addInput("x", f32({kBatch, c, hw, hw}));
  Value* y = g.addInput("y", f32({kBatch, c, hw, hw}));
  Value* sum = g.addNode("Add", "add", {x, y})->output();
  g.addOutput(g.addNode("Relu", "relu", {sum})->output());
  return g;
}

// Plain -> NCHW16c -> plain: the two Reorders at a laid-out region's edges.
Graph reorderGraph(int64_t c, int64_t hw) {
  Graph g;
  Value* x = g.addInput("x", f32({kBatch, c, hw, hw}));
  Attributes to, back;
  to.set("block", int64_t{16});
  back.set("block", int64_t{0});
  Value* blocked = g.addNode("Reorder", "to_nchwc", {x}, to)->output();
  g.addOutput(g.addNode("Reorder", "to_nchw", {blocked}, back)->output());
  return g;
}

Graph softmaxGraph(int64_t n, const char* op = "Softmax") {
  Graph g;
  Value* x = g.addInput("x", f32({kBatch, n}));
  g.addOutput(g.addNode(op, "softmax", {x})->output());
  return g;
}

// The memory roofline for a kernel touching `bytes`: memcpy's rate (bytes
// read + written per thread-CPU second) from one buffer of bytes/2 into
// another, warm, the best of 5 repeats of ~10 ms; measured once per size.
double copyRoofline(int64_t bytes) {
  static std::map<int64_t, double> measured;
  auto [it, fresh] = measured.try_emplace(bytes, 0.0);
  if (!fresh) return it->second;
  const auto half = static_cast<size_t>(std::max<int64_t>(bytes / 2, 64));
  std::vector<char> src(half, 1), dst(half, 0);
  auto timeOf = [&](int64_t repeats) {
    const double t0 = bench::threadCpuSeconds();
    for (int64_t r = 0; r < repeats; ++r) {
      std::memcpy(dst.data(), src.data(), half);
      benchmark::DoNotOptimize(dst.data());
      benchmark::ClobberMemory();
    }
    return bench::threadCpuSeconds() - t0;
  };
  int64_t repeats = 1;
  timeOf(repeats);
  while (timeOf(repeats) < 0.01) repeats *= 2;
  for (int r = 0; r < 5; ++r)
    it->second = std::max(it->second, 2.0 * static_cast<double>(half) * static_cast<double>(repeats) / timeOf(repeats));
  return it->second;
}

// Times one compiled kernel. The graph is compiled on the first call and
// kept for repetitions (Google Benchmark calls the function more than once).
void runKernel(benchmark::State& state, const std::string& name, const std::function<Graph()>& build, bool memoryBound,
               bool blocked) {
  static std::map<std::string, std::unique_ptr<Kernel>> cache;
  auto& k = cache[name];
  if (!k) {
    try {
      k = compileKernel(build(), blocked);
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
      return;
    }
  }
  k->run();  // warm: page in weights, fill caches
  for (auto _ : state) {
    k->run();
    benchmark::ClobberMemory();
  }
  using benchmark::Counter;
  if (k->macs > 0) {
    const double gflop = 2.0 * static_cast<double>(k->macs) * 1e-9;
    state.counters["GFLOP"] = Counter(gflop, Counter::kIsIterationInvariantRate);
    if (gPeakGflops > 0) state.counters["%peak"] = Counter(100.0 * gflop / gPeakGflops, Counter::kIsIterationInvariantRate);
  }
  if (memoryBound || k->macs == 0) state.SetBytesProcessed(state.iterations() * k->bytes);
  if (k->bytes > 0)
    state.counters["%roofline"] =
        Counter(100.0 * static_cast<double>(k->bytes) / copyRoofline(k->bytes), Counter::kIsIterationInvariantRate);
}

void registerKernels() {
  struct Case {
    const char* name;
    std::function<Graph()> build;
    bool memoryBound;
    bool blockedToo = false;  // also time the NCHWc variant
  };
  const std::vector<Case> cases = {
      {"conv3x3_64to64_56x56", [] { return convGraph(64, 64, 56, 3, 1); }, false, true},
      // ResNet-18 at 64x64 input: the last stages' maps are narrower than a vector.
      {"conv3x3_256to256_4x4", [] { return convGraph(256, 256, 4, 3, 1); }, false, true},
      {"conv3x3s2_256to512_4x4", [] { return convGraph(256, 512, 4, 3, 1, 2); }, false, true},
      {"conv3x3_512to512_2x2", [] { return convGraph(512, 512, 2, 3, 1); }, false, true},
      {"conv3x3_512to512_7x7", [] { return convGraph(512, 512, 7, 3, 1); }, false, true},
      {"conv1x1_128to128_28x28", [] { return convGraph(128, 128, 28, 1, 1); }, false, true},
      {"depthwise3x3_128_28x28", [] { return convGraph(128, 128, 28, 3, 128); }, true, true},
      {"separable3x3_128to128_28x28", [] { return separableGraph(128, 128, 28); }, false},
      {"gemm_1x512x1000", [] { return gemmGraph(1, 512, 1000); }, true},
      {"gemm_64x512x512", [] { return gemmGraph(64, 512, 512); }, false},
      {"maxpool3x3s2_64_112x112", [] { return maxPoolGraph(64, 112, 3, 2, 1); }, true},
      {"maxpool2x2s2_64_112x112", [] { return maxPoolGraph(64, 112, 2, 2, 0); }, true},
      {"maxpool3x3s1_64_56x56", [] { return maxPoolGraph(64, 56, 3, 1, 1); }, true},
      {"global_avgpool_512_7x7", [] { return globalAveragePoolGraph(512, 7); }, true},
      {"reduce_mean_512_7x7", [] { return reduceMeanGraph(512, 7); }, true},
      {"reduce_mean_64_56x56", [] { return reduceMeanGraph(64, 56); }, true},
      {"add_relu_64x56x56", [] { return addReluGraph(64, 56); }, true},
      {"reorder_roundtrip_64x56x56", [] { return reorderGraph(64, 56); }, true},
      {"reorder_roundtrip_24x32x32", [] { return reorderGraph(24, 32); }, true},
      {"softmax_1000", [] { return softmaxGraph(1000); }, true},
      {"log_softmax_1000", [] { return softmaxGraph(1000, "LogSoftmax"); }, true},
  };
  // Each kernel in plain NCHW and convolutions also in the target's blocked
  // NCHWc (see compileKernel; the layout pass lays out regions with a Conv,
  // so the blocked pools and elementwise ops are timed inside models only).
  for (const Case& c : cases)
    for (bool blocked : {false, true}) {
      if (blocked && !c.blockedToo) continue;
      const std::string name = c.name + std::string(blocked ? "/nchwc" : "/plain");
      benchmark::RegisterBenchmark(
          name.c_str(),
          [c, name, blocked](benchmark::State& s) { runKernel(s, name, c.build, c.memoryBound, blocked); })
          // CPU time (the default), like the peak: on the shared machine wall
          // time includes slices the scheduler gave to other processes.
          ->Unit(benchmark::kMicrosecond);
    }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const bench::FmaPeak peak = bench::measureFmaPeak();
  // Kernels of 8-float blocks (AVX2) are held to the ymm peak.
  const bool ymm = codegen::channelBlock(kernelTarget()) < 16;
  gPeakGflops = ymm ? peak.gflopsYmm : peak.gflops;
  std::printf("single-core FP32 peak: %.1f GFLOP/s (ymm %.1f, zmm %.1f)\n  %s\nkernels for CPU %s, %%peak of %.1f\n",
              peak.gflops, peak.gflopsYmm, peak.gflopsZmm, peak.method.c_str(), kernelTarget().cpu.c_str(),
              gPeakGflops);
  std::fflush(stdout);
  registerKernels();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
