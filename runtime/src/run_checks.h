// The run-time checks of kiln_run and kiln_ensemble_run: every caller tensor
// against what the model expects (dtype, rank, dims, batch, data), outputs
// against aliasing, and, in checked mode, outputs against NaN and Inf. They
// allocate nothing unless they fail.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "kiln/kiln.h"

namespace kiln::runtime {

// One caller tensor of a run and what the model expects of it.
struct TensorArgument {
  const kiln_tensor* tensor = nullptr;
  const kiln_tensor_info* expected = nullptr;
  const char* owner = nullptr;  // for messages: "member 1 ('b.so')", or NULL for the model's own tensors
  const char* role = "input";   // "input" or "output"
  bool written = false;         // an output: must overlap no other argument
};

// "input 'x'", "member 1 ('b.so') output 'logits'".
std::string describe(const TensorArgument& argument);

// Checks every argument and returns the batch: dims[0] of the tensors whose
// model dim 0 is KILN_DIM_BATCH (they must agree and lie in [1, maxBatch]),
// 1 when there are none. Throws StatusError with the status of the first
// problem (KILN_ERR_DTYPE, _RANK, _NULL_DATA, _SHAPE, _BATCH, _ALIASING).
int64_t checkArguments(std::span<const TensorArgument> arguments, int64_t maxBatch);

// Bytes of an argument's buffer once checked, for `batch` samples.
uint64_t argumentBytes(const TensorArgument& argument, int64_t batch);

// Throws KILN_ERR_NON_FINITE naming the argument and the flat index of its
// first NaN or Inf, if it is an f32 tensor that holds one.
void checkFinite(const TensorArgument& argument, int64_t batch);

}  // namespace kiln::runtime
