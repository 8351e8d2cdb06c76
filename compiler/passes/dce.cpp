// dce: removes nodes none of whose outputs reach a graph output, then unused
// constants. Legal because every IR op is pure (no side effects), so a value
// nobody reads cannot change the result.
#include <set>

#include "compiler/passes/passes.h"

namespace kiln {

PassDef dcePass() {
  return {"dce", "remove nodes and constants that no graph output depends on",
          [](Graph& g, PassStats& stats, const PassOptions&) {
            std::set<const Value*> live(g.outputs().begin(), g.outputs().end());
            std::vector<Node*> dead;
            std::vector<Node*> nodes = g.nodes();
            // Reverse topological order: a node's users are decided before it,
            // and dead users are erased before their producers.
            for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
              Node* n = *it;
              bool used = false;
              for (Value* out : n->outputs) used = used || live.count(out);
              if (used)
                live.insert(n->inputs.begin(), n->inputs.end());
              else
                dead.push_back(n);
            }
            for (Node* n : dead) g.eraseNode(n);
            stats.add("nodes removed", static_cast<int64_t>(dead.size()));
            size_t before = g.values().size();
            g.pruneValues();
            stats.add("values pruned", static_cast<int64_t>(before - g.values().size()));
          }};
}

}  // namespace kiln
