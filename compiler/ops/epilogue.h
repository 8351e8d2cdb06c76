// The fused epilogue of Conv and Gemm: y = act(acc + residual), where act is
// one of the activations fuse-activation folds in. The attributes are part of
// those ops' definitions; unfused nodes have activation "".
#pragma once

#include <string>
#include <vector>

#include "compiler/ir/op.h"

namespace kiln {

class Epilogue {
 public:
  // Reads activation / activation_alpha / activation_beta.
  explicit Epilogue(const Attributes& attrs);

  // Applies the activation to n contiguous values in place.
  void apply(float* values, int64_t n) const;

 private:
  enum class Kind { None, Relu, Clip, LeakyRelu, Sigmoid, HardSwish } kind_ = Kind::None;
  float alpha_ = 0.f, beta_ = 0.f;
};

// The epilogue attribute specs every fusable op adds to its own.
std::vector<AttrSpec> epilogueAttrSpecs();

// Shape inference check for the epilogue attributes (known activation name).
void checkEpilogue(const InferContext& ctx);

}  // namespace kiln
