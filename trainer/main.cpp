// kiln-train: trains a model spec on an IDX image dataset and writes ONNX,
// and searches hyperparameters over a search space.
//   kiln-train fit SPEC.json --data fashion-mnist [--epochs E] [--seed S]
//              [--threads T] [--train-limit N] -o MODEL.onnx
//   kiln-train search SPACE.json --study FILE [--max-evals N] [--algo tpe]
//              [--workers W] [--pruner median] ...
//   kiln-train trials FILE
// Exit codes: 0 ok, 1 bad spec/data/export/study or a failed worker, 2 bad usage.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "trainer/blas.h"
#include "trainer/fit.h"
#include "trainer/onnx_export.h"
#include "trainer/search/objective.h"

namespace {

using namespace kiln::train;

constexpr const char* kUsage = R"(usage: kiln-train fit SPEC.json --data DATASET -o MODEL.onnx [options]
       kiln-train search SPACE.json --study FILE [options]
       kiln-train trials FILE

Trains the model described by SPEC.json (architecture + training config, see
trainer/README.md) on DATASET, a folder of MNIST-style IDX files (gzip or raw)
or "fashion-mnist" (/usr/share/datasets/fashion-mnist). The official training
set is split into train/validation (stratified, seeded); the test set is only
read by the final evaluation after training. Writes the best weights as ONNX.

options:
  --epochs E         epochs (default: the spec's training.epochs)
  --seed S           seed for the split, initial weights, shuffling,
                     augmentation and dropout (default 0)
  --threads T        OpenBLAS threads (default 2; 1 gives bitwise
                     reproducible runs)
  --train-limit N    train on the first N training samples only
  -h, --help         this text

search: minimizes the validation loss over SPACE.json (a base spec plus
distributions at JSON paths, see trainer/README.md). Trials live in the
SQLite study FILE: rerunning the command resumes it (trials of killed
workers run again). One table row per finished trial goes to stderr, the
best trial to stdout. The test set is never read.
  --study FILE       the study file (created when missing)
  --max-evals N      trials in the study, earlier runs' included (default 20)
  --algo A           tpe (default) or random
  --workers W        worker processes (default 1)
  --pruner P         median (default), sha (successive halving), hyperband
                     or none
  --eta E            halving rate of sha/hyperband (default 3); their max
                     resource is the epochs per trial
  --data, --epochs, --seed, --train-limit as for fit; --threads is per
  worker (default 1)

trials: prints the trials of a study, best validation loss first.
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

FitArgs parseFitArgs(int argc, char** argv) {
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
  if (a.spec.empty()) throw UsageError("missing SPEC.json");
  if (a.data.empty()) throw UsageError("missing --data");
  if (a.output.empty()) throw UsageError("missing -o MODEL.onnx");
  return a;
}

struct SearchArgs {
  std::string space, study, data = "fashion-mnist", algo = "tpe", pruner = "median";
  std::optional<int64_t> epochs;
  int64_t maxEvals = 20, trainLimit = 0, eta = 3;
  uint64_t seed = 0;
  int threads = 1, workers = 1;
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
    else if (!arg.empty() && arg[0] == '-') throw UsageError("unknown option " + arg);
    else if (a.space.empty()) a.space = arg;
    else throw UsageError("unexpected argument '" + arg + "'");
  }
  if (a.space.empty()) throw UsageError("missing SPACE.json");
  if (a.study.empty()) throw UsageError("missing --study FILE");
  if (a.algo != "tpe" && a.algo != "random") throw UsageError("--algo must be tpe or random");
  if (a.pruner != "none" && a.pruner != "median" && a.pruner != "sha" && a.pruner != "hyperband")
    throw UsageError("--pruner must be none, median, sha or hyperband");
  return a;
}

int runSearch(const SearchArgs& a) {
  namespace s = kiln::train::search;
  setBlasThreads(a.threads);
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
  int failedWorkers = s::runWorkers(a.study, space, a.seed, cfg, a.workers, objective, std::cerr);
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
  if (argc != 3) throw UsageError("usage: kiln-train trials FILE");
  std::vector<s::TrialRecord> ranked = s::rankTrials(s::readStudy(argv[2]));
  std::cout << s::tableHeader();
  for (const s::TrialRecord& t : ranked) std::cout << s::tableRow(t);
  return 0;
}

int runFit(const FitArgs& a) {
  setBlasThreads(a.threads);
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
  try {
    std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "-h" || cmd == "--help" || cmd == "help") {
      std::cout << kUsage;
      return 0;
    }
    if (cmd != "fit" && cmd != "search" && cmd != "trials")
      throw UsageError(cmd.empty() ? "missing command" : "unknown command '" + cmd + "'");
    for (int i = 2; i < argc; ++i)
      if (std::string(argv[i]) == "-h" || std::string(argv[i]) == "--help") {
        std::cout << kUsage;
        return 0;
      }
    if (cmd == "search") return runSearch(parseSearchArgs(argc, argv));
    if (cmd == "trials") return runTrials(argc, argv);
    return runFit(parseFitArgs(argc, argv));
  } catch (const UsageError& e) {
    std::cerr << "kiln-train: " << e.what() << "\n\n" << kUsage;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "kiln-train: error: " << e.what() << "\n";
    return 1;
  }
}
