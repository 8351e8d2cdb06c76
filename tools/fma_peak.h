// The machine's single-core FP32 peak, measured rather than assumed: clocks
// under load (boost, AVX frequency offsets, a shared cloud core) are not
// knowable from /proc/cpuinfo, so a number derived from a nominal clock would
// flatter or insult the kernels compared against it. `kiln bench` and
// bench/kiln_bench_kernels report their GFLOP/s against it.
#pragma once

#include <string>

namespace kiln::bench {

struct FmaPeak {
  double gflops = 0;       // best of the variants below, the "peak" we report (0: not measured, non-x86-64 host)
  double gflopsYmm = 0;    // 256-bit FMAs
  double gflopsZmm = 0;    // 512-bit FMAs (0 when the CPU lacks AVX-512F)
  std::string method;      // one line saying how it was measured
};

// Runs chains of independent vfmadd231ps on one thread for about
// `seconds` per variant and returns the best FLOP rate seen over repeats.
FmaPeak measureFmaPeak(double seconds = 0.2);

// The calling thread's CPU time in seconds (CLOCK_THREAD_CPUTIME_ID).
double threadCpuSeconds();

}  // namespace kiln::bench
