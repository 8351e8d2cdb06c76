// The artifact loader: checks a compiled model file before any of its code
// runs (an ELF shared object for this machine, complete), dlopen()s it with
// RTLD_NOW | RTLD_LOCAL (so several models exporting the same entry symbol
// coexist in one process), then checks the descriptor (magic, ABI major,
// weights hash, I/O metadata, ABI 1.1 labels, the ABI 1.2 layer table) and
// the CPU features its code needs against the host's. The C API's kiln_model
// wraps it; `kiln run`, the codegen tests and the kernel benchmarks use it
// directly. Depends only on the C library and libdl.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "kiln/artifact.h"
#include "runtime/src/cpu_features.h"
#include "runtime/src/status_error.h"

namespace kiln::runtime {

class Artifact {
 public:
  // Throws StatusError (KILN_ERR_IO, _NOT_ARTIFACT, _ABI, _CORRUPT, _CPU)
  // whose message starts with the file's path.
  static std::shared_ptr<Artifact> open(const std::string& path);
  ~Artifact();
  Artifact(const Artifact&) = delete;
  Artifact& operator=(const Artifact&) = delete;

  const kiln_artifact& descriptor() const { return *desc_; }
  const std::string& path() const { return path_; }
  // The ABI 1.1 class labels; empty for ABI 1.0 artifacts and models without.
  std::span<const char* const> labels() const;

  // Elements of tensor `info` for `batch` samples.
  static uint64_t elementCount(const kiln_tensor_info& info, int64_t batch);
  // For run(), which gives the run function the most slots.
  uint64_t workspaceBytes(int64_t batch) const { return kiln_workspace_bytes(desc_, batch, KILN_MAX_SLOTS); }

  // Buffers as in kiln_run_slots_fn (kiln_run_fn before ABI 1.4, whose
  // runs may use KILN_MAX_SLOTS slots); parallelFor NULL runs on the
  // calling thread. Returns the generated code's status (0).
  int32_t run(int64_t batch, const void* const* inputs, void* const* outputs, void* workspace,
              kiln_parallel_for_fn parallelFor = nullptr, void* pool = nullptr, int64_t slots = KILN_MAX_SLOTS) const;

 private:
  Artifact() = default;
  std::string path_;
  void* handle_ = nullptr;
  const kiln_artifact* desc_ = nullptr;
};

// Throws KILN_ERR_ABI / KILN_ERR_CORRUPT naming `path` unless the descriptor's
// magic, ABI major, weights hash, I/O metadata, (ABI >= 1.1) labels and
// (ABI >= 1.2) layer table are sane.
void checkDescriptor(const kiln_artifact& d, const std::string& path);

// Throws KILN_ERR_CPU naming the features of `d.cpu_features` that `host`
// lacks (see cpu_features.h).
void checkCpuFeatures(const kiln_artifact& d, const std::string& path, const CpuFeatureSet& host);

// Bytes per element of a kiln_dtype (0 for unknown ones), and its short name.
size_t dtypeSize(int32_t dtype);
const char* dtypeName(int32_t dtype);

}  // namespace kiln::runtime
