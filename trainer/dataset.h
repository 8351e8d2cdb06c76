// Image classification data: the IDX format (gzip or raw), the seeded
// stratified train/validation split of the official training set, and the
// test set, which is a separate type that only evaluateOnTestSet (fit.h) and
// evaluateEnsembleOnTestSet (ensemble.h) can load or read: nothing else in the
// trainer can touch test data.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "trainer/tensor.h"

namespace kiln::train {

struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct LabeledImages {
  Tensor images;                // [N, 1, H, W], values in [0, 1]
  std::vector<uint8_t> labels;  // N class indices
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  LabeledImages subset(const std::vector<int64_t>& indices) const;
};

// An IDX array of unsigned bytes (type code 0x08), read whole.
struct IdxArray {
  Dims dims;
  std::vector<uint8_t> values;
};
IdxArray readIdxFile(const std::string& path);

// Images [N,H,W] + labels [N] with every label < numClasses.
LabeledImages readIdxPair(const std::string& imagesPath, const std::string& labelsPath, int numClasses);

// A folder with the four MNIST-style files (train-images-idx3-ubyte[.gz], ...).
// "fashion-mnist" names /usr/share/datasets/fashion-mnist.
class DatasetFolder {
 public:
  explicit DatasetFolder(const std::string& nameOrPath);
  std::string file(const std::string& stem) const;  // stem[.gz], whichever exists
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct TrainValSplit {
  LabeledImages train, validation;
};

// Per-class shuffles (seeded) and validation quotas proportional to the
// class sizes (largest remainder), so every class keeps its share.
TrainValSplit splitStratified(const LabeledImages& all, int64_t validationSize, uint64_t seed);

// Reads the official training set only and splits it.
TrainValSplit loadTrainValSplit(const DatasetFolder& folder, int64_t validationSize, uint64_t seed);

class Sequential;
struct TrainingConfig;
struct TestReport;
TestReport evaluateOnTestSet(Sequential& model, const TrainingConfig& cfg, const DatasetFolder& folder);
// The ensemble's final evaluation (trainer/ensemble.{h,cpp}): it needs the
// members' per-sample probabilities, which evaluateOnTestSet's metrics lose.
struct EnsembleTestReport;
EnsembleTestReport evaluateEnsembleOnTestSet(const std::vector<Sequential*>& members, std::span<const double> weights,
                                             const TrainingConfig& cfg, const DatasetFolder& folder);

// The official test set. Constructible and readable only by the final
// evaluation.
class TestSet {
 private:
  explicit TestSet(LabeledImages data) : data_(std::move(data)) {}
  static TestSet load(const DatasetFolder& folder);
  LabeledImages data_;
  friend TestReport evaluateOnTestSet(Sequential& model, const TrainingConfig& cfg, const DatasetFolder& folder);
  friend EnsembleTestReport evaluateEnsembleOnTestSet(const std::vector<Sequential*>& members,
                                                      std::span<const double> weights, const TrainingConfig& cfg,
                                                      const DatasetFolder& folder);
};

}  // namespace kiln::train
