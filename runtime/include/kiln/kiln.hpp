// Header-only C++ wrapper of the kiln runtime C API (kiln.h): RAII handles
// and exceptions. C++17.
//
//   kiln::Model model = kiln::Model::open("cnn.so");
//   kiln::Context context(model, {KILN_CONTEXT_CHECK_NON_FINITE, 8});
//   context.run(inputs, outputs);  // containers of kiln_tensor
//
// Models and ensembles are shared: copies hold another reference (the C
// API's retain/release). Contexts are move-only: one serves one call at a
// time. Every failing call throws kiln::RuntimeError with the kiln_status and
// kiln_last_error()'s message.
#ifndef KILN_KILN_HPP
#define KILN_KILN_HPP

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kiln/kiln.h"

namespace kiln {

class RuntimeError : public std::runtime_error {
 public:
  RuntimeError(kiln_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  kiln_status status() const noexcept { return status_; }

 private:
  kiln_status status_;
};

namespace detail {

inline void check(kiln_status status) {
  if (status != KILN_OK) throw RuntimeError(status, kiln_last_error());
}

// A reference-counted C handle: copies retain, destruction releases.
template <class Handle, void (*Retain)(Handle*), void (*Release)(Handle*)>
class Shared {
 public:
  Shared(const Shared& other) noexcept : handle_(other.handle_) {
    if (handle_) Retain(handle_);
  }
  Shared(Shared&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  Shared& operator=(Shared other) noexcept {
    std::swap(handle_, other.handle_);
    return *this;
  }
  ~Shared() { Release(handle_); }  // Release(NULL) is a no-op
  Handle* get() const noexcept { return handle_; }
  explicit operator bool() const noexcept { return handle_ != nullptr; }

 protected:
  explicit Shared(Handle* adopted) noexcept : handle_(adopted) {}

 private:
  Handle* handle_;
};

// An exclusively owned C handle.
template <class Handle, void (*Destroy)(Handle*)>
class Unique {
 public:
  Unique(const Unique&) = delete;
  Unique& operator=(const Unique&) = delete;
  Unique(Unique&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  Unique& operator=(Unique&& other) noexcept {
    std::swap(handle_, other.handle_);
    return *this;
  }
  ~Unique() { Destroy(handle_); }  // Destroy(NULL) is a no-op
  Handle* get() const noexcept { return handle_; }

 protected:
  explicit Unique(Handle* adopted) noexcept : handle_(adopted) {}

 private:
  Handle* handle_;
};

}  // namespace detail

// kiln_set_num_threads / kiln_num_threads.
inline void setNumThreads(int32_t threads) { detail::check(kiln_set_num_threads(threads)); }
inline int32_t numThreads() {
  int32_t threads = kiln_num_threads();
  if (threads < 0) throw RuntimeError(KILN_ERR_INVALID_ARGUMENT, kiln_last_error());
  return threads;
}

struct ContextOptions {
  uint32_t flags = 0;    // kiln_context_flags
  int64_t maxBatch = 1;  // largest batch a run may use

  kiln_context_options toC() const {
    kiln_context_options options;
    kiln_context_options_init(&options);
    options.flags = flags;
    options.max_batch = maxBatch;
    return options;
  }
};

class Model : public detail::Shared<kiln_model, kiln_model_retain, kiln_model_release> {
 public:
  static Model open(const std::string& path) {
    kiln_model* handle = nullptr;
    detail::check(kiln_model_open(path.c_str(), &handle));
    return Model(handle);
  }
  // Shares a model someone else holds (e.g. an ensemble member).
  static Model retain(const kiln_model* model) {
    auto* handle = const_cast<kiln_model*>(model);  // the reference count is not part of the model's state
    kiln_model_retain(handle);
    return Model(handle);
  }

  const kiln_artifact& descriptor() const { return *kiln_model_descriptor(get()); }
  int32_t numInputs() const { return kiln_model_num_inputs(get()); }
  int32_t numOutputs() const { return kiln_model_num_outputs(get()); }
  kiln_tensor_info input(int32_t index) const {
    kiln_tensor_info info;
    detail::check(kiln_model_input(get(), index, &info));
    return info;
  }
  kiln_tensor_info output(int32_t index) const {
    kiln_tensor_info info;
    detail::check(kiln_model_output(get(), index, &info));
    return info;
  }
  // The artifact's class labels (ABI 1.1), empty when it carries none.
  std::vector<std::string> labels() const {
    const kiln_artifact& d = descriptor();
    if (d.abi_minor < 1 || d.num_labels <= 0) return {};
    return std::vector<std::string>(d.labels, d.labels + d.num_labels);
  }

 private:
  using Shared::Shared;
};

class Context : public detail::Unique<kiln_context, kiln_context_destroy> {
 public:
  explicit Context(const Model& model, const ContextOptions& options = {}) : Unique(create(model, options)) {}

  void run(const kiln_tensor* inputs, size_t numInputs, const kiln_tensor* outputs, size_t numOutputs) {
    detail::check(kiln_run(get(), inputs, static_cast<int32_t>(numInputs), outputs, static_cast<int32_t>(numOutputs)));
  }
  // Any contiguous containers of kiln_tensor (std::vector, std::array, ...).
  template <class Inputs, class Outputs>
  void run(const Inputs& inputs, const Outputs& outputs) {
    run(std::data(inputs), std::size(inputs), std::data(outputs), std::size(outputs));
  }

 private:
  static kiln_context* create(const Model& model, const ContextOptions& options) {
    kiln_context_options c = options.toC();
    kiln_context* handle = nullptr;
    detail::check(kiln_context_create(model.get(), &c, &handle));
    return handle;
  }
};

class Ensemble : public detail::Shared<kiln_ensemble, kiln_ensemble_retain, kiln_ensemble_release> {
 public:
  struct Member {
    Model model;
    float weight;  // normalized
  };

  static Ensemble open(const std::string& manifestPath) {
    kiln_ensemble* handle = nullptr;
    detail::check(kiln_ensemble_open(manifestPath.c_str(), &handle));
    return Ensemble(handle);
  }

  int32_t numMembers() const { return kiln_ensemble_num_members(get()); }
  Member member(int32_t index) const {
    const kiln_model* model = nullptr;
    float weight = 0;
    detail::check(kiln_ensemble_member(get(), index, &model, &weight));
    return {Model::retain(model), weight};
  }
  kiln_ensemble_rule rule() const { return kiln_ensemble_get_rule(get()); }
  int32_t numClasses() const { return kiln_ensemble_num_classes(get()); }
  // The manifest's class names, empty when it has none.
  std::vector<std::string> labels() const {
    std::vector<std::string> names;
    for (int32_t c = 0; c < numClasses(); ++c)
      if (const char* label = kiln_ensemble_label(get(), c)) names.emplace_back(label);
    return names;
  }

 private:
  using Shared::Shared;
};

class EnsembleContext : public detail::Unique<kiln_ensemble_context, kiln_ensemble_context_destroy> {
 public:
  explicit EnsembleContext(const Ensemble& ensemble, const ContextOptions& options = {})
      : Unique(create(ensemble, options)) {}

  // memberOutputs: NULL, or one tensor per member.
  void run(const kiln_tensor* inputs, size_t numInputs, const kiln_tensor& combined,
           const kiln_tensor* memberOutputs = nullptr) {
    detail::check(kiln_ensemble_run(get(), inputs, static_cast<int32_t>(numInputs), &combined, memberOutputs));
  }
  template <class Inputs>
  void run(const Inputs& inputs, const kiln_tensor& combined, const kiln_tensor* memberOutputs = nullptr) {
    run(std::data(inputs), std::size(inputs), combined, memberOutputs);
  }

 private:
  static kiln_ensemble_context* create(const Ensemble& ensemble, const ContextOptions& options) {
    kiln_context_options c = options.toC();
    kiln_ensemble_context* handle = nullptr;
    detail::check(kiln_ensemble_context_create(ensemble.get(), &c, &handle));
    return handle;
  }
};

}  // namespace kiln

#endif  // KILN_KILN_HPP
