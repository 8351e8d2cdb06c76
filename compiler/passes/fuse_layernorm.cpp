// fuse-layernorm: torch.onnx's decomposition of nn.LayerNorm at opsets
// below 17,
//   m = ReduceMean(x, axes), d = x - m, v = ReduceMean(Pow(d, 2), axes),
//   y = d / Sqrt(v + eps) [* gamma] [+ beta]
// (Pow(d, 2) also as d * d, the Mul and Add operands in either order),
// becomes LayerNormalization(x, gamma or ones, beta; axis, epsilon). Legal
// because that is LayerNormalization's definition (compiler/ops/
// normalization.cpp), only when both ReduceMeans keep dims and reduce the
// same trailing axes (axis .. rank-1, which is what LayerNormalization
// normalizes), eps is one constant, gamma and beta are constants with one
// value per normalized element (they vary along no other dim), and every
// intermediate but d has a single use (d: the square and the division).
// The fused node's Mean and InvStdDev outputs are left unread.
#include <algorithm>

#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln {

namespace {

// The first normalized axis when `mean` (a ReduceMean keeping dims) reduces
// exactly the trailing axes of its rank-r input; else nullopt.
std::optional<size_t> trailingAxes(const Node& mean) {
  const size_t rank = mean.input(0)->type.shape.rank();
  if (mean.attrs.getInt("keepdims") == 0) return std::nullopt;
  std::vector<size_t> axes;
  for (int64_t a : mean.attrs.getInts("axes")) {
    if (a < -static_cast<int64_t>(rank) || a >= static_cast<int64_t>(rank)) return std::nullopt;
    axes.push_back(normalizeAxis(a, rank));
  }
  std::sort(axes.begin(), axes.end());
  if (axes.empty() || std::adjacent_find(axes.begin(), axes.end()) != axes.end() || axes.back() != rank - 1 ||
      axes.back() - axes.front() + 1 != axes.size())
    return std::nullopt;
  return axes.front();
}

Shape rowShape(const Shape& x, size_t axis) {
  return Shape(std::vector<int64_t>(x.dims.begin() + static_cast<std::ptrdiff_t>(axis), x.dims.end()));
}

// Whether `v` (a Mul/Add operand of the normalized x) can be a
// LayerNormalization parameter: an f32 constant with one value per
// normalized element, i.e. every dim it aligns with x[:axis] is 1 and it has
// as many values as a row (it is then laid out like the row).
bool fitsRow(const Value* v, const Shape& x, size_t axis) {
  if (!v || !v->isConstant() || v->type.dtype != DType::F32) return false;
  const Shape& s = v->type.shape;
  if (s.rank() > x.rank()) return false;
  const size_t offset = x.rank() - s.rank();
  for (size_t d = 0; d < s.rank(); ++d)
    if (offset + d < axis && s[d] != 1) return false;
  return s.numElements() == rowShape(x, axis).numElements();
}

// `values` (one per row element) as a constant of the row's shape.
Value* rowConstant(Graph& g, const std::string& name, const float* values, const Shape& row) {
  Tensor t(DType::F32, row);
  std::copy_n(values, row.numElements(), t.data<float>());
  return g.addConstant(g.uniqueName(name), std::move(t));
}

struct Match {
  Value* x = nullptr;
  size_t axis = 0;
  float epsilon = 0;
  const Value* gamma = nullptr;  // the Mul/Add constants, or null when absent
  const Value* beta = nullptr;
  std::vector<Node*> chain;  // dataflow order; the last one's output is the result
};

// d's readers: the square (Pow(d, 2) or d * d) and the division, nothing else.
std::optional<std::pair<Node*, Node*>> squareAndDivision(const Graph& g, const Value* d) {
  if (g.isGraphOutput(d)) return std::nullopt;
  std::vector<Node*> users = g.users(d);
  if (users.size() != 2) return std::nullopt;
  for (size_t k = 0; k < 2; ++k) {
    Node* square = users[k];
    Node* div = users[1 - k];
    const bool isSquare = (square->opName() == "Pow" && square->input(0) == d && isScalarNear(square->input(1), 2.f)) ||
                          (square->opName() == "Mul" && square->input(0) == d && square->input(1) == d);
    const bool isDivision = div->opName() == "Div" && div->input(0) == d && div->input(1) != d;
    if (isSquare && isDivision) return std::pair{square, div};
  }
  return std::nullopt;
}

std::optional<Match> matchLayerNorm(Graph& g, Node* mean) {
  Match m;
  m.x = mean->input(0);
  if (m.x->type.dtype != DType::F32) return std::nullopt;
  std::optional<size_t> axis = trailingAxes(*mean);
  if (!axis) return std::nullopt;
  m.axis = *axis;
  Node* sub = singleUser(g, mean->output(), "Sub");
  if (!sub || sub->input(0) != m.x || sub->input(1) != mean->output()) return std::nullopt;
  auto readers = squareAndDivision(g, sub->output());
  if (!readers) return std::nullopt;
  auto [square, div] = *readers;
  Node* variance = singleUser(g, square->output(), "ReduceMean");
  if (!variance || trailingAxes(*variance) != axis) return std::nullopt;
  Node* plusEps = singleUser(g, variance->output(), "Add");
  if (!plusEps) return std::nullopt;
  std::optional<float> epsilon = scalarConstant(otherInput(*plusEps, variance->output()));
  if (!epsilon || !(*epsilon >= 0.f)) return std::nullopt;
  m.epsilon = *epsilon;
  Node* sqrt = singleUser(g, plusEps->output(), "Sqrt");
  if (!sqrt || div->input(1) != sqrt->output() || !hasSingleUse(g, sqrt->output())) return std::nullopt;
  m.chain = {mean, sub, square, variance, plusEps, sqrt, div};
  if (div->output()->type != m.x->type) return std::nullopt;
  if (Node* scale = singleUser(g, div->output(), "Mul")) {
    const Value* gamma = otherInput(*scale, div->output());
    if (fitsRow(gamma, m.x->type.shape, m.axis) && scale->output()->type == m.x->type) {
      m.gamma = gamma;
      m.chain.push_back(scale);
    }
  }
  if (Node* shift = singleUser(g, m.chain.back()->output(), "Add")) {
    const Value* beta = otherInput(*shift, m.chain.back()->output());
    if (fitsRow(beta, m.x->type.shape, m.axis) && shift->output()->type == m.x->type) {
      m.beta = beta;
      m.chain.push_back(shift);
    }
  }
  return m;
}

}  // namespace

PassDef fuseLayerNormPass() {
  return {"fuse-layernorm", "fuse torch.onnx's decomposed LayerNorm (ReduceMean ... Sqrt, Div) into LayerNormalization",
          [](Graph& g, PassStats& stats, const PassOptions&) {
            bool changed = false;
            // A fusion erases nodes of the scanned snapshot: the scan then starts over.
            for (bool fused = true; fused;) {
              fused = false;
              for (Node* mean : g.nodes()) {
                if (mean->opName() != "ReduceMean") continue;
                std::optional<Match> m = matchLayerNorm(g, mean);
                if (!m) continue;
                const Shape row = rowShape(m->x->type.shape, m->axis);
                const std::vector<float> ones(static_cast<size_t>(row.numElements()), 1.f);
                Value* scale = rowConstant(g, mean->name + "/layernorm_scale",
                                           m->gamma ? m->gamma->constant.data<float>() : ones.data(), row);
                Value* bias = nullptr;
                if (m->beta)
                  bias = rowConstant(g, mean->name + "/layernorm_bias", m->beta->constant.data<float>(), row);
                Attributes a;
                a.set("axis", static_cast<int64_t>(m->axis));
                a.set("epsilon", m->epsilon);
                Node* result = m->chain.back();
                std::vector<Value*> inputs = {m->x, scale};
                if (bias) inputs.push_back(bias);
                Node* ln = g.addNode("LayerNormalization", g.uniqueName(result->name + "/layernorm"), inputs, a);
                m->chain.pop_back();
                replaceValue(g, result->output(), ln->output());
                eraseUnused(g, m->chain);
                stats.add("layernorms fused");
                fused = changed = true;
                break;  // the snapshot of nodes is stale now
              }
            }
            if (changed) g.topoSort();
          }};
}

}  // namespace kiln
