// Minimal artifact loader: dlopen()s a compiled model, checks its descriptor
// (magic, ABI major, weights hash, I/O metadata) before any of its code runs
// beyond the entry function, and runs it serially. The runtime's C API wraps
// this; it depends only on the C library and libdl.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include "kiln/artifact.h"

namespace kiln::runtime {

class ArtifactError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Artifact {
 public:
  // Throws ArtifactError naming the file and what is wrong with it.
  static std::shared_ptr<Artifact> open(const std::string& path);
  ~Artifact();
  Artifact(const Artifact&) = delete;
  Artifact& operator=(const Artifact&) = delete;

  const kiln_artifact& descriptor() const { return *desc_; }
  const std::string& path() const { return path_; }

  // Elements of tensor `info` for `batch` samples.
  static uint64_t elementCount(const kiln_tensor_info& info, int64_t batch);
  uint64_t workspaceBytes(int64_t batch) const { return desc_->workspace_bytes_per_sample * static_cast<uint64_t>(batch); }

  // Runs on the calling thread; buffers as in kiln_run_fn.
  void run(int64_t batch, const void* const* inputs, void* const* outputs, void* workspace) const;

 private:
  Artifact() = default;
  std::string path_;
  void* handle_ = nullptr;
  const kiln_artifact* desc_ = nullptr;
};

}  // namespace kiln::runtime
