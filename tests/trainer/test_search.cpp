// Hyperparameter search: sampling (bounds, grids, log scale, conditional
// sub-spaces, values not indices), TPE against random search on a synthetic
// objective, median and Hyperband pruning, the SQLite study (a killed
// worker's trial retried, two writer processes), the test-set separation,
// and one short `kiln-train search` run. test_study.cpp covers both backends.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "tests/trainer/search_test_util.h"
#include "trainer/search/search.h"
#include "trainer/spec.h"

using namespace kiln::train;
using namespace kiln::train::search;
using namespace kiln::train::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

double bestOf(const std::vector<TrialRecord>& trials) {
  double best = 1e300;
  for (const TrialRecord& t : trials)
    if (t.value) best = std::min(best, *t.value);
  return best;
}

TrialRecord record(int64_t id, TrialState state, std::map<int64_t, double> intermediate) {
  TrialRecord t;
  t.id = id;
  t.state = state;
  t.intermediate = std::move(intermediate);
  return t;
}

}  // namespace

TEST_CASE("Sampling respects bounds, grids and the log scale") {
  fs::path dir = scratch("sampling");
  SearchSpace space = makeSpace(dir, {{"a", 0}, {"b", 0}, {"c", 0}, {"d", 0}},
                                {{"/a", {{"uniform", {-1, 3}}}},
                                 {"/b", {{"loguniform", {1e-4, 1}}}},
                                 {"/c", {{"quniform", {16, 64, 8}}}},
                                 {"/d", {{"int", {2, 5}}}}});
  Rng rng(7);
  RandomSampler sampler;
  int logBelowMid = 0;
  std::set<int64_t> grid, ints;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    json o = space.overrides(sampler.propose(space, {}, rng));
    double a = o["/a"].get<double>(), b = o["/b"].get<double>();
    REQUIRE(a >= -1);
    REQUIRE(a < 3);
    REQUIRE(b >= 1e-4);
    REQUIRE(b <= 1);
    logBelowMid += b < 1e-2;
    REQUIRE(o["/c"].is_number_integer());  // integral bounds and step: an integer for the spec
    REQUIRE(o["/d"].is_number_integer());
    grid.insert(o["/c"].get<int64_t>());
    ints.insert(o["/d"].get<int64_t>());
  }
  // 1e-2 is the geometric middle of [1e-4, 1]: half the draws fall below.
  CHECK(std::abs(logBelowMid / double(n) - 0.5) < 0.03);
  CHECK(grid == std::set<int64_t>{16, 24, 32, 40, 48, 56, 64});
  CHECK(ints == std::set<int64_t>{2, 3, 4, 5});  // both ends included
  Dimension q = space.dimensions().at("/c");
  CHECK(q.snap(19.9) == 16);
  CHECK(q.snap(20.1) == 24);
  CHECK(q.snap(100) == 64);
}

TEST_CASE("Conditional sub-spaces are active only in their branch and resolve to values") {
  fs::path dir = scratch("conditional");
  json base = {{"training", {{"optimizer", {{"type", "adam"}}}, {"batch_size", 64}}}, {"act", "relu"}};
  SearchSpace space = makeSpace(
      dir, base,
      {{"/training/optimizer", {{"choice", json::array({{{"type", "adam"}}, {{"type", "sgd"}, {"momentum", {{"uniform", {0.5, 0.99}}}}}})}}},
       {"/training/optimizer/learning_rate", {{"loguniform", {1e-4, 1e-1}}}},
       {"/act", {{"choice", {"relu", "tanh"}}}}});
  CHECK(space.dimensions().count("/training/optimizer[1]/momentum") == 1);
  Rng rng(3);
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    Assignment a = RandomSampler().propose(space, {}, rng);
    json o = space.overrides(a);
    const std::string type = o["/training/optimizer"]["type"];
    seen.insert(type);
    CHECK((a.count("/training/optimizer[1]/momentum") == 1) == (type == "sgd"));
    CHECK(o["/training/optimizer"].contains("momentum") == (type == "sgd"));
    CHECK((o["/act"] == "relu" || o["/act"] == "tanh"));  // the value, not its index
    json spec = space.apply(o);
    // The parent path is replaced first, then the learning rate set inside it.
    CHECK(spec["training"]["optimizer"]["type"] == type);
    CHECK(spec["training"]["optimizer"]["learning_rate"] == o["/training/optimizer/learning_rate"]);
    CHECK(spec["training"]["batch_size"] == 64);
  }
  CHECK(seen == std::set<std::string>{"adam", "sgd"});
  Assignment missing{{"/training/optimizer", 1}, {"/training/optimizer/learning_rate", 0.01}, {"/act", 0}};
  CHECK_THROWS_AS(space.overrides(missing), SpecError);  // the sgd branch needs its momentum
  CHECK_THROWS_AS(makeSpace(dir, base, {{"/nope/x", {{"uniform", {0, 1}}}}}), SpecError);
  CHECK_THROWS_AS(makeSpace(dir, base, {{"/act", {{"loguniform", {0, 1}}}}}), SpecError);
}

TEST_CASE("TPE beats random search on a 2-D quadratic, deterministically") {
  fs::path dir = scratch("tpe");
  SearchSpace space = quadraticSpace(dir);
  auto run = [&](const Sampler& sampler, const std::string& name) {
    fs::remove(dir / name);
    Study study((dir / name).string(), space, 11);
    runWorker(study, {60, &sampler, nullptr}, quadratic);
    return study.trials();
  };
  TpeSampler tpe;
  RandomSampler random;
  std::vector<TrialRecord> t1 = run(tpe, "tpe1.db"), t2 = run(tpe, "tpe2.db"), r1 = run(random, "r1.db"), r2 = run(random, "r2.db");
  REQUIRE(t1.size() == 60);
  for (size_t i = 0; i < t1.size(); ++i) {
    CHECK(t1[i].value == t2[i].value);
    CHECK(r1[i].value == r2[i].value);
  }
  // The first 10 (startup) trials are the prior's draws in both.
  for (size_t i = 0; i < 10; ++i) CHECK(t1[i].value == r1[i].value);
  double tpeBest = bestOf(t1), randomBest = bestOf(r1);
  INFO("tpe " << tpeBest << " random " << randomBest);
  CHECK(tpeBest < 0.25 * randomBest);
}

TEST_CASE("The median rule prunes after its warm-up, against complete trials") {
  MedianPruner pruner(1, 3);
  std::vector<TrialRecord> all = {record(1, TrialState::Complete, {{0, 1.0}, {1, 0.8}}), record(2, TrialState::Complete, {{0, 1.2}, {1, 0.6}}),
                                  record(3, TrialState::Pruned, {{0, 0.1}, {1, 0.1}}), record(4, TrialState::Complete, {{0, 0.9}, {1, 0.7}})};
  // Medians of the complete trials: step 0: 1.0, step 1: 0.7.
  CHECK_FALSE(pruner.shouldPrune(record(5, TrialState::Running, {{0, 5.0}}), 0, all));  // warm-up
  CHECK(pruner.shouldPrune(record(5, TrialState::Running, {{0, 5.0}, {1, 0.71}}), 1, all));
  CHECK_FALSE(pruner.shouldPrune(record(5, TrialState::Running, {{0, 5.0}, {1, 0.7}}), 1, all));
  // Fewer than 3 complete trials at the step: no decision.
  std::vector<TrialRecord> two(all.begin(), all.begin() + 2);
  CHECK_FALSE(pruner.shouldPrune(record(5, TrialState::Running, {{0, 5.0}, {1, 9.0}}), 1, two));
  // No trial reached step 2.
  CHECK_FALSE(pruner.shouldPrune(record(5, TrialState::Running, {{2, 9.0}}), 2, all));
}

TEST_CASE("Hyperband brackets for R=27, eta=3 are the classic table") {
  std::vector<Bracket> expected = {
      {3, {{27, 1}, {9, 3}, {3, 9}, {1, 27}}},
      {2, {{12, 3}, {4, 9}, {1, 27}}},
      {1, {{6, 9}, {2, 27}}},
      {0, {{4, 27}}},
  };
  CHECK(hyperbandBrackets(27, 3) == expected);
  // R=81, eta=3 (Li et al., Table 1).
  std::vector<Bracket> b81 = hyperbandBrackets(81, 3);
  REQUIRE(b81.size() == 5);
  CHECK(b81[0] == Bracket{4, {{81, 1}, {27, 3}, {9, 9}, {3, 27}, {1, 81}}});
  CHECK(b81[1] == Bracket{3, {{34, 3}, {11, 9}, {3, 27}, {1, 81}}});
  CHECK(b81[2] == Bracket{2, {{15, 9}, {5, 27}, {1, 81}}});
  CHECK(b81[3] == Bracket{1, {{8, 27}, {2, 81}}});
  CHECK(b81[4] == Bracket{0, {{5, 81}}});
  CHECK(hyperbandBrackets(9, 3).size() == 3);  // an exact power: no floating-point log
  CHECK(hyperbandBrackets(1, 3) == std::vector<Bracket>{{0, {{1, 1}}}});
}

TEST_CASE("Hyperband deals trials to brackets and halves at the rungs") {
  HyperbandPruner hb(27, 3, false);
  std::map<int64_t, int> perBracket;
  for (int64_t id = 1; id <= 49; ++id) ++perBracket[hb.bracketOf(id).s];
  CHECK(perBracket == std::map<int64_t, int>{{3, 27}, {2, 12}, {1, 6}, {0, 4}});
  CHECK(hb.bracketOf(50).s == 3);
  // Bracket s=3 (ids 1..27) has rungs at epochs 1, 3, 9: steps 0, 2, 8.
  std::vector<TrialRecord> all = {record(1, TrialState::Complete, {{0, 0.5}}), record(2, TrialState::Complete, {{0, 0.6}}),
                                  record(28, TrialState::Complete, {{0, 0.1}})};  // another bracket: no competitor
  // k = 3 reported at epoch 1 (itself included): the best floor(3/3) = 1 continue.
  CHECK_FALSE(hb.shouldPrune(record(3, TrialState::Running, {{0, 0.4}}), 0, all));
  CHECK(hb.shouldPrune(record(3, TrialState::Running, {{0, 0.55}}), 0, all));
  CHECK_FALSE(hb.shouldPrune(record(3, TrialState::Running, {{0, 9.0}, {1, 9.0}}), 1, all));  // not a rung
  // The first arrival at a rung always continues; bracket s=0 never prunes.
  CHECK_FALSE(hb.shouldPrune(record(4, TrialState::Running, {{0, 0.4}, {1, 0.4}, {2, 9.0}}), 2, all));
  CHECK_FALSE(hb.shouldPrune(record(49, TrialState::Running, {{0, 9.0}}), 0, all));
  // Successive halving alone: every trial in bracket s_max.
  HyperbandPruner sha(27, 3, true);
  CHECK(sha.bracketOf(40).s == 3);
}

TEST_CASE("Pruned trials are stored with their last loss") {
  fs::path dir = scratch("pruned");
  SearchSpace space = quadraticSpace(dir);
  Study study((dir / "s.db").string(), space, 1);
  MedianPruner pruner(1, 2);
  RandomSampler sampler;
  // Trials 1-2 learn slowly; later ones lose by a constant offset from the
  // trial id, so from the third on every trial is worse than the median.
  runWorker(study, {5, &sampler, &pruner}, [](const json&, Trial& trial) {
    const int64_t id = trial.record().id;
    double loss = 0;
    for (int64_t e = 0; e < 4; ++e) trial.report(e, loss = 1.0 / double(e + 1) + (id > 2 ? 1.0 : 0.0), e == 3);
    return loss;
  });
  std::vector<TrialRecord> trials = study.trials();
  REQUIRE(trials.size() == 5);
  CHECK(trials[0].state == TrialState::Complete);
  CHECK(trials[1].state == TrialState::Complete);
  for (size_t i = 2; i < 5; ++i) {
    CHECK(trials[i].state == TrialState::Pruned);
    CHECK(trials[i].intermediate.size() == 2);  // stopped at step 1, the first after the warm-up
    CHECK(trials[i].value == trials[i].intermediate.at(1));
  }
}

TEST_CASE("A killed worker's trial is failed and retried with its parameters") {
  fs::path dir = scratch("resume");
  const std::string path = (dir / "s.db").string();
  SearchSpace space = quadraticSpace(dir);
  RandomSampler sampler;
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    Study study(path, space, 5);
    runWorker(study, {3, &sampler, nullptr}, [](const json&, Trial& trial) -> double {
      trial.report(0, 1.0, false);
      for (;;) ::pause();  // hangs in trial 1 until killed
    });
    ::_exit(0);
  }
  bool started = false;
  for (int i = 0; i < 500 && !started; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (fs::exists(path)) {
      try {
        std::vector<TrialRecord> t = readStudy(path);
        started = !t.empty() && !t[0].intermediate.empty();
      } catch (const StudyError&) {
        // the child is still creating the tables
      }
    }
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  REQUIRE(started);
  std::vector<TrialRecord> before = readStudy(path);
  REQUIRE(before.size() == 1);
  CHECK(before[0].state == TrialState::Running);

  Study study(path, space, 5);
  int64_t ran = runWorker(study, {3, &sampler, nullptr}, quadratic);
  CHECK(ran == 3);
  std::vector<TrialRecord> after = study.trials();
  REQUIRE(after.size() == 4);  // the dead run, its retry (taking its slot), two new ones
  CHECK(after[0].state == TrialState::Failed);
  CHECK(after[0].error.find("exited during the trial") != std::string::npos);
  CHECK(after[0].intermediate == std::map<int64_t, double>{{0, 1.0}});  // the dead run's losses are kept
  CHECK(after[1].retryOf == 1);
  CHECK(after[1].overrides == before[0].overrides);
  CHECK(after[1].params == before[0].params);
  CHECK(after[1].intermediate.empty());
  for (size_t i = 1; i < 4; ++i) CHECK(after[i].state == TrialState::Complete);
  // Another space cannot reuse the file.
  fs::path other = scratch("resume_other");
  SearchSpace otherSpace = makeSpace(other, {{"x", 0}}, {{"/x", {{"uniform", {0, 1}}}}});
  CHECK_THROWS_AS(Study(path, otherSpace, 5), StudyError);
}

TEST_CASE("Two worker processes share a study without losing trials") {
  fs::path dir = scratch("concurrent");
  const std::string path = (dir / "s.db").string();
  SearchSpace space = quadraticSpace(dir);
  TpeSampler sampler;
  MedianPruner pruner;
  std::vector<pid_t> children;
  for (int w = 0; w < 2; ++w) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int code = 0;
      try {
        Study study(path, space, 9);
        runWorker(study, {40, &sampler, &pruner}, [](const json& spec, Trial& trial) {
          double loss = 0;
          for (int64_t e = 0; e < 3; ++e) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
            trial.report(e, loss = (spec["x"].get<double>() - 1) * (spec["x"].get<double>() - 1) / double(e + 1), e == 2);
          }
          return loss;
        });
      } catch (const std::exception&) {
        code = 1;
      }
      ::_exit(code);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  std::vector<TrialRecord> trials = readStudy(path);
  REQUIRE(trials.size() == 40);
  std::set<std::string> workers;
  for (size_t i = 0; i < trials.size(); ++i) {
    CHECK(trials[i].id == static_cast<int64_t>(i) + 1);
    INFO("trial " << trials[i].id << " " << stateName(trials[i].state) << " " << trials[i].error);
    CHECK((trials[i].state == TrialState::Complete || trials[i].state == TrialState::Pruned));
    CHECK(trials[i].params.size() == 2);
    CHECK(trials[i].value.has_value());
    workers.insert(trials[i].worker);
  }
  CHECK(workers.size() == 2);  // both processes ran trials
}

TEST_CASE("The search code never names the test-set API") {
  // The search objective gets a TrainValSplit; the test set is reachable
  // only through its folder type and the final evaluation, which
  // trainer/search must not mention.
  for (const auto& entry : fs::directory_iterator(fs::path(KILN_SOURCE_DIR_FOR_TRAINER) / "trainer" / "search")) {
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    for (const char* name : {"TestSet", "evaluateOnTestSet", "DatasetFolder"}) {
      INFO(entry.path() << " names " << name);
      CHECK(text.str().find(name) == std::string::npos);
    }
  }
}

TEST_CASE("kiln-train search runs, resumes and lists a tiny study") {
  if (!fs::exists("/usr/share/datasets/fashion-mnist")) {
    WARN("dataset-fashion-mnist is not installed; skipped");
    return;
  }
  fs::path dir = scratch("cli");
  std::ofstream(dir / "tiny.json") << R"({"name": "tiny", "input_shape": [28, 28, 1],
    "layers": [{"type": "MaxPooling2D", "pool_size": 4}, {"type": "Flatten"}, {"type": "Dense", "units": 10, "activation": "softmax"}],
    "training": {"batch_size": 32, "validation_size": 200, "optimizer": {"type": "adam"}}})";
  std::ofstream(dir / "space.json") << R"({"base": "tiny.json", "params": {
    "/training/optimizer/learning_rate": {"loguniform": [1e-3, 1e-1]}, "/training/batch_size": {"choice": [16, 32]}}})";
  const std::string bin = KILN_TRAIN_BINARY;
  const std::string study = (dir / "s.db").string();
  auto search = [&](int evals) {
    return std::system((bin + " search " + (dir / "space.json").string() + " --study " + study +
                        " --train-limit 300 --epochs 1 --workers 2 --max-evals " + std::to_string(evals) + " > " +
                        (dir / "out.txt").string() + " 2> " + (dir / "err.txt").string())
                           .c_str());
  };
  REQUIRE(search(3) == 0);
  std::ifstream err(dir / "err.txt");
  std::string table((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  INFO(table);
  CHECK(table.find("trial  state") != std::string::npos);
  CHECK(std::count(table.begin(), table.end(), '\n') >= 5);  // banner, header, 3 rows
  REQUIRE(search(4) == 0);  // resumes: one more trial
  REQUIRE(std::system((bin + " trials " + study + " > " + (dir / "trials.txt").string()).c_str()) == 0);
  std::ifstream listed(dir / "trials.txt");
  std::vector<std::string> lines;
  for (std::string line; std::getline(listed, line);) lines.push_back(line);
  REQUIRE(lines.size() == 5);
  std::vector<double> losses;
  std::vector<int64_t> ids;
  for (size_t i = 1; i < lines.size(); ++i) {
    CHECK(lines[i].find("COMPLETE") != std::string::npos);
    CHECK(lines[i].find("training/batch_size=") != std::string::npos);
    std::istringstream row(lines[i]);
    std::string id, state;
    double loss = 0;
    row >> id >> state >> loss;
    losses.push_back(loss);
    ids.push_back(std::stoll(id));
  }
  CHECK(std::is_sorted(losses.begin(), losses.end()));

  // Members from the two best trials: the stored base spec with their values.
  std::vector<TrialSpec> best = bestTrialSpecs(study, 2);
  REQUIRE(best.size() == 2);
  CHECK(best[0].value == Approx(losses[0]).margin(1e-4));  // the table prints 4 decimals
  CHECK(best[0].value <= best[1].value);
  for (size_t k = 0; k < best.size(); ++k) {
    CHECK(best[k].id == ids[k]);
    CHECK(best[k].spec.at("name") == "tiny");
    CHECK(lines[k + 1].find("training/batch_size=" + best[k].spec.at("training").at("batch_size").dump()) != std::string::npos);
  }
  CHECK_THROWS_WITH(bestTrialSpecs(study, 5), Catch::Contains("4 complete trial(s), fewer than the 5"));
  const fs::path ens = dir / "ens";
  REQUIRE(std::system((bin + " ensemble --study " + study + " --top 2 --data fashion-mnist --train-limit 300 --epochs 1 -o " +
                       ens.string() + " > " + (dir / "ens.txt").string() + " 2> " + (dir / "ens_err.txt").string())
                          .c_str()) == 0);
  std::ifstream manifestFile(ens / "ensemble.json");
  const json manifest = json::parse(manifestFile);
  CHECK(manifest.at("members").size() == 2);
  std::ifstream ensErr(dir / "ens_err.txt");
  const std::string ensLog((std::istreambuf_iterator<char>(ensErr)), std::istreambuf_iterator<char>());
  INFO(ensLog);
  CHECK(ensLog.find("trial " + std::to_string(best[0].id) + " (search val_loss") != std::string::npos);
  CHECK(ensLog.find("trial " + std::to_string(best[1].id) + " (search val_loss") != std::string::npos);
  // SPEC.json and --study together are refused before anything is trained.
  CHECK(std::system((bin + " ensemble " + (dir / "tiny.json").string() + " --study " + study +
                     " --top 2 --data fashion-mnist -o " + (dir / "ens2").string() + " 2> /dev/null").c_str()) != 0);
  CHECK_FALSE(fs::exists(dir / "ens2"));
}

TEST_CASE("The trial table shows a long drawn option by the values sampled inside it") {
  TrialRecord t;
  t.id = 7;
  t.state = TrialState::Complete;
  t.value = 0.25;
  json layers = json::array();
  for (int i = 0; i < 8; ++i) layers.push_back({{"type", "Conv2D"}, {"filters", 16 * (i + 1)}, {"padding", "same"}});
  t.overrides = {{"/layers", layers}, {"/training/optimizer", {{"type", "adam"}, {"learning_rate", 0.0012345}}}};
  t.params = {{"/layers", 1}, {"/layers[1]/0/filters", 16}, {"/layers[1]/7/filters", 128}, {"/layers[0]/0/filters", 32},
              {"/training/optimizer", 0}, {"/training/optimizer[0]/learning_rate", 0.0012345}};
  const std::string row = tableRow(t);
  INFO(row);
  CHECK(row.find(" layers[1]: 0/filters=16 7/filters=128") != std::string::npos);
  CHECK(row.find("Conv2D") == std::string::npos);     // not the whole list
  CHECK(row.find("layers[0]") == std::string::npos);  // nor the option not drawn
  // A short structured value stays whole: the option is named by its values.
  CHECK(row.find(R"(training/optimizer={"learning_rate":0.001234,"type":"adam"})") != std::string::npos);
}
