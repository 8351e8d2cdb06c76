// kiln-train: trains a model spec on an IDX image dataset and writes ONNX,
// and searches hyperparameters over a search space.
//   kiln-train fit SPEC.json --data fashion-mnist [--epochs E] [--seed S]
//              [--threads T] [--train-limit N] -o MODEL.onnx
//   kiln-train search SPACE.json --study URL [--max-evals N] [--algo tpe]
//              [--workers W] [--pruner median] [--heartbeat-timeout S] ...
//   kiln-train trials URL
//   kiln-train study copy SRC_URL DST_URL
//   kiln-train ensemble SPEC.json --members K --data fashion-mnist -o DIR
//   kiln-train ensemble --study URL --top K --data fashion-mnist -o DIR
//              [--epochs E] [--seed S] [--train-limit N] [--method caruana|logloss]
// Exit codes: 0 ok, 1 bad spec/data/export/study or a failed worker, 2 bad usage.
#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>

#include "trainer/kernels.h"
#include "trainer/ensemble.h"
#include "trainer/file_output.h"
#include "trainer/fit.h"
#include "trainer/onnx_export.h"
#include "trainer/search/objective.h"

namespace {

using namespace kiln::train;

constexpr const char* kUsage = R"(usage: kiln-train fit SPEC.json --data DATASET -o MODEL.onnx [options]
       kiln-train search SPACE.json --study URL [options]
       kiln-train trials URL
       kiln-train study copy SRC_URL DST_URL
       kiln-train ensemble SPEC.json --members K --data DATASET -o DIR [options]
       kiln-train ensemble --study URL --top K --data DATASET -o DIR [options]

Trains the model described by SPEC.json (architecture + training config, see
trainer/README.md) on DATASET, a folder of MNIST-style IDX files (gzip or raw)
or "fashion-mnist" (/usr/share/datasets/fashion-mnist). The official training
set is split into train/validation (stratified, seeded); the test set is only
read by the final evaluation after training. Writes the best weights as ONNX.

options:
  --epochs E         epochs (default: the spec's training.epochs)
  --seed S           seed for the split, initial weights, shuffling,
                     augmentation and dropout (default 0)
  --threads T        threads of the math kernels and layer loops
                     (default 2; 1 gives bitwise reproducible runs)
  --train-limit N    train on the first N training samples only
  -h, --help         this text

search: minimizes the validation loss over SPACE.json (a base spec plus
distributions at JSON paths, see trainer/README.md). Trials live in the
study at URL, shared by every worker that names it, on this machine or
others: rerunning the command resumes it (trials of lost workers are failed
and run again). One table row per finished trial goes to stderr, the best
trial to stdout. The test set is never read.
  --study URL        the study (created when missing), one of
                       PATH or sqlite:///PATH   a SQLite file
                                                (sqlite:////abs/path)
                       postgresql://[USER@]HOST[:PORT]/DB?study=NAME
                                                study NAME in a PostgreSQL
                                                database (a libpq URI)
  --max-evals N      trials in the study, earlier runs' included (default 20)
  --algo A           tpe (default) or random
  --workers W        worker processes (default 1)
  --pruner P         median (default), sha (successive halving), hyperband
                     or none
  --eta E            halving rate of sha/hyperband (default 3); their max
                     resource is the epochs per trial
  --heartbeat-timeout S
                     seconds without a heartbeat (sent every S/4) after
                     which another worker fails this worker's trial and
                     queues a retry (default 60)
  --data, --epochs, --seed, --train-limit as for fit; --threads is per
  worker (default 1)

trials: prints the trials of the study at URL, best validation loss first.

study copy: copies every trial of the study at SRC_URL (parameters,
intermediate losses, states) to DST_URL, between SQLite and PostgreSQL in
either direction. The destination must hold no trials (a SQLite one must
not exist); it is written in one transaction (SQLite: a temporary file
renamed into place).

ensemble: trains K members (seeds S..S+K-1, one shared validation split from
S) of SPEC.json, or with --study one member of each of the K complete trials
with the lowest validation loss (the study's base spec with the trial's
values; --epochs and --train-limit as given here, not the search's), learns mixture weights on their validation probabilities, prints each
member, the equal-weight and the weighted mixture (validation accuracy and
log-loss), writes DIR/member<i>.onnx and DIR/ensemble.json (see
trainer/README.md) atomically, then evaluates everything once on the test
set and prints the validation-to-test gap. Each trained member is kept in
DIR.members/ until DIR is written: rerun the same command after a kill and
it resumes after the last finished member.
  --members K        members (default 3)
  --study URL --top K
                     members from the K best trials of a search study
  --method M         caruana (greedy selection with replacement, default)
                     or logloss (log-loss minimization on the simplex)
  --iterations I     Caruana selection rounds (default 5 * K)
  --data, --epochs, --seed, --threads, --train-limit as for fit
)";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct FitArgs {
  std::string spec, data, output;
  std::optional<int64_t> epochs;
  uint64_t seed = 0;
  int threads = 2;
  int64_t trainLimit = 0;
};

int64_t parseInt(const std::string& flag, const std::string& v, int64_t min) {
  size_t used = 0;
  int64_t n = 0;
  try {
    n = std::stoll(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || v.empty() || n < min) throw UsageError(flag + " needs an integer >= " + std::to_string(min) + ", got '" + v + "'");
  return n;
}

// `specOptional`: ensemble --study takes its specs from the study.
FitArgs parseFitArgs(int argc, char** argv, bool specOptional = false) {
  FitArgs a;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--data") a.data = value();
    else if (arg == "-o" || arg == "--output") a.output = value();
    else if (arg == "--epochs") a.epochs = parseInt(arg, value(), 1);
    else if (arg == "--seed") a.seed = static_cast<uint64_t>(parseInt(arg, value(), 0));
    else if (arg == "--threads") a.threads = static_cast<int>(parseInt(arg, value(), 1));
    else if (arg == "--train-limit") a.trainLimit = parseInt(arg, value(), 1);
    else if (!arg.empty() && arg[0] == '-') throw UsageError("unknown option " + arg);
    else if (a.spec.empty()) a.spec = arg;
    else throw UsageError("unexpected argument '" + arg + "'");
  }
  if (a.spec.empty() && !specOptional) throw UsageError("missing SPEC.json");
  if (a.data.empty()) throw UsageError("missing --data");
  if (a.output.empty()) throw UsageError("missing -o OUTPUT (fit: the model .onnx; ensemble: the output folder)");
  return a;
}

struct SearchArgs {
  std::string space, study, data = "fashion-mnist", algo = "tpe", pruner = "median";
  std::optional<int64_t> epochs;
  int64_t maxEvals = 20, trainLimit = 0, eta = 3;
  uint64_t seed = 0;
  int threads = 1, workers = 1;
  double heartbeatTimeout = kiln::train::search::kDefaultHeartbeatTimeout;
};

SearchArgs parseSearchArgs(int argc, char** argv) {
  SearchArgs a;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--study") a.study = value();
    else if (arg == "--data") a.data = value();
    else if (arg == "--algo") a.algo = value();
    else if (arg == "--pruner") a.pruner = value();
    else if (arg == "--max-evals") a.maxEvals = parseInt(arg, value(), 1);
    else if (arg == "--workers") a.workers = static_cast<int>(parseInt(arg, value(), 1));
    else if (arg == "--eta") a.eta = parseInt(arg, value(), 2);
    else if (arg == "--epochs") a.epochs = parseInt(arg, value(), 1);
    else if (arg == "--seed") a.seed = static_cast<uint64_t>(parseInt(arg, value(), 0));
    else if (arg == "--threads") a.threads = static_cast<int>(parseInt(arg, value(), 1));
    else if (arg == "--train-limit") a.trainLimit = parseInt(arg, value(), 1);
    else if (arg == "--heartbeat-timeout") a.heartbeatTimeout = static_cast<double>(parseInt(arg, value(), 1));
    else if (!arg.empty() && arg[0] == '-') throw UsageError("unknown option " + arg);
    else if (a.space.empty()) a.space = arg;
    else throw UsageError("unexpected argument '" + arg + "'");
  }
  if (a.space.empty()) throw UsageError("missing SPACE.json");
  if (a.study.empty()) throw UsageError("missing --study URL");
  if (a.algo != "tpe" && a.algo != "random") throw UsageError("--algo must be tpe or random");
  if (a.pruner != "none" && a.pruner != "median" && a.pruner != "sha" && a.pruner != "hyperband")
    throw UsageError("--pruner must be none, median, sha or hyperband");
  return a;
}

int runSearch(const SearchArgs& a) {
  namespace s = kiln::train::search;
  s::parseStudyUrl(a.study);  // a bad URL fails before the data is loaded
  setMathThreads(a.threads);
  s::SearchSpace space = s::SearchSpace::load(a.space);
  ModelSpec base = parseSpec(space.base(), "base spec");
  const int64_t epochs = a.epochs.value_or(base.training.epochs);
  std::unique_ptr<s::Sampler> sampler = s::makeSampler(a.algo);
  std::unique_ptr<s::Pruner> pruner = s::makePruner(a.pruner, epochs, a.eta);
  // Loaded once, before the workers fork, so they share it copy-on-write.
  TrainValSplit split = loadTrainValSplit(DatasetFolder(a.data), base.training.validationSize, a.seed);
  std::cerr << "search " << a.space << ": " << a.algo << ", pruner " << a.pruner << ", " << a.workers << " worker(s), "
            << epochs << " epoch(s)/trial, " << (a.trainLimit ? std::min(a.trainLimit, split.train.size()) : split.train.size())
            << " train / " << split.validation.size() << " validation samples, study " << a.study << "\n";
  s::SearchConfig cfg{a.maxEvals, sampler.get(), pruner.get()};
  s::Objective objective = s::trainingObjective(split, base.training.validationSize, {epochs, a.trainLimit, a.seed});
  int failedWorkers = s::runWorkers(a.study, space, a.seed, cfg, a.workers, objective, std::cerr, a.heartbeatTimeout);
  std::vector<s::TrialRecord> ranked = s::rankTrials(s::readStudy(a.study));
  if (!ranked.empty() && ranked.front().state == s::TrialState::Complete)
    std::printf("best trial %lld: val_loss %.4f %s\n", static_cast<long long>(ranked.front().id), *ranked.front().value,
                ranked.front().overrides.dump().c_str());
  else
    std::printf("no trial completed\n");
  if (failedWorkers) std::cerr << "kiln-train: " << failedWorkers << " worker(s) failed\n";
  return failedWorkers ? 1 : 0;
}

int runTrials(int argc, char** argv) {
  namespace s = kiln::train::search;
  if (argc != 3) throw UsageError("usage: kiln-train trials URL");
  std::vector<s::TrialRecord> ranked = s::rankTrials(s::readStudy(argv[2]));
  std::cout << s::tableHeader();
  for (const s::TrialRecord& t : ranked) std::cout << s::tableRow(t);
  return 0;
}

int runStudyCommand(int argc, char** argv) {
  if (argc != 5 || std::string(argv[2]) != "copy") throw UsageError("usage: kiln-train study copy SRC_URL DST_URL");
  const size_t n = kiln::train::search::copyStudy(argv[3], argv[4]);
  std::printf("copied %zu trial(s) from %s to %s\n", n, argv[3], argv[4]);
  return 0;
}

struct EnsembleArgs {
  FitArgs fit;
  int64_t members = 3, iterations = 0;
  std::string method = "caruana";
  std::string study;  // members from its best trials instead of fit.spec
};

EnsembleArgs parseEnsembleArgs(int argc, char** argv) {
  EnsembleArgs e;
  std::vector<char*> rest(argv, argv + std::min(argc, 2));
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--members" || arg == "--top") e.members = parseInt(arg, value(), 1);
    else if (arg == "--study") e.study = value();
    else if (arg == "--iterations") e.iterations = parseInt(arg, value(), 1);
    else if (arg == "--method") e.method = value();
    else rest.push_back(argv[i]);
  }
  if (e.method != "caruana" && e.method != "logloss") throw UsageError("--method must be caruana or logloss");
  e.fit = parseFitArgs(static_cast<int>(rest.size()), rest.data(), !e.study.empty());
  if (!e.study.empty() && !e.fit.spec.empty()) throw UsageError("ensemble takes SPEC.json or --study, not both");
  if (e.iterations == 0) e.iterations = 5 * e.members;
  return e;
}

std::vector<std::string> classLabels(const std::string& data) {
  if (data == "fashion-mnist")
    return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  std::vector<std::string> labels;
  for (int c = 0; c < 10; ++c) labels.push_back(std::to_string(c));
  return labels;
}

int runEnsemble(const EnsembleArgs& e) {
  namespace fs = std::filesystem;
  const FitArgs& a = e.fit;
  const fs::path dir(a.output);
  // Fail before hours of training, not at the final rename.
  if (fs::exists(dir) && !(fs::is_directory(dir) && fs::is_empty(dir)))
    throw std::runtime_error(a.output + " exists and is not an empty folder");
  setMathThreads(a.threads);
  std::vector<ModelSpec> specs;  // one per member
  std::vector<std::string> origins, specTexts;
  if (e.study.empty()) {
    specs.assign(static_cast<size_t>(e.members), loadSpecFile(a.spec));
    origins.assign(specs.size(), a.spec);
    std::ifstream file(a.spec);
    specTexts.assign(specs.size(), std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()));
  } else {
    for (const auto& t : kiln::train::search::bestTrialSpecs(e.study, static_cast<size_t>(e.members))) {
      const std::string origin = e.study + " trial " + std::to_string(t.id);
      specs.push_back(parseSpec(t.spec, origin));
      origins.push_back(origin + " (search val_loss " + std::to_string(t.value) + ")");
      specTexts.push_back(t.spec.dump());
    }
  }
  const ModelSpec& spec = specs.front();
  for (const ModelSpec& s : specs)
    if (s.training.validationSize != spec.training.validationSize || s.training.loss.fromLogits != spec.training.loss.fromLogits)
      throw SpecError("ensemble members must share training.validation_size and loss.from_logits");
  DatasetFolder folder(a.data);
  // One split for every member: the weights are learned on the same samples.
  TrainValSplit split = loadTrainValSplit(folder, spec.training.validationSize, a.seed);
  std::cerr << spec.name << " ensemble: " << e.members << " member(s); " << split.train.size() << " train / "
            << split.validation.size() << " validation samples\n";
  // Each trained member's state is kept in DIR.members/ until DIR is
  // written, so a run killed after hours resumes after its last member.
  const fs::path finished = dir.parent_path() / (dir.filename().string() + ".members");
  fs::create_directories(finished);
  std::vector<std::unique_ptr<Sequential>> models;
  std::vector<ProbMatrix> probs;
  for (int64_t k = 0; k < e.members; ++k) {
    const uint64_t seed = a.seed + static_cast<uint64_t>(k);
    const ModelSpec& member = specs[static_cast<size_t>(k)];
    std::cerr << "member " << k << " (seed " << seed << ", " << origins[static_cast<size_t>(k)] << ")\n";
    models.push_back(std::make_unique<Sequential>(member, seed));
    FitOptions opts;
    opts.epochs = a.epochs.value_or(member.training.epochs);
    opts.seed = seed;
    opts.trainLimit = a.trainLimit;
    opts.progress = &std::cerr;
    const std::string statePath = (finished / ("member" + std::to_string(k) + ".state")).string();
    const std::string fingerprint =
        memberFingerprint(specTexts[static_cast<size_t>(k)], seed, opts.epochs, a.trainLimit, a.seed, a.data);
    if (loadStateFile(*models.back(), statePath, fingerprint)) {
      std::cerr << "  trained by an earlier run: restored from " << statePath << "\n";
    } else {
      fit(*models.back(), member.training, split, opts);
      saveStateFile(*models.back(), statePath, fingerprint);
    }
    probs.push_back(predictProbabilities(*models.back(), member.training.loss, split.validation, member.training.batchSize));
  }
  const std::span<const uint8_t> labels(split.validation.labels);
  const std::vector<double> weights =
      e.method == "caruana" ? caruanaWeights(probs, labels, e.iterations) : simplexLogLossWeights(probs, labels);
  const auto K = static_cast<size_t>(e.members);
  std::vector<MixtureMetrics> valRows;
  for (size_t k = 0; k < K; ++k) {
    std::vector<double> one(K, 0.0);
    one[k] = 1;
    valRows.push_back(mixtureMetrics(probs, labels, one));
  }
  valRows.push_back(mixtureMetrics(probs, labels, std::vector<double>(K, 1.0)));
  valRows.push_back(mixtureMetrics(probs, labels, weights));
  auto rowName = [&](size_t r) {
    return r < K ? "member" + std::to_string(r) : r == K ? std::string("equal") : "weighted (" + e.method + ")";
  };
  // The report goes to stdout and, once the ensemble is written, to
  // DIR/report.txt: hours of training should not leave their only record
  // in a terminal or a log that may be lost.
  std::string report;
  auto line = [&report](const char* format, auto... values) {
    char text[1024];
    std::snprintf(text, sizeof text, format, values...);
    std::fputs(text, stdout);
    report += text;
  };
  for (size_t k = 0; k < K; ++k) line("member%zu: %s\n", k, origins[k].c_str());
  line("%-20s %8s %9s %9s\n", "model", "weight", "val_acc", "val_loss");
  for (size_t r = 0; r < valRows.size(); ++r) {
    char weight[32] = "";
    if (r < K) std::snprintf(weight, sizeof weight, "%.4f", weights[r]);
    line("%-20s %8s %9.4f %9.4f\n", rowName(r).c_str(), weight, valRows[r].accuracy, valRows[r].logLoss);
  }

  // Written into a sibling temp folder and renamed, so DIR never holds a
  // partial ensemble.
  const fs::path tmp = dir.parent_path() / (dir.filename().string() + ".tmp-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    std::vector<std::string> paths;
    for (size_t k = 0; k < K; ++k) {
      paths.push_back("member" + std::to_string(k) + ".onnx");
      exportOnnx(*models[k], (tmp / paths.back()).string());
    }
    nlohmann::json manifest = ensembleManifest(paths, weights, classLabels(a.data), spec.training.loss.fromLogits);
    std::ofstream out(tmp / "ensemble.json");
    out << manifest.dump(2) << "\n";
    out.close();
    if (!out) throw std::runtime_error("cannot write " + (tmp / "ensemble.json").string());
    if (fs::exists(dir)) fs::remove(dir);  // empty, checked above
    fs::rename(tmp, dir);
    fs::remove_all(finished);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw;
  }
  std::printf("wrote %s (ensemble.json + %zu member(s))\n", a.output.c_str(), K);

  std::vector<Sequential*> members;
  for (auto& m : models) members.push_back(m.get());
  EnsembleTestReport test = evaluateEnsembleOnTestSet(members, weights, spec.training, folder);
  std::vector<MixtureMetrics> testRows = test.members;
  testRows.push_back(test.equal);
  testRows.push_back(test.weighted);
  line("test (%lld samples, evaluated once):\n", static_cast<long long>(test.samples));
  line("%-20s %9s %9s %12s %13s\n", "model", "test_acc", "test_loss", "gap_acc", "gap_loss");
  for (size_t r = 0; r < testRows.size(); ++r)
    line("%-20s %9.4f %9.4f %+12.4f %+13.4f\n", rowName(r).c_str(), testRows[r].accuracy, testRows[r].logLoss,
         valRows[r].accuracy - testRows[r].accuracy, testRows[r].logLoss - valRows[r].logLoss);
  line("gap = validation - test accuracy, test - validation log-loss\n");
  writeFileReplacing((dir / "report.txt").string(), report);
  return 0;
}

int runFit(const FitArgs& a) {
  setMathThreads(a.threads);
  ModelSpec spec = loadSpecFile(a.spec);
  DatasetFolder folder(a.data);
  TrainValSplit split = loadTrainValSplit(folder, spec.training.validationSize, a.seed);
  Sequential model(spec, a.seed);
  std::size_t paramCount = 0;
  for (const Param* p : model.params()) paramCount += p->value.data.size();
  std::cerr << spec.name << ": " << paramCount << " parameters; " << split.train.size() << " train / "
            << split.validation.size() << " validation samples; " << a.threads << " thread(s)\n";
  FitOptions opts;
  opts.epochs = a.epochs.value_or(spec.training.epochs);
  opts.seed = a.seed;
  opts.trainLimit = a.trainLimit;
  opts.progress = &std::cerr;
  FitResult result = fit(model, spec.training, split, opts);
  exportOnnx(model, a.output);
  const EpochRecord& best = result.history.at(static_cast<size_t>(result.bestEpoch));
  TestReport test = evaluateOnTestSet(model, spec.training, folder);
  std::printf("best epoch %lld: val_loss %.4f val_acc %.4f\n", static_cast<long long>(result.bestEpoch + 1),
              best.validation.loss, best.validation.accuracy);
  std::printf("test (%lld samples): loss %.4f acc %.4f\n", static_cast<long long>(test.samples), test.metrics.loss,
              test.metrics.accuracy);
  std::printf("wrote %s\n", a.output.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Every step allocates and frees batch-sized tensors (~13 MB for a 32x28x28
  // map at batch 128). Keeping freed memory in the heap instead of handing it
  // back to the kernel saves re-faulting (and zeroing) those pages each step.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  try {
    std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "-h" || cmd == "--help" || cmd == "help") {
      std::cout << kUsage;
      return 0;
    }
    if (cmd != "fit" && cmd != "search" && cmd != "trials" && cmd != "study" && cmd != "ensemble")
      throw UsageError(cmd.empty() ? "missing command" : "unknown command '" + cmd + "'");
    for (int i = 2; i < argc; ++i)
      if (std::string(argv[i]) == "-h" || std::string(argv[i]) == "--help") {
        std::cout << kUsage;
        return 0;
      }
    if (cmd == "search") return runSearch(parseSearchArgs(argc, argv));
    if (cmd == "trials") return runTrials(argc, argv);
    if (cmd == "study") return runStudyCommand(argc, argv);
    if (cmd == "ensemble") return runEnsemble(parseEnsembleArgs(argc, argv));
    return runFit(parseFitArgs(argc, argv));
  } catch (const UsageError& e) {
    std::cerr << "kiln-train: " << e.what() << "\n\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "kiln-train: error: " << e.what() << "\n";
    return 1;
  }
}
