/* The kiln runtime C API: load compiled models (`kiln compile`) and weighted
 * ensembles of them, check every call, run them without allocating.
 *
 * C99, no dependencies besides <stddef.h>/<stdint.h>. Link with
 * `kiln::runtime` (CMake) or `pkg-config --libs kiln-runtime`.
 *
 * Conventions
 * - Every function that can fail returns a kiln_status; KILN_OK is 0. The
 *   message of the last failure on the calling thread is kiln_last_error()
 *   (names the file, tensor, dim or member involved). No C++ exception ever
 *   leaves this API.
 * - Handles are opaque. Models and ensembles are reference-counted
 *   (retain/release); a context keeps its model or ensemble alive.
 * - Contexts hold the per-call state (workspace, scratch buffers). One
 *   context serves one call at a time; concurrent calls on one model from
 *   several threads are safe with one context per thread.
 * - kiln_run / kiln_ensemble_run never allocate: all memory is reserved when
 *   the context is created, for batches up to its max_batch.
 * - All models and ensemble members in a process share one thread pool owned
 *   by the runtime (threads sleep when idle).
 */
#ifndef KILN_KILN_H
#define KILN_KILN_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/artifact.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define KILN_API
#else
#define KILN_API __attribute__((visibility("default")))
#endif

/* Version of this API (not of the artifact ABI, see artifact.h). */
#define KILN_API_VERSION_MAJOR 1
#define KILN_API_VERSION_MINOR 0

typedef enum kiln_status {
  KILN_OK = 0,
  KILN_ERR_INVALID_ARGUMENT = 1, /* NULL handle/out-pointer, bad option value, index out of range */
  KILN_ERR_IO = 2,               /* file missing or unreadable */
  KILN_ERR_NOT_ARTIFACT = 3,     /* not an ELF shared object for this machine, truncated, no entry symbol */
  KILN_ERR_ABI = 4,              /* bad magic or unsupported artifact ABI major version */
  KILN_ERR_CORRUPT = 5,          /* weights hash mismatch or insane I/O metadata */
  KILN_ERR_CPU = 6,              /* the artifact needs a CPU feature (or architecture) this host lacks */
  KILN_ERR_INPUT_COUNT = 7,      /* wrong number of input or output tensors */
  KILN_ERR_DTYPE = 8,            /* a tensor's dtype differs from the model's */
  KILN_ERR_RANK = 9,             /* a tensor's rank differs from the model's */
  KILN_ERR_SHAPE = 10,           /* a dim differs from the model's, or inputs disagree on the batch */
  KILN_ERR_NULL_DATA = 11,       /* a tensor's data (or dims) pointer is NULL */
  KILN_ERR_ALIASING = 12,        /* an output buffer overlaps an input or another output */
  KILN_ERR_BATCH = 13,           /* batch is 0 or above the context's max_batch */
  KILN_ERR_NON_FINITE = 14,      /* checked mode: an output holds NaN or Inf */
  KILN_ERR_MANIFEST = 15,        /* ensemble manifest unreadable or invalid (bad JSON, weights, rule) */
  KILN_ERR_MEMBER_MISMATCH = 16, /* ensemble members disagree on inputs, output shape or labels */
  KILN_ERR_STATE = 17,           /* call not allowed now (e.g. resizing a started thread pool) */
  KILN_ERR_OUT_OF_MEMORY = 18,
  KILN_ERR_INTERNAL = 19
} kiln_status;

/* Short constant name of a status ("KILN_ERR_SHAPE"); never NULL. */
KILN_API const char* kiln_status_name(kiln_status status);
/* Message of the last failing call on this thread ("" if none). Valid until
 * the next failing call on this thread. */
KILN_API const char* kiln_last_error(void);
/* Version of the runtime library ("0.1.0"). */
KILN_API const char* kiln_version(void);

/* ---- thread pool ------------------------------------------------------- */

/* Threads of the shared pool, the calling thread included (1 = everything runs
 * on the calling thread). Default: the KILN_NUM_THREADS environment variable,
 * else the number of online CPUs. Allowed only before the pool starts (the
 * first context created without KILN_CONTEXT_SERIAL); later -> KILN_ERR_STATE. */
KILN_API kiln_status kiln_set_num_threads(int32_t num_threads);
KILN_API int32_t kiln_num_threads(void);

/* ---- models ------------------------------------------------------------ */

typedef struct kiln_model kiln_model;

/* Loads a compiled artifact (.so) and checks it before running any of its
 * code beyond the descriptor: ELF for this machine and complete, magic, ABI
 * major, weights hash, I/O metadata, CPU features vs the host. The model
 * starts with one reference. */
KILN_API kiln_status kiln_model_open(const char* path, kiln_model** out_model);
KILN_API void kiln_model_retain(kiln_model* model);
KILN_API void kiln_model_release(kiln_model* model); /* NULL is a no-op */

/* The artifact's descriptor (names, dtypes, dims with KILN_DIM_BATCH, labels,
 * target, ...); valid while the model lives. */
KILN_API const kiln_artifact* kiln_model_descriptor(const kiln_model* model);
KILN_API int32_t kiln_model_num_inputs(const kiln_model* model);
KILN_API int32_t kiln_model_num_outputs(const kiln_model* model);
KILN_API kiln_status kiln_model_input(const kiln_model* model, int32_t index, kiln_tensor_info* out_info);
KILN_API kiln_status kiln_model_output(const kiln_model* model, int32_t index, kiln_tensor_info* out_info);

/* ---- tensors and contexts ---------------------------------------------- */

/* A caller-owned dense row-major buffer. dims[0] is the batch for tensors
 * whose model dim 0 is KILN_DIM_BATCH. */
typedef struct kiln_tensor {
  int32_t dtype; /* kiln_dtype */
  int32_t rank;
  const int64_t* dims;
  void* data; /* inputs are only read */
} kiln_tensor;

enum kiln_context_flags {
  KILN_CONTEXT_SERIAL = 1u << 0,           /* run on the calling thread only, never on the pool */
  KILN_CONTEXT_CHECK_NON_FINITE = 1u << 1  /* after each run, fail with KILN_ERR_NON_FINITE on the first NaN/Inf output */
};

typedef struct kiln_context_options {
  uint32_t struct_size; /* sizeof(kiln_context_options), for forward compatibility */
  uint32_t flags;       /* kiln_context_flags */
  int64_t max_batch;    /* largest batch a run may use; workspace is reserved for it (default 1) */
} kiln_context_options;

/* Fills `options` with the defaults (struct_size set, flags 0, max_batch 1). */
KILN_API void kiln_context_options_init(kiln_context_options* options);

typedef struct kiln_context kiln_context;

/* options may be NULL (defaults). Keeps a reference to the model. */
KILN_API kiln_status kiln_context_create(kiln_model* model, const kiln_context_options* options,
                                         kiln_context** out_context);
KILN_API void kiln_context_destroy(kiln_context* context); /* NULL is a no-op */

/* The bytes the context reserved for the model's intermediates (0 for NULL).
 * A model that runs its batch in groups of samples needs at most a fixed
 * number of arenas, so this stops growing with max_batch there. */
KILN_API uint64_t kiln_context_workspace_bytes(const kiln_context* context);

/* Runs the model. inputs/outputs: one tensor per model input/output, in
 * descriptor order, caller-owned; every dtype, rank and dim is checked
 * against the model (the batch is dims[0] and must agree across tensors).
 * Output buffers must not overlap inputs or each other. */
KILN_API kiln_status kiln_run(kiln_context* context, const kiln_tensor* inputs, int32_t num_inputs,
                              const kiln_tensor* outputs, int32_t num_outputs);

/* ---- weighted ensembles ------------------------------------------------ */

typedef struct kiln_ensemble kiln_ensemble;

typedef enum kiln_ensemble_rule {
  KILN_RULE_MEAN = 0,   /* weighted mean of member probabilities ("mean") */
  KILN_RULE_LOGITS = 1, /* softmax of the weighted mean of member logits ("logits") */
  KILN_RULE_VOTE = 2    /* per class, the summed weight of members whose top class it is ("vote") */
} kiln_ensemble_rule;

/* Loads a kiln-ensemble manifest (JSON, see runtime/README.md) and its member
 * artifacts (paths relative to the manifest). Weights must be finite,
 * non-negative and not all zero; they are normalized to sum to 1. Members
 * must have identical inputs and one f32 output of identical shape [N, C]
 * and agree with the manifest's labels, else KILN_ERR_MEMBER_MISMATCH naming
 * the member. */
KILN_API kiln_status kiln_ensemble_open(const char* manifest_path, kiln_ensemble** out_ensemble);
KILN_API void kiln_ensemble_retain(kiln_ensemble* ensemble);
KILN_API void kiln_ensemble_release(kiln_ensemble* ensemble); /* NULL is a no-op */

KILN_API int32_t kiln_ensemble_num_members(const kiln_ensemble* ensemble);
/* Member i's model (owned by the ensemble) and normalized weight. */
KILN_API kiln_status kiln_ensemble_member(const kiln_ensemble* ensemble, int32_t index, const kiln_model** out_model,
                                          float* out_weight);
KILN_API kiln_ensemble_rule kiln_ensemble_get_rule(const kiln_ensemble* ensemble);
/* Class count C and the manifest's class names (NULL when it has none). */
KILN_API int32_t kiln_ensemble_num_classes(const kiln_ensemble* ensemble);
KILN_API const char* kiln_ensemble_label(const kiln_ensemble* ensemble, int32_t class_index);

typedef struct kiln_ensemble_context kiln_ensemble_context;

/* One context per member inside, plus scratch for member outputs. */
KILN_API kiln_status kiln_ensemble_context_create(kiln_ensemble* ensemble, const kiln_context_options* options,
                                                  kiln_ensemble_context** out_context);
KILN_API void kiln_ensemble_context_destroy(kiln_ensemble_context* context); /* NULL is a no-op */

/* Runs all members (in parallel on the shared pool unless the context is
 * serial) and writes the combined [N, C] prediction to `combined`. If
 * member_outputs is not NULL it holds num_members tensors that receive each
 * member's own output. In checked mode the error names the member, output
 * and index of the first non-finite value. */
KILN_API kiln_status kiln_ensemble_run(kiln_ensemble_context* context, const kiln_tensor* inputs, int32_t num_inputs,
                                       const kiln_tensor* combined, const kiln_tensor* member_outputs);

#ifdef __cplusplus
}
#endif

#endif /* KILN_KILN_H */
