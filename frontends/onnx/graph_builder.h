// GraphBuilder: the IR graph under construction during import. Maps ONNX
// value names to IR values, folds integer shape arithmetic on constants into
// constants (via the reference interpreter), tracks the symbolic-batch
// sentinel through that arithmetic, and marks values of unsupported nodes.
#pragma once

#include <climits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"

namespace kiln::onnx_import {

// What `Shape` yields for the symbolic batch dim. Values holding it are
// "batch-tainted": only index-moving ops may carry them, and only a Reshape's
// leading shape entry may consume them (as 0: copy the batch). It survives
// Cast to int32.
inline constexpr int64_t kBatchSentinel = INT32_MIN;
inline constexpr const char* kBatchArithmeticMessage =
    "computation on the symbolic batch dimension (a dynamic batch may only flow from Shape through "
    "Gather/Slice/Concat/Unsqueeze/Squeeze/Cast/Identity into the first entry of a Reshape shape)";

// Upper bound on a constant made by folding. Folded sizes come from values in
// the model (ConstantOfShape's shape, Pad's pads, repeated Concat inputs), not
// from bytes it holds, so without a bound a tiny file could demand gigabytes.
inline constexpr int64_t kMaxFoldedBytes = int64_t{64} << 20;

class GraphBuilder {
 public:
  // `reserved`: every ONNX value name, so generated names never collide.
  GraphBuilder(Graph& graph, std::set<std::string> reserved) : graph_(graph), reserved_(std::move(reserved)) {}

  void bind(const std::string& onnxName, Value* v) { values_[onnxName] = v; }
  // The value of an ONNX name; nullptr for "" (an omitted optional input).
  // Throws kiln::Error for names nothing defines.
  Value* lookup(const std::string& onnxName, const ErrorSite& site) const;

  // Values downstream of an unsupported node: their users are skipped, the
  // unsupported node alone is reported.
  void markUnavailable(const std::string& onnxName) { unavailable_.insert(onnxName); }
  bool isUnavailable(const std::string& onnxName) const { return unavailable_.count(onnxName) != 0; }

  bool isBatchTainted(const Value* v) const { return tainted_.count(v) != 0; }

  // Adds a constant; `tainted` if it holds the batch sentinel.
  Value* addConstant(const std::string& name, Tensor value, bool tainted = false);

  // Adds IR node `op`, or, when all its inputs are constant and all its
  // outputs integer, evaluates it and adds its outputs as constants (throws
  // kiln::Error when one would exceed kMaxFoldedBytes). Empty
  // output names are generated from `nodeName`. Throws Unsupported when a
  // batch-tainted value would reach arithmetic or a real node.
  std::vector<Value*> emit(std::string_view op, const std::string& nodeName, const std::vector<Value*>& inputs,
                           const Attributes& attrs, std::vector<std::string> outputNames);

  // A value name unused by the graph and by the ONNX model.
  std::string freshName(const std::string& base);

 private:
  Graph& graph_;
  std::set<std::string> reserved_;
  std::map<std::string, Value*> values_;
  std::set<std::string> unavailable_;
  std::set<const Value*> tainted_;
};

}  // namespace kiln::onnx_import
