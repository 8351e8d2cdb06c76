// Rewrite helpers shared by passes.
#pragma once

#include <optional>
#include <string_view>

#include "compiler/ir/graph.h"

namespace kiln {

// Replaces every use of `from` with `to` and erases from's producer when
// nothing reads it any more. Graph outputs keep their names: if `from` is a
// graph output, `to` takes over its name. Returns false (and changes nothing)
// when that is impossible: `to` is a graph input, a constant or already a
// graph output, and `from` is a graph output.
bool replaceValue(Graph& g, Value* from, Value* to);

// Evaluates a node whose inputs are all constants with the reference
// interpreter and replaces its outputs by constants (when replaceValue
// allows); returns the constant for output 0.
Value* foldNode(Graph& g, Node* n);

// True when `v` has exactly one reader (one node input slot) and is not a
// graph output: the condition for fusing its producer into that reader.
bool hasSingleUse(const Graph& g, const Value* v);

// True when `n` reads no value but input 0 (its later optional inputs are
// absent): an activation whose parameters are all attributes, unlike a Clip
// with run-time bounds.
bool readsOnlyFirstInput(const Node& n);

// Pattern-matching helpers of the fusion passes (fuse-gelu, fuse-layernorm).

// The value of `v` when it is an f32 constant of one element.
std::optional<float> scalarConstant(const Value* v);

// True when `v` is a one-element f32 constant within 1e-6 (relative) of
// `want`: an exporter's float rounding of that constant.
bool isScalarNear(const Value* v, float want);

// The only node reading `v` when it is a `op` node and `v` has a single use
// (so the reader may be fused away with v's producer); else null.
Node* singleUser(const Graph& g, const Value* v, std::string_view op);

// v's producer when it is a `op` node and v has a single use; else null.
Node* singleUseProducer(const Graph& g, const Value* v, std::string_view op);

// The input of two-input `n` that is not `known`; null when neither input
// is `known` (both being `known` gives `known`).
Value* otherInput(const Node& n, const Value* known);

// Erases the nodes of a matched chain, last first, whose outputs nobody
// reads any more (after the chain's result was replaced).
void eraseUnused(Graph& g, const std::vector<Node*>& chain);

}  // namespace kiln
