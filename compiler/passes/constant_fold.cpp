// constant-fold: evaluates every node whose inputs are all constants with the
// reference interpreter and replaces its outputs by the resulting constants.
// Legal because IR ops are pure and the interpreter is the semantic oracle;
// outputs above a size cap stay computed at run time so that folding cannot
// blow up the artifact (e.g. a broadcast of a scalar to a huge tensor).
#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln {

namespace {

constexpr int64_t kMaxFoldedBytes = int64_t{64} << 20;

bool foldable(const Graph& g, const Node& n) {
  for (Value* in : n.inputs)
    if (in && !in->isConstant()) return false;
  for (Value* out : n.outputs) {
    if (!out->type.shape.isStatic() || g.isGraphOutput(out)) return false;
    if (out->type.layout != Layout::Plain) return false;  // constants are plain; a laid-out value stays computed
    if (out->type.shape.numElements() * static_cast<int64_t>(dtypeSize(out->type.dtype)) > kMaxFoldedBytes)
      return false;
  }
  return true;
}

}  // namespace

PassDef constantFoldPass() {
  return {"constant-fold", "evaluate nodes whose inputs are all constant",
          [](Graph& g, PassStats& stats, const PassOptions&) {
            for (Node* n : g.nodes()) {
              if (!foldable(g, *n)) continue;
              for (Value* out : n->outputs)
                stats.add("bytes folded", out->type.shape.numElements() * static_cast<int64_t>(dtypeSize(out->type.dtype)));
              foldNode(g, n);
              stats.add("nodes folded");
            }
            g.pruneValues();
          }};
}

}  // namespace kiln
