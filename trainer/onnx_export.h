// ONNX export of a trained Sequential model: opset 17, NCHW, input "input"
// [N, C, H, W], output "output" [N, classes]; BatchNormalization stays a BN
// node; SeparableConv2D is a call of the model-local function
// ai.kiln.keras.SeparableConv2D(X, Wd[C*dm,1,kh,kw], Wp[M,C*dm,1,1], [B])
// with attributes strides, pads, dilations, depth_multiplier and group (= C,
// the static group count of the body's depthwise Conv); body: depthwise
// Conv then 1x1 Conv. The ONNX checker validates the model before writing.
#pragma once

#include <stdexcept>
#include <string>

#include "trainer/model.h"

namespace kiln::train {

struct ExportError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void exportOnnx(const Sequential& model, const std::string& path);

}  // namespace kiln::train
