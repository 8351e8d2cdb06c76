// The real objective of `kiln-train search`: train the trial's spec and
// return its best validation loss. It is handed a train/validation split and
// nothing else, so a search cannot touch test data.
#pragma once

#include <optional>

#include "trainer/dataset.h"
#include "trainer/search/search.h"

namespace kiln::train::search {

struct TrainingObjectiveOptions {
  std::optional<int64_t> epochs;  // default: the trial spec's training.epochs
  int64_t trainLimit = 0;         // as FitOptions::trainLimit
  uint64_t seed = 0;              // initial weights, shuffling, augmentation (the same for every trial)
};

// `data` was split with `validationSize` samples; a trial whose spec asks
// for another validation size fails (its loss would not be comparable).
Objective trainingObjective(const TrainValSplit& data, int64_t validationSize, TrainingObjectiveOptions opts);

}  // namespace kiln::train::search
