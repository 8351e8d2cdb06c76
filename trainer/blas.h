// The trainer's only dense math kernel: row-major single-precision GEMM from
// OpenBLAS, and the thread count it runs with (1 thread = bitwise
// reproducible runs).
#pragma once

namespace kiln::train {

// C[M,N] = alpha * op(A) * op(B) + beta * C, all row-major and contiguous;
// op(A) is [M,K] (A stored [K,M] when transA), op(B) is [K,N].
void gemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, const float* B, float beta, float* C);

void setBlasThreads(int threads);

}  // namespace kiln::train
