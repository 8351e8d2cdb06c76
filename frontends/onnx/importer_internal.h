// Internals shared by the ONNX frontend's files: the flattened node list the
// converter walks, the unsupported-feature collector, and the entry points of
// each stage (loading, tensors, inlining, conversion).
#pragma once

#include <onnx/onnx_pb.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::onnx_import {

// Default-domain opsets kiln imports, and the IR versions. Models of opsets
// kMinConvertedOpset to kMinOpset - 1 are first upgraded to kMinOpset by
// ONNX's version converter; they then declare at least kConvertedIrVersion,
// the IR version opset 11 came with.
inline constexpr int64_t kMinOpset = 11;
inline constexpr int64_t kMaxOpset = 17;
inline constexpr int64_t kMinConvertedOpset = 1;
inline constexpr int64_t kMinIrVersion = 3;
inline constexpr int64_t kMaxIrVersion = 8;
inline constexpr int64_t kConvertedIrVersion = 6;
// The domain of the Keras composites kiln maps to single IR ops.
inline constexpr const char* kKerasDomain = "ai.kiln.keras";

// A node of the main graph after function inlining: a call's body nodes
// appear with renamed values and resolved attribute references.
struct FlatNode {
  ::onnx::NodeProto proto;
  std::string label;  // node name, "#index(OpType)" if unnamed; "call/inner" when inlined
  int64_t opset = 0;  // default-domain opset in effect for this node
};

// Unsupported features found in a model; reported together as ONE error.
class Issues {
 public:
  void add(const std::string& where, const std::string& what) { lines_.push_back(where + ": " + what); }
  bool empty() const { return lines_.empty(); }
  // Throws one kiln::Error listing every issue, if there are any.
  void throwIfAny() const;

 private:
  std::vector<std::string> lines_;
};

// Thrown by op conversion for a node kiln cannot import (not malformed, just
// unsupported); the builder records it and carries on with other nodes.
struct Unsupported {
  std::string what;
};

// "node 'n' (Op)": the prefix of issue lines.
std::string nodeWhere(const std::string& label, const std::string& opType);
// The label of a node: its name, or "#index(OpType)" when unnamed.
std::string nodeLabel(const ::onnx::NodeProto& n, size_t index);

// model_loader.cpp
// Protobuf cannot parse messages of 2 GiB or more; throws for larger inputs.
void checkModelSize(uintmax_t bytes);
::onnx::ModelProto parseModel(const std::string& bytes);
// IR version (hard error) and opset imports (issues). A model of an opset
// below kMinOpset is upgraded in place to kMinOpset with ONNX's version
// converter, unless kiln's support scan rejects it as it is (the scan then
// reports it as the file has it) or it cannot be converted (issues naming the
// node). Returns the default-domain opset the model has then.
int64_t checkVersions(::onnx::ModelProto& model, Issues& issues);
// Reads external initializer data into raw_data; paths must stay in baseDir.
void loadExternalData(::onnx::GraphProto& graph, const std::string& baseDir);
// Sorts the nodes topologically (Kahn); throws on cycles, dangling inputs and
// values defined twice, naming the node.
void sortNodes(::onnx::GraphProto& graph);
// ONNX's checker and shape inference; their exceptions become kiln::Error.
// `inlined` (every call inlined, Keras composites too) is what the shape
// inference will see: values it would divide by or index with unchecked are
// rejected first, naming the node.
void runOnnxChecks(const ::onnx::ModelProto& model, const std::vector<FlatNode>& inlined);

// tensor_convert.cpp
Tensor convertTensor(const ::onnx::TensorProto& t);
// The shape of `t`, checked: no negative dims, no overflow, within kMaxTensorBytes.
Shape tensorShape(const ::onnx::TensorProto& t, DType dtype);
bool isSupportedElemType(int32_t elemType);
DType dtypeFromOnnx(int32_t elemType, const std::string& what);

// function_inliner.cpp: the main graph's nodes in order, calls of
// model-local functions replaced by their bodies. Keep leaves Keras composites
// with an IR op as single nodes; Inline expands them too.
enum class KerasOps { Keep, Inline };
std::vector<FlatNode> flattenGraph(const ::onnx::ModelProto& model, int64_t defaultOpset, KerasOps keras);

// op_rules.cpp
class GraphBuilder;
// Proto-level support check of a node: unknown ops, unsupported attribute
// values and used outputs kiln does not produce. `used` holds every value name
// some node or graph output reads.
void checkSupport(const FlatNode& n, const std::set<std::string>& used, Issues& issues);
// Converts one node into IR nodes/constants via the builder.
void convertNode(const FlatNode& n, GraphBuilder& b);

}  // namespace kiln::onnx_import
