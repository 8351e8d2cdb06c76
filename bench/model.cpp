// kiln_bench_model: batch-1 latency of a compiled model. Loads MODEL.so with
// runtime::Artifact (the same loader `kiln run` uses), fills the inputs with
// deterministic values in [-1, 1), runs --warmup times untimed, then times
// --iterations runs one by one and reports the median and 90th percentile
// in microseconds. Serial: the artifact gets no thread pool.
//
//   kiln_bench_model MODEL.so [--iterations N] [--warmup N] [--json]
//   kiln_bench_model --peak [--json]     the measured single-core FMA peak
//
// --json prints one object (inputs' shapes included, so the ONNX Runtime
// side of bench/compare_ort.mjs feeds the same shapes).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "bench/fma_peak.h"
#include "runtime/src/artifact_loader.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: kiln_bench_model MODEL.so [--iterations N] [--warmup N] [--json]\n"
               "       kiln_bench_model --peak [--json]\n");
  return 2;
}

std::vector<int64_t> batchOneDims(const kiln_tensor_info& info) {
  std::vector<int64_t> dims(info.dims, info.dims + info.rank);
  if (!dims.empty() && dims[0] == KILN_DIM_BATCH) dims[0] = 1;
  return dims;
}

size_t dtypeBytes(int32_t dtype) { return dtype == KILN_I64 ? 8 : dtype == KILN_BOOL ? 1 : 4; }

// Nearest-rank percentile of sorted samples.
double percentile(const std::vector<double>& sorted, double p) {
  size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(sorted.size()) + 0.5);
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  long iterations = 200, warmup = 20;
  bool json = false, peakOnly = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") json = true;
    else if (a == "--peak") peakOnly = true;
    else if ((a == "--iterations" || a == "--warmup") && i + 1 < argc) (a == "--warmup" ? warmup : iterations) = std::atol(argv[++i]);
    else if (!a.empty() && a[0] != '-' && path.empty()) path = a;
    else return usage();
  }
  if (peakOnly) {
    kiln::bench::FmaPeak p = kiln::bench::measureFmaPeak();
    if (json) std::printf("{\"peak_gflops\": %.2f, \"ymm_gflops\": %.2f, \"zmm_gflops\": %.2f, \"method\": \"%s\"}\n", p.gflops, p.gflopsYmm, p.gflopsZmm, p.method.c_str());
    else std::printf("single-core FP32 peak: %.1f GFLOP/s (ymm %.1f, zmm %.1f)\n  %s\n", p.gflops, p.gflopsYmm, p.gflopsZmm, p.method.c_str());
    return 0;
  }
  if (path.empty() || iterations < 1 || warmup < 0) return usage();

  std::shared_ptr<kiln::runtime::Artifact> artifact;
  try {
    artifact = kiln::runtime::Artifact::open(path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln_bench_model: %s\n", e.what());
    return 1;
  }
  const kiln_artifact& d = artifact->descriptor();

  // Buffers 64-byte aligned like the runtime's, so alignment is not a
  // variable between kiln and the comparison.
  auto alloc = [](size_t bytes) { return std::aligned_alloc(64, (std::max<size_t>(bytes, 64) + 63) / 64 * 64); };
  std::vector<void*> inputs, outputs;
  uint32_t seed = 12345;
  for (int32_t i = 0; i < d.num_inputs; ++i) {
    const size_t n = kiln::runtime::Artifact::elementCount(d.inputs[i], 1);
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
    outputs.push_back(alloc(kiln::runtime::Artifact::elementCount(d.outputs[i], 1) * dtypeBytes(d.outputs[i].dtype)));
  void* workspace = alloc(artifact->workspaceBytes(1));
  std::vector<const void*> in(inputs.begin(), inputs.end());

  using Clock = std::chrono::steady_clock;
  for (long i = 0; i < warmup; ++i) artifact->run(1, in.data(), outputs.data(), workspace);
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
    artifact->run(1, in.data(), outputs.data(), workspace);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    cpuUs.push_back(cpuMicros() - c0);
  }
  std::sort(us.begin(), us.end());
  std::sort(cpuUs.begin(), cpuUs.end());
  const double median = percentile(us, 50), p90 = percentile(us, 90), best = us.front();
  const double cpuMedian = percentile(cpuUs, 50);

  if (json) {
    std::printf("{\"model\": \"%s\", \"iterations\": %ld, \"median_us\": %.3f, \"p90_us\": %.3f, \"min_us\": %.3f, \"cpu_median_us\": %.3f, \"inputs\": [",
                d.model_name ? d.model_name : "", iterations, median, p90, best, cpuMedian);
    for (int32_t i = 0; i < d.num_inputs; ++i) {
      std::printf("%s{\"name\": \"%s\", \"dtype\": %d, \"dims\": [", i ? ", " : "", d.inputs[i].name, d.inputs[i].dtype);
      std::vector<int64_t> dims = batchOneDims(d.inputs[i]);
      for (size_t j = 0; j < dims.size(); ++j) std::printf("%s%lld", j ? ", " : "", static_cast<long long>(dims[j]));
      std::printf("]}");
    }
    std::printf("]}\n");
  } else {
    std::printf("%s: batch 1, %ld runs after %ld warm-up: median %.1f us, p90 %.1f us, min %.1f us (CPU time median %.1f us)\n",
                path.c_str(), iterations, warmup, median, p90, best, cpuMedian);
  }
  for (void* p : inputs) std::free(p);
  for (void* p : outputs) std::free(p);
  std::free(workspace);
  return 0;
}
