// A Sequential model built from the spec's layer list: forward/backward
// through the layers, its parameters and its saved state (for best-weights
// restore).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "trainer/layers.h"
#include "trainer/spec.h"

namespace kiln::train {

class Sequential {
 public:
  // Builds the layers of `spec` with weights drawn from `seed`.
  Sequential(const ModelSpec& spec, uint64_t seed);

  Tensor forward(const Tensor& x, bool training);
  // Backpropagates dLoss/dOutput of the last training forward; sets grads.
  void backward(const Tensor& dOutput);
  const std::vector<Param*>& params() const { return params_; }
  // Copies of every parameter and buffer, and their restore.
  std::vector<Tensor> saveState() const;
  void restoreState(const std::vector<Tensor>& state);

  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
  const Dims& inputShape() const { return inputShape_; }
  const Dims& outputShape() const { return outputShape_; }
  const std::string& name() const { return name_; }

 private:
  std::vector<Tensor*> stateTensors() const;
  std::string name_;
  Dims inputShape_, outputShape_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Param*> params_;
};

// A trained model's parameters and buffers in a file, tagged with a
// fingerprint of what produced them (spec, seed, epochs, data), so that a
// killed ensemble run resumes after the members it finished. Written to a
// temporary file renamed into place: the file is whole or absent.
void saveStateFile(const Sequential& model, const std::string& path, const std::string& fingerprint);
// Restores `model` from `path`; false when the file is absent or carries
// another fingerprint. Throws std::runtime_error naming the file when it is
// truncated, foreign, or its tensors do not fit `model`.
bool loadStateFile(Sequential& model, const std::string& path, const std::string& fingerprint);

// One layer from its spec object ({"type": "Conv2D", ...}); `index` names
// unnamed layers ("conv2d_3").
std::unique_ptr<Layer> makeLayer(const nlohmann::json& spec, size_t index);

}  // namespace kiln::train
