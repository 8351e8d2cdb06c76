// ONNX frontend: turns an ONNX model (file or bytes) into kiln IR.
//
// Runs ONNX's checker and shape inference first, inlines model-local
// functions (except the Keras composites kiln knows, e.g.
// ai.kiln.keras.SeparableConv2D, which become single IR ops), folds the shape
// arithmetic exporters emit, and resolves static operands into attributes.
// Every problem is a kiln::Error naming the file, node and op; an unsupported
// model gets ONE error listing every unsupported op/attribute/opset.
#pragma once

#include <string>

#include "compiler/ir/graph.h"

namespace kiln::onnx_import {

// Imports a model file. External data is resolved relative to the file's
// folder and must stay inside it.
Graph importModelFile(const std::string& path);

// Imports serialized ModelProto bytes. `displayName` is used in errors;
// `baseDir` is the folder external data must live in ("" forbids external data).
Graph importModelBytes(const std::string& bytes, const std::string& displayName, const std::string& baseDir = "");

// Reads a serialized TensorProto file (ONNX test data: input_0.pb, ...).
Tensor loadTensorProtoFile(const std::string& path);

}  // namespace kiln::onnx_import
