// cse: merges nodes that compute the same op with the same attributes on the
// same inputs, and constants with identical type and bytes. Legal because IR
// ops are pure and deterministic: equal inputs give equal outputs.
#include <cstring>
#include <map>
#include <tuple>

#include "compiler/passes/passes.h"

namespace kiln {

namespace {

bool sameConstant(const Value* a, const Value* b) {
  return a->type == b->type && std::memcmp(a->constant.rawData(), b->constant.rawData(), a->constant.byteSize()) == 0;
}

}  // namespace

PassDef csePass() {
  return {"cse", "merge duplicate constants and nodes computing the same thing",
          [](Graph& g, PassStats& stats, const PassOptions&) {
            // Constants first, so nodes reading equal constants become equal.
            std::vector<Value*> constants;
            for (Value* v : g.values()) {
              if (!v->isConstant() || g.isGraphOutput(v)) continue;
              Value* same = nullptr;
              for (Value* c : constants)
                if (sameConstant(c, v)) same = c;
              if (same) {
                g.replaceAllUsesWith(v, same);
                stats.add("constants merged");
              } else {
                constants.push_back(v);
              }
            }
            std::vector<Node*> seen;
            for (Node* n : g.nodes()) {
              Node* same = nullptr;
              for (Node* s : seen)
                if (s->op == n->op && s->inputs == n->inputs && s->attrs == n->attrs) same = s;
              if (!same) {
                seen.push_back(n);
                continue;
              }
              bool outputsFree = true;
              for (Value* out : n->outputs) outputsFree = outputsFree && !g.isGraphOutput(out);
              if (!outputsFree) continue;
              for (size_t i = 0; i < n->outputs.size(); ++i) g.replaceAllUsesWith(n->outputs[i], same->outputs[i]);
              g.eraseNode(n);
              stats.add("nodes merged");
            }
            g.pruneValues();
          }};
}

}  // namespace kiln
