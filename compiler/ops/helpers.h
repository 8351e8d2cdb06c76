// Small helpers shared by op definitions: numpy-style broadcasting and
// strided index walking for reference kernels.
#pragma once

#include <vector>

#include "compiler/ir/op.h"

namespace kiln {

// Multidirectional (numpy) broadcast of two shapes. The symbolic batch
// broadcasts with 1 and with itself. Throws (via ctx) when incompatible.
Shape broadcastShapes(const InferContext& ctx, const Shape& a, const Shape& b);

// Row-major strides of `shape`.
std::vector<int64_t> stridesOf(const Shape& shape);

// Strides to read an input of shape `in` while walking the broadcast output
// shape `out` (0 where the input is broadcast).
std::vector<int64_t> broadcastStrides(const Shape& in, const Shape& out);

// Calls fn(outIndex, inOffset0, inOffset1, ...) for every element of `out`,
// given one stride vector per input (from broadcastStrides).
template <class Fn>
void forEachBroadcast(const Shape& out, const std::vector<std::vector<int64_t>>& strides, Fn fn) {
  const size_t rank = out.rank();
  const int64_t total = out.numElements();
  std::vector<int64_t> idx(rank, 0), offsets(strides.size(), 0);
  for (int64_t i = 0; i < total; ++i) {
    fn(i, offsets);
    for (size_t d = rank; d-- > 0;) {
      ++idx[d];
      for (size_t k = 0; k < strides.size(); ++k) offsets[k] += strides[k][d];
      if (idx[d] < out[d]) break;
      for (size_t k = 0; k < strides.size(); ++k) offsets[k] -= strides[k][d] * out[d];
      idx[d] = 0;
    }
  }
}

// Calls fn(T{}) with the C++ element type of `t` (float, int64_t, int32_t,
// bool), so one templated kernel serves every dtype an op accepts.
template <class Fn>
void visitDType(DType t, Fn fn) {
  switch (t) {
    case DType::F32: fn(float{}); return;
    case DType::I64: fn(int64_t{}); return;
    case DType::I32: fn(int32_t{}); return;
    case DType::Bool: fn(bool{}); return;
  }
}

// Sliding-window geometry along spatial dim `dim` (Conv and pools): checks
// kernel, stride, dilation >= 1 and pads >= 0 with overflow-checked sums,
// and returns the padded input size minus the window extent
// dilation*(kernel-1)+1, which must be >= 0; output size = span/stride + 1.
int64_t windowSpan(const InferContext& ctx, size_t dim, int64_t in, int64_t kernel, int64_t stride, int64_t dilation,
                   int64_t padBegin, int64_t padEnd);

// Shape inference for ops whose single output has the type of input 0.
std::vector<TensorType> sameAsFirstInput(const InferContext& ctx);

// Checks that input i is f32 (the only compute type of this ops).
void requireFloat(const InferContext& ctx, size_t i);

}  // namespace kiln
