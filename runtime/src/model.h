// The C API's model and context handles and what ensembles share with them:
// intrusive references, 64-byte-aligned buffers, context options.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "kiln/kiln.h"
#include "runtime/src/artifact_loader.h"
#include "runtime/src/run_checks.h"

namespace kiln::runtime {

// Owns one reference to a handle with retain()/release() (kiln_model,
// kiln_ensemble).
template <class Handle>
class Ref {
 public:
  Ref() = default;
  // Adopts the reference the caller holds.
  explicit Ref(Handle* handle) : handle_(handle) {}
  static Ref retained(Handle* handle) {
    handle->retain();
    return Ref(handle);
  }
  Ref(Ref&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  Ref& operator=(Ref&& other) noexcept {
    std::swap(handle_, other.handle_);
    return *this;
  }
  ~Ref() {
    if (handle_) handle_->release();
  }
  Handle* get() const { return handle_; }
  Handle* operator->() const { return handle_; }

 private:
  Handle* handle_ = nullptr;
};

// Uninitialized bytes at a 64-byte boundary (the artifact ABI's workspace
// alignment); throws std::bad_alloc.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(uint64_t bytes);
  AlignedBuffer(AlignedBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    return *this;
  }
  ~AlignedBuffer();
  void* data() const { return data_; }
  uint64_t size() const { return size_; }  // as requested

 private:
  void* data_ = nullptr;
  uint64_t size_ = 0;
};

// Checked kiln_context_options.
struct ContextSettings {
  uint32_t flags = 0;
  int64_t maxBatch = 1;
  bool serial() const { return flags & KILN_CONTEXT_SERIAL; }
  bool checkNonFinite() const { return flags & KILN_CONTEXT_CHECK_NON_FINITE; }
};
// Throws KILN_ERR_INVALID_ARGUMENT on a too-small struct_size, unknown flags
// or max_batch < 1; NULL gives the defaults.
ContextSettings contextSettings(const kiln_context_options* options);

// What a run passes its artifact to spread work: the shared pool's
// parallel-for, or NULL (everything on the calling thread), and the arena
// slots of the workspace: as many as groups of samples can run at once, one
// per thread of the pool (whose count is fixed once it started), at most
// KILN_MAX_SLOTS.
struct Executor {
  kiln_parallel_for_fn parallelFor = nullptr;
  void* pool = nullptr;
  int64_t slots = 1;
};
// Starts the shared pool unless the settings are serial.
Executor startExecutor(const ContextSettings& settings);

// The workspace `artifact` needs for batches up to maxBatch in `slots` slots.
AlignedBuffer allocateWorkspace(const Artifact& artifact, int64_t maxBatch, int64_t slots);

}  // namespace kiln::runtime

struct kiln_model {
  explicit kiln_model(std::shared_ptr<const kiln::runtime::Artifact> artifact) : artifact(std::move(artifact)) {}
  void retain() { references.fetch_add(1, std::memory_order_relaxed); }
  void release() {
    if (references.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  std::atomic<int32_t> references{1};
  const std::shared_ptr<const kiln::runtime::Artifact> artifact;
};

struct kiln_context {
  kiln_context(kiln_model* model, const kiln::runtime::ContextSettings& settings);
  // Checks the tensors and runs the model; throws StatusError.
  void run(const kiln_tensor* inputs, int32_t numInputs, const kiln_tensor* outputs, int32_t numOutputs);

  const kiln::runtime::Ref<kiln_model> model;
  const kiln::runtime::ContextSettings settings;
  const kiln::runtime::Executor executor;
  const kiln::runtime::AlignedBuffer workspace;
  // Per-run state, sized here so that runs allocate nothing.
  std::vector<kiln::runtime::TensorArgument> arguments;
  std::vector<const void*> inputData;
  std::vector<void*> outputData;
};
