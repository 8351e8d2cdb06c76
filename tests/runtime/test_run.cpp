// kiln_run: results, every run-time error code with its message, checked
// mode, serial vs pooled runs, and the shared thread pool.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <thread>

#include "runtime/src/thread_pool.h"
#include "runtime_test_util.h"

using namespace kiln_test;

namespace {

// pair.so with a context, and buffers for a run at `batch`.
struct PairRun {
  explicit PairRun(int64_t batch, uint32_t flags = 0, int64_t maxBatch = 4)
      : x({batch, 10}, 1), y({batch, 10}, 2), sum({batch, 10}, 3), product({batch, 10}, 4) {
    REQUIRE_KILN_OK(kiln_model_open(artifact("pair.so").c_str(), &model));
    kiln_context_options options;
    kiln_context_options_init(&options);
    options.flags = flags;
    options.max_batch = maxBatch;
    REQUIRE_KILN_OK(kiln_context_create(model, &options, &context));
    inputs = {x.tensor(), y.tensor()};
    outputs = {sum.tensor(), product.tensor()};
  }
  ~PairRun() {
    kiln_context_destroy(context);
    kiln_model_release(model);
  }
  kiln_status run() { return kiln_run(context, inputs.data(), 2, outputs.data(), 2); }

  kiln_model* model = nullptr;
  kiln_context* context = nullptr;
  Buffer x, y, sum, product;
  std::vector<kiln_tensor> inputs, outputs;
};

// States ('R', 'S', ...) of this process's threads other than the caller.
std::vector<char> otherThreadStates() {
  std::vector<char> states;
  std::string self = std::to_string(gettid());
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    if (task.path().filename() == self) continue;
    std::ifstream stat(task.path() / "stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    size_t paren = text.rfind(')');  // the name may hold spaces and parentheses
    if (paren != std::string::npos && paren + 2 < text.size()) states.push_back(text[paren + 2]);
  }
  return states;
}

struct Nesting {
  std::atomic<int64_t> leaves{0};
};

void leafTask(void* nesting, int64_t) { static_cast<Nesting*>(nesting)->leaves.fetch_add(1); }
void innerTask(void* nesting, int64_t) {
  kiln::runtime::ThreadPool::parallelFor(&kiln::runtime::ThreadPool::instance(), 5, leafTask, nesting);
}
void outerTask(void* nesting, int64_t) {
  kiln::runtime::ThreadPool::parallelFor(&kiln::runtime::ThreadPool::instance(), 7, innerTask, nesting);
}

}  // namespace

TEST_CASE("kiln_run computes the model's outputs on the pool and serially", "[runtime][run]") {
  for (uint32_t flags : {0u, unsigned(KILN_CONTEXT_SERIAL)}) {
    for (int64_t batch : {1, 3, 4}) {
      INFO("flags " << flags << ", batch " << batch);
      PairRun r(batch, flags);
      REQUIRE_KILN_OK(r.run());
      for (int64_t i = 0; i < r.x.size(); ++i) {
        CHECK(r.sum.values[i] == r.x.values[i] + r.y.values[i]);
        CHECK(r.product.values[i] == r.x.values[i] * r.y.values[i]);
      }
    }
  }
}

TEST_CASE("pooled runs equal serial runs at every batch", "[runtime][run]") {
  for (int64_t batch : {1, 2, 5, 8}) {
    INFO("batch " << batch);
    Buffer image({batch, 2, 6, 6}, static_cast<uint32_t>(batch));
    CHECK(runOnce("member1_probs.so", image, {batch, 5}, 0) ==
          runOnce("member1_probs.so", image, {batch, 5}, KILN_CONTEXT_SERIAL));
  }
}

TEST_CASE("a model without a batch dim runs once per call", "[runtime][run]") {
  kiln_model* model = nullptr;
  REQUIRE_KILN_OK(kiln_model_open(artifact("fixed.so").c_str(), &model));
  kiln_context* context = nullptr;
  REQUIRE_KILN_OK(kiln_context_create(model, nullptr, &context));
  Buffer x({2, 3}), y({2, 3});
  kiln_tensor in = x.tensor(), out = y.tensor();
  REQUIRE_KILN_OK(kiln_run(context, &in, 1, &out, 1));
  for (int64_t i = 0; i < x.size(); ++i) CHECK(y.values[i] == std::max(x.values[i], 0.0f));
  Buffer wide({3, 3});
  kiln_tensor bad = wide.tensor();
  REQUIRE_KILN_ERROR(kiln_run(context, &bad, 1, &out, 1), KILN_ERR_SHAPE, "input 'x': dim 0 is 3, expected 2");
  kiln_context_destroy(context);
  kiln_model_release(model);
}

TEST_CASE("wrong tensor counts are KILN_ERR_INPUT_COUNT", "[runtime][run]") {
  PairRun r(2);
  REQUIRE_KILN_ERROR(kiln_run(r.context, r.inputs.data(), 1, r.outputs.data(), 2), KILN_ERR_INPUT_COUNT,
                     "pair.so: the model takes 2 inputs and 2 outputs, given 1 and 2");
  REQUIRE_KILN_ERROR(kiln_run(r.context, r.inputs.data(), 2, r.outputs.data(), 3), KILN_ERR_INPUT_COUNT,
                     "given 2 and 3");
}

TEST_CASE("a wrong dtype is KILN_ERR_DTYPE", "[runtime][run]") {
  PairRun r(2);
  r.inputs[1].dtype = KILN_I32;
  REQUIRE_KILN_ERROR(r.run(), KILN_ERR_DTYPE, "input 'y': dtype i32 (3), expected f32");
  r.inputs[1].dtype = KILN_F32;
  r.outputs[0].dtype = 77;
  REQUIRE_KILN_ERROR(r.run(), KILN_ERR_DTYPE, "output 'sum': dtype unknown (77), expected f32");
}

TEST_CASE("a wrong rank is KILN_ERR_RANK", "[runtime][run]") {
  PairRun r(2);
  r.inputs[0].rank = 3;
  REQUIRE_KILN_ERROR(r.run(), KILN_ERR_RANK, "input 'x': rank 3, expected 2");
  r.inputs[0].rank = 2;
  r.outputs[1].rank = 1;
  REQUIRE_KILN_ERROR(r.run(), KILN_ERR_RANK, "output 'product': rank 1, expected 2");
}

TEST_CASE("a wrong dim is KILN_ERR_SHAPE naming tensor and dim", "[runtime][run]") {
  PairRun r(2);
  int64_t wide[] = {2, 20};
  r.inputs[0].dims = wide;
  REQUIRE_KILN_ERROR(r.run(), KILN_ERR_SHAPE, "input 'x': dim 1 is 20, expected 10");
  r.inputs[0].dims = r.x.dims.data();
  r.outputs[0].dims = wide;
  REQUIRE_KILN_ERROR(r.run(), KILN_ERR_SHAPE, "output 'sum': dim 1 is 20, expected 10");
}

TEST_CASE("tensors disagreeing on the batch are KILN_ERR_SHAPE", "[runtime][run]") {
  PairRun r(2);
  int64_t three[] = {3, 10};
  Buffer y({3, 10});
  r.inputs[1] = y.tensor();
  REQUIRE_KILN_ERROR(r.run(), KILN_ERR_SHAPE, "input 'y': batch (dim 0) is 3, but input 'x' has batch 2");
  r.inputs[1] = r.y.tensor();
  r.outputs[1].dims = three;
  REQUIRE_KILN_ERROR(r.run(), KILN_ERR_SHAPE, "output 'product': batch (dim 0) is 3, but output 'sum' has batch 2");
}

TEST_CASE("batch 0 or above max_batch is KILN_ERR_BATCH", "[runtime][run]") {
  PairRun r(2, 0, 2);
  int64_t zero[] = {0, 10}, three[] = {3, 10}, negative[] = {-1, 10};
  for (int64_t* dims : {zero, three, negative}) {
    r.inputs[0].dims = dims;
    REQUIRE_KILN_ERROR(r.run(), KILN_ERR_BATCH,
                       "input 'x': batch (dim 0) is " + std::to_string(dims[0]) +
                           ", the context takes 1 to 2 (its max_batch)");
  }
}

TEST_CASE("NULL data or dims is KILN_ERR_NULL_DATA", "[runtime][run]") {
  PairRun r(2);
  r.inputs[1].data = nullptr;
  REQUIRE_KILN_ERROR(r.run(), KILN_ERR_NULL_DATA, "input 'y': data is NULL");
  r.inputs[1].data = r.y.values.data();
  r.outputs[0].dims = nullptr;
  REQUIRE_KILN_ERROR(r.run(), KILN_ERR_NULL_DATA, "output 'sum': dims is NULL");
  r.outputs[0].dims = r.sum.dims.data();
  r.outputs[1].data = nullptr;
  REQUIRE_KILN_ERROR(r.run(), KILN_ERR_NULL_DATA, "output 'product': data is NULL");
}

TEST_CASE("output buffers overlapping inputs or each other are KILN_ERR_ALIASING", "[runtime][run]") {
  PairRun r(2);
  Buffer big({4, 10});
  float* base = big.values.data();
  // In place over an input.
  r.outputs[0].data = r.inputs[0].data;
  REQUIRE_KILN_ERROR(r.run(), KILN_ERR_ALIASING, "output 'sum': its buffer overlaps the buffer of input 'x'");
  // One float of overlap between the outputs.
  r.outputs[0].data = base;
  r.outputs[1].data = base + 19;
  REQUIRE_KILN_ERROR(r.run(), KILN_ERR_ALIASING, "output 'product': its buffer overlaps the buffer of output 'sum'");
  // Adjacent buffers do not overlap; inputs may share memory.
  r.outputs[1].data = base + 20;
  r.inputs[1].data = r.inputs[0].data;
  REQUIRE_KILN_OK(r.run());
  CHECK(base[7] == 2 * r.x.values[7]);
}

TEST_CASE("NULL handles and bad options are KILN_ERR_INVALID_ARGUMENT", "[runtime][run]") {
  PairRun r(1);
  REQUIRE_KILN_ERROR(kiln_run(nullptr, r.inputs.data(), 2, r.outputs.data(), 2), KILN_ERR_INVALID_ARGUMENT,
                     "kiln_run: context is NULL");
  REQUIRE_KILN_ERROR(kiln_run(r.context, nullptr, 2, r.outputs.data(), 2), KILN_ERR_INVALID_ARGUMENT,
                     "tensor array is NULL");
  kiln_context* context = nullptr;
  REQUIRE_KILN_ERROR(kiln_context_create(nullptr, nullptr, &context), KILN_ERR_INVALID_ARGUMENT, "model is NULL");
  REQUIRE_KILN_ERROR(kiln_context_create(r.model, nullptr, nullptr), KILN_ERR_INVALID_ARGUMENT, "out_context is NULL");
  kiln_context_options options;
  kiln_context_options_init(&options);
  CHECK(options.struct_size == sizeof options);
  CHECK(options.flags == 0);
  CHECK(options.max_batch == 1);
  options.max_batch = 0;
  REQUIRE_KILN_ERROR(kiln_context_create(r.model, &options, &context), KILN_ERR_INVALID_ARGUMENT,
                     "max_batch is 0, expected >= 1");
  options.max_batch = 1;
  options.flags = 1u << 7;
  REQUIRE_KILN_ERROR(kiln_context_create(r.model, &options, &context), KILN_ERR_INVALID_ARGUMENT,
                     "flags has unknown bits 128");
  options.flags = 0;
  options.struct_size = 4;
  REQUIRE_KILN_ERROR(kiln_context_create(r.model, &options, &context), KILN_ERR_INVALID_ARGUMENT,
                     "struct_size is 4");
  CHECK(context == nullptr);
}

TEST_CASE("a workspace beyond the address space is KILN_ERR_OUT_OF_MEMORY", "[runtime][run]") {
  kiln_model* model = nullptr;
  // A model run node by node: its workspace grows with max_batch (a grouped
  // one's is bounded, see test_split.cpp).
  REQUIRE_KILN_OK(kiln_model_open(artifact("by_node.so").c_str(), &model));
  REQUIRE(kiln_model_descriptor(model)->workspace_bytes_per_sample > 0);
  REQUIRE(kiln_model_descriptor(model)->workspace_max_samples == 0);
  kiln_context_options options;
  kiln_context_options_init(&options);
  options.max_batch = INT64_MAX;
  kiln_context* context = nullptr;
  kiln_status status = kiln_context_create(model, &options, &context);
  INFO(describeFailure(status));
  CHECK(status == KILN_ERR_OUT_OF_MEMORY);
  kiln_model_release(model);
}

TEST_CASE("NaN and Inf propagate unless the context checks for them", "[runtime][run]") {
  PairRun unchecked(2);
  unchecked.x.values[13] = std::numeric_limits<float>::infinity();
  unchecked.y.values[15] = std::nanf("");
  REQUIRE_KILN_OK(unchecked.run());
  CHECK(std::isinf(unchecked.sum.values[13]));
  CHECK(std::isnan(unchecked.sum.values[15]));

  PairRun checked(2, KILN_CONTEXT_CHECK_NON_FINITE);
  REQUIRE_KILN_OK(checked.run());
  checked.x.values[13] = -std::numeric_limits<float>::infinity();
  REQUIRE_KILN_ERROR(checked.run(), KILN_ERR_NON_FINITE, "output 'sum': element 13 (flat index) is -Inf");
  checked.x.values[13] = 0;
  checked.y.values[4] = std::nanf("");
  REQUIRE_KILN_ERROR(checked.run(), KILN_ERR_NON_FINITE, "output 'sum': element 4 (flat index) is NaN");
  // 1e30 * 1e30 overflows in the second output only.
  checked.y.values[4] = 1e30f;
  checked.x.values[4] = 1e30f;
  REQUIRE_KILN_ERROR(checked.run(), KILN_ERR_NON_FINITE, "output 'product': element 4 (flat index) is +Inf");
}

TEST_CASE("status names and the version and per-thread errors", "[runtime][run]") {
  CHECK(std::string(kiln_status_name(KILN_OK)) == "KILN_OK");
  CHECK(std::string(kiln_status_name(KILN_ERR_MEMBER_MISMATCH)) == "KILN_ERR_MEMBER_MISMATCH");
  CHECK(std::string(kiln_status_name(KILN_ERR_INTERNAL)) == "KILN_ERR_INTERNAL");
  CHECK(std::string(kiln_status_name(static_cast<kiln_status>(99))) == "KILN_ERR_UNKNOWN");
  CHECK(std::string(kiln_version()) == KILN_PROJECT_VERSION);

  kiln_model* model = nullptr;
  REQUIRE(kiln_model_open("/nonexistent/a.so", &model) == KILN_ERR_IO);
  std::string otherThreadBefore, otherThreadAfter;
  std::thread([&] {
    otherThreadBefore = kiln_last_error();
    kiln_model_open("/nonexistent/b.so", &model);
    otherThreadAfter = kiln_last_error();
  }).join();
  CHECK(otherThreadBefore.empty());
  CHECK_THAT(otherThreadAfter, Catch::Contains("b.so"));
  CHECK_THAT(kiln_last_error(), Catch::Contains("/nonexistent/a.so"));
}

TEST_CASE("KILN_NUM_THREADS must be a thread count", "[runtime][pool]") {
  using kiln::runtime::parseThreadCount;
  CHECK(parseThreadCount("1") == 1);
  CHECK(parseThreadCount("16") == 16);
  CHECK(parseThreadCount("1024") == 1024);
  for (const char* bad : {"", "0", "-2", "1025", "4 ", "four", "2.5"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(parseThreadCount(bad).has_value());
  }
  CHECK_FALSE(parseThreadCount(nullptr).has_value());
  REQUIRE_KILN_ERROR(kiln_set_num_threads(0), KILN_ERR_INVALID_ARGUMENT, "thread count 0 is not in [1, 1024]");
  REQUIRE_KILN_ERROR(kiln_set_num_threads(5000), KILN_ERR_INVALID_ARGUMENT, "5000");
}

TEST_CASE("the thread count is fixed once the pool runs", "[runtime][pool]") {
  // CTest runs each case in a fresh process; run alone, an earlier case may
  // have started the pool.
  if (kiln_set_num_threads(3) == KILN_ERR_STATE) {
    WARN("SKIPPED: another test in this process started the pool");
    return;
  }
  CHECK(kiln_num_threads() == 3);
  REQUIRE_KILN_OK(kiln_set_num_threads(2));
  CHECK(kiln_num_threads() == 2);
  {
    PairRun serial(1, KILN_CONTEXT_SERIAL);  // serial contexts leave the pool alone
    REQUIRE_KILN_OK(kiln_set_num_threads(3));
    PairRun pooled(1);  // starts it
    REQUIRE_KILN_ERROR(kiln_set_num_threads(4), KILN_ERR_STATE, "the thread pool already runs with 3 threads");
    REQUIRE_KILN_OK(kiln_set_num_threads(3));
  }
  CHECK(kiln_num_threads() == 3);
  CHECK(otherThreadStates().size() == 2);  // the caller plus two workers
}

TEST_CASE("idle pool threads sleep instead of spinning", "[runtime][pool]") {
  PairRun r(4);
  for (int i = 0; i < 50; ++i) REQUIRE_KILN_OK(r.run());
  if (kiln_num_threads() < 2) {
    WARN("SKIPPED: the pool has no worker threads");
    return;
  }
  // Once the last run's workers went back to waiting, every one sleeps
  // ('S'); a spinning worker would stay runnable ('R') forever.
  std::vector<char> states;
  for (int attempt = 0; attempt < 500; ++attempt) {
    states = otherThreadStates();
    if (std::all_of(states.begin(), states.end(), [](char s) { return s == 'S'; })) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(states.size() == static_cast<size_t>(kiln_num_threads() - 1));
  CHECK(std::all_of(states.begin(), states.end(), [](char s) { return s == 'S'; }));
}

TEST_CASE("nested parallel-for on the pool completes every task", "[runtime][pool]") {
  using kiln::runtime::ThreadPool;
  ThreadPool::instance().start();
  // Three levels, as an ensemble member's run nests inside the ensemble's
  // member loop, each fanning out wider than the pool, from several callers.
  Nesting nesting;
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&] { ThreadPool::parallelFor(&ThreadPool::instance(), 9, outerTask, &nesting); });
  for (std::thread& caller : callers) caller.join();
  CHECK(nesting.leaves.load() == 4 * 9 * 7 * 5);
  ThreadPool::parallelFor(&ThreadPool::instance(), 0, outerTask, &nesting);  // no tasks: returns at once
  CHECK(nesting.leaves.load() == 4 * 9 * 7 * 5);
}

namespace {
void countIndex(void* runs, int64_t i) { (*static_cast<std::vector<std::atomic<int>>*>(runs))[static_cast<size_t>(i)]++; }
}  // namespace

TEST_CASE("a job's indices run once each, dealt to the threads in chunks", "[runtime][pool]") {
  using kiln::runtime::ThreadPool;
  ThreadPool::instance().start();
  // Counts below, at and above the thread count (chunks of uneven sizes,
  // threads taking over others' chunks), from two callers at once.
  for (int64_t count : {2, 3, 7, 64, 1000}) {
    INFO("count " << count);
    std::vector<std::atomic<int>> a(static_cast<size_t>(count)), b(static_cast<size_t>(count));
    std::thread other([&] { ThreadPool::parallelFor(&ThreadPool::instance(), count, countIndex, &b); });
    ThreadPool::parallelFor(&ThreadPool::instance(), count, countIndex, &a);
    other.join();
    for (const auto* runs : {&a, &b})
      CHECK(std::all_of(runs->begin(), runs->end(), [](const std::atomic<int>& n) { return n.load() == 1; }));
  }
}
