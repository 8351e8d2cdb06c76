// kiln_run and kiln_ensemble_run allocate nothing once their context exists,
// with the thread pool on. glibc has no malloc hooks any more, so this
// executable defines the allocation functions itself (interposing them for
// the whole process, libstdc++'s operator new and the pool's threads
// included), forwards them to glibc's implementations and counts calls.
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <new>
#include <string>

#include "runtime_test_util.h"

extern "C" {
void* __libc_malloc(size_t size);
void* __libc_calloc(size_t count, size_t size);
void* __libc_realloc(void* pointer, size_t size);
void* __libc_memalign(size_t alignment, size_t size);
void __libc_free(void* pointer);
}

namespace {

std::atomic<bool> counting{false};
std::atomic<int64_t> allocations{0};

void count() {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
}

// Counts the allocations `body` makes on any thread.
template <class Body>
int64_t allocationsOf(Body body) {
  allocations = 0;
  counting = true;
  body();
  counting = false;
  return allocations.load();
}

}  // namespace

extern "C" {

void* malloc(size_t size) {
  count();
  return __libc_malloc(size);
}

void* calloc(size_t n, size_t size) {
  count();
  return __libc_calloc(n, size);
}

void* realloc(void* pointer, size_t size) {
  count();
  return __libc_realloc(pointer, size);
}

void* aligned_alloc(size_t alignment, size_t size) {
  count();
  return __libc_memalign(alignment, size);
}

void* memalign(size_t alignment, size_t size) {
  count();
  return __libc_memalign(alignment, size);
}

int posix_memalign(void** out, size_t alignment, size_t size) {
  count();
  *out = __libc_memalign(alignment, size);
  return *out ? 0 : ENOMEM;
}

void free(void* pointer) { __libc_free(pointer); }

}  // extern "C"

// operator new is replaced too, so the count does not rest on how
// libstdc++'s own operator new reaches malloc.
void* operator new(size_t size) {
  count();
  if (void* p = __libc_malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t size) { return operator new(size); }
void* operator new(size_t size, std::align_val_t alignment) {
  count();
  if (void* p = __libc_memalign(static_cast<size_t>(alignment), size ? size : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t size, std::align_val_t alignment) { return operator new(size, alignment); }
void operator delete(void* p) noexcept { __libc_free(p); }
void operator delete[](void* p) noexcept { __libc_free(p); }
void operator delete(void* p, size_t) noexcept { __libc_free(p); }
void operator delete[](void* p, size_t) noexcept { __libc_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { __libc_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { __libc_free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { __libc_free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { __libc_free(p); }

using namespace kiln_test;

TEST_CASE("the allocation counter sees malloc and operator new", "[runtime][allocations]") {
  // Without this the zero counts below could mean the interposition failed.
  CHECK(allocationsOf([] { delete new int(1); }) == 1);
  CHECK(allocationsOf([] { std::free(std::malloc(16)); }) == 1);
  CHECK(allocationsOf([] { std::string text(100, 'x'); }) == 1);
}

TEST_CASE("1000 kiln_run calls on the pool allocate nothing", "[runtime][allocations]") {
  kiln_model* model = nullptr;
  REQUIRE_KILN_OK(kiln_model_open(artifact("member0_probs.so").c_str(), &model));
  kiln_context_options options;
  kiln_context_options_init(&options);
  options.flags = KILN_CONTEXT_CHECK_NON_FINITE;
  options.max_batch = 4;
  kiln_context* context = nullptr;
  REQUIRE_KILN_OK(kiln_context_create(model, &options, &context));
  Buffer image({4, 2, 6, 6}), probs({4, 5});
  kiln_tensor in = image.tensor(), out = probs.tensor();
  int failures = 0;
  CHECK(allocationsOf([&] {
          for (int i = 0; i < 1000; ++i) failures += kiln_run(context, &in, 1, &out, 1) != KILN_OK;
        }) == 0);
  CHECK(failures == 0);
  kiln_context_destroy(context);
  kiln_model_release(model);
}

TEST_CASE("100 kiln_run calls with a whole-batch suffix allocate nothing", "[runtime][allocations]") {
  kiln_model* model = nullptr;
  REQUIRE_KILN_OK(kiln_model_open(artifact("suffix.so").c_str(), &model));
  REQUIRE(kiln_model_descriptor(model)->batch_region_samples > 0);
  kiln_context_options options;
  kiln_context_options_init(&options);
  options.max_batch = 40;
  kiln_context* context = nullptr;
  REQUIRE_KILN_OK(kiln_context_create(model, &options, &context));
  Buffer image({40, 8, 16, 16}), scores({40, 10});  // two chunks: 32 + 8
  kiln_tensor in = image.tensor(), out = scores.tensor();
  int failures = 0;
  CHECK(allocationsOf([&] {
          for (int i = 0; i < 100; ++i) failures += kiln_run(context, &in, 1, &out, 1) != KILN_OK;
        }) == 0);
  CHECK(failures == 0);
  kiln_context_destroy(context);
  kiln_model_release(model);
}

TEST_CASE("1000 kiln_ensemble_run calls on the pool allocate nothing", "[runtime][allocations]") {
  std::string manifest = writeManifest(scratchDir("allocations"), {"member0_probs.so", "member1_probs.so", "member2_probs.so"},
                                       {1, 1, 1}, R"("rule": "vote",)");
  kiln_ensemble* ensemble = nullptr;
  REQUIRE_KILN_OK(kiln_ensemble_open(manifest.c_str(), &ensemble));
  kiln_context_options options;
  kiln_context_options_init(&options);
  options.max_batch = 4;
  kiln_ensemble_context* context = nullptr;
  REQUIRE_KILN_OK(kiln_ensemble_context_create(ensemble, &options, &context));
  Buffer image({4, 2, 6, 6}), combined({4, 5}), m0({4, 5}), m1({4, 5}), m2({4, 5});
  kiln_tensor in = image.tensor(), out = combined.tensor();
  kiln_tensor members[] = {m0.tensor(), m1.tensor(), m2.tensor()};
  int failures = 0;
  CHECK(allocationsOf([&] {
          for (int i = 0; i < 500; ++i) {
            failures += kiln_ensemble_run(context, &in, 1, &out, members) != KILN_OK;
            failures += kiln_ensemble_run(context, &in, 1, &out, nullptr) != KILN_OK;
          }
        }) == 0);
  CHECK(failures == 0);
  kiln_ensemble_context_destroy(context);
  kiln_ensemble_release(ensemble);
}
