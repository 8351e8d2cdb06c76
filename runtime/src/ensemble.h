// The C API's ensemble handles: a manifest's member models, checked to agree
// (inputs, one f32 [N, C] output, labels), and contexts that run the members
// in parallel on the shared pool and combine their outputs by the manifest's
// rule (runtime/README.md has the math).
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "runtime/src/ensemble_manifest.h"
#include "runtime/src/model.h"

struct kiln_ensemble {
  // Reads the manifest and loads and checks the members; throws StatusError
  // or ManifestError naming the manifest and the member.
  explicit kiln_ensemble(const std::string& manifestPath);
  void retain() { references.fetch_add(1, std::memory_order_relaxed); }
  void release() {
    if (references.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  const kiln_artifact& memberDescriptor(size_t m) const { return members[m]->artifact->descriptor(); }

  std::atomic<int32_t> references{1};
  const std::string path;
  kiln::runtime::EnsembleManifest manifest;  // weights normalized
  std::vector<kiln::runtime::Ref<kiln_model>> members;
  std::vector<std::string> memberNames;  // "member 1 ('b.so')", for messages
  int64_t classes = 0;                   // C
  int64_t combinedDims[2] = {};          // the members' output dims: [N or a static batch, C]
  kiln_tensor_info combined = {"combined", KILN_F32, 2, combinedDims};
};

struct kiln_ensemble_context {
  kiln_ensemble_context(kiln_ensemble* ensemble, const kiln::runtime::ContextSettings& settings);
  // Checks the tensors, runs the members and combines; throws StatusError.
  void run(const kiln_tensor* inputs, int32_t numInputs, const kiln_tensor* combinedOutput,
           const kiln_tensor* memberOutputs);

  const kiln::runtime::Ref<kiln_ensemble> ensemble;
  const kiln::runtime::ContextSettings settings;
  const kiln::runtime::Executor executor;
  // One workspace per member, and where members write when the caller does
  // not ask for their outputs.
  std::vector<kiln::runtime::AlignedBuffer> workspaces, memberScratch;
  // Per-run state, sized here so that runs allocate nothing: the arguments
  // are the inputs, the combined output, then the member outputs if given.
  std::vector<kiln::runtime::TensorArgument> arguments;
  std::vector<const void*> inputData;
  std::vector<float*> memberData;
  std::vector<int32_t> memberResults;
  std::vector<double> classAccumulator;
  int64_t batch = 0;

 private:
  void runMember(size_t m);
  void combine(float* out);
};
