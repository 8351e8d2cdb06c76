// The reference interpreter: runs a graph node by node with the registry's
// plain C++ kernels. It is the numerical oracle for passes and the backend,
// and the `interp` engine of `kiln run`. Batch stays symbolic in the graph;
// it is bound from the inputs given here.
#pragma once

#include <vector>

#include "compiler/ir/graph.h"

namespace kiln {

// Runs `g` on `inputs` (one per graph input, in order). Checks dtypes and
// dims against the graph inputs (the symbolic batch binds to the inputs'
// leading dim, which must agree). Returns one tensor per graph output.
std::vector<Tensor> interpret(const Graph& g, const std::vector<Tensor>& inputs);

// Evaluates a single node on concrete inputs (nullptr for omitted optional
// ones); used for constant folding.
std::vector<Tensor> evaluateNode(const Node& n, const std::vector<const Tensor*>& inputs);

}  // namespace kiln
