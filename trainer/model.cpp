// Sequential model and the layer factory that reads each layer's spec keys.
#include "trainer/model.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "trainer/file_output.h"

namespace kiln::train {

namespace {

Padding parsePadding(const std::string& s, const std::string& where) {
  if (s == "valid") return Padding::Valid;
  if (s == "same") return Padding::Same;
  throw SpecError(where + ": padding must be 'valid' or 'same', got '" + s + "'");
}

std::string snakeCase(const std::string& type) {
  std::string out;
  for (size_t i = 0; i < type.size(); ++i) {
    char c = type[i];
    bool upper = std::isupper(static_cast<unsigned char>(c));
    bool boundary = i > 0 && upper && (std::islower(static_cast<unsigned char>(type[i - 1])) ||
                                       (i + 1 < type.size() && std::islower(static_cast<unsigned char>(type[i + 1]))));
    if (boundary && !std::isdigit(static_cast<unsigned char>(type[i - 1]))) out += '_';
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

ConvConfig readConv(JsonFields& f, bool hasFilters, bool hasMultiplier) {
  ConvConfig c;
  if (hasFilters) c.filters = f.required<int64_t>("filters");
  auto [kh, kw] = f.pair("kernel_size", 3);
  auto [sh, sw] = f.pair("strides", 1);
  auto [dh, dw] = f.pair("dilation_rate", 1);
  c.geometry = {kh, kw, sh, sw, dh, dw, parsePadding(f.get<std::string>("padding", "valid"), f.where())};
  if (hasMultiplier) c.depthMultiplier = f.get<int64_t>("depth_multiplier", 1);
  c.useBias = f.get("use_bias", true);
  c.activation = parseActivation(f.get<std::string>("activation", "linear"));
  c.init = parseInitializer(f.get<std::string>(hasMultiplier ? "depthwise_initializer" : "kernel_initializer", "glorot_uniform"));
  return c;
}

Pooling2D::Config readPool(JsonFields& f) {
  auto [ph, pw] = f.pair("pool_size", 2);
  auto [sh, sw] = f.has("strides") ? f.pair("strides", 0) : std::pair{ph, pw};
  return {ph, pw, sh, sw, parsePadding(f.get<std::string>("padding", "valid"), f.where())};
}

}  // namespace

std::unique_ptr<Layer> makeLayer(const nlohmann::json& spec, size_t index) {
  JsonFields keys(spec, "layer " + std::to_string(index));
  const std::string type = keys.required<std::string>("type");
  const std::string name = keys.get<std::string>("name", snakeCase(type) + "_" + std::to_string(index));
  std::unique_ptr<Layer> layer;
  if (type == "Conv2D") {
    layer = std::make_unique<Conv2D>(name, readConv(keys, true, false));
  } else if (type == "DepthwiseConv2D") {
    layer = std::make_unique<DepthwiseConv2D>(name, readConv(keys, false, true));
  } else if (type == "SeparableConv2D") {
    layer = std::make_unique<SeparableConv2D>(name, readConv(keys, true, true));
  } else if (type == "BatchNormalization") {
    BatchNormConfig c;
    c.momentum = keys.get("momentum", c.momentum);
    c.epsilon = keys.get("epsilon", c.epsilon);
    c.axis = keys.get("axis", c.axis);
    layer = std::make_unique<BatchNormalization>(name, c);
  } else if (type == "Dense") {
    int64_t units = keys.required<int64_t>("units");
    bool useBias = keys.get("use_bias", true);
    ActivationKind act = parseActivation(keys.get<std::string>("activation", "linear"));
    layer = std::make_unique<Dense>(name, units, useBias, act,
                                    parseInitializer(keys.get<std::string>("kernel_initializer", "glorot_uniform")));
  } else if (type == "MaxPooling2D" || type == "AveragePooling2D") {
    layer = std::make_unique<Pooling2D>(name, type == "MaxPooling2D" ? PoolKind::Max : PoolKind::Average, readPool(keys));
  } else if (type == "GlobalAveragePooling2D") {
    layer = std::make_unique<GlobalAveragePooling2D>(name);
  } else if (type == "Flatten") {
    layer = std::make_unique<Flatten>(name);
  } else if (type == "Dropout") {
    layer = std::make_unique<Dropout>(name, keys.required<double>("rate"));
  } else if (type == "Activation") {
    layer = std::make_unique<Activation>(name, parseActivation(keys.required<std::string>("activation")));
  } else {
    throw SpecError(keys.where() + ": unknown layer type '" + type + "' (Conv2D, DepthwiseConv2D, SeparableConv2D, BatchNormalization, "
                    "Dense, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, Flatten, Dropout, Activation)");
  }
  keys.finish();
  return layer;
}

Sequential::Sequential(const ModelSpec& spec, uint64_t seed) : name_(spec.name), inputShape_(spec.inputShape) {
  Rng rng(seed);
  Dims shape = inputShape_;
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    layers_.push_back(makeLayer(spec.layers[i], i));
    shape = layers_.back()->build(shape, rng);
    for (Param* p : layers_.back()->params()) params_.push_back(p);
  }
  outputShape_ = shape;
  if (!layers_.empty()) layers_.front()->setInputGradientNeeded(false);
  // BatchNormalization then a ReLU run as one layer pass (fuseRelu).
  for (size_t i = 0; i + 1 < layers_.size(); ++i) {
    auto* bn = dynamic_cast<BatchNormalization*>(layers_[i].get());
    auto* relu = dynamic_cast<Activation*>(layers_[i + 1].get());
    if (bn && relu && relu->kind() == ActivationKind::Relu) {
      bn->fuseRelu();
      relu->setAppliedByPreviousLayer();
    }
  }
  if (outputShape_.size() != 1) throw SpecError(spec.name + ": the last layer must output [classes], got " + dimsStr(shape));
}

Tensor Sequential::forward(const Tensor& x, bool training) {
  Tensor h = x;
  for (auto& l : layers_) h = l->forward(std::move(h), training);
  return h;
}

void Sequential::backward(const Tensor& dOutput) {
  Tensor g = dOutput;
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) g = (*it)->backward(std::move(g));
}

std::vector<Tensor*> Sequential::stateTensors() const {
  std::vector<Tensor*> out;
  for (const auto& l : layers_) {
    for (Param* p : l->params()) out.push_back(&p->value);
    for (Tensor* b : l->buffers()) out.push_back(b);
  }
  return out;
}

std::vector<Tensor> Sequential::saveState() const {
  std::vector<Tensor> out;
  for (Tensor* t : stateTensors()) out.push_back(*t);
  return out;
}

void Sequential::restoreState(const std::vector<Tensor>& state) {
  std::vector<Tensor*> dst = stateTensors();
  for (size_t i = 0; i < dst.size(); ++i) *dst[i] = state.at(i);
}

namespace {

constexpr char kStateMagic[] = "kiln-train-state 1\n";

void writeU64(std::ostream& out, uint64_t v) { out.write(reinterpret_cast<const char*>(&v), sizeof v); }

uint64_t readU64(std::istream& in, const std::string& path) {
  uint64_t v = 0;
  if (!in.read(reinterpret_cast<char*>(&v), sizeof v)) throw std::runtime_error(path + ": truncated model state");
  return v;
}

}  // namespace

void saveStateFile(const Sequential& model, const std::string& path, const std::string& fingerprint) {
  std::ostringstream out;
  out.write(kStateMagic, sizeof kStateMagic - 1);
  writeU64(out, fingerprint.size());
  out.write(fingerprint.data(), static_cast<std::streamsize>(fingerprint.size()));
  const std::vector<Tensor> state = model.saveState();
  writeU64(out, state.size());
  for (const Tensor& t : state) {
    writeU64(out, t.shape.size());
    for (int64_t d : t.shape) writeU64(out, static_cast<uint64_t>(d));
    out.write(reinterpret_cast<const char*>(t.ptr()), static_cast<std::streamsize>(t.data.size() * sizeof(float)));
  }
  writeFileReplacing(path, out.str());
}

bool loadStateFile(Sequential& model, const std::string& path, const std::string& fingerprint) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::string magic(sizeof kStateMagic - 1, '\0');
  if (!in.read(magic.data(), static_cast<std::streamsize>(magic.size())) || magic != kStateMagic)
    throw std::runtime_error(path + ": not a kiln-train model state");
  const uint64_t fpSize = readU64(in, path);
  if (fpSize != fingerprint.size()) return false;
  std::string stored(fpSize, '\0');
  if (!in.read(stored.data(), static_cast<std::streamsize>(fpSize))) throw std::runtime_error(path + ": truncated model state");
  if (stored != fingerprint) return false;
  std::vector<Tensor> state = model.saveState();  // the shapes to expect
  if (readU64(in, path) != state.size())
    throw std::runtime_error(path + ": holds another number of tensors than model " + model.name());
  for (Tensor& t : state) {
    if (readU64(in, path) != t.shape.size()) throw std::runtime_error(path + ": a tensor's rank differs from the model's");
    for (int64_t d : t.shape)
      if (readU64(in, path) != static_cast<uint64_t>(d)) throw std::runtime_error(path + ": a tensor's shape differs from the model's");
    if (!in.read(reinterpret_cast<char*>(t.ptr()), static_cast<std::streamsize>(t.data.size() * sizeof(float))))
      throw std::runtime_error(path + ": truncated model state");
  }
  if (in.peek() != std::char_traits<char>::eof()) throw std::runtime_error(path + ": trailing bytes after the model state");
  model.restoreState(state);
  return true;
}

}  // namespace kiln::train
