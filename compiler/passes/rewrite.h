// Rewrite helpers shared by passes.
#pragma once

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

}  // namespace kiln
