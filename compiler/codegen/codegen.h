// The LLVM backend: turns an optimized, memory-planned graph into native
// code for a target and writes it as a shared library (linked with lld as a
// library), an object file, assembly or LLVM IR, plus a C header. The
// artifact's layout is the ABI of runtime/include/kiln/artifact.h.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::codegen {

enum class EmitKind { SharedLibrary, Object, Assembly, LLVMIR };

struct CompileOptions {
  std::string triple;         // "" = host
  std::string cpu = "native"; // "native" = host CPU
  std::string features;       // extra "+avx512f,-avx512vl,..."
  int optLevel = 3;           // LLVM pipeline level 0..3
  std::string symbolPrefix = "model";  // <prefix>_kiln_artifact_v1
  std::string modelName;      // recorded in the descriptor
  std::vector<std::string> labels;  // class names of a classifier output, recorded in the descriptor (ABI 1.1)
  bool profile = false;             // per-layer cycle counters in the artifact (ABI 1.2 profile)
  // Called as each phase of compileGraph ends ("IR", "LLVM passes",
  // "machine code", "link" or "print"), for progress reports.
  std::function<void(const std::string& phase)> phaseDone;
};

// The resolved target, for reports: triple, CPU name and the features the
// code may use.
struct ResolvedTarget {
  std::string triple, cpu, features;
};
ResolvedTarget resolveTarget(const CompileOptions& options);

// Checks that `labels` name the classes of a classifier output: some f32
// output of shape [N, C] must have C == labels.size(). Nothing to check
// without labels. Throws kiln::Error naming the outputs.
void checkLabels(const Graph& g, const std::vector<std::string>& labels);

// How the run function schedules a batch: groups of samplesPerGroup samples
// each run through the network before the next (depth-first, the groups
// spread over the threads, every node still split into its parts), or the
// whole batch node by node when samplesPerGroup is 0. sampleBytes: one
// sample's intermediates, inputs and outputs.
//
// Groups run in arena slots, one per thread of the runtime's pool and at
// most kMaxGroupsInFlight (KILN_MAX_SLOTS; a pool of more threads waits for
// a slot), so a grouped run's workspace holds samplesPerGroup arenas per
// thread, at most workspaceSamples, whatever the batch: memory stops growing
// with max_batch. Node by node, every sample keeps its own arena
// (workspaceSamples 0: as many as the batch); a graph without a batch dim
// runs once, in one.
struct BatchSchedule {
  static constexpr int64_t kMaxGroupsInFlight = 32;
  int64_t samplesPerGroup;
  int64_t sampleBytes;
  int64_t workspaceSamples;
};
BatchSchedule batchSchedule(const Graph& g);  // of a graph with a memory plan

// The channel block of the NCHWc layout for the target (its f32 vector
// width), for PassOptions::channelBlock of the pipeline before compileGraph.
int channelBlock(const CompileOptions& options);

// Compiles `g` (must already carry a memory plan: run plan-memory last) and
// writes `path` atomically: nothing is left at `path` if compilation fails.
// Throws kiln::Error naming the node and op an emitter could not handle, or
// labels that do not fit (checkLabels).
void compileGraph(const Graph& g, const CompileOptions& options, EmitKind kind, const std::string& path);

// The C header declaring the artifact's entry symbol and its I/O, listing
// the class labels, if any, in a comment.
std::string artifactHeader(const Graph& g, const CompileOptions& options);

// EmitKind from an output file name (.so, .o, .s, .ll); throws when unknown.
EmitKind emitKindForPath(const std::string& path);

}  // namespace kiln::codegen
