// Ensembles: Caruana selection and simplex log-loss weights on synthetic
// validation probabilities (no training), mixture metrics, the manifest, and
// one tiny `kiln-train ensemble` run.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include "trainer/ensemble.h"
#include "trainer/model.h"
#include "trainer/random.h"

using namespace kiln::train;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr int kClasses = 4;

std::vector<uint8_t> makeLabels(size_t n) {
  std::vector<uint8_t> y(n);
  for (size_t i = 0; i < n; ++i) y[i] = static_cast<uint8_t>(i % kClasses);
  return y;
}

// A member that puts `confidence` on the true class for samples where
// right(i), and on the next class otherwise; the rest is spread evenly.
template <class Right>
ProbMatrix member(const std::vector<uint8_t>& y, double confidence, Right right) {
  ProbMatrix p;
  for (size_t i = 0; i < y.size(); ++i) {
    std::vector<double> row(kClasses, (1 - confidence) / (kClasses - 1));
    row[right(i) ? y[i] : (y[i] + 1) % kClasses] = confidence;
    p.push_back(row);
  }
  return p;
}

// Random distributions unrelated to the labels.
ProbMatrix noise(size_t n, uint64_t seed) {
  Rng rng(seed);
  ProbMatrix p;
  for (size_t i = 0; i < n; ++i) {
    std::vector<double> row(kClasses);
    double total = 0;
    for (double& v : row) total += (v = rng.uniform() + 1e-3);
    for (double& v : row) v /= total;
    p.push_back(row);
  }
  return p;
}

double logLoss(const std::vector<ProbMatrix>& probs, const std::vector<uint8_t>& y, const std::vector<double>& w) {
  return mixtureMetrics(probs, y, w).logLoss;
}

void checkSimplex(const std::vector<double>& w) {
  for (double x : w) CHECK((std::isfinite(x) && x >= 0));
  CHECK(std::accumulate(w.begin(), w.end(), 0.0) == Approx(1.0).margin(1e-12));
}

// Three members that are right on different (overlapping) thirds: mixing helps.
std::vector<ProbMatrix> complementary(const std::vector<uint8_t>& y) {
  return {member(y, 0.7, [](size_t i) { return i % 3 != 0; }), member(y, 0.8, [](size_t i) { return i % 3 != 1; }),
          member(y, 0.9, [](size_t i) { return i % 5 != 2; })};
}

}  // namespace

TEST_CASE("Mixture metrics of one member and of a mixture") {
  auto y = makeLabels(8);
  std::vector<ProbMatrix> probs{member(y, 0.9, [](size_t i) { return i < 6; }), member(y, 0.6, [](size_t) { return true; })};
  MixtureMetrics first = mixtureMetrics(probs, y, std::vector<double>{1, 0});
  CHECK(first.accuracy == Approx(0.75));
  CHECK(first.logLoss == Approx((6 * -std::log(0.9) + 2 * -std::log(0.1 / 3)) / 8));
  CHECK(mixtureMetrics(probs, y, std::vector<double>{2, 2}).logLoss == Approx(logLoss(probs, y, {0.5, 0.5})));
  CHECK_THROWS_AS(mixtureMetrics(probs, y, std::vector<double>{1, -1}), EnsembleError);
  CHECK_THROWS_AS(mixtureMetrics(probs, y, std::vector<double>{1}), EnsembleError);
  probs[1].pop_back();
  CHECK_THROWS_AS(mixtureMetrics(probs, y, std::vector<double>{1, 1}), EnsembleError);
}

TEST_CASE("Caruana starts from the best member and selects with replacement") {
  auto y = makeLabels(60);
  // Member 1 is best alone; member 0 is weak but right where 1 is wrong.
  std::vector<ProbMatrix> probs{member(y, 0.6, [](size_t i) { return i % 4 == 0; }),
                                member(y, 0.9, [](size_t i) { return i % 4 != 0; }), noise(60, 3)};
  std::vector<double> one = caruanaWeights(probs, y, 1);
  CHECK(one == std::vector<double>{0, 1, 0});
  std::vector<double> w = caruanaWeights(probs, y, 10);
  checkSimplex(w);
  CHECK(w[1] >= 0.2);  // picked more than once: replacement
  CHECK(w[1] > w[0]);
  CHECK(w[0] > 0);
  CHECK(logLoss(probs, y, w) < logLoss(probs, y, {0, 1, 0}));
  // With one strong member only, replacement keeps picking it.
  std::vector<ProbMatrix> dominated{member(y, 0.9, [](size_t) { return true; }), member(y, 0.3, [](size_t) { return false; })};
  CHECK(caruanaWeights(dominated, y, 5) == std::vector<double>{1, 0});
  CHECK_THROWS_AS(caruanaWeights(probs, y, 0), EnsembleError);
}

TEST_CASE("Simplex log-loss weights beat equal weights and every single member") {
  auto y = makeLabels(90);
  std::vector<ProbMatrix> probs = complementary(y);
  std::vector<double> w = simplexLogLossWeights(probs, y);
  checkSimplex(w);
  const double loss = logLoss(probs, y, w);
  CHECK(loss <= logLoss(probs, y, {1, 1, 1}) + 1e-12);
  for (size_t k = 0; k < probs.size(); ++k) {
    std::vector<double> vertex(probs.size(), 0.0);
    vertex[k] = 1;
    CHECK(loss <= logLoss(probs, y, vertex) + 1e-12);
  }
  // Near a stationary point: no small move along the simplex helps.
  for (size_t from = 0; from < 3; ++from)
    for (size_t to = 0; to < 3; ++to) {
      if (from == to || w[from] < 1e-3) continue;
      std::vector<double> moved = w;
      moved[from] -= 1e-3, moved[to] += 1e-3;
      CHECK(loss <= logLoss(probs, y, moved) + 1e-9);
    }
  CHECK(simplexLogLossWeights(probs, y) == w);  // deterministic
  // Caruana also beats the best single member here.
  CHECK(logLoss(probs, y, caruanaWeights(probs, y, 20)) < logLoss(probs, y, {0, 0, 1}));
}

TEST_CASE("A pure-noise member gets about zero weight") {
  auto y = makeLabels(400);
  std::vector<ProbMatrix> probs = complementary(y);
  probs.push_back(noise(y.size(), 11));
  std::vector<double> w = simplexLogLossWeights(probs, y);
  checkSimplex(w);
  CHECK(w[3] < 1e-3);
  CHECK(caruanaWeights(probs, y, 20)[3] <= 0.1);
}

TEST_CASE("The ensemble manifest round-trips and rejects bad weights") {
  json m = ensembleManifest({"member0.onnx", "member1.onnx"}, {1.0, 3.0}, {"cat", "dog"});
  json back = json::parse(m.dump());
  CHECK(back["format"] == "kiln-ensemble");
  CHECK(back["version"] == 1);
  CHECK(back["rule"] == "mean");
  CHECK(back["member_output"] == "probabilities");
  REQUIRE(back["members"].size() == 2);
  CHECK(back["members"][0]["path"] == "member0.onnx");
  CHECK(back["members"][0]["weight"].get<double>() == Approx(0.25));
  CHECK(back["members"][1]["weight"].get<double>() == Approx(0.75));
  CHECK(back["labels"] == json({"cat", "dog"}));
  CHECK(ensembleManifest({"a.onnx"}, {2.0}, {}, true)["member_output"] == "logits");
  CHECK_THROWS_AS(ensembleManifest({"a.onnx", "b.onnx"}, {1.0, -0.5}, {}), EnsembleError);
  CHECK_THROWS_AS(ensembleManifest({"a.onnx", "b.onnx"}, {0.0, 0.0}, {}), EnsembleError);
  CHECK_THROWS_AS(ensembleManifest({"a.onnx"}, {NAN}, {}), EnsembleError);
  CHECK_THROWS_AS(ensembleManifest({"a.onnx"}, {INFINITY}, {}), EnsembleError);
  CHECK_THROWS_AS(ensembleManifest({"a.onnx"}, {1.0, 1.0}, {}), EnsembleError);
  CHECK_THROWS_AS(ensembleManifest({}, {}, {}), EnsembleError);
  CHECK_THROWS_AS(ensembleManifest({"/abs/a.onnx"}, {1.0}, {}), EnsembleError);
  CHECK_THROWS_AS(ensembleManifest({"../a.onnx"}, {1.0}, {}), EnsembleError);
}

TEST_CASE("kiln-train ensemble trains, weights, writes and tests once") {
  fs::path dir = fs::temp_directory_path() / ("kiln_ensemble_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "tiny.json") << R"({"name": "tiny", "input_shape": [28, 28, 1],
    "layers": [{"type": "MaxPooling2D", "pool_size": 4}, {"type": "Flatten"}, {"type": "Dense", "units": 10, "activation": "softmax"}],
    "training": {"batch_size": 32, "validation_size": 200, "optimizer": {"type": "adam", "learning_rate": 0.01}}})";
  const fs::path out = dir / "ens";
  const std::string cmd = std::string(KILN_TRAIN_BINARY) + " ensemble " + (dir / "tiny.json").string() +
                          " --members 2 --epochs 1 --train-limit 300 --method logloss --data fashion-mnist -o " +
                          out.string() + " > " + (dir / "out.txt").string() + " 2> " + (dir / "err.txt").string();
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::ifstream text(dir / "out.txt");
  std::string printed((std::istreambuf_iterator<char>(text)), std::istreambuf_iterator<char>());
  INFO(printed);
  for (const char* row : {"member0", "member1", "equal", "weighted (logloss)", "test (10000 samples", "gap_acc"})
    CHECK(printed.find(row) != std::string::npos);
  CHECK(fs::exists(out / "member0.onnx"));
  CHECK(fs::exists(out / "member1.onnx"));
  json manifest = json::parse(std::ifstream(out / "ensemble.json"));
  CHECK(manifest["format"] == "kiln-ensemble");
  REQUIRE(manifest["members"].size() == 2);
  CHECK(manifest["labels"].size() == 10);
  double total = manifest["members"][0]["weight"].get<double>() + manifest["members"][1]["weight"].get<double>();
  CHECK(total == Approx(1.0));
  CHECK_FALSE(fs::exists(dir / "ens.members"));  // dropped once the ensemble is written
  // The same report, kept beside the ensemble.
  std::ifstream reportFile(out / "report.txt");
  std::string report((std::istreambuf_iterator<char>(reportFile)), std::istreambuf_iterator<char>());
  for (const char* row : {"member0: ", "weighted (logloss)", "test (10000 samples", "gap_acc"})
    CHECK(report.find(row) != std::string::npos);
  // A second run into the now non-empty folder refuses before training.
  CHECK(std::system(cmd.c_str()) != 0);

  // What a run killed after member 0 leaves: that member's state. Here an
  // untrained model stands in for it, so a restore (not a retrain) shows in
  // member 0's chance-level accuracy as well as in the log.
  const fs::path resumed = dir / "resumed";
  fs::create_directories(dir / "resumed.members");
  std::ifstream specFile(dir / "tiny.json");
  const std::string specText((std::istreambuf_iterator<char>(specFile)), std::istreambuf_iterator<char>());
  const Sequential untrained(loadSpecFile((dir / "tiny.json").string()), 0);
  saveStateFile(untrained, (dir / "resumed.members" / "member0.state").string(),
                memberFingerprint(specText, 0, 1, 300, 0, "fashion-mnist"));
  const std::string resume = std::string(KILN_TRAIN_BINARY) + " ensemble " + (dir / "tiny.json").string() +
                             " --members 2 --epochs 1 --train-limit 300 --method logloss --data fashion-mnist -o " +
                             resumed.string() + " > " + (dir / "out2.txt").string() + " 2> " + (dir / "err2.txt").string();
  REQUIRE(std::system(resume.c_str()) == 0);
  std::ifstream err(dir / "err2.txt");
  const std::string log((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  INFO(log);
  const size_t restoredAt = log.find("restored from");
  CHECK(restoredAt != std::string::npos);
  CHECK(log.find("restored from", restoredAt + 1) == std::string::npos);  // member 1 was trained
  CHECK_FALSE(fs::exists(dir / "resumed.members"));
  std::ifstream out2(dir / "out2.txt");
  std::string table;
  double member0Accuracy = -1;
  while (std::getline(out2, table))
    if (table.rfind("member0 ", 0) == 0) {
      std::istringstream row(table);
      std::string name, weight;
      row >> name >> weight >> member0Accuracy;
      break;
    }
  CHECK(member0Accuracy >= 0);
  CHECK(member0Accuracy < 0.3);  // untrained: about 0.1; one epoch on 300 samples gets above 0.5
  fs::remove_all(dir);
}

TEST_CASE("A member's state file restores it and refuses other runs' or damaged files") {
  fs::path dir = fs::temp_directory_path() / ("kiln_state_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const json doc = json::parse(R"({"name": "tiny", "input_shape": [8, 8, 1],
    "layers": [{"type": "Conv2D", "filters": 2, "kernel_size": 3}, {"type": "BatchNormalization"}, {"type": "Flatten"},
               {"type": "Dense", "units": 3, "activation": "softmax"}]})");
  const ModelSpec spec = parseSpec(doc, "tiny");
  Sequential saved(spec, 1), restored(spec, 2);
  Tensor x({2, 1, 8, 8});
  for (int64_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7) * 0.1f;
  const Tensor before = restored.forward(x, false);
  const std::string path = (dir / "m.state").string();
  saveStateFile(saved, path, "run A");
  CHECK_FALSE(loadStateFile(restored, path, "run B"));
  CHECK_FALSE(loadStateFile(restored, (dir / "absent.state").string(), "run A"));
  CHECK(restored.forward(x, false).data == before.data);  // untouched by the refusals
  REQUIRE(loadStateFile(restored, path, "run A"));
  CHECK(restored.forward(x, false).data == saved.forward(x, false).data);

  const auto size = fs::file_size(path);
  fs::resize_file(path, size - 4);
  CHECK_THROWS_WITH(loadStateFile(restored, path, "run A"), Catch::Contains("truncated"));
  std::ofstream(path, std::ios::trunc) << "not a state file at all";
  CHECK_THROWS_WITH(loadStateFile(restored, path, "run A"), Catch::Contains("not a kiln-train model state"));
  Sequential other(parseSpec(json::parse(R"({"name": "other", "input_shape": [8, 8, 1],
    "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 3, "activation": "softmax"}]})"), "other"), 1);
  saveStateFile(other, path, "run A");
  CHECK_THROWS_WITH(loadStateFile(restored, path, "run A"), Catch::Contains("number of tensors"));
  fs::remove_all(dir);
}
