// Resize's sampling, axis by axis: ONNX Resize (opsets 11/13) is separable,
// so each output index of each axis reads a fixed set of input indices with
// fixed weights. The reference kernel and the LLVM emitter (which packs these
// tables at compile time) both compute from this one description.
#pragma once

#include <string>
#include <vector>

#include "compiler/ir/attributes.h"
#include "compiler/ir/types.h"

namespace kiln {

// Output o of one axis reads input index[o * taps + k] with weight[o * taps + k]
// for k in [0, taps); indices are clamped into the input (edge replication).
struct ResizeAxis {
  int64_t taps = 1;
  std::vector<int64_t> index;
  std::vector<float> weight;
  // Per output index, whether it lies outside the input in tf_crop_and_resize
  // (the element then is extrapolation_value); empty when none does.
  std::vector<bool> outside;
  bool identity = false;  // output o reads input o with weight 1
};

// The values Resize's string attribute `attribute` (mode,
// coordinate_transformation_mode, nearest_mode) may take.
const std::vector<std::string>& resizeAttributeValues(const std::string& attribute);

// The sampling of every axis of a Resize node (attributes as the IR op holds
// them) from static input shape `in` to output shape `out`.
std::vector<ResizeAxis> resizeAxes(const Attributes& attrs, const Shape& in, const Shape& out);

}  // namespace kiln
