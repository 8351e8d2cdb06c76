// eliminate-identity: removes nodes that return their input unchanged at
// inference: Dropout, Identity, Reshape/Flatten to the input's own shape,
// Transpose with the identity permutation, Pad with all-zero pads. Legal
// because each of these copies its input bytes in the same order and shape.
#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln {

namespace {

bool isIdentity(const Node& n) {
  const std::string& op = n.opName();
  if (op == "Dropout" || op == "Identity") return true;
  const TensorType& in = n.input(0)->type;
  const TensorType& out = n.output()->type;
  if (op == "Reshape" || op == "Flatten") return in == out;
  if (op == "Transpose") {
    const auto& perm = n.attrs.getInts("perm");
    for (size_t i = 0; i < perm.size(); ++i)
      if (perm[i] != static_cast<int64_t>(i)) return false;
    return true;
  }
  if (op == "Pad") {
    for (int64_t p : n.attrs.getInts("pads"))
      if (p != 0) return false;
    return true;
  }
  return false;
}

}  // namespace

PassDef eliminateIdentityPass() {
  return {"eliminate-identity", "remove Dropout, Identity and no-op Reshape/Flatten/Transpose/Pad",
          [](Graph& g, PassStats& stats, const PassOptions&) {
            for (Node* n : g.nodes())
              if (isIdentity(*n) && replaceValue(g, n->output(), n->input(0))) stats.add("nodes removed");
          }};
}

}  // namespace kiln
