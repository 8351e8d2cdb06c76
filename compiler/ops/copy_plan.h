// The data-movement ops whose every output element is one input element at
// an affine offset (Split, Expand, Tile, DepthToSpace, SpaceToDepth): each
// output is a walk over a view of it, row-major over `dims`, where the
// output and the input each step by their own strides. The reference kernels
// (shape.cpp) and the LLVM emitter (compiler/codegen/ops/shape.cpp) read the
// same plan, so the index arithmetic lives in one place.
#pragma once

#include <string_view>
#include <vector>

#include "compiler/ir/attributes.h"
#include "compiler/ir/types.h"

namespace kiln {

struct CopyPlan {
  std::vector<int64_t> dims;
  std::vector<int64_t> outStrides, inStrides;
  int64_t inBase = 0;  // the input element the view's first index reads
};

// The plan of output `output` (of shape `out`) of planned-copy op `op`
// reading an input of shape `in`; the shapes must be static (the backend
// passes one sample's).
CopyPlan copyPlan(std::string_view op, const Attributes& attrs, const Shape& in, const Shape& out, size_t output);

}  // namespace kiln
