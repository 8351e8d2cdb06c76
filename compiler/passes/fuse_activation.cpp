// fuse-activation: Conv, ConvTranspose or Gemm followed by an activation (Relu, Clip,
// LeakyRelu, Sigmoid, HardSwish) and/or a residual Add becomes one node with
// an epilogue: y = act(conv(x) + bias + residual). Legal because the epilogue
// applies exactly those elementwise ops to each output value in the same
// order, and the intermediate had no other reader (single use, not a graph
// output). The epilogue holds the activation's parameters as attributes, so
// an activation that reads another value (Clip with run-time bounds) stays a
// node. The residual must come first: act(conv + r) only matches
// Add-then-activation chains. For Gemm the residual becomes its C input
// (beta = 1) when C is absent.
#include <algorithm>

#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln {

namespace {

bool isFusableActivation(const Node& act) {
  const std::string& op = act.opName();
  return readsOnlyFirstInput(act) &&
         (op == "Relu" || op == "Clip" || op == "LeakyRelu" || op == "Sigmoid" || op == "HardSwish");
}

// The epilogue attributes describing `act` (see compiler/ops/epilogue.h).
void setActivation(Node& target, const Node& act) {
  const std::string& op = act.opName();
  target.attrs.set("activation", op);
  if (op == "Clip") {
    target.attrs.set("activation_alpha", act.attrs.getFloat("min"));
    target.attrs.set("activation_beta", act.attrs.getFloat("max"));
  } else if (op == "LeakyRelu") {
    target.attrs.set("activation_alpha", act.attrs.getFloat("alpha"));
  }
}

bool fuseActivation(Graph& g, Node& producer, Node& act) {
  if (!producer.attrs.getString("activation").empty()) return false;
  setActivation(producer, act);
  return replaceValue(g, act.output(), producer.output());
}

bool fuseResidual(Graph& g, Node& producer, Node& add) {
  if (!producer.attrs.getString("activation").empty()) return false;  // act(conv) + r is not act(conv + r)
  Value* self = producer.output();
  Value* other = add.input(0) == self ? add.input(1) : add.input(0);
  if (other == self || add.output()->type != self->type) return false;  // the residual must not broadcast
  if (producer.opName() != "Gemm") {  // Conv, ConvTranspose: input 3
    if (producer.input(3) || other->type != self->type) return false;
    producer.inputs.resize(4);
    producer.inputs[3] = other;
  } else {  // Gemm
    if (producer.input(2)) return false;
    producer.inputs.resize(3);
    producer.inputs[2] = other;
    producer.attrs.set("beta", 1.f);
  }
  return replaceValue(g, add.output(), self);
}

}  // namespace

PassDef fuseActivationPass() {
  return {"fuse-activation", "fuse activations and residual Adds into the preceding Conv/ConvTranspose/Gemm",
          [](Graph& g, PassStats& stats, const PassOptions&) {
            bool changed = true;
            while (changed) {
              changed = false;
              for (Node* n : g.nodes()) {
                if (n->opName() != "Conv" && n->opName() != "ConvTranspose" && n->opName() != "Gemm") continue;
                if (!hasSingleUse(g, n->output())) continue;
                Node* user = g.users(n->output()).front();
                if (isFusableActivation(*user) && fuseActivation(g, *n, *user)) {
                  stats.add("activations fused");
                  changed = true;
                } else if (user->opName() == "Add" && fuseResidual(g, *n, *user)) {
                  stats.add("residual adds fused");
                  changed = true;
                }
                if (changed) break;
              }
              // A residual may be produced after the conv: restore order.
              if (changed) g.topoSort();
            }
          }};
}

}  // namespace kiln
