// Many threads running one model, and one ensemble, each with its own
// context, on the shared pool: every run must equal the single-threaded run
// of the same inputs. Also built with ThreadSanitizer by scripts/run-tsan.sh.
#include <thread>

#include "runtime_test_util.h"

using namespace kiln_test;

namespace {

constexpr int kThreads = 8;
constexpr int kRunsPerThread = 1000;
constexpr int64_t kBatch = 6;  // several samples per parallel-for, for the workers to share

// Runs `run(context, input, output)` kRunsPerThread times on each of
// kThreads threads with their own contexts and inputs, and checks every
// output against `reference` computed up front on the calling thread.
template <class Open, class Run>
void hammer(Open openContext, Run run, std::vector<int64_t> outputDims) {
  std::vector<Buffer> inputs, references;
  for (int t = 0; t < kThreads; ++t) {
    inputs.emplace_back(std::vector<int64_t>{kBatch, 2, 6, 6}, static_cast<uint32_t>(100 + t));
    references.emplace_back(outputDims);
    auto context = openContext(KILN_CONTEXT_SERIAL);
    REQUIRE_KILN_OK(run(context.get(), inputs[t], references[t]));
  }
  std::vector<int> mismatches(kThreads, 0), failures(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto context = openContext(0);
      Buffer output(outputDims);
      for (int i = 0; i < kRunsPerThread; ++i) {
        std::fill(output.values.begin(), output.values.end(), -1.0f);
        if (run(context.get(), inputs[t], output) != KILN_OK) ++failures[t];
        if (output.values != references[t].values) ++mismatches[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    INFO("thread " << t);
    CHECK(failures[t] == 0);
    CHECK(mismatches[t] == 0);
  }
}

struct ModelContextDeleter {
  void operator()(kiln_context* context) const { kiln_context_destroy(context); }
};
struct EnsembleContextDeleter {
  void operator()(kiln_ensemble_context* context) const { kiln_ensemble_context_destroy(context); }
};

kiln_context_options optionsWith(uint32_t flags) {
  kiln_context_options options;
  kiln_context_options_init(&options);
  options.flags = flags;
  options.max_batch = kBatch;
  return options;
}

}  // namespace

TEST_CASE("8 threads x 1000 runs on one model equal single-threaded runs", "[runtime][concurrency]") {
  kiln_model* model = nullptr;
  REQUIRE_KILN_OK(kiln_model_open(artifact("member0_probs.so").c_str(), &model));
  auto openContext = [&](uint32_t flags) {
    kiln_context_options options = optionsWith(flags);
    kiln_context* context = nullptr;
    kiln_context_create(model, &options, &context);
    return std::unique_ptr<kiln_context, ModelContextDeleter>(context);
  };
  auto run = [](kiln_context* context, Buffer& input, Buffer& output) {
    kiln_tensor in = input.tensor(), out = output.tensor();
    return kiln_run(context, &in, 1, &out, 1);
  };
  hammer(openContext, run, {kBatch, 5});
  kiln_model_release(model);
}

TEST_CASE("8 threads x 1000 runs on one ensemble equal single-threaded runs", "[runtime][concurrency]") {
  std::filesystem::path dir = scratchDir("concurrency");
  std::string manifest = writeManifest(dir, {"member0_logits.so", "member1_logits.so", "member2_logits.so"},
                                       {0.5, 0.3, 0.2}, R"("rule": "logits", "member_output": "logits",)");
  kiln_ensemble* ensemble = nullptr;
  REQUIRE_KILN_OK(kiln_ensemble_open(manifest.c_str(), &ensemble));
  auto openContext = [&](uint32_t flags) {
    kiln_context_options options = optionsWith(flags);
    kiln_ensemble_context* context = nullptr;
    kiln_ensemble_context_create(ensemble, &options, &context);
    return std::unique_ptr<kiln_ensemble_context, EnsembleContextDeleter>(context);
  };
  auto run = [](kiln_ensemble_context* context, Buffer& input, Buffer& output) {
    kiln_tensor in = input.tensor(), out = output.tensor();
    return kiln_ensemble_run(context, &in, 1, &out, nullptr);
  };
  hammer(openContext, run, {kBatch, 5});
  kiln_ensemble_release(ensemble);
}
