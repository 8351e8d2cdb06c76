// The reductions over axes (ReduceSum, ReduceMean, ReduceMax, ...), each
// described as data: the value every reduced element contributes (map), how
// contributions combine (from that combination's identity), and what the
// output makes of the combination and the element count (finish). The
// reference kernel (reduce.cpp) and the LLVM emitter
// (compiler/codegen/ops/reduce.cpp) both walk the reduced elements once and
// read this table, so every reduction shares one mechanism. The Exp map
// contributes exp(x - m), m the maximum of the reduced elements (0 when that
// is not finite), and m is added to the finished value, so ReduceLogSumExp
// cannot overflow.
#pragma once

#include <string_view>
#include <vector>

namespace kiln {

enum class ReduceMap { Identity, Abs, Square, Exp };
enum class ReduceCombine { Add, Mul, Max, Min };
enum class ReduceFinish { Identity, Mean, Sqrt, Log };

struct Reduction {
  const char* op;
  ReduceMap map;
  ReduceCombine combine;
  ReduceFinish finish;
  bool acceptsI64;  // Max and Min also reduce i64 tensors (no map or finish applies)
};

const std::vector<Reduction>& reductions();
// The reduction of IR op `op`, or nullptr.
const Reduction* findReduction(std::string_view op);

}  // namespace kiln
