// Nodes split into parts (intra-op parallelism) and batches run in groups of
// samples (depth-first) compute the same bits on any number of threads: the
// parts and groups are fixed at compile time, so a pool of T threads only
// changes which thread runs a part or a group. CTest runs each case in its
// own process, which lets each case start the pool with its own count.
#include <algorithm>
#include <cstring>

#include "runtime_test_util.h"

using namespace kiln_test;

namespace {

std::vector<float> runSplit(const std::string& name, int64_t batch, uint32_t flags) {
  Buffer image({batch, 8, name == "split_16.so" ? 16 : 32, name == "split_16.so" ? 16 : 32}, 5);
  return runOnce(name, image, {batch, 512}, flags);
}

void checkBitIdentical(int32_t threads) {
  if (kiln_set_num_threads(threads) == KILN_ERR_STATE) {
    WARN("SKIPPED: another test in this process started the pool with " << kiln_num_threads() << " threads");
    return;
  }
  for (const std::string name : {"split_plain.so", "split_nchwc.so", "split_16.so"})
    for (int64_t batch : {1, 3, 7, 32}) {
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
