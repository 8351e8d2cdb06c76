// Nodes split into parts (intra-op parallelism) and batches run in groups of
// samples (depth-first) compute the same bits on any number of threads: the
// parts and groups are fixed at compile time, so a pool of T threads only
// changes which thread runs a part or a group. CTest runs each case in its
// own process, which lets each case start the pool with its own count.
// Batch 40 runs more groups than the pool has threads (and arena slots),
// and suffix.so's whole-batch suffix in two chunks (32 + 8 samples).
#include <algorithm>
#include <cstring>

#include "runtime_test_util.h"

using namespace kiln_test;

namespace {

std::vector<float> runSplit(const std::string& name, int64_t batch, uint32_t flags) {
  const int64_t size = name == "split_plain.so" || name == "split_nchwc.so" ? 32 : name == "split_4.so" ? 4 : 16;
  Buffer image({batch, 8, size, size}, 5);
  return runOnce(name, image, {batch, name == "suffix.so" ? 10 : 512}, flags);
}

void checkBitIdentical(int32_t threads) {
  if (kiln_set_num_threads(threads) == KILN_ERR_STATE) {
    WARN("SKIPPED: another test in this process started the pool with " << kiln_num_threads() << " threads");
    return;
  }
  for (const std::string name : {"split_plain.so", "split_nchwc.so", "split_4.so", "suffix.so"})
    for (int64_t batch : {1, 3, 7, 32, 40}) {
      INFO(name << ", batch " << batch << ", " << threads << " threads");
      const std::vector<float> serial = runSplit(name, batch, KILN_CONTEXT_SERIAL);
      const std::vector<float> pooled = runSplit(name, batch, 0);
      REQUIRE(serial.size() == pooled.size());
      CHECK(std::memcmp(serial.data(), pooled.data(), serial.size() * sizeof(float)) == 0);
      // Not all zeros or equal: the comparison is of real work.
      CHECK(std::count(serial.begin(), serial.end(), serial[0]) < static_cast<ptrdiff_t>(serial.size()));
    }
  CHECK(kiln_num_threads() == threads);
}

}  // namespace

TEST_CASE("split nodes give the same bits on 2 threads as serially", "[runtime][pool][split]") { checkBitIdentical(2); }
TEST_CASE("split nodes give the same bits on 3 threads as serially", "[runtime][pool][split]") { checkBitIdentical(3); }
TEST_CASE("split nodes give the same bits on 4 threads as serially", "[runtime][pool][split]") { checkBitIdentical(4); }
TEST_CASE("split nodes give the same bits on 7 threads as serially", "[runtime][pool][split]") { checkBitIdentical(7); }

namespace {

uint64_t workspaceBytes(const std::string& name, int64_t maxBatch, uint32_t flags = 0) {
  kiln_model* model = nullptr;
  REQUIRE_KILN_OK(kiln_model_open(artifact(name).c_str(), &model));
  kiln_context_options options;
  kiln_context_options_init(&options);
  options.max_batch = maxBatch;
  options.flags = flags;
  kiln_context* context = nullptr;
  REQUIRE_KILN_OK(kiln_context_create(model, &options, &context));
  const uint64_t bytes = kiln_context_workspace_bytes(context);
  kiln_context_destroy(context);
  kiln_model_release(model);
  return bytes;
}

}  // namespace

// One group of samples in flight per thread: a pool of 3 threads needs 3
// groups' arenas, a serial context one, whatever max_batch.
TEST_CASE("a grouped run's workspace holds one group per thread, whatever max_batch", "[runtime][split]") {
  if (kiln_set_num_threads(3) == KILN_ERR_STATE) {
    WARN("SKIPPED: another test in this process started the pool with " << kiln_num_threads() << " threads");
    return;
  }
  for (const std::string name : {"split_plain.so", "split_4.so"}) {
    INFO(name);
    kiln_model* model = nullptr;
    REQUIRE_KILN_OK(kiln_model_open(artifact(name).c_str(), &model));
    const uint64_t perSample = kiln_model_descriptor(model)->workspace_bytes_per_sample;
    const uint64_t group = kiln_model_descriptor(model)->group_samples;
    kiln_model_release(model);
    REQUIRE(perSample > 0);
    REQUIRE(group > 0);
    if (name == "split_4.so") CHECK(group > 1);  // the artifact is there to run groups of several samples
    CHECK(workspaceBytes(name, 2) == std::min<uint64_t>(2, 3 * group) * perSample);
    const uint64_t large = workspaceBytes(name, 4096);
    CHECK(large == workspaceBytes(name, 100000));
    CHECK(large == 3 * group * perSample);
    CHECK(workspaceBytes(name, 4096, KILN_CONTEXT_SERIAL) == group * perSample);
  }
  CHECK(kiln_context_workspace_bytes(nullptr) == 0);
}

// The whole-batch suffix runs its nodes over chunks of samples, part by
// part: each sample still gets the bits a batch of one gets.
TEST_CASE("a whole-batch suffix gives each sample the bits of a batch of one", "[runtime][pool][split]") {
  kiln_model* model = nullptr;
  REQUIRE_KILN_OK(kiln_model_open(artifact("suffix.so").c_str(), &model));
  const kiln_artifact* d = kiln_model_descriptor(model);
  CHECK(d->batch_region_samples == 32);
  CHECK(d->batch_region_bytes_per_sample > 0);
  kiln_model_release(model);
  const int64_t batch = 40;
  Buffer images({batch, 8, 16, 16}, 5);
  const std::vector<float> together = runOnce("suffix.so", images, {batch, 10}, 0);
  const int64_t sampleSize = 8 * 16 * 16;
  for (int64_t s = 0; s < batch; ++s) {
    INFO("sample " << s);
    Buffer one({1, 8, 16, 16});
    std::copy_n(images.values.begin() + s * sampleSize, sampleSize, one.values.begin());
    const std::vector<float> alone = runOnce("suffix.so", one, {1, 10}, 0);
    CHECK(std::memcmp(alone.data(), together.data() + s * 10, 10 * sizeof(float)) == 0);
  }
}

// The batch region for min(max_batch, chunk) samples comes first, then the
// arenas of the groups in flight (one group in a serial context).
TEST_CASE("a whole-batch suffix's workspace holds one chunk's region", "[runtime][split]") {
  kiln_model* model = nullptr;
  REQUIRE_KILN_OK(kiln_model_open(artifact("suffix.so").c_str(), &model));
  const kiln_artifact* d = kiln_model_descriptor(model);
  const uint64_t region = d->batch_region_bytes_per_sample, chunk = d->batch_region_samples;
  const uint64_t perSample = d->workspace_bytes_per_sample, group = d->group_samples;
  kiln_model_release(model);
  REQUIRE(chunk == 32);
  REQUIRE(group > 0);
  CHECK(workspaceBytes("suffix.so", 100000, KILN_CONTEXT_SERIAL) == chunk * region + group * perSample);
  CHECK(workspaceBytes("suffix.so", 5, KILN_CONTEXT_SERIAL) == 5 * region + std::min<uint64_t>(5, group) * perSample);
}
