// ONNX frontend: turns an ONNX model (file or bytes) into kiln IR.
//
// Runs ONNX's checker and shape inference first, inlines model-local
// functions (except the Keras composites kiln knows, e.g.
// ai.kiln.keras.SeparableConv2D, which become single IR ops), folds the shape
// arithmetic exporters emit, and resolves static operands into attributes.
// Every problem is a kiln::Error naming the file, node and op; an unsupported
// model gets ONE error listing every unsupported op/attribute/opset.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::onnx_import {

struct ImportOptions {
  // Graph input name -> its dims, binding dims the model leaves symbolic
  // (kiln needs static shapes; `kiln compile --shape`). Dim 0 is the batch:
  // a symbolic batch stays symbolic whatever is given there, so kBatch and a
  // sample count both fit it. Every other dim is bound; a dim the model gives
  // statically must match. Applied before ONNX shape inference, so the
  // bound dims propagate through the graph.
  std::map<std::string, std::vector<int64_t>> inputShapes;
};

// Imports a model file. External data is resolved relative to the file's
// folder and must stay inside it.
Graph importModelFile(const std::string& path, const ImportOptions& options = {});

// Imports serialized ModelProto bytes. `displayName` is used in errors;
// `baseDir` is the folder external data must live in ("" forbids external data).
Graph importModelBytes(const std::string& bytes, const std::string& displayName, const std::string& baseDir = "",
                       const ImportOptions& options = {});

// Reads a serialized TensorProto file (ONNX test data: input_0.pb, ...).
Tensor loadTensorProtoFile(const std::string& path);

}  // namespace kiln::onnx_import
