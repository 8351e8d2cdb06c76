// kiln.hpp: the header-only C++ wrapper's handles, runs and exceptions.
#include "kiln/kiln.hpp"

#include <array>
#include <optional>

#include "runtime_test_util.h"

using namespace kiln_test;

TEST_CASE("the C++ wrapper runs a model through RAII handles", "[runtime][wrapper]") {
  kiln::Model model = kiln::Model::open(artifact("pair.so"));
  CHECK(model.numInputs() == 2);
  CHECK(model.numOutputs() == 2);
  CHECK(std::string(model.input(1).name) == "y");
  CHECK(std::string(model.output(1).name) == "product");
  CHECK(std::string(model.descriptor().model_name) == "pair");
  CHECK(model.labels().empty());
  CHECK(kiln::Model::open(artifact("member0_probs.so")).labels() == std::vector<std::string>{"a", "b", "c", "d", "e"});

  kiln::Model copy = model;  // another reference to the same model
  CHECK(copy.get() == model.get());
  kiln::Model moved = std::move(copy);
  CHECK_FALSE(copy);
  CHECK(moved.get() == model.get());
  copy = moved;
  CHECK(copy.get() == model.get());

  kiln::Context context(moved, {KILN_CONTEXT_CHECK_NON_FINITE, 2});
  kiln::Context other = std::move(context);
  CHECK(context.get() == nullptr);
  Buffer x({2, 10}, 1), y({2, 10}, 2), sum({2, 10}), product({2, 10});
  std::array<kiln_tensor, 2> inputs = {x.tensor(), y.tensor()};
  std::vector<kiln_tensor> outputs = {sum.tensor(), product.tensor()};
  other.run(inputs, outputs);
  CHECK(product.values[11] == x.values[11] * y.values[11]);
  CHECK(kiln::numThreads() >= 1);
}

TEST_CASE("the C++ wrapper throws kiln::RuntimeError with the status and message", "[runtime][wrapper]") {
  try {
    kiln::Model::open("/nonexistent/model.so");
    FAIL("open succeeded");
  } catch (const kiln::RuntimeError& e) {
    CHECK(e.status() == KILN_ERR_IO);
    CHECK_THAT(e.what(), Catch::StartsWith("/nonexistent/model.so: cannot open"));
  }
  kiln::Context context(kiln::Model::open(artifact("pair.so")));
  Buffer x({1, 10}), sum({1, 10});
  std::vector<kiln_tensor> inputs = {x.tensor()}, outputs = {sum.tensor(), sum.tensor()};
  try {
    context.run(inputs, outputs);
    FAIL("run succeeded");
  } catch (const kiln::RuntimeError& e) {
    CHECK(e.status() == KILN_ERR_INPUT_COUNT);
    CHECK_THAT(e.what(), Catch::Contains("the model takes 2 inputs and 2 outputs, given 1 and 2"));
  }
  CHECK_THROWS_AS(kiln::setNumThreads(0), kiln::RuntimeError);
  CHECK_THROWS_AS(kiln::Context(kiln::Model::open(artifact("pair.so")), {0, 0}), kiln::RuntimeError);
}

TEST_CASE("the C++ wrapper runs an ensemble", "[runtime][wrapper]") {
  std::filesystem::path dir = scratchDir("wrapper");
  std::string manifest = writeManifest(dir, {"member0_probs.so", "member1_probs.so"}, {1, 3},
                                       R"("labels": ["a", "b", "c", "d", "e"],)");
  std::optional<kiln::EnsembleContext> context;
  {
    kiln::Ensemble ensemble = kiln::Ensemble::open(manifest);
    CHECK(ensemble.numMembers() == 2);
    CHECK(ensemble.rule() == KILN_RULE_MEAN);
    CHECK(ensemble.numClasses() == 5);
    CHECK(ensemble.labels() == std::vector<std::string>{"a", "b", "c", "d", "e"});
    kiln::Ensemble::Member member = ensemble.member(1);
    CHECK(member.weight == Approx(0.75f));
    CHECK(std::string(member.model.descriptor().model_name) == "member1_probs");
    context.emplace(ensemble, kiln::ContextOptions{0, 3});
  }  // the context keeps the ensemble alive
  Buffer image({3, 2, 6, 6}), combined({3, 5}), first({3, 5}), second({3, 5});
  std::vector<kiln_tensor> inputs = {image.tensor()}, members = {first.tensor(), second.tensor()};
  context->run(inputs, combined.tensor(), members.data());
  for (size_t i = 0; i < combined.values.size(); ++i)
    CHECK(combined.values[i] == Approx(0.25 * first.values[i] + 0.75 * second.values[i]).margin(1e-6));
  CHECK_THROWS_AS(kiln::Ensemble::open((dir / "missing.json").string()), kiln::RuntimeError);
}
