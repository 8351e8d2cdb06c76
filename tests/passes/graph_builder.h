// Test helper: builds IR graphs with random (seeded) weights, compares two
// graphs numerically with the reference interpreter, and counts ops.
#pragma once

#include <random>
#include <string>

#include "compiler/interp/interpreter.h"
#include "compiler/ir/graph.h"

namespace kiln::testing {

class GraphBuilder {
 public:
  explicit GraphBuilder(uint32_t seed) : rng_(seed) {}

  Graph graph;

  Value* input(const std::string& name, Shape shape) { return graph.addInput(name, {DType::F32, std::move(shape)}); }
  Value* constant(Shape shape, float lo = -1.f, float hi = 1.f);

  Value* conv(Value* x, int64_t outChannels, int64_t kernel, int64_t stride = 1, int64_t pad = 0, int64_t group = 1,
              bool bias = true, int64_t dilation = 1);
  Value* separable(Value* x, int64_t outChannels, int64_t kernel, int64_t multiplier, int64_t stride, int64_t pad,
                   bool bias);
  Value* batchNorm(Value* x);  // channel axis 1, random statistics
  Value* gemm(Value* x, int64_t outFeatures, bool transB);
  Value* op(const std::string& op, std::vector<Value*> inputs, Attributes attrs = {});
  Value* transpose(Value* x, std::vector<int64_t> perm);
  void output(Value* v) { graph.addOutput(v); }

  std::mt19937& rng() { return rng_; }

 private:
  std::string name(const std::string& base) { return base + std::to_string(counter_++); }
  std::mt19937 rng_;
  int counter_ = 0;
};

// Number of nodes of op `op` in g.
size_t countOps(const Graph& g, const std::string& op);

// Random inputs for g with the symbolic batch bound to `batch`.
std::vector<Tensor> randomInputs(const Graph& g, int64_t batch, uint32_t seed);

// Norm-wise relative error, the largest over all outputs of
// max|a-b| / max|b|: float rounding differences of rewritten arithmetic
// (e.g. folded BN weights) scale with the output's magnitude, so elements
// near zero are judged against that magnitude, not their own.
double maxRelativeError(const std::vector<Tensor>& a, const std::vector<Tensor>& b);

}  // namespace kiln::testing
