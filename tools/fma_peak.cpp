#include "tools/fma_peak.h"

#include <algorithm>
#include <ctime>
#include <cstdint>

namespace kiln::bench {
namespace {

// Each iteration issues one FMA into each of N independent accumulators, so
// the loop is bound by FMA throughput, not latency, as long as N >= pipes x
// latency (2 x 4 on current x86 cores; we use 14 / 16 for headroom). Inline
// asm because a C loop would let the compiler reassociate, vectorize
// differently or drop the dead result; the accumulators are never read, so
// the values do not matter. The loop overhead (dec + jnz) issues on other
// ports and is one fused uop against 14-16 FMAs.
#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void fmaLoopYmm(int64_t iterations) {
  asm volatile(
      "vxorps %%ymm0, %%ymm0, %%ymm0\n\t"
      "vmovaps %%ymm0, %%ymm1\n\t vmovaps %%ymm0, %%ymm2\n\t vmovaps %%ymm0, %%ymm3\n\t"
      "vmovaps %%ymm0, %%ymm4\n\t vmovaps %%ymm0, %%ymm5\n\t vmovaps %%ymm0, %%ymm6\n\t"
      "vmovaps %%ymm0, %%ymm7\n\t vmovaps %%ymm0, %%ymm8\n\t vmovaps %%ymm0, %%ymm9\n\t"
      "vmovaps %%ymm0, %%ymm10\n\t vmovaps %%ymm0, %%ymm11\n\t vmovaps %%ymm0, %%ymm12\n\t"
      "vmovaps %%ymm0, %%ymm13\n\t vmovaps %%ymm0, %%ymm14\n\t vmovaps %%ymm0, %%ymm15\n\t"
      "1:\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm0\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm1\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm2\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm3\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm4\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm5\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm6\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm7\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm8\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm9\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm10\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm11\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm12\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm13\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      "vzeroupper\n\t"
      : "+r"(iterations)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
        "xmm13", "xmm14", "xmm15", "cc");
}
constexpr int kYmmChains = 14;

__attribute__((target("avx512f"))) void fmaLoopZmm(int64_t iterations) {
  asm volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vmovaps %%zmm0, %%zmm1\n\t vmovaps %%zmm0, %%zmm2\n\t vmovaps %%zmm0, %%zmm3\n\t"
      "vmovaps %%zmm0, %%zmm4\n\t vmovaps %%zmm0, %%zmm5\n\t vmovaps %%zmm0, %%zmm6\n\t"
      "vmovaps %%zmm0, %%zmm7\n\t vmovaps %%zmm0, %%zmm8\n\t vmovaps %%zmm0, %%zmm9\n\t"
      "vmovaps %%zmm0, %%zmm10\n\t vmovaps %%zmm0, %%zmm11\n\t vmovaps %%zmm0, %%zmm12\n\t"
      "vmovaps %%zmm0, %%zmm13\n\t vmovaps %%zmm0, %%zmm14\n\t vmovaps %%zmm0, %%zmm15\n\t"
      "vmovaps %%zmm0, %%zmm16\n\t vmovaps %%zmm0, %%zmm17\n\t"
      "1:\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm0\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm1\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm2\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm3\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm4\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm5\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm6\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm7\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm8\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm9\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm10\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm11\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm12\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm13\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm14\n\t"
      "vfmadd231ps %%zmm16, %%zmm17, %%zmm15\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      "vzeroupper\n\t"
      : "+r"(iterations)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
        "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "cc");
}
constexpr int kZmmChains = 16;

// GFLOP/s of `loop` with `flopsPerIteration`: calibrates the iteration
// count to ~seconds/5 per repeat, then keeps the fastest of 10 repeats (the
// least disturbed by other processes on a shared machine).
template <typename Loop>
double bestRate(Loop loop, double flopsPerIteration, double seconds) {
  auto timeOf = [&](int64_t n) {
    double t0 = threadCpuSeconds();
    loop(n);
    return threadCpuSeconds() - t0;
  };
  int64_t n = 1 << 16;
  timeOf(n);  // warm up: wakes the vector units / raises the clock
  while (timeOf(n) < seconds / 50) n *= 2;
  n = static_cast<int64_t>(static_cast<double>(n) * (seconds / 5) / std::max(timeOf(n), 1e-9)) + 1;
  double best = 0;
  for (int r = 0; r < 10; ++r) best = std::max(best, flopsPerIteration * static_cast<double>(n) / timeOf(n) * 1e-9);
  return best;
}
#endif

}  // namespace

// This thread's CPU time, not wall time: on a shared, oversubscribed machine
// the scheduler takes the core away for whole slices, which would read as a
// slower core. The kernels are timed the same way (Google Benchmark's CPU
// time), so %peak compares like with like.
double threadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

FmaPeak measureFmaPeak(double seconds) {
  FmaPeak p;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    p.gflopsYmm = bestRate(fmaLoopYmm, kYmmChains * 8 * 2.0, seconds);
  if (__builtin_cpu_supports("avx512f")) p.gflopsZmm = bestRate(fmaLoopZmm, kZmmChains * 16 * 2.0, seconds);
  p.gflops = std::max(p.gflopsYmm, p.gflopsZmm);
  p.method = "measured: one thread, 14 (ymm) / 16 (zmm) independent vfmadd231ps chains in an inline-asm loop, "
             "best of 10 repeats in thread CPU time; FLOP = 2 per lane per FMA";
#else
  p.method = "not measured (the FMA microbenchmark is x86-64 only)";
#endif
  return p;
}

}  // namespace kiln::bench
