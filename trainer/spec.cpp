// JSON spec parsing (see spec.h).
#include "trainer/spec.h"

#include <fstream>

namespace kiln::train {

JsonFields::JsonFields(const nlohmann::json& obj, std::string where) : obj_(obj), where_(std::move(where)) {
  if (!obj_.is_object()) throw SpecError(where_ + ": expected a JSON object, got " + obj_.dump());
}

std::pair<int64_t, int64_t> JsonFields::pair(const std::string& key, int64_t fallback) {
  if (!obj_.contains(key)) return {fallback, fallback};
  read_.insert(key);
  const nlohmann::json& v = obj_.at(key);
  if (v.is_number_integer()) return {v.get<int64_t>(), v.get<int64_t>()};
  if (v.is_array() && v.size() == 2 && v[0].is_number_integer() && v[1].is_number_integer())
    return {v[0].get<int64_t>(), v[1].get<int64_t>()};
  throw SpecError(where_ + ": '" + key + "' must be an integer or a pair of integers, got " + v.dump());
}

const nlohmann::json& JsonFields::object(const std::string& key) {
  read_.insert(key);
  return obj_.at(key);
}

void JsonFields::finish() const {
  for (const auto& [key, value] : obj_.items())
    if (!read_.count(key)) throw SpecError(where_ + ": unknown key '" + key + "'");
}

namespace {

void positive(double v, const std::string& what) {
  if (!(v > 0)) throw SpecError(what + " must be positive");
}

LossConfig parseLoss(const nlohmann::json& j) {
  JsonFields f(j, "training.loss");
  std::string type = f.get<std::string>("type", "categorical_crossentropy");
  if (type != "categorical_crossentropy") throw SpecError("training.loss: only categorical_crossentropy is supported");
  LossConfig c;
  c.fromLogits = f.get("from_logits", c.fromLogits);
  c.labelSmoothing = f.get("label_smoothing", c.labelSmoothing);
  if (c.labelSmoothing < 0 || c.labelSmoothing >= 1) throw SpecError("training.loss: label_smoothing must be in [0, 1)");
  f.finish();
  return c;
}

OptimizerConfig parseOptimizer(const nlohmann::json& j) {
  JsonFields f(j, "training.optimizer");
  OptimizerConfig c;
  std::string type = f.required<std::string>("type");
  if (type == "sgd") {
    c.kind = OptimizerConfig::Kind::SGD;
    c.learningRate = 0.01;
    c.momentum = f.get("momentum", c.momentum);
    c.nesterov = f.get("nesterov", c.nesterov);
  } else if (type == "rmsprop") {
    c.kind = OptimizerConfig::Kind::RMSprop;
    c.rho = f.get("rho", c.rho);
  } else if (type == "adam") {
    c.kind = OptimizerConfig::Kind::Adam;
    c.beta1 = f.get("beta_1", c.beta1);
    c.beta2 = f.get("beta_2", c.beta2);
  } else {
    throw SpecError("training.optimizer: unknown type '" + type + "' (sgd, rmsprop, adam)");
  }
  if (type != "sgd") c.epsilon = f.get("epsilon", c.epsilon);
  c.learningRate = f.get("learning_rate", c.learningRate);
  c.weightDecay = f.get("weight_decay", c.weightDecay);
  positive(c.learningRate, "training.optimizer.learning_rate");
  if (c.weightDecay < 0 || c.momentum < 0 || c.momentum >= 1) throw SpecError("training.optimizer: weight_decay >= 0, 0 <= momentum < 1");
  f.finish();
  return c;
}

ScheduleConfig parseSchedule(const nlohmann::json& j) {
  JsonFields f(j, "training.lr_schedule");
  ScheduleConfig c;
  std::string type = f.required<std::string>("type");
  if (type == "constant") {
    c.kind = ScheduleConfig::Kind::Constant;
  } else if (type == "step") {
    c.kind = ScheduleConfig::Kind::Step;
    c.dropFactor = f.get("drop_factor", c.dropFactor);
    c.everyEpochs = f.get("every_epochs", c.everyEpochs);
    positive(static_cast<double>(c.everyEpochs), "training.lr_schedule.every_epochs");
  } else if (type == "cosine") {
    c.kind = ScheduleConfig::Kind::Cosine;
    c.finalFraction = f.get("final_fraction", c.finalFraction);
  } else {
    throw SpecError("training.lr_schedule: unknown type '" + type + "' (constant, step, cosine)");
  }
  f.finish();
  return c;
}

TrainingConfig parseTraining(const nlohmann::json& j) {
  JsonFields f(j, "training");
  TrainingConfig c;
  c.batchSize = f.get("batch_size", c.batchSize);
  c.epochs = f.get("epochs", c.epochs);
  c.validationSize = f.get("validation_size", c.validationSize);
  positive(static_cast<double>(c.batchSize), "training.batch_size");
  positive(static_cast<double>(c.epochs), "training.epochs");
  positive(static_cast<double>(c.validationSize), "training.validation_size");
  if (f.has("loss")) c.loss = parseLoss(f.object("loss"));
  if (f.has("optimizer")) c.optimizer = parseOptimizer(f.object("optimizer"));
  if (f.has("lr_schedule")) c.schedule = parseSchedule(f.object("lr_schedule"));
  if (f.has("augmentation")) {
    JsonFields a(f.object("augmentation"), "training.augmentation");
    c.augment.maxShift = a.get("max_shift", c.augment.maxShift);
    c.augment.horizontalFlip = a.get("horizontal_flip", c.augment.horizontalFlip);
    if (c.augment.maxShift < 0) throw SpecError("training.augmentation.max_shift must be >= 0");
    a.finish();
  }
  if (f.has("early_stopping")) {
    JsonFields e(f.object("early_stopping"), "training.early_stopping");
    c.earlyStopping.patience = e.get("patience", c.earlyStopping.patience);
    c.earlyStopping.minDelta = e.get("min_delta", c.earlyStopping.minDelta);
    c.earlyStopping.restoreBestWeights = e.get("restore_best_weights", c.earlyStopping.restoreBestWeights);
    e.finish();
  }
  f.finish();
  return c;
}

}  // namespace

ModelSpec parseSpec(const nlohmann::json& doc, const std::string& where) {
  JsonFields f(doc, where);
  ModelSpec s;
  s.name = f.get<std::string>("name", "model");
  Dims hwc = f.required<Dims>("input_shape");
  if (hwc.size() != 3 || product(hwc) <= 0 || hwc[0] <= 0 || hwc[1] <= 0 || hwc[2] <= 0)
    throw SpecError(where + ": input_shape must be [height, width, channels], got " + dimsStr(hwc));
  s.inputShape = {hwc[2], hwc[0], hwc[1]};
  s.layers = f.object("layers");
  if (!s.layers.is_array() || s.layers.empty()) throw SpecError(where + ": 'layers' must be a non-empty array");
  s.training = f.has("training") ? parseTraining(f.object("training")) : TrainingConfig{};
  f.finish();
  return s;
}

ModelSpec loadSpecFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw SpecError(path + ": cannot open");
  nlohmann::json doc = nlohmann::json::parse(in, nullptr, false);
  if (doc.is_discarded()) throw SpecError(path + ": not valid JSON");
  return parseSpec(doc, path);
}

}  // namespace kiln::train
