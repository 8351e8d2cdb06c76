// Drives `kiln predict`, which runs artifacts and ensemble manifests through
// the runtime's C API: the demo ensemble's members compiled one by one and
// combined by the runtime (its combined output held to the weighted mean of
// the member outputs it also writes, and to the ensemble compiled into one
// artifact), labels carried by artifacts and manifests, and the errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "cli_harness.h"
#include "runtime/src/ensemble_manifest.h"
#include "tools/npy.h"

namespace fs = std::filesystem;
using kiln::Tensor;
using namespace kiln::clitest;

namespace {

const std::string kLabels = std::string(KILN_SOURCE_DIR_FOR_TESTS) + "/examples/fashion_mnist/labels.txt";

Tensor output(const fs::path& dir, const std::string& name) {
  return kiln::npy::readFile((dir / (name + ".npy")).string());
}

// The demo ensemble's members compiled with labels, and a runtime manifest
// listing them with the demo's weights.
fs::path compiledDemoEnsemble(const fs::path& dir) {
  kiln::runtime::EnsembleManifest demo = kiln::runtime::readEnsembleManifest(KILN_DEMO_ENSEMBLE);
  std::vector<std::string> create = {"ensemble", "create", "-o", (dir / "ensemble.json").string(), "--labels", kLabels};
  for (size_t k = 0; k < demo.members.size(); ++k) {
    fs::path so = dir / ("member" + std::to_string(k) + ".so");
    REQUIRE(runKiln(dir, {"compile", kiln::runtime::resolveMemberPath(KILN_DEMO_ENSEMBLE, demo.members[k]), "-o",
                          so.string(), "--labels", kLabels, "--quiet"})
                .exitCode == 0);
    create.insert(create.end(), {"--member", so.string() + ":" + std::to_string(demo.members[k].weight)});
  }
  REQUIRE(runKiln(dir, create).exitCode == 0);
  return dir / "ensemble.json";
}

}  // namespace

TEST_CASE("kiln predict combines compiled members like the weighted mean and the one-artifact ensemble",
          "[cli][predict]") {
  fs::path dir = scratchDir("predict_ensemble");
  fs::path manifest = compiledDemoEnsemble(dir);
  Result r = runKiln(dir, {"predict", manifest.string(), "--random-inputs", "5", "--batch", "6", "--members",
                           "--output-dir", (dir / "runtime").string()});
  INFO(r.out << r.err);
  REQUIRE(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::Contains("3 members, rule mean"));
  CHECK_THAT(r.out, Catch::Contains("top 3 of 'ensemble'"));
  CHECK_THAT(r.out, Catch::Contains("top 3 of 'member2'"));

  kiln::runtime::EnsembleManifest m = kiln::runtime::readEnsembleManifest(manifest.string());
  Tensor combined = output(dir / "runtime", "ensemble");
  REQUIRE(combined.numElements() == 60);
  std::vector<Tensor> members;
  for (size_t k = 0; k < m.members.size(); ++k) members.push_back(output(dir / "runtime", "member" + std::to_string(k)));
  for (int64_t i = 0; i < combined.numElements(); ++i) {
    double expected = 0;
    for (size_t k = 0; k < members.size(); ++k) expected += m.members[k].weight * members[k].values<float>()[i];
    CHECK(std::abs(combined.values<float>()[i] - expected) <= 1e-6);
  }

  // The same ensemble compiled into one artifact, on the inputs saved above.
  fs::path so = dir / "ensemble.so";
  REQUIRE(runKiln(dir, {"compile", "--ensemble", KILN_DEMO_ENSEMBLE, "-o", so.string(), "--quiet"}).exitCode == 0);
  r = runKiln(dir, {"predict", so.string(), "--input", "input=" + (dir / "runtime/inputs/input.npy").string(),
                    "--output-dir", (dir / "compiled").string(), "--top-k", "1"});
  INFO(r.out << r.err);
  REQUIRE(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::Contains("top 1 of 'ensemble_probabilities'"));
  Tensor one = output(dir / "compiled", "ensemble_probabilities");
  double worst = 0;
  for (int64_t i = 0; i < one.numElements(); ++i)
    worst = std::max(worst, double(std::abs(one.values<float>()[i] - combined.values<float>()[i])));
  CHECK(worst <= 1e-5);  // the demo's manifest weights vs the ones written with 6 digits
}

TEST_CASE("kiln predict names classes by the artifact's labels unless --labels overrides them", "[cli][predict]") {
  fs::path dir = scratchDir("predict_labels");
  fs::path so = dir / "cnn.so";
  std::string cnn = std::string(KILN_SOURCE_DIR_FOR_TESTS) + "/examples/fashion_mnist/cnn.onnx";
  REQUIRE(runKiln(dir, {"compile", cnn, "-o", so.string(), "--labels", kLabels, "--quiet"}).exitCode == 0);
  Result r = runKiln(dir, {"predict", so.string(), "--random-inputs", "1", "--output-dir", (dir / "a").string(),
                           "--check-finite", "--threads", "1"});
  INFO(r.out << r.err);
  REQUIRE(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::Contains("1 threads"));
  bool named = r.out.find("Ankle boot") != std::string::npos || r.out.find("Bag") != std::string::npos ||
               r.out.find("Trouser") != std::string::npos;
  CHECK(named);

  fs::path numbers = dir / "numbers.txt";
  std::string text;
  for (int c = 0; c < 10; ++c) text += "class" + std::to_string(c) + "\n";
  {
    std::ofstream(numbers) << text;
  }
  r = runKiln(dir, {"predict", so.string(), "--random-inputs", "1", "--output-dir", (dir / "b").string(), "--labels",
                    numbers.string(), "--top-k", "10"});
  REQUIRE(r.exitCode == 0);
  for (int c = 0; c < 10; ++c) CHECK_THAT(r.out, Catch::Contains("class" + std::to_string(c)));
}

TEST_CASE("kiln predict refuses what the runtime cannot run with a clear error", "[cli][predict]") {
  fs::path dir = scratchDir("predict_errors");
  std::string cnn = std::string(KILN_SOURCE_DIR_FOR_TESTS) + "/examples/fashion_mnist/cnn.onnx";
  fs::path so = dir / "cnn.so";
  REQUIRE(runKiln(dir, {"compile", cnn, "-o", so.string(), "--quiet"}).exitCode == 0);
  fs::path out = dir / "out";

  requireUsageError(dir, {"predict", so.string(), "--random-inputs", "1", "--output-dir", out.string(), "--members"},
                    "--members applies to ensemble manifests");
  requireUsageError(dir, {"predict", cnn, "--random-inputs", "1", "--output-dir", out.string()},
                    "compile ONNX models with 'kiln compile' first");
  requireUsageError(dir, {"predict", so.string(), "--random-inputs", "1", "--output-dir", out.string(), "--threads", "0"},
                    "--threads");

  {
    std::ofstream(dir / "garbage.so") << "not a shared object";
  }
  Result r = runKiln(dir, {"predict", (dir / "garbage.so").string(), "--random-inputs", "1", "--output-dir", out.string()});
  CHECK(r.exitCode == 1);
  CHECK_THAT(r.err, Catch::Contains("garbage.so") && Catch::Contains("not an ELF"));

  {
    std::ofstream(dir / "bad.json") << R"({"format": "kiln-ensemble", "version": 1, "members": [{"path": "cnn.so", "weight": -1}]})";
  }
  r = runKiln(dir, {"predict", (dir / "bad.json").string(), "--random-inputs", "1", "--output-dir", out.string()});
  CHECK(r.exitCode == 1);
  CHECK_THAT(r.err, Catch::Contains("bad.json") && Catch::Contains("weight"));

  // An input file whose dims do not fit the model.
  REQUIRE(runKiln(dir, {"predict", so.string(), "--random-inputs", "1", "--output-dir", (dir / "seed").string()})
              .exitCode == 0);
  Tensor wrong(kiln::DType::F32, kiln::Shape({1, 1, 28, 27}));
  kiln::npy::writeFile((dir / "wrong.npy").string(), wrong);
  r = runKiln(dir, {"predict", so.string(), "--input", "image=" + (dir / "wrong.npy").string(), "--output-dir",
                    out.string()});
  CHECK(r.exitCode == 1);
  CHECK_THAT(r.err, Catch::Contains("dim 3 is 27, expected 28"));
}
