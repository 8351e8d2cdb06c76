// The fit loop, evaluation and the final test evaluation (see fit.h).
#include "trainer/fit.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>

#include "trainer/augment.h"
#include "trainer/loss.h"
#include "trainer/optimizer.h"

namespace kiln::train {

namespace {

int64_t argmax(const float* p, int64_t k) { return std::max_element(p, p + k) - p; }

// Copies samples order[begin, end) into one batch.
LabeledImages gatherBatch(const LabeledImages& data, const std::vector<int64_t>& order, size_t begin, size_t end) {
  return data.subset(std::vector<int64_t>(order.begin() + static_cast<ptrdiff_t>(begin), order.begin() + static_cast<ptrdiff_t>(end)));
}

class ProgressBar {
 public:
  ProgressBar(std::ostream* out, int64_t epoch, int64_t epochs, int64_t total)
      : out_(out), epoch_(epoch), epochs_(epochs), total_(total), live_(out && isatty(STDERR_FILENO)) {}
  void update(int64_t done, const Metrics& m, double samplesPerSecond, bool final) {
    if (!out_ || (!live_ && !final)) return;
    constexpr int kWidth = 30;
    int filled = static_cast<int>(kWidth * done / std::max<int64_t>(1, total_));
    char line[256];
    std::snprintf(line, sizeof line, "epoch %lld/%lld [%-*s] %lld/%lld loss %.4f acc %.4f %.0f samples/s",
                  static_cast<long long>(epoch_ + 1), static_cast<long long>(epochs_), kWidth,
                  std::string(static_cast<size_t>(filled), '=').c_str(), static_cast<long long>(done),
                  static_cast<long long>(total_), m.loss, m.accuracy, samplesPerSecond);
    *out_ << (live_ ? "\r" : "") << line << std::flush;
  }

 private:
  std::ostream* out_;
  int64_t epoch_, epochs_, total_;
  bool live_;
};

}  // namespace

Metrics evaluate(Sequential& model, const LossConfig& lossCfg, const LabeledImages& data, int64_t batchSize) {
  // The log-loss of the true labels: with the training targets' smoothing
  // it would depend on the smoothing, and a search over label_smoothing
  // (or early stopping across such trials) would favour the least.
  LossConfig plain = lossCfg;
  plain.labelSmoothing = 0;
  CategoricalCrossentropy loss(plain);
  std::vector<int64_t> order(static_cast<size_t>(data.size()));
  std::iota(order.begin(), order.end(), 0);
  double lossSum = 0;
  int64_t correct = 0;
  for (size_t b = 0; b < order.size(); b += static_cast<size_t>(batchSize)) {
    LabeledImages batch = gatherBatch(data, order, b, std::min(order.size(), b + static_cast<size_t>(batchSize)));
    Tensor out = model.forward(batch.images, false);
    lossSum += loss.compute(out, batch.labels, nullptr) * static_cast<double>(batch.size());
    for (int64_t n = 0; n < batch.size(); ++n)
      correct += argmax(out.ptr() + n * out.dim(1), out.dim(1)) == batch.labels[static_cast<size_t>(n)];
  }
  return {lossSum / static_cast<double>(data.size()), static_cast<double>(correct) / static_cast<double>(data.size())};
}

FitResult fit(Sequential& model, const TrainingConfig& cfg, const TrainValSplit& data, const FitOptions& opts) {
  if (model.outputShape()[0] != 10) throw SpecError(model.name() + ": the last layer must output 10 classes");
  const int64_t trainSize = opts.trainLimit > 0 ? std::min(opts.trainLimit, data.train.size()) : data.train.size();
  const int64_t stepsPerEpoch = (trainSize + cfg.batchSize - 1) / cfg.batchSize;
  CategoricalCrossentropy loss(cfg.loss);
  Optimizer optimizer(cfg.optimizer);
  LearningRateSchedule schedule(cfg.schedule, cfg.optimizer.learningRate, stepsPerEpoch, stepsPerEpoch * opts.epochs);
  Rng rng(opts.seed ^ 0x9E3779B97F4A7C15ull);
  FitResult result;
  std::vector<Tensor> bestState;
  double bestLoss = 1e300;
  int64_t step = 0, sinceBest = 0;
  for (int64_t epoch = 0; epoch < opts.epochs; ++epoch) {
    std::vector<int64_t> order(static_cast<size_t>(trainSize));
    std::iota(order.begin(), order.end(), 0);
    rng.shuffle(order);
    ProgressBar bar(opts.progress, epoch, opts.epochs, trainSize);
    EpochRecord rec;
    double lossSum = 0;
    int64_t correct = 0, seen = 0;
    auto start = std::chrono::steady_clock::now();
    for (size_t b = 0; b < order.size(); b += static_cast<size_t>(cfg.batchSize), ++step) {
      LabeledImages batch = gatherBatch(data.train, order, b, std::min(order.size(), b + static_cast<size_t>(cfg.batchSize)));
      augmentBatch(batch.images, cfg.augment, rng);
      Tensor out = model.forward(batch.images, true);
      Tensor grad;
      lossSum += loss.compute(out, batch.labels, &grad) * static_cast<double>(batch.size());
      for (int64_t n = 0; n < batch.size(); ++n)
        correct += argmax(out.ptr() + n * out.dim(1), out.dim(1)) == batch.labels[static_cast<size_t>(n)];
      seen += batch.size();
      model.backward(grad);
      rec.learningRate = schedule.at(step);
      optimizer.step(model.params(), rec.learningRate);
      double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      rec.train = {lossSum / static_cast<double>(seen), static_cast<double>(correct) / static_cast<double>(seen)};
      rec.samplesPerSecond = static_cast<double>(seen) / std::max(seconds, 1e-9);
      bar.update(seen, rec.train, rec.samplesPerSecond, seen == trainSize);
    }
    rec.validation = evaluate(model, cfg.loss, data.validation, cfg.batchSize);
    if (opts.progress)
      *opts.progress << " - val_loss " << rec.validation.loss << " val_acc " << rec.validation.accuracy << std::endl;
    result.history.push_back(rec);
    if (opts.onEpoch) opts.onEpoch(epoch, rec);
    if (rec.validation.loss < bestLoss - cfg.earlyStopping.minDelta) {
      bestLoss = rec.validation.loss;
      result.bestEpoch = epoch;
      sinceBest = 0;
      if (cfg.earlyStopping.restoreBestWeights) bestState = model.saveState();
    } else if (cfg.earlyStopping.patience > 0 && ++sinceBest >= cfg.earlyStopping.patience) {
      result.stoppedEarly = true;
      if (opts.progress) *opts.progress << "early stopping: no val_loss improvement for " << sinceBest << " epochs\n";
      break;
    }
  }
  if (cfg.earlyStopping.restoreBestWeights && !bestState.empty()) {
    model.restoreState(bestState);
    if (opts.progress && result.bestEpoch + 1 != static_cast<int64_t>(result.history.size()))
      *opts.progress << "restored the weights of epoch " << result.bestEpoch + 1 << "\n";
  }
  return result;
}

TestReport evaluateOnTestSet(Sequential& model, const TrainingConfig& cfg, const DatasetFolder& folder) {
  TestSet test = TestSet::load(folder);
  return {evaluate(model, cfg.loss, test.data_, cfg.batchSize), test.data_.size()};
}

}  // namespace kiln::train
