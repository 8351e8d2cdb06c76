// fuse-gelu: the elementwise chains exporters write for GELU (torch.onnx
// for nn.GELU() before ONNX had a Gelu op) become one Gelu node:
//   exact: 0.5 * x * (1 + Erf(x / sqrt(2)))          (or x * (1/sqrt(2)))
//   tanh:  0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
//          (x^3 as x * (x * x), (x * x) * x or Pow(x, 3))
// with the products and sums in any operand order and the three factors
// 0.5, x and (1 + gate) multiplied in any association. Legal because that
// is Gelu's definition (compiler/ops/activation.cpp) evaluated with other
// float roundings, and only for exactly those constants (to float
// rounding): every intermediate has a single use (it is not a graph output
// and nothing else reads it), and the result keeps x's type (no constant
// broadcasts it to another shape).
#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln {

namespace {

constexpr float kSqrtHalf = 0.70710678118654752440f;
constexpr float kSqrt2 = 1.41421356237309504880f;
constexpr float kSqrt2OverPi = 0.79788456080286535588f;
constexpr float kCubicCoefficient = 0.044715f;

struct Match {
  Value* x = nullptr;
  std::vector<Node*> chain;  // the matched nodes in dataflow order, the last one's output is the result
};

// x / sqrt(2) or x * (1/sqrt(2)): returns x.
Value* matchScaledInput(const Graph& g, Value* u, Match& m) {
  if (Node* div = singleUseProducer(g, u, "Div"); div && isScalarNear(div->input(1), kSqrt2)) {
    m.chain.push_back(div);
    return div->input(0);
  }
  if (Node* mul = singleUseProducer(g, u, "Mul")) {
    for (size_t k = 0; k < 2; ++k)
      if (isScalarNear(mul->input(k), kSqrtHalf)) {
        m.chain.push_back(mul);
        return mul->input(1 - k);
      }
  }
  return nullptr;
}

// x^3 as a product of x's or Pow(x, 3), into `m`; returns x.
Value* matchCube(const Graph& g, Value* cube, Match& m) {
  if (Node* pow = singleUseProducer(g, cube, "Pow"); pow && isScalarNear(pow->input(1), 3.f)) {
    m.chain.push_back(pow);
    return pow->input(0);
  }
  Node* outer = singleUseProducer(g, cube, "Mul");
  if (!outer) return nullptr;
  for (size_t k = 0; k < 2; ++k) {
    Node* square = singleUseProducer(g, outer->input(k), "Mul");
    Value* x = outer->input(1 - k);
    if (square && square->input(0) == x && square->input(1) == x) {
      m.chain.push_back(square);
      m.chain.push_back(outer);
      return x;
    }
  }
  return nullptr;
}

// sqrt(2/pi) * (x + 0.044715 * x^3), the argument of the tanh form; returns x.
Value* matchTanhArgument(const Graph& g, Value* t, Match& m) {
  Node* scale = singleUseProducer(g, t, "Mul");
  if (!scale) return nullptr;
  for (size_t k = 0; k < 2; ++k) {
    if (!isScalarNear(scale->input(k), kSqrt2OverPi)) continue;
    Node* sum = singleUseProducer(g, scale->input(1 - k), "Add");
    if (!sum) return nullptr;
    for (size_t j = 0; j < 2; ++j) {
      Node* scaledCube = singleUseProducer(g, sum->input(j), "Mul");
      if (!scaledCube) continue;
      for (size_t i = 0; i < 2; ++i) {
        if (!isScalarNear(scaledCube->input(i), kCubicCoefficient)) continue;
        Match inner;
        Value* x = matchCube(g, scaledCube->input(1 - i), inner);
        if (!x || sum->input(1 - j) != x) continue;
        m.chain.insert(m.chain.end(), inner.chain.begin(), inner.chain.end());
        m.chain.insert(m.chain.end(), {scaledCube, sum, scale});
        return x;
      }
    }
    return nullptr;
  }
  return nullptr;
}

// 0.5 * x * (1 + gate) from the gate node's output on, in any order.
bool matchTail(const Graph& g, Node* gate, Match& m) {
  m.chain.push_back(gate);
  Node* plusOne = singleUser(g, gate->output(), "Add");
  if (!plusOne || !isScalarNear(otherInput(*plusOne, gate->output()), 1.f)) return false;
  m.chain.push_back(plusOne);
  Node* first = singleUser(g, plusOne->output(), "Mul");
  if (!first) return false;
  m.chain.push_back(first);
  Value* other = otherInput(*first, plusOne->output());
  if (other == m.x || isScalarNear(other, 0.5f)) {  // (x * s) * 0.5 or (0.5 * s) * x
    Node* second = singleUser(g, first->output(), "Mul");
    if (!second) return false;
    Value* last = otherInput(*second, first->output());
    if (!(other == m.x ? isScalarNear(last, 0.5f) : last == m.x)) return false;
    m.chain.push_back(second);
    return true;
  }
  Node* half = singleUseProducer(g, other, "Mul");  // (0.5 * x) * s
  if (!half || !isScalarNear(otherInput(*half, m.x), 0.5f)) return false;
  m.chain.insert(m.chain.end() - 1, half);
  return true;
}

// The GELU chain around `gate` (an Erf or Tanh node), if it is one.
std::optional<Match> matchGelu(const Graph& g, Node* gate) {
  Match m;
  const bool exact = gate->opName() == "Erf";
  m.x = exact ? matchScaledInput(g, gate->input(0), m) : matchTanhArgument(g, gate->input(0), m);
  if (!m.x || m.x->type.dtype != DType::F32 || !matchTail(g, gate, m)) return std::nullopt;
  if (m.chain.back()->output()->type != m.x->type) return std::nullopt;
  return m;
}

}  // namespace

PassDef fuseGeluPass() {
  return {"fuse-gelu", "fuse the exporters' erf and tanh GELU chains into Gelu nodes",
          [](Graph& g, PassStats& stats, const PassOptions&) {
            // Gates first: fusing erases chain nodes, but never another
            // chain's gate (a chain holds one Erf or Tanh).
            std::vector<Node*> gates;
            for (Node* n : g.nodes())
              if (n->opName() == "Erf" || n->opName() == "Tanh") gates.push_back(n);
            bool changed = false;
            for (Node* gate : gates) {
              std::optional<Match> m = matchGelu(g, gate);
              if (!m) continue;
              const bool exact = gate->opName() == "Erf";
              Attributes a;
              a.set("approximate", std::string(exact ? "none" : "tanh"));
              Node* result = m->chain.back();
              Node* gelu = g.addNode("Gelu", g.uniqueName(result->name + "/gelu"), {m->x}, a);
              m->chain.pop_back();
              replaceValue(g, result->output(), gelu->output());
              eraseUnused(g, m->chain);
              stats.add(exact ? "erf gelus fused" : "tanh gelus fused");
              changed = true;
            }
            if (changed) g.topoSort();
          }};
}

}  // namespace kiln
