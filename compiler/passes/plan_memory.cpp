// plan-memory: assigns every intermediate tensor (not a graph input, output
// or constant) a byte offset in one workspace arena, reusing space whose
// tensor is dead. Liveness comes from the topological order: a tensor lives
// from its producer to its last reader. The arena is one batch item's
// (tensors are at most proportional to the batch): the backend gives each
// item its own copy, so items run through the nodes out of step stay apart.
// An elementwise op (same shape out as in) may write over an input that dies
// at that node: each output element only reads the same input element, so
// the overwrite never clobbers a value still to be read.
//
// It also chooses the batch schedule's whole-batch suffix (Graph::
// BatchSuffix). The backend runs a batch through the network a group of
// samples at a time, so a node whose weights do not stay in cache reads
// them from memory once per group, which for the large nets that have such
// nodes is once per sample. Run node by node over a chunk of samples
// instead, such a node reads each part of its weights once per chunk, but
// the chunk's activations no longer stay in cache. Per sample, the suffix
// from node k costs the activations of the nodes from k on (and their
// weights over the chunk) instead of the weights of those nodes: the pass
// takes the k that moves least memory, if it saves more than a cache holds.
// The suffix's values (all that its nodes read or write) are planned in a
// region of their own, one copy per sample of the chunk. Legal because
// every (sample, part) of a node computes the same whatever the order.
//
// This is an analysis: it annotates Value::arenaOffset / inBatchRegion and
// Graph::arenaBytes / batchSuffix.
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

// Weights smaller than this mostly stay in a core's L2 between the samples
// of a batch (1 MiB on Zen 4/5, 2 MiB on Sapphire Rapids; Zen 1's 512 KiB
// the exception), and a suffix that saves less traffic than this is not
// worth its region. Measured on Sapphire Rapids: with 256 KiB, MobileNetV2's
// 0.6 MB 1x1 convs joined the suffix and batch 32 ran 11% slower on 2
// threads; from 1 MiB only its last convs and classifier do.
constexpr int64_t kCachedBytes = 1024 * 1024;
// A chunk's region: at most this many bytes and kMaxChunk samples.
constexpr int64_t kRegionBudget = int64_t{64} << 20, kMaxChunk = 32;

struct Footprint {
  bool valid = true;  // every value in the region has a batch dim
  int64_t arena = 0, region = 0, tensors = 0, inPlace = 0;
};

// When each value dies: the index of its last reader (or of its producer
// when nobody reads it), for the values the plan places.
struct Liveness {
  std::map<const Value*, size_t> lastUse;
  bool planned(const Value* v) const { return v && lastUse.count(v); }
};
Liveness livenessOf(const Graph& g, const std::vector<Node*>& nodes) {
  Liveness l;
  auto placed = [&g](const Value* v) { return v && v->producer && !g.isGraphOutput(v); };
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (Value* out : nodes[i]->outputs)
      if (placed(out)) l.lastUse[out] = i;
    for (Value* in : nodes[i]->inputs)
      if (placed(in)) l.lastUse[in] = i;
  }
  return l;
}

// Assigns every planned value an offset: in the batch region when a node
// from suffixStart on reads or writes it, else in the arena.
Footprint assign(const Graph& g, const std::vector<Node*>& nodes, const Liveness& live, size_t suffixStart) {
  auto planned = [&live](const Value* v) { return live.planned(v); };
  auto lastUse = [&live](const Value* v) { return live.lastUse.at(v); };
  Footprint fp;
  for (Value* v : g.values()) {
    v->arenaOffset = -1;
    v->inBatchRegion = false;
  }
  for (size_t i = suffixStart; i < nodes.size(); ++i) {
    for (Value* v : nodes[i]->inputs)
      if (planned(v)) v->inBatchRegion = true;
    for (Value* v : nodes[i]->outputs)
      if (planned(v)) v->inBatchRegion = true;
  }
  Arena arena, region;
  auto home = [&](const Value* v) -> Arena& { return v->inBatchRegion ? region : arena; };
  for (size_t i = 0; i < nodes.size(); ++i) {
    Node* n = nodes[i];
    std::vector<Value*> dying;
    for (Value* in : n->inputs)
      if (planned(in) && lastUse(in) == i && std::find(dying.begin(), dying.end(), in) == dying.end())
        dying.push_back(in);
    for (Value* out : n->outputs) {
      if (!planned(out)) continue;
      if (out->inBatchRegion && !out->type.shape.hasSymbolicBatch()) fp.valid = false;
      int64_t size = bytesPerSample(out);
      fp.tensors += size;
      Value* reuse = nullptr;
      if (isInPlaceCapable(n->opName()))
        for (Value* in : dying)
          if (bytesPerSample(in) == size && in->type == out->type && in->inBatchRegion == out->inBatchRegion)
            reuse = in;
      if (reuse) {
        out->arenaOffset = reuse->arenaOffset;
        dying.erase(std::find(dying.begin(), dying.end(), reuse));
        ++fp.inPlace;
      } else {
        out->arenaOffset = home(out).allocate(size);
      }
    }
    for (Value* in : dying) home(in).release(in->arenaOffset);
    for (Value* out : n->outputs)  // outputs nobody reads die at once
      if (planned(out) && lastUse(out) == i) home(out).release(out->arenaOffset);
  }
  fp.arena = arena.peak();
  fp.region = region.peak();
  return fp;
}

int64_t chunkFor(int64_t regionBytes) {
  return std::clamp<int64_t>(kRegionBudget / std::max<int64_t>(regionBytes, 1), 1, kMaxChunk);
}

// Bytes a node moves per sample: weights that do not stay in cache, and
// its activations (inputs and outputs with a batch dim).
struct Traffic {
  int64_t weights = 0, activations = 0;
};
Traffic trafficOf(const Node& n) {
  Traffic t;
  for (const Value* v : n.inputs)
    if (v && v->isConstant()) t.weights += v->type.shape.product(0, v->type.shape.rank()) * dtypeSize(v->type.dtype);
  if (t.weights < kCachedBytes) t.weights = 0;
  for (const auto* values : {&n.inputs, &n.outputs})
    for (const Value* v : *values)
      if (v && v->type.shape.hasSymbolicBatch()) t.activations += bytesPerSample(v);
  return t;
}

// The suffix start that moves least memory per sample (nodes.size(): none).
// Only where every node has a batch dim: the backend groups samples only then.
size_t chooseSuffix(const Graph& g, const std::vector<Node*>& nodes, const Liveness& live) {
  const size_t none = nodes.size();
  for (const Node* n : nodes)
    if (std::none_of(n->outputs.begin(), n->outputs.end(),
                     [](const Value* v) { return v->type.shape.hasSymbolicBatch(); }))
      return none;
  std::vector<Traffic> traffic;
  int64_t grouped = 0;  // every node's weights read once per sample
  for (const Node* n : nodes) {
    traffic.push_back(trafficOf(*n));
    grouped += traffic.back().weights;
  }
  size_t best = none;
  double bestCost = static_cast<double>(grouped - kCachedBytes);
  int64_t prefixWeights = grouped, suffixWeights = 0, suffixActivations = 0;
  for (size_t k = nodes.size(); k-- > 0;) {
    prefixWeights -= traffic[k].weights;
    suffixWeights += traffic[k].weights;
    suffixActivations += traffic[k].activations;
    if (suffixWeights == 0) continue;
    const Footprint fp = assign(g, nodes, live, k);
    if (!fp.valid) continue;
    const double cost = static_cast<double>(prefixWeights + suffixActivations) +
                        static_cast<double>(suffixWeights) / static_cast<double>(chunkFor(fp.region));
    if (cost < bestCost) {
      bestCost = cost;
      best = k;
    }
  }
  return best;
}

}  // namespace

PassDef planMemoryPass() {
  return {"plan-memory", "assign intermediates to offsets in one workspace arena and choose the whole-batch suffix",
          [](Graph& g, PassStats& stats, const PassOptions&) {
            std::vector<Node*> nodes = g.nodes();
            const Liveness live = livenessOf(g, nodes);
            const size_t suffix = chooseSuffix(g, nodes, live);
            const Footprint fp = assign(g, nodes, live, suffix);
            g.arenaBytes = fp.arena;
            g.batchSuffix = {};
            if (suffix < nodes.size())
              g.batchSuffix = {static_cast<int64_t>(suffix), chunkFor(fp.region), fp.region};
            stats.add("arena bytes per sample", fp.arena);
            stats.add("tensor bytes per sample", fp.tensors);
            if (fp.inPlace > 0) stats.add("in-place tensors", fp.inPlace);
            if (suffix < nodes.size()) {
              stats.add("whole-batch nodes", static_cast<int64_t>(nodes.size() - suffix));
              stats.add("batch region bytes per sample", fp.region);
            }
          }};
}

}  // namespace kiln
