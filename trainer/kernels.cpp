// oneDNN-backed GEMM, engine and thread count (see kernels.h).
#include "trainer/kernels.h"

#include <omp.h>

#include <dnnl.hpp>
#include <stdexcept>
#include <string>

namespace kiln::train {

void gemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, const float* B, float beta, float* C) {
  if (M == 0 || N == 0) return;
  dnnl_status_t s = dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K, alpha, A, transA ? M : K, B,
                               transB ? K : N, beta, C, N);
  if (s != dnnl_success) throw std::runtime_error("oneDNN sgemm failed with status " + std::to_string(s));
}

void setMathThreads(int threads) { omp_set_num_threads(threads); }

dnnl::engine& cpuEngine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& cpuStream() {
  static dnnl::stream stream(cpuEngine());
  return stream;
}

}  // namespace kiln::train
