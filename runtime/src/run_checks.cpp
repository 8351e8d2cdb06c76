#include "runtime/src/run_checks.h"

#include <cmath>

#include "runtime/src/artifact_loader.h"
#include "runtime/src/status_error.h"

namespace kiln::runtime {

namespace {

[[noreturn]] void fail(kiln_status status, const TensorArgument& argument, const std::string& what) {
  throw StatusError(status, describe(argument) + ": " + what);
}

bool hasBatchDim(const kiln_tensor_info& info) { return info.rank > 0 && info.dims[0] == KILN_DIM_BATCH; }

// Checks one tensor's dtype, rank, pointers and static dims; its batch is
// checked by the caller.
void checkTensor(const TensorArgument& argument) {
  const kiln_tensor& t = *argument.tensor;
  const kiln_tensor_info& info = *argument.expected;
  if (t.dtype != info.dtype)
    fail(KILN_ERR_DTYPE, argument,
         std::string("dtype ") + dtypeName(t.dtype) + " (" + std::to_string(t.dtype) + "), expected " +
             dtypeName(info.dtype));
  if (t.rank != info.rank)
    fail(KILN_ERR_RANK, argument, "rank " + std::to_string(t.rank) + ", expected " + std::to_string(info.rank));
  if (t.rank > 0 && !t.dims) fail(KILN_ERR_NULL_DATA, argument, "dims is NULL");
  if (!t.data) fail(KILN_ERR_NULL_DATA, argument, "data is NULL");
  for (int32_t d = hasBatchDim(info) ? 1 : 0; d < t.rank; ++d)
    if (t.dims[d] != info.dims[d])
      fail(KILN_ERR_SHAPE, argument,
           "dim " + std::to_string(d) + " is " + std::to_string(t.dims[d]) + ", expected " + std::to_string(info.dims[d]));
}

bool overlap(const TensorArgument& a, const TensorArgument& b, int64_t batch) {
  auto begin = [](const TensorArgument& x) { return reinterpret_cast<uintptr_t>(x.tensor->data); };
  uint64_t aBytes = argumentBytes(a, batch), bBytes = argumentBytes(b, batch);
  return aBytes > 0 && bBytes > 0 && begin(a) < begin(b) + bBytes && begin(b) < begin(a) + aBytes;
}

}  // namespace

std::string describe(const TensorArgument& argument) {
  std::string text = argument.owner ? std::string(argument.owner) + " " : std::string();
  return text + argument.role + " '" + argument.expected->name + "'";
}

uint64_t argumentBytes(const TensorArgument& argument, int64_t batch) {
  return Artifact::elementCount(*argument.expected, batch) * dtypeSize(argument.expected->dtype);
}

int64_t checkArguments(std::span<const TensorArgument> arguments, int64_t maxBatch) {
  const TensorArgument* batchSource = nullptr;
  int64_t batch = 1;
  for (const TensorArgument& argument : arguments) {
    checkTensor(argument);
    if (!hasBatchDim(*argument.expected)) continue;
    int64_t b = argument.tensor->dims[0];
    if (b < 1 || b > maxBatch)
      fail(KILN_ERR_BATCH, argument,
           "batch (dim 0) is " + std::to_string(b) + ", the context takes 1 to " + std::to_string(maxBatch) +
               " (its max_batch)");
    if (batchSource && b != batch)
      fail(KILN_ERR_SHAPE, argument,
           "batch (dim 0) is " + std::to_string(b) + ", but " + describe(*batchSource) + " has batch " +
               std::to_string(batch));
    batchSource = &argument;
    batch = b;
  }
  for (size_t i = 0; i < arguments.size(); ++i) {
    if (!arguments[i].written) continue;
    for (size_t j = 0; j < arguments.size(); ++j)
      if (j != i && (!arguments[j].written || j < i) && overlap(arguments[i], arguments[j], batch))
        fail(KILN_ERR_ALIASING, arguments[i], "its buffer overlaps the buffer of " + describe(arguments[j]));
  }
  return batch;
}

void checkFinite(const TensorArgument& argument, int64_t batch) {
  if (argument.expected->dtype != KILN_F32) return;
  const auto* values = static_cast<const float*>(argument.tensor->data);
  uint64_t count = Artifact::elementCount(*argument.expected, batch);
  for (uint64_t i = 0; i < count; ++i)
    if (!std::isfinite(values[i]))
      fail(KILN_ERR_NON_FINITE, argument,
           "element " + std::to_string(i) + " (flat index) is " +
               (std::isnan(values[i]) ? "NaN" : values[i] > 0 ? "+Inf" : "-Inf"));
}

}  // namespace kiln::runtime
