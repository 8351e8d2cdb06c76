/* The kiln artifact ABI: what a compiled model (.so or .o) exports.
 *
 * An artifact exports one function, `<prefix>_kiln_artifact_v1` (prefix from
 * `kiln compile --name`, default "model"), returning a pointer to a constant
 * kiln_artifact descriptor. Everything a loader needs is in the descriptor;
 * no other symbol is required. C99, no dependencies.
 *
 * Shapes: dims[0] == KILN_DIM_BATCH marks the run-time batch dimension; all
 * other dims are static. Buffers are dense, row-major (NCHW), caller-owned.
 */
#ifndef KILN_ARTIFACT_H
#define KILN_ARTIFACT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_ARTIFACT_MAGIC 0x4e4c494bu /* "KILN" little-endian */
#define KILN_ABI_MAJOR 1
#define KILN_ABI_MINOR 5 /* 1.1 added class labels, 1.2 the layer table and profile counters, 1.3 the workspace bound, \
                          1.4 the run with arena slots, 1.5 the batch region */
#define KILN_DIM_BATCH (-1)

typedef enum kiln_dtype { KILN_F32 = 1, KILN_I64 = 2, KILN_I32 = 3, KILN_BOOL = 4 } kiln_dtype;

typedef struct kiln_tensor_info {
  const char* name;
  int32_t dtype; /* kiln_dtype */
  int32_t rank;
  const int64_t* dims; /* rank entries; dims[0] may be KILN_DIM_BATCH */
} kiln_tensor_info;

/* Runs task(task_ctx, i) for every i in [0, count), possibly in parallel, and
 * returns when all are done. Supplied by the runtime's thread pool; NULL
 * means run serially on the calling thread. */
typedef void (*kiln_task_fn)(void* task_ctx, int64_t index);
typedef void (*kiln_parallel_for_fn)(void* pool_ctx, int64_t count, kiln_task_fn task, void* task_ctx);

/* Runs the model on `batch` samples (1 for models without a batch dim).
 * inputs/outputs: one pointer per tensor in descriptor order. workspace:
 * workspace_bytes_per_sample * kiln_workspace_samples(descriptor, batch)
 * bytes, 64-byte aligned, uninitialized.
 * Returns 0; the generated code never allocates and never fails on valid
 * arguments (the loader checks them). */
typedef int32_t (*kiln_run_fn)(int64_t batch, const void* const* inputs, void* const* outputs, void* workspace,
                               kiln_parallel_for_fn parallel_for, void* pool_ctx);

/* ABI 1.4: the same run with the number of arena slots its workspace holds,
 * 1 <= slots <= KILN_MAX_SLOTS: a grouped run (group_samples > 0) keeps at
 * most `slots` groups of samples in flight (threads beyond that wait for a
 * slot), so a pool of T threads needs only T slots. Its workspace is
 * workspace_bytes_per_sample * kiln_workspace_samples_in_slots(descriptor,
 * batch, slots) bytes. `run` is run_slots with KILN_MAX_SLOTS slots. */
#define KILN_MAX_SLOTS 32
typedef int32_t (*kiln_run_slots_fn)(int64_t batch, const void* const* inputs, void* const* outputs, void* workspace,
                                     int64_t slots, kiln_parallel_for_fn parallel_for, void* pool_ctx);

/* ABI 1.2: one node of the compiled graph (after fusion and layout). */
typedef struct kiln_layer_info {
  const char* name;   /* the node's name */
  const char* op;     /* its op ("Conv", "MaxPool", "Reorder", ...) */
  const char* shapes; /* "1x64x56x56 <- 1x64x56x56, 64x64x3x3": outputs <- inputs, N for the batch */
  uint64_t flops;     /* its share of kiln_artifact.flops */
} kiln_layer_info;

typedef struct kiln_artifact {
  uint32_t magic; /* KILN_ARTIFACT_MAGIC */
  uint16_t abi_major, abi_minor;
  const char* kiln_version;
  const char* model_name;
  const char* target_triple;
  const char* cpu_name;     /* the -mcpu the code was generated for */
  const char* cpu_features; /* comma-separated "+avx512f,+avx2,..." the code may use */
  int32_t num_inputs, num_outputs;
  const kiln_tensor_info* inputs;
  const kiln_tensor_info* outputs;
  uint64_t workspace_bytes_per_sample;
  const void* weights; /* all packed constants, read-only */
  uint64_t weights_bytes;
  uint64_t weights_hash; /* FNV-1a 64 of the weights bytes */
  kiln_run_fn run;
  /* ABI 1.1: class names of a classifier's output ([N, C], C names), or 0 and
   * NULL when the model carries none (`kiln compile --labels FILE`). Loaders
   * read these fields only when abi_minor >= 1. */
  int32_t num_labels;
  const char* const* labels;
  /* ABI 1.2: the work and the layers, for benchmarks and profiles. Loaders
   * read these fields only when abi_minor >= 2. */
  uint64_t flops; /* floating-point operations (a multiply-add is 2) of one run per unit of `batch` */
  int32_t num_layers;
  const kiln_layer_info* layers; /* the compiled graph's nodes in execution order */
  /* NULL unless compiled with `kiln compile --profile`: 2 * num_layers
   * counters, per layer {ticks, calls}. Every run of the artifact (any
   * context, any thread) adds the cycle-counter ticks (rdtsc on x86-64,
   * cntvct on AArch64) its layer's step took, start to end including its
   * parallel tasks, and 1 to calls, once per group of samples the run
   * schedules (one group at batch 1; groups running in parallel on
   * different threads each add their own). Reset by writing 0s. */
  uint64_t* profile;
  /* ABI 1.3: a run's workspace holds at most this many samples' arenas
   * (groups of samples reuse arena slots), or 0: one per sample of the batch.
   * Loaders read it only when abi_minor >= 3. */
  uint64_t workspace_max_samples;
  /* ABI 1.4: samples per group of a grouped run (each group goes through
   * the network in one arena slot), 0 when the run is not grouped; and the
   * run function taking the slot count. Read only when abi_minor >= 4. */
  uint64_t group_samples;
  kiln_run_slots_fn run_slots;
  /* ABI 1.5: the batch region at the start of the workspace, before the
   * arenas: batch_region_bytes_per_sample for each sample of a chunk of at
   * most batch_region_samples (samples 0 without one), where the run keeps
   * the values of the nodes it runs over a whole chunk at once (weight-heavy
   * nodes, which then read their weights once per chunk); 0 bytes with a
   * chunk when those nodes read and write only graph inputs and outputs.
   * Read only when abi_minor >= 5; kiln_workspace_bytes adds it. */
  uint64_t batch_region_bytes_per_sample;
  uint64_t batch_region_samples;
} kiln_artifact;

/* The arenas a run of `batch` (>= 1) samples uses: its workspace is
 * workspace_bytes_per_sample * kiln_workspace_samples(artifact, batch). */
static inline uint64_t kiln_workspace_samples(const kiln_artifact* artifact, int64_t batch) {
  uint64_t samples = (uint64_t)batch;
  if (artifact->abi_minor >= 3 && artifact->workspace_max_samples > 0 && artifact->workspace_max_samples < samples)
    samples = artifact->workspace_max_samples;
  return samples;
}

/* The arenas a run_slots of `batch` samples in `slots` slots uses (the
 * workspace is workspace_bytes_per_sample times this). */
static inline uint64_t kiln_workspace_samples_in_slots(const kiln_artifact* artifact, int64_t batch, int64_t slots) {
  uint64_t samples = kiln_workspace_samples(artifact, batch);
  if (artifact->abi_minor >= 4 && artifact->group_samples > 0 && slots >= 1 &&
      artifact->group_samples * (uint64_t)slots < samples)
    samples = artifact->group_samples * (uint64_t)slots;
  return samples;
}

/* The bytes of the workspace a run_slots of `batch` samples in `slots`
 * slots needs: the batch region, then the arenas. Saturates at UINT64_MAX. */
static inline uint64_t kiln_workspace_bytes(const kiln_artifact* artifact, int64_t batch, int64_t slots) {
  const uint64_t samples = kiln_workspace_samples_in_slots(artifact, batch, slots);
  const uint64_t perSample = artifact->workspace_bytes_per_sample;
  if (perSample > 0 && samples > UINT64_MAX / perSample) return UINT64_MAX;
  uint64_t bytes = perSample * samples;
  if (artifact->abi_minor >= 5 && artifact->batch_region_samples > 0) {
    const uint64_t chunk = (uint64_t)batch < artifact->batch_region_samples ? (uint64_t)batch
                                                                           : artifact->batch_region_samples;
    const uint64_t region = artifact->batch_region_bytes_per_sample;
    if (region > 0 && chunk > (UINT64_MAX - bytes) / region) return UINT64_MAX;
    bytes += region * chunk;
  }
  return bytes;
}

typedef const kiln_artifact* (*kiln_artifact_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* KILN_ARTIFACT_H */
