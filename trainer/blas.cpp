// OpenBLAS-backed GEMM (see blas.h).
#include "trainer/blas.h"

#include <cblas.h>

namespace kiln::train {

void gemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, const float* B, float beta, float* C) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
              transA ? M : K, B, transB ? K : N, beta, C, N);
}

void setBlasThreads(int threads) { openblas_set_num_threads(threads); }

}  // namespace kiln::train
