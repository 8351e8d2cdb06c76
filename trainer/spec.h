// The JSON model spec: architecture (Keras-style layer list) plus training
// configuration. Unknown keys are errors, so a typo never silently falls back
// to a default. examples/fashion_mnist/separable_cnn.json is a full example;
// trainer/README.md lists every key.
#pragma once

#include <set>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "trainer/tensor.h"

namespace kiln::train {

struct SpecError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Reads the fields of one JSON object, remembering which were read;
// finish() rejects the rest.
class JsonFields {
 public:
  JsonFields(const nlohmann::json& obj, std::string where);
  bool has(const std::string& key) const { return obj_.contains(key); }
  template <class T>
  T get(const std::string& key, T fallback) {
    if (!obj_.contains(key)) return fallback;
    return required<T>(key);
  }
  template <class T>
  T required(const std::string& key) {
    read_.insert(key);
    if (!obj_.contains(key)) throw SpecError(where_ + ": missing '" + key + "'");
    try {
      return obj_.at(key).get<T>();
    } catch (const nlohmann::json::exception& e) {
      throw SpecError(where_ + ": '" + key + "' has the wrong type (" + obj_.at(key).dump() + ")");
    }
  }
  // An int or a pair [a, b] (Keras kernel_size/strides style).
  std::pair<int64_t, int64_t> pair(const std::string& key, int64_t fallback);
  const nlohmann::json& object(const std::string& key);
  const std::string& where() const { return where_; }
  void finish() const;

 private:
  const nlohmann::json& obj_;
  std::string where_;
  std::set<std::string> read_;
};

struct LossConfig {
  bool fromLogits = false;
  double labelSmoothing = 0.0;
};

struct OptimizerConfig {
  enum class Kind { SGD, RMSprop, Adam } kind = Kind::Adam;
  double learningRate = 1e-3;
  double momentum = 0.0;  // SGD
  bool nesterov = false;  // SGD
  double rho = 0.9;       // RMSprop
  double beta1 = 0.9, beta2 = 0.999;
  double epsilon = 1e-7;
  double weightDecay = 0.0;  // decoupled, kernels only
};

struct ScheduleConfig {
  enum class Kind { Constant, Step, Cosine } kind = Kind::Constant;
  double dropFactor = 0.5;  // step: lr *= dropFactor every `everyEpochs`
  int64_t everyEpochs = 10;
  double finalFraction = 0.0;  // cosine: lr decays to finalFraction * lr at the last step
};

struct AugmentConfig {
  int64_t maxShift = 0;  // pixels, each direction, zero fill
  bool horizontalFlip = false;
};

struct EarlyStoppingConfig {
  int64_t patience = 0;  // epochs without improvement of the validation loss; 0 = off
  double minDelta = 0.0;
  bool restoreBestWeights = true;
};

struct TrainingConfig {
  int64_t batchSize = 64;
  int64_t epochs = 10;
  int64_t validationSize = 10000;
  LossConfig loss;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  AugmentConfig augment;
  EarlyStoppingConfig earlyStopping;
};

struct ModelSpec {
  std::string name;
  Dims inputShape;  // [C,H,W] (the spec writes Keras' [H,W,C])
  nlohmann::json layers;
  TrainingConfig training;
};

ModelSpec parseSpec(const nlohmann::json& doc, const std::string& where);
ModelSpec loadSpecFile(const std::string& path);

}  // namespace kiln::train
