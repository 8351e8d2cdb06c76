// A Sequential model built from the spec's layer list: forward/backward
// through the layers, its parameters and its saved state (for best-weights
// restore).
#pragma once

#include <memory>
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

// One layer from its spec object ({"type": "Conv2D", ...}); `index` names
// unnamed layers ("conv2d_3").
std::unique_ptr<Layer> makeLayer(const nlohmann::json& spec, size_t index);

}  // namespace kiln::train
