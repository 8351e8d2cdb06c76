// cancel-transposes: removes the NHWC<->NCHW Transpose pairs tf2onnx puts
// around every convolution. A Transpose is sunk below elementwise consumers
// (activations; Add/Sub/Mul/Div/PRelu whose other operand is a constant or a
// Transpose with the same permutation) until it meets another Transpose; two
// adjacent Transposes compose into one, which disappears when it is the
// identity. A Transpose of a constant is folded into the constant.
// Legal because elementwise ops commute with any permutation of axes when
// every operand is permuted the same way (constants are re-permuted by the
// inverse permutation at compile time; Clip's bounds are single values that
// no axis touches), and permutations compose.
#include <algorithm>

#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln {

namespace {

bool isUnaryElementwise(const std::string& op) {
  static const char* ops[] = {"Relu", "LeakyRelu", "Elu",  "Selu",    "Sigmoid",  "Tanh",
                              "HardSigmoid", "HardSwish", "Softplus", "Clip", "Dropout", "Identity"};
  return std::find(std::begin(ops), std::end(ops), op) != std::end(ops);
}

bool isBinaryElementwise(const std::string& op) {
  return op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "PRelu";
}

Attributes permAttr(std::vector<int64_t> perm) {
  Attributes a;
  a.set("perm", std::move(perm));
  return a;
}

bool isIdentityPerm(const std::vector<int64_t>& perm) {
  for (size_t i = 0; i < perm.size(); ++i)
    if (perm[i] != static_cast<int64_t>(i)) return false;
  return true;
}

std::vector<int64_t> inversePerm(const std::vector<int64_t>& perm) {
  std::vector<int64_t> inv(perm.size());
  for (size_t k = 0; k < perm.size(); ++k) inv[static_cast<size_t>(perm[k])] = static_cast<int64_t>(k);
  return inv;
}

// The constant `c` as seen by an operand of rank `rank` that was transposed
// by `perm`: broadcast-extended to that rank, then permuted by perm's inverse.
Value* permutedConstant(Graph& g, Value* c, size_t rank, const std::vector<int64_t>& perm) {
  Value* full = c;
  if (c->type.shape.rank() < rank) {
    std::vector<int64_t> dims(rank - c->type.shape.rank(), 1);
    dims.insert(dims.end(), c->type.shape.dims.begin(), c->type.shape.dims.end());
    Attributes a;
    a.set("shape", dims);
    full = foldNode(g, g.addNode("Reshape", g.uniqueName(c->name + "_rank"), {c}, a));
  }
  return foldNode(g, g.addNode("Transpose", g.uniqueName(c->name + "_perm"), {full}, permAttr(inversePerm(perm))));
}

void eraseIfUnused(Graph& g, Node* n) {
  for (Value* out : n->outputs)
    if (!g.users(out).empty() || g.isGraphOutput(out)) return;
  g.eraseNode(n);
}

// Tries one rewrite rooted at Transpose `t`; returns true if the graph changed.
bool rewriteTranspose(Graph& g, Node* t, PassStats& stats) {
  Value* x = t->input(0);
  const std::vector<int64_t> perm = t->attrs.getInts("perm");
  if (x->isConstant() && !g.isGraphOutput(t->output())) {
    foldNode(g, t);
    stats.add("constant transposes folded");
    return true;
  }
  // Transpose(Transpose(v, p1), p2) == Transpose(v, p1 o p2), whoever else
  // reads the inner one (it stays for them, or dce removes it).
  if (Node* inner = x->producer; inner && inner->opName() == "Transpose") {
    const std::vector<int64_t>& first = inner->attrs.getInts("perm");
    std::vector<int64_t> combined(perm.size());
    for (size_t k = 0; k < perm.size(); ++k) combined[k] = first[static_cast<size_t>(perm[k])];
    Value* replacement = inner->input(0);
    if (!isIdentityPerm(combined))
      replacement = g.addNode("Transpose", t->name, {replacement}, permAttr(combined))->output();
    if (!replaceValue(g, t->output(), replacement)) return false;
    eraseIfUnused(g, inner);
    stats.add(isIdentityPerm(combined) ? "transpose pairs cancelled" : "transposes merged");
    return true;
  }

  Value* y = t->output();
  if (!hasSingleUse(g, y)) return false;
  Node* user = g.users(y).front();
  const std::string& op = user->opName();

  std::vector<Value*> operands;
  if (isUnaryElementwise(op)) {
    // Clip's run-time bounds (inputs 1, 2) move along unchanged.
    if (user->input(0) != y) return false;
    operands = user->inputs;
    operands[0] = x;
  } else if (isBinaryElementwise(op)) {
    size_t self = user->input(0) == y ? 0 : 1;
    Value* other = user->input(1 - self);
    Value* newOther = nullptr;
    if (other->producer && other->producer->opName() == "Transpose" &&
        other->producer->attrs.getInts("perm") == perm) {
      newOther = other->producer->input(0);
    } else if (other->isConstant() && other->type.shape.rank() <= perm.size()) {
      newOther = permutedConstant(g, other, perm.size(), perm);
    } else {
      return false;
    }
    operands = self == 0 ? std::vector<Value*>{x, newOther} : std::vector<Value*>{newOther, x};
  } else {
    return false;
  }
  Node* moved = g.addNode(op, user->name, operands, user->attrs);
  if (moved->output()->type.shape != x->type.shape) {  // broadcasting grew the result: leave as is
    g.eraseNode(moved);
    return false;
  }
  Node* sunk = g.addNode("Transpose", t->name, {moved->output()}, permAttr(perm));
  if (!replaceValue(g, user->output(), sunk->output())) {
    g.eraseNode(sunk);
    g.eraseNode(moved);
    return false;
  }
  eraseIfUnused(g, t);
  stats.add("transposes sunk");
  return true;
}

}  // namespace

PassDef cancelTransposesPass() {
  return {"cancel-transposes", "sink Transposes through elementwise ops and cancel inverse pairs",
          [](Graph& g, PassStats& stats, const PassOptions&) {
            // Each rewrite removes a Transpose or moves one strictly closer to
            // the outputs, so this terminates; the cap is a safety net.
            size_t budget = 16 * (g.numNodes() + 1);
            bool changed = true;
            while (changed && budget-- > 0) {
              changed = false;
              g.topoSort();
              for (Node* n : g.nodes()) {
                if (n->opName() != "Transpose") continue;
                if (rewriteTranspose(g, n, stats)) {
                  changed = true;
                  break;  // the node list is stale after a rewrite
                }
              }
            }
            g.topoSort();
            g.pruneValues();
          }};
}

}  // namespace kiln
