// The trainer's math back end: oneDNN (Debian's libdnnl) for the row-major
// sgemm and the convolution primitives, the CPU engine and stream those run
// on, and the thread count of every parallel loop (oneDNN's and the layers'
// OpenMP loops share one OpenMP pool; 1 thread = bitwise reproducible runs).
#pragma once

namespace dnnl {
struct engine;
struct stream;
}  // namespace dnnl

namespace kiln::train {

// C[M,N] = alpha * op(A) * op(B) + beta * C, all row-major and contiguous;
// op(A) is [M,K] (A stored [K,M] when transA), op(B) is [K,N].
void gemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, const float* B, float beta, float* C);

void setMathThreads(int threads);

// One engine and one in-order stream per process; the trainer calls them
// from one thread (parallelism is inside the primitives).
dnnl::engine& cpuEngine();
dnnl::stream& cpuStream();

}  // namespace kiln::train
