// plan-memory: assigns every intermediate tensor (not a graph input, output
// or constant) a byte offset in one workspace arena, reusing space whose
// tensor is dead. Liveness comes from the topological order: a tensor lives
// from its producer to its last reader. The arena is one batch item's
// (tensors are at most proportional to the batch): the backend gives each
// item its own copy, so items run through the nodes out of step stay apart.
// An elementwise op (same shape out as in) may write over an input that dies
// at that node: each output element only reads the same input element, so
// the overwrite never clobbers a value still to be read.
// This is an analysis: it annotates Value::arenaOffset and Graph::arenaBytes.
#include <algorithm>
#include <map>

#include "compiler/passes/passes.h"

namespace kiln {

namespace {

constexpr int64_t kAlignment = 64;

bool isInPlaceCapable(const std::string& op) {
  static const char* ops[] = {"Relu", "LeakyRelu", "Elu",        "Selu", "Sigmoid", "Tanh",     "HardSigmoid",
                              "HardSwish", "Softplus", "Clip", "PRelu", "Dropout", "Identity", "ScaleShift",
                              "Add",  "Sub",       "Mul",      "Div",  "Reshape", "Flatten", "Squeeze", "Unsqueeze"};
  return std::find(std::begin(ops), std::end(ops), op) != std::end(ops);
}

int64_t bytesPerSample(const Value* v) {
  const Shape s = v->type.storageShape();  // NCHWc pads channels to whole blocks
  int64_t elems = s.product(s.hasSymbolicBatch() ? 1 : 0, s.rank());
  int64_t bytes = elems * static_cast<int64_t>(dtypeSize(v->type.dtype));
  return (bytes + kAlignment - 1) / kAlignment * kAlignment;
}

// First-fit allocator over [0, inf): live blocks ordered by offset.
class Arena {
 public:
  int64_t allocate(int64_t size) {
    int64_t offset = 0;
    for (const auto& [start, length] : blocks_) {
      if (start - offset >= size) break;
      offset = std::max(offset, start + length);
    }
    blocks_.emplace(offset, size);
    peak_ = std::max(peak_, offset + size);
    return offset;
  }
  void release(int64_t offset) { blocks_.erase(blocks_.find(offset)); }
  int64_t peak() const { return peak_; }

 private:
  std::multimap<int64_t, int64_t> blocks_;
  int64_t peak_ = 0;
};

}  // namespace

PassDef planMemoryPass() {
  return {"plan-memory", "assign intermediates to offsets in one workspace arena",
          [](Graph& g, PassStats& stats, const PassOptions&) {
            std::vector<Node*> nodes = g.nodes();
            auto planned = [&g](const Value* v) {
              return v && v->producer && !g.isGraphOutput(v);
            };
            std::map<const Value*, size_t> lastUse;
            for (size_t i = 0; i < nodes.size(); ++i) {
              for (Value* out : nodes[i]->outputs) lastUse[out] = i;
              for (Value* in : nodes[i]->inputs)
                if (planned(in)) lastUse[in] = i;
            }
            for (Value* v : g.values()) v->arenaOffset = -1;
            Arena arena;
            int64_t total = 0;
            for (size_t i = 0; i < nodes.size(); ++i) {
              Node* n = nodes[i];
              std::vector<Value*> dying;
              for (Value* in : n->inputs)
                if (planned(in) && lastUse[in] == i && std::find(dying.begin(), dying.end(), in) == dying.end())
                  dying.push_back(in);
              for (Value* out : n->outputs) {
                if (!planned(out)) continue;
                int64_t size = bytesPerSample(out);
                total += size;
                Value* reuse = nullptr;
                if (isInPlaceCapable(n->opName()))
                  for (Value* in : dying)
                    if (bytesPerSample(in) == size && in->type == out->type) reuse = in;
                if (reuse) {
                  out->arenaOffset = reuse->arenaOffset;
                  dying.erase(std::find(dying.begin(), dying.end(), reuse));
                  stats.add("in-place tensors");
                } else {
                  out->arenaOffset = arena.allocate(size);
                }
              }
              for (Value* in : dying) arena.release(in->arenaOffset);
              for (Value* out : n->outputs)  // outputs nobody reads die at once
                if (planned(out) && lastUse[out] == i && g.users(out).empty()) arena.release(out->arenaOffset);
            }
            g.arenaBytes = arena.peak();
            stats.add("arena bytes per sample", arena.peak());
            stats.add("tensor bytes per sample", total);
          }};
}

}  // namespace kiln
