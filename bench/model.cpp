// kiln_bench_model: latency of a compiled model. Loads MODEL.so with
// runtime::Artifact (the same loader `kiln run` uses), fills the inputs with
// deterministic values in [-1, 1), runs --warmup times untimed, then times
// --iterations runs one by one and reports the median and 90th percentile
// in microseconds. Serial: the artifact gets no thread pool. --batch N runs
// N samples per call (default 1). Several models are timed as one sequence,
// each on its own buffers, one after another: e.g. an ensemble's members run
// separately, next to the same ensemble compiled into one artifact.
//
//   kiln_bench_model MODEL.so [MODEL.so...] [--batch N] [--iterations N] [--warmup N] [--json]
//   kiln_bench_model --peak [--json]     the measured single-core FMA peak
//
// --json prints one object (the first model's input shapes included, so the
// ONNX Runtime side of bench/compare_ort.mjs feeds the same shapes).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "bench/fma_peak.h"
#include "runtime/src/artifact_loader.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: kiln_bench_model MODEL.so [MODEL.so...] [--batch N] [--iterations N] [--warmup N] [--json]\n"
               "       kiln_bench_model --peak [--json]\n");
  return 2;
}

std::vector<int64_t> batchDims(const kiln_tensor_info& info, int64_t batch) {
  std::vector<int64_t> dims(info.dims, info.dims + info.rank);
  if (!dims.empty() && dims[0] == KILN_DIM_BATCH) dims[0] = batch;
  return dims;
}

size_t dtypeBytes(int32_t dtype) { return dtype == KILN_I64 ? 8 : dtype == KILN_BOOL ? 1 : 4; }

// Nearest-rank percentile of sorted samples.
double percentile(const std::vector<double>& sorted, double p) {
  size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(sorted.size()) + 0.5);
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

// Buffers 64-byte aligned like the runtime's, so alignment is not a
// variable between kiln and the comparison.
void* alloc(size_t bytes) { return std::aligned_alloc(64, (std::max<size_t>(bytes, 64) + 63) / 64 * 64); }

// One loaded artifact with its inputs, outputs and workspace for `batch`.
struct Loaded {
  std::shared_ptr<kiln::runtime::Artifact> artifact;
  std::vector<void*> inputs, outputs;
  std::vector<const void*> in;  // `inputs` as the run function takes them
  void* workspace = nullptr;

  Loaded(std::shared_ptr<kiln::runtime::Artifact> a, int64_t batch) : artifact(std::move(a)) {
    const kiln_artifact& d = artifact->descriptor();
    uint32_t seed = 12345;
    for (int32_t i = 0; i < d.num_inputs; ++i) {
      const size_t n = kiln::runtime::Artifact::elementCount(d.inputs[i], batch);
      void* buf = alloc(n * dtypeBytes(d.inputs[i].dtype));
      if (d.inputs[i].dtype == KILN_F32) {
        float* f = static_cast<float*>(buf);
        for (size_t j = 0; j < n; ++j) {
          seed = seed * 1664525u + 1013904223u;
          f[j] = static_cast<float>(seed >> 8) / static_cast<float>(1u << 23) - 1.f;
        }
      } else {
        std::memset(buf, 0, n * dtypeBytes(d.inputs[i].dtype));
      }
      inputs.push_back(buf);
    }
    for (int32_t i = 0; i < d.num_outputs; ++i)
      outputs.push_back(
          alloc(kiln::runtime::Artifact::elementCount(d.outputs[i], batch) * dtypeBytes(d.outputs[i].dtype)));
    workspace = alloc(artifact->workspaceBytes(batch));
    in.assign(inputs.begin(), inputs.end());
  }
  ~Loaded() {
    for (void* p : inputs) std::free(p);
    for (void* p : outputs) std::free(p);
    std::free(workspace);
  }
  Loaded(const Loaded&) = delete;
  Loaded& operator=(const Loaded&) = delete;

  void run(int64_t batch) const { artifact->run(batch, in.data(), outputs.data(), workspace); }
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> paths;
  long iterations = 200, warmup = 20, batch = 1;
  bool json = false, peakOnly = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") json = true;
    else if (a == "--peak") peakOnly = true;
    else if ((a == "--iterations" || a == "--warmup" || a == "--batch") && i + 1 < argc)
      (a == "--warmup" ? warmup : a == "--batch" ? batch : iterations) = std::atol(argv[++i]);
    else if (!a.empty() && a[0] != '-') paths.push_back(a);
    else return usage();
  }
  if (peakOnly) {
    kiln::bench::FmaPeak p = kiln::bench::measureFmaPeak();
    if (json) std::printf("{\"peak_gflops\": %.2f, \"ymm_gflops\": %.2f, \"zmm_gflops\": %.2f, \"method\": \"%s\"}\n", p.gflops, p.gflopsYmm, p.gflopsZmm, p.method.c_str());
    else std::printf("single-core FP32 peak: %.1f GFLOP/s (ymm %.1f, zmm %.1f)\n  %s\n", p.gflops, p.gflopsYmm, p.gflopsZmm, p.method.c_str());
    return 0;
  }
  if (paths.empty() || iterations < 1 || warmup < 0 || batch < 1) return usage();

  std::vector<std::unique_ptr<Loaded>> models;
  try {
    for (const std::string& path : paths)
      models.push_back(std::make_unique<Loaded>(kiln::runtime::Artifact::open(path), batch));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln_bench_model: %s\n", e.what());
    return 1;
  }
  auto runAll = [&] {
    for (const auto& m : models) m->run(batch);
  };
  std::string names;
  for (const auto& m : models) {
    const char* name = m->artifact->descriptor().model_name;
    names += (names.empty() ? "" : "+") + std::string(name ? name : "");
  }

  using Clock = std::chrono::steady_clock;
  for (long i = 0; i < warmup; ++i) runAll();
  // Wall time is the latency an application sees; thread CPU time is also
  // kept, because on a shared machine it excludes slices given to other
  // processes (the GFLOP/s vs the FMA peak, also CPU time, uses it).
  auto cpuMicros = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) * 1e-3;
  };
  std::vector<double> us, cpuUs;
  us.reserve(static_cast<size_t>(iterations));
  cpuUs.reserve(static_cast<size_t>(iterations));
  for (long i = 0; i < iterations; ++i) {
    const double c0 = cpuMicros();
    auto t0 = Clock::now();
    runAll();
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    cpuUs.push_back(cpuMicros() - c0);
  }
  std::sort(us.begin(), us.end());
  std::sort(cpuUs.begin(), cpuUs.end());
  const double median = percentile(us, 50), p90 = percentile(us, 90), best = us.front();
  const double cpuMedian = percentile(cpuUs, 50);

  const kiln_artifact& first = models.front()->artifact->descriptor();
  if (json) {
    std::printf("{\"model\": \"%s\", \"batch\": %ld, \"iterations\": %ld, \"median_us\": %.3f, \"p90_us\": %.3f, \"min_us\": %.3f, \"cpu_median_us\": %.3f, \"inputs\": [",
                names.c_str(), batch, iterations, median, p90, best, cpuMedian);
    for (int32_t i = 0; i < first.num_inputs; ++i) {
      std::printf("%s{\"name\": \"%s\", \"dtype\": %d, \"dims\": [", i ? ", " : "", first.inputs[i].name, first.inputs[i].dtype);
      std::vector<int64_t> dims = batchDims(first.inputs[i], batch);
      for (size_t j = 0; j < dims.size(); ++j) std::printf("%s%lld", j ? ", " : "", static_cast<long long>(dims[j]));
      std::printf("]}");
    }
    std::printf("]}\n");
  } else {
    std::string shown;
    for (const std::string& path : paths) shown += (shown.empty() ? "" : " then ") + path;
    std::printf("%s: batch %ld, %ld runs after %ld warm-up: median %.1f us, p90 %.1f us, min %.1f us (CPU time median %.1f us)\n",
                shown.c_str(), batch, iterations, warmup, median, p90, best, cpuMedian);
  }
  return 0;
}
