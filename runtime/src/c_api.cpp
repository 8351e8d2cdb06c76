// The extern "C" entry points of kiln.h. Each one that can fail runs its body
// in guarded(), which turns every exception into a kiln_status and this
// thread's kiln_last_error() message: no exception crosses the C API.
#include <new>
#include <string>

#include "kiln/kiln.h"
#include "runtime/src/ensemble.h"
#include "runtime/src/model.h"
#include "runtime/src/thread_pool.h"

using kiln::runtime::StatusError;

namespace {

// Only failing calls write it, so successful runs never allocate for it.
thread_local std::string lastError;

kiln_status fail(kiln_status status, const char* message) noexcept {
  try {
    lastError = message;
  } catch (...) {
    lastError = "out of memory";  // short enough to need no allocation
  }
  return status;
}

template <class Body>
kiln_status guarded(Body&& body) noexcept {
  try {
    body();
    return KILN_OK;
  } catch (const StatusError& e) {
    return fail(e.status(), e.what());
  } catch (const kiln::runtime::ManifestError& e) {
    return fail(KILN_ERR_MANIFEST, e.what());
  } catch (const std::bad_alloc&) {
    return fail(KILN_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return fail(KILN_ERR_INTERNAL, (std::string("internal error: ") + e.what()).c_str());
  } catch (...) {
    return fail(KILN_ERR_INTERNAL, "internal error: unknown exception");
  }
}

// Throws KILN_ERR_INVALID_ARGUMENT "function: what is NULL" when `pointer` is.
void requireNonNull(const void* pointer, const char* function, const char* what) {
  if (!pointer) throw StatusError(KILN_ERR_INVALID_ARGUMENT, std::string(function) + ": " + what + " is NULL");
}

void requireIndex(int32_t index, int32_t count, const char* function) {
  if (index < 0 || index >= count)
    throw StatusError(KILN_ERR_INVALID_ARGUMENT, std::string(function) + ": index " + std::to_string(index) +
                                                     " is not in [0, " + std::to_string(count) + ")");
}

}  // namespace

extern "C" {

const char* kiln_status_name(kiln_status status) {
  switch (status) {
    case KILN_OK: return "KILN_OK";
    case KILN_ERR_INVALID_ARGUMENT: return "KILN_ERR_INVALID_ARGUMENT";
    case KILN_ERR_IO: return "KILN_ERR_IO";
    case KILN_ERR_NOT_ARTIFACT: return "KILN_ERR_NOT_ARTIFACT";
    case KILN_ERR_ABI: return "KILN_ERR_ABI";
    case KILN_ERR_CORRUPT: return "KILN_ERR_CORRUPT";
    case KILN_ERR_CPU: return "KILN_ERR_CPU";
    case KILN_ERR_INPUT_COUNT: return "KILN_ERR_INPUT_COUNT";
    case KILN_ERR_DTYPE: return "KILN_ERR_DTYPE";
    case KILN_ERR_RANK: return "KILN_ERR_RANK";
    case KILN_ERR_SHAPE: return "KILN_ERR_SHAPE";
    case KILN_ERR_NULL_DATA: return "KILN_ERR_NULL_DATA";
    case KILN_ERR_ALIASING: return "KILN_ERR_ALIASING";
    case KILN_ERR_BATCH: return "KILN_ERR_BATCH";
    case KILN_ERR_NON_FINITE: return "KILN_ERR_NON_FINITE";
    case KILN_ERR_MANIFEST: return "KILN_ERR_MANIFEST";
    case KILN_ERR_MEMBER_MISMATCH: return "KILN_ERR_MEMBER_MISMATCH";
    case KILN_ERR_STATE: return "KILN_ERR_STATE";
    case KILN_ERR_OUT_OF_MEMORY: return "KILN_ERR_OUT_OF_MEMORY";
    case KILN_ERR_INTERNAL: return "KILN_ERR_INTERNAL";
  }
  return "KILN_ERR_UNKNOWN";
}

const char* kiln_last_error(void) { return lastError.c_str(); }

const char* kiln_version(void) { return KILN_RUNTIME_VERSION; }

kiln_status kiln_set_num_threads(int32_t num_threads) {
  return guarded([&] { kiln::runtime::ThreadPool::instance().setThreadCount(num_threads); });
}

int32_t kiln_num_threads(void) {
  int32_t threads = -1;
  guarded([&] { threads = kiln::runtime::ThreadPool::instance().threadCount(); });
  return threads;
}

/* ---- models ---- */

kiln_status kiln_model_open(const char* path, kiln_model** out_model) {
  return guarded([&] {
    requireNonNull(out_model, "kiln_model_open", "out_model");
    *out_model = nullptr;
    requireNonNull(path, "kiln_model_open", "path");
    *out_model = new kiln_model(kiln::runtime::Artifact::open(path));
  });
}

void kiln_model_retain(kiln_model* model) {
  if (model) model->retain();
}

void kiln_model_release(kiln_model* model) {
  if (model) model->release();
}

const kiln_artifact* kiln_model_descriptor(const kiln_model* model) {
  return model ? &model->artifact->descriptor() : nullptr;
}

int32_t kiln_model_num_inputs(const kiln_model* model) {
  return model ? model->artifact->descriptor().num_inputs : -1;
}

int32_t kiln_model_num_outputs(const kiln_model* model) {
  return model ? model->artifact->descriptor().num_outputs : -1;
}

kiln_status kiln_model_input(const kiln_model* model, int32_t index, kiln_tensor_info* out_info) {
  return guarded([&] {
    requireNonNull(model, "kiln_model_input", "model");
    requireNonNull(out_info, "kiln_model_input", "out_info");
    const kiln_artifact& d = model->artifact->descriptor();
    requireIndex(index, d.num_inputs, "kiln_model_input");
    *out_info = d.inputs[index];
  });
}

kiln_status kiln_model_output(const kiln_model* model, int32_t index, kiln_tensor_info* out_info) {
  return guarded([&] {
    requireNonNull(model, "kiln_model_output", "model");
    requireNonNull(out_info, "kiln_model_output", "out_info");
    const kiln_artifact& d = model->artifact->descriptor();
    requireIndex(index, d.num_outputs, "kiln_model_output");
    *out_info = d.outputs[index];
  });
}

/* ---- contexts ---- */

void kiln_context_options_init(kiln_context_options* options) {
  if (options) *options = {sizeof(kiln_context_options), 0, 1};
}

kiln_status kiln_context_create(kiln_model* model, const kiln_context_options* options, kiln_context** out_context) {
  return guarded([&] {
    requireNonNull(out_context, "kiln_context_create", "out_context");
    *out_context = nullptr;
    requireNonNull(model, "kiln_context_create", "model");
    *out_context = new kiln_context(model, kiln::runtime::contextSettings(options));
  });
}

void kiln_context_destroy(kiln_context* context) { delete context; }

uint64_t kiln_context_workspace_bytes(const kiln_context* context) { return context ? context->workspace.size() : 0; }

kiln_status kiln_run(kiln_context* context, const kiln_tensor* inputs, int32_t num_inputs, const kiln_tensor* outputs,
                     int32_t num_outputs) {
  return guarded([&] {
    requireNonNull(context, "kiln_run", "context");
    context->run(inputs, num_inputs, outputs, num_outputs);
  });
}

/* ---- ensembles ---- */

kiln_status kiln_ensemble_open(const char* manifest_path, kiln_ensemble** out_ensemble) {
  return guarded([&] {
    requireNonNull(out_ensemble, "kiln_ensemble_open", "out_ensemble");
    *out_ensemble = nullptr;
    requireNonNull(manifest_path, "kiln_ensemble_open", "manifest_path");
    *out_ensemble = new kiln_ensemble(manifest_path);
  });
}

void kiln_ensemble_retain(kiln_ensemble* ensemble) {
  if (ensemble) ensemble->retain();
}

void kiln_ensemble_release(kiln_ensemble* ensemble) {
  if (ensemble) ensemble->release();
}

int32_t kiln_ensemble_num_members(const kiln_ensemble* ensemble) {
  return ensemble ? static_cast<int32_t>(ensemble->members.size()) : -1;
}

kiln_status kiln_ensemble_member(const kiln_ensemble* ensemble, int32_t index, const kiln_model** out_model,
                                 float* out_weight) {
  return guarded([&] {
    requireNonNull(ensemble, "kiln_ensemble_member", "ensemble");
    requireNonNull(out_model, "kiln_ensemble_member", "out_model");
    requireNonNull(out_weight, "kiln_ensemble_member", "out_weight");
    requireIndex(index, static_cast<int32_t>(ensemble->members.size()), "kiln_ensemble_member");
    *out_model = ensemble->members[static_cast<size_t>(index)].get();
    *out_weight = static_cast<float>(ensemble->manifest.members[static_cast<size_t>(index)].weight);
  });
}

kiln_ensemble_rule kiln_ensemble_get_rule(const kiln_ensemble* ensemble) {
  if (!ensemble) return KILN_RULE_MEAN;
  switch (ensemble->manifest.rule) {
    case kiln::runtime::EnsembleRule::Mean: return KILN_RULE_MEAN;
    case kiln::runtime::EnsembleRule::Logits: return KILN_RULE_LOGITS;
    case kiln::runtime::EnsembleRule::Vote: return KILN_RULE_VOTE;
  }
  return KILN_RULE_MEAN;
}

int32_t kiln_ensemble_num_classes(const kiln_ensemble* ensemble) {
  return ensemble ? static_cast<int32_t>(ensemble->classes) : -1;
}

const char* kiln_ensemble_label(const kiln_ensemble* ensemble, int32_t class_index) {
  if (!ensemble || class_index < 0 || static_cast<size_t>(class_index) >= ensemble->manifest.labels.size())
    return nullptr;
  return ensemble->manifest.labels[static_cast<size_t>(class_index)].c_str();
}

kiln_status kiln_ensemble_context_create(kiln_ensemble* ensemble, const kiln_context_options* options,
                                         kiln_ensemble_context** out_context) {
  return guarded([&] {
    requireNonNull(out_context, "kiln_ensemble_context_create", "out_context");
    *out_context = nullptr;
    requireNonNull(ensemble, "kiln_ensemble_context_create", "ensemble");
    *out_context = new kiln_ensemble_context(ensemble, kiln::runtime::contextSettings(options));
  });
}

void kiln_ensemble_context_destroy(kiln_ensemble_context* context) { delete context; }

kiln_status kiln_ensemble_run(kiln_ensemble_context* context, const kiln_tensor* inputs, int32_t num_inputs,
                              const kiln_tensor* combined, const kiln_tensor* member_outputs) {
  return guarded([&] {
    requireNonNull(context, "kiln_ensemble_run", "context");
    context->run(inputs, num_inputs, combined, member_outputs);
  });
}

}  // extern "C"
