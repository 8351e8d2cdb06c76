// GraphBuilder: name binding, constant folding of integer shape arithmetic
// and single-value operands, and the symbolic-batch sentinel rules (see
// graph_builder.h).
#include "frontends/onnx/graph_builder.h"

#include <algorithm>

#include "compiler/interp/interpreter.h"
#include "frontends/onnx/importer_internal.h"

namespace kiln::onnx_import {

namespace {

// Ops that only move or select integers: they may carry the batch sentinel.
bool carriesBatchSentinel(std::string_view op) {
  static const std::set<std::string_view> ops = {"Gather", "Slice", "Concat", "Unsqueeze", "Squeeze", "Cast", "Identity"};
  return ops.count(op) != 0;
}

bool isInteger(DType t) { return t == DType::I64 || t == DType::I32; }

bool holdsSentinel(const Tensor& t) {
  if (!isInteger(t.dtype())) return false;
  std::vector<int64_t> v = t.toInts();
  return std::find(v.begin(), v.end(), kBatchSentinel) != v.end();
}

}  // namespace

Value* GraphBuilder::lookup(const std::string& onnxName, const ErrorSite& site) const {
  if (onnxName.empty()) return nullptr;
  auto it = values_.find(onnxName);
  if (it == values_.end()) throw Error("input '" + onnxName + "' is not defined", site);
  return it->second;
}

Value* GraphBuilder::addConstant(const std::string& name, Tensor value, bool tainted) {
  Value* v = graph_.addConstant(name, std::move(value));
  if (tainted) tainted_.insert(v);
  return v;
}

std::string GraphBuilder::freshName(const std::string& base) {
  for (;;) {
    std::string name = graph_.uniqueName(base);
    if (!reserved_.count(name)) return name;
  }
}

std::vector<Value*> GraphBuilder::emit(std::string_view op, const std::string& nodeName, const std::vector<Value*>& inputs,
                                       const Attributes& attrs, std::vector<std::string> outputNames) {
  const OpDef& def = OpRegistry::instance().get(op);
  if (def.numOutputs != kVariadic) outputNames.resize(static_cast<size_t>(def.numOutputs));
  for (std::string& name : outputNames)
    if (name.empty()) name = freshName(nodeName);
  bool tainted = std::any_of(inputs.begin(), inputs.end(), [&](const Value* v) { return v && isBatchTainted(v); });
  bool allConstant = std::all_of(inputs.begin(), inputs.end(), [](const Value* v) { return !v || v->isConstant(); });
  if (allConstant) {
    // Try the node in a scratch graph: folded if its outputs are integers
    // (shape arithmetic), single values (operands such as Clip's bounds,
    // which exporters write as Cast(Constant)) or short float vectors (Resize's
    // scales, which torch.onnx writes as Concat(Constant, Constant)).
    Graph scratch;
    std::vector<Value*> scratchInputs;
    std::vector<const Tensor*> tensors;
    for (const Value* v : inputs) {
      scratchInputs.push_back(v ? scratch.addConstant(v->name, v->constant) : nullptr);
      tensors.push_back(v ? &v->constant : nullptr);
    }
    const Node* probe = scratch.addNode(op, nodeName, scratchInputs, attrs);
    bool operandLike = std::all_of(probe->outputs.begin(), probe->outputs.end(), [](const Value* v) {
      constexpr int64_t kMaxOperandFloats = 16;
      return isInteger(v->type.dtype) || (v->type.shape.isStatic() && v->type.shape.rank() <= 1 &&
                                          v->type.shape.numElements() <= kMaxOperandFloats);
    });
    if (operandLike && (!tainted || carriesBatchSentinel(op))) {
      for (const Value* out : probe->outputs) {
        int64_t bytes = 0;
        if (__builtin_mul_overflow(out->type.shape.numElements(), static_cast<int64_t>(dtypeSize(out->type.dtype)), &bytes) ||
            bytes > kMaxFoldedBytes)
          throw Error("folding this " + std::string(op) + " into a constant would make " + out->type.str() +
                      ", more than the " + std::to_string(kMaxFoldedBytes >> 20) + " MiB limit on folded constants");
      }
      std::vector<Tensor> results = evaluateNode(*probe, tensors);
      std::vector<Value*> outs;
      for (size_t i = 0; i < results.size(); ++i) {
        bool outTainted = tainted && holdsSentinel(results[i]);
        outs.push_back(addConstant(outputNames[i], std::move(results[i]), outTainted));
      }
      return outs;
    }
  }
  if (tainted) throw Unsupported{kBatchArithmeticMessage};
  return graph_.addNode(op, nodeName, inputs, attrs, std::move(outputNames))->outputs;
}

}  // namespace kiln::onnx_import
