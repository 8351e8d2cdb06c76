// Training: the fit loop (shuffled mini-batches, augmentation, optimizer +
// schedule, a per-epoch progress bar, early stopping on the validation loss
// with best-weights restore), evaluation, and the final test-set evaluation
// (the only code that can load the test set).
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <vector>

#include "trainer/dataset.h"
#include "trainer/model.h"

namespace kiln::train {

struct Metrics {
  double loss = 0, accuracy = 0;
};

// Inference-mode loss (crossentropy of the true labels, no label
// smoothing) and accuracy over `data`.
Metrics evaluate(Sequential& model, const LossConfig& loss, const LabeledImages& data, int64_t batchSize);

struct EpochRecord;

struct FitOptions {
  int64_t epochs = 1;
  uint64_t seed = 0;
  int64_t trainLimit = 0;            // use only the first N training samples (0 = all)
  std::ostream* progress = nullptr;  // progress bar + epoch lines
  // Called after each epoch's validation (hyperparameter search reports
  // and prunes through it); an exception thrown here ends the fit.
  std::function<void(int64_t epoch, const EpochRecord&)> onEpoch;
};

struct EpochRecord {
  Metrics train, validation;
  double samplesPerSecond = 0, learningRate = 0;
};

struct FitResult {
  std::vector<EpochRecord> history;
  int64_t bestEpoch = 0;  // 0-based; the model holds its weights when restore is on
  bool stoppedEarly = false;
};

FitResult fit(Sequential& model, const TrainingConfig& cfg, const TrainValSplit& data, const FitOptions& opts);

struct TestReport {
  Metrics metrics;
  int64_t samples = 0;
};

}  // namespace kiln::train
