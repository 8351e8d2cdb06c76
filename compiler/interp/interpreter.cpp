#include "compiler/interp/interpreter.h"

#include <unordered_map>

namespace kiln {

std::vector<Tensor> evaluateNode(const Node& n, const std::vector<const Tensor*>& inputs) {
  std::vector<const TensorType*> types;
  for (const Tensor* t : inputs) types.push_back(t ? &t->type() : nullptr);
  std::vector<TensorType> outTypes = n.op->infer(InferContext(n, types));
  std::vector<Tensor> outputs;
  for (const TensorType& t : outTypes) {
    if (!t.shape.isStatic()) throw Error("output shape " + t.shape.str() + " is not concrete at run time", n.site());
    outputs.emplace_back(t.dtype, t.shape);
  }
  KernelContext ctx(n, inputs, outputs);
  n.op->reference(ctx);
  return outputs;
}

std::vector<Tensor> interpret(const Graph& g, const std::vector<Tensor>& inputs) {
  if (inputs.size() != g.inputs().size())
    throw Error("graph takes " + std::to_string(g.inputs().size()) + " inputs, given " +
                std::to_string(inputs.size()));
  std::unordered_map<const Value*, Tensor> env;
  int64_t batch = -1;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value* v = g.inputs()[i];
    const Tensor& t = inputs[i];
    const Shape& want = v->type.shape;
    auto mismatch = [&](const std::string& what) {
      return Error("input '" + v->name + "': " + what + " (expected " + v->type.str() + ", got " + t.type().str() + ")");
    };
    if (t.dtype() != v->type.dtype) throw mismatch("wrong dtype");
    if (t.shape().rank() != want.rank()) throw mismatch("wrong rank");
    for (size_t d = 0; d < want.rank(); ++d) {
      if (want[d] == kBatch) {
        if (batch >= 0 && batch != t.shape()[d]) throw mismatch("batch differs from another input's");
        batch = t.shape()[d];
      } else if (want[d] != t.shape()[d]) {
        throw mismatch("dim " + std::to_string(d) + " is " + std::to_string(t.shape()[d]) + ", expected " +
                       std::to_string(want[d]));
      }
    }
    env[v] = t;
  }
  for (const Value* v : g.values())
    if (v->isConstant()) env[v] = v->constant;
  for (const Node* n : g.nodes()) {
    std::vector<const Tensor*> ins;
    for (const Value* in : n->inputs) ins.push_back(in ? &env.at(in) : nullptr);
    std::vector<Tensor> outs = evaluateNode(*n, ins);
    for (size_t i = 0; i < outs.size(); ++i) env[n->outputs[i]] = std::move(outs[i]);
  }
  std::vector<Tensor> results;
  for (const Value* v : g.outputs()) results.push_back(env.at(v));
  return results;
}

}  // namespace kiln
