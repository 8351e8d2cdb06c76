#include "runtime/src/model.h"

#include <cstdlib>
#include <limits>
#include <new>

#include "runtime/src/thread_pool.h"

namespace kiln::runtime {

AlignedBuffer::AlignedBuffer(uint64_t bytes) : size_(bytes) {
  constexpr uint64_t kAlignment = 64;
  if (bytes > std::numeric_limits<size_t>::max() - kAlignment) throw std::bad_alloc();
  // aligned_alloc wants a size that is a multiple of the alignment, and a
  // model without intermediates still gets a valid pointer.
  data_ = std::aligned_alloc(kAlignment, static_cast<size_t>(std::max<uint64_t>((bytes + 63) / 64 * 64, kAlignment)));
  if (!data_) throw std::bad_alloc();
}

AlignedBuffer::~AlignedBuffer() { std::free(data_); }

ContextSettings contextSettings(const kiln_context_options* options) {
  ContextSettings settings;
  if (!options) return settings;
  if (options->struct_size < sizeof(kiln_context_options))
    throw StatusError(KILN_ERR_INVALID_ARGUMENT,
                      "kiln_context_options.struct_size is " + std::to_string(options->struct_size) +
                          ", expected at least " + std::to_string(sizeof(kiln_context_options)) +
                          " (call kiln_context_options_init)");
  constexpr uint32_t kKnownFlags = KILN_CONTEXT_SERIAL | KILN_CONTEXT_CHECK_NON_FINITE;
  if (options->flags & ~kKnownFlags)
    throw StatusError(KILN_ERR_INVALID_ARGUMENT,
                      "kiln_context_options.flags has unknown bits " + std::to_string(options->flags & ~kKnownFlags));
  if (options->max_batch < 1)
    throw StatusError(KILN_ERR_INVALID_ARGUMENT,
                      "kiln_context_options.max_batch is " + std::to_string(options->max_batch) + ", expected >= 1");
  settings.flags = options->flags;
  settings.maxBatch = options->max_batch;
  return settings;
}

Executor startExecutor(const ContextSettings& settings) {
  if (settings.serial()) return {};
  ThreadPool& pool = ThreadPool::instance();
  pool.start();
  return {&ThreadPool::parallelFor, &pool, std::min<int64_t>(KILN_MAX_SLOTS, pool.threadCount())};
}

AlignedBuffer allocateWorkspace(const Artifact& artifact, int64_t maxBatch, int64_t slots) {
  const uint64_t bytes = kiln_workspace_bytes(&artifact.descriptor(), maxBatch, slots);  // bounded for grouped runs
  if (bytes == std::numeric_limits<uint64_t>::max())
    throw StatusError(KILN_ERR_OUT_OF_MEMORY, artifact.path() + ": the workspace for max_batch " +
                                                  std::to_string(maxBatch) + " exceeds the address space");
  return AlignedBuffer(bytes);
}

}  // namespace kiln::runtime

using kiln::runtime::StatusError;
using kiln::runtime::TensorArgument;

kiln_context::kiln_context(kiln_model* model, const kiln::runtime::ContextSettings& settings)
    : model(kiln::runtime::Ref<kiln_model>::retained(model)),
      settings(settings),
      executor(kiln::runtime::startExecutor(settings)),
      workspace(kiln::runtime::allocateWorkspace(*model->artifact, settings.maxBatch, executor.slots)) {
  const kiln_artifact& d = model->artifact->descriptor();
  for (int32_t i = 0; i < d.num_inputs; ++i) arguments.push_back({nullptr, &d.inputs[i], nullptr, "input", false});
  for (int32_t i = 0; i < d.num_outputs; ++i) arguments.push_back({nullptr, &d.outputs[i], nullptr, "output", true});
  inputData.resize(static_cast<size_t>(d.num_inputs));
  outputData.resize(static_cast<size_t>(d.num_outputs));
}

void kiln_context::run(const kiln_tensor* inputs, int32_t numInputs, const kiln_tensor* outputs, int32_t numOutputs) {
  const kiln::runtime::Artifact& artifact = *model->artifact;
  const kiln_artifact& d = artifact.descriptor();
  if (numInputs != d.num_inputs || numOutputs != d.num_outputs)
    throw StatusError(KILN_ERR_INPUT_COUNT, artifact.path() + ": the model takes " + std::to_string(d.num_inputs) +
                                                " inputs and " + std::to_string(d.num_outputs) + " outputs, given " +
                                                std::to_string(numInputs) + " and " + std::to_string(numOutputs));
  if ((numInputs > 0 && !inputs) || !outputs)
    throw StatusError(KILN_ERR_INVALID_ARGUMENT, artifact.path() + ": the input or output tensor array is NULL");
  for (int32_t i = 0; i < numInputs; ++i) arguments[static_cast<size_t>(i)].tensor = &inputs[i];
  for (int32_t i = 0; i < numOutputs; ++i) arguments[static_cast<size_t>(numInputs + i)].tensor = &outputs[i];
  int64_t batch = kiln::runtime::checkArguments(arguments, settings.maxBatch);

  for (int32_t i = 0; i < numInputs; ++i) inputData[static_cast<size_t>(i)] = inputs[i].data;
  for (int32_t i = 0; i < numOutputs; ++i) outputData[static_cast<size_t>(i)] = outputs[i].data;
  if (int32_t code = artifact.run(batch, inputData.data(), outputData.data(), workspace.data(), executor.parallelFor,
                                  executor.pool, executor.slots))
    throw StatusError(KILN_ERR_INTERNAL, artifact.path() + ": the model's run function returned " + std::to_string(code));
  if (settings.checkNonFinite())
    for (int32_t i = 0; i < numOutputs; ++i)
      kiln::runtime::checkFinite(arguments[static_cast<size_t>(numInputs + i)], batch);
}
