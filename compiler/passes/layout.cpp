// layout: lays out the activations of convolutional regions in the blocked
// channel layout NCHWc (c = PassOptions::channelBlock, the target's f32
// vector width; 0 leaves the graph alone). A region is a maximal connected
// set of nodes that have an NCHWc implementation in the backend -- Conv
// (dense, grouped in whole blocks, or depthwise; constant weights), dense ConvTranspose (constant
// weights; with padded output channels only when its fused activation maps
// 0 to 0, so pad lanes stay zero), MaxPool/AveragePool, the global
// pools, ScaleShift, unary activations, same-shape Add/Sub/Mul/Max/Min,
// Resizes of H and W only (N and C at scale 1: every output pixel blends
// whole channel blocks) and channel Concats whose inputs but the last hold
// whole blocks, Winograd's transforms of whole blocks -- and holds at least
// one Conv or ConvTranspose (a region of pools and activations alone would
// only pay for its reorders). The values produced inside a region get
// Layout::NCHWc; a Reorder node converts at the region's edges only: where a
// region reads a value from outside (graph inputs, plain nodes) and where a
// value leaves it (graph outputs, Flatten/Gemm/Reshape/Concat and any other
// op without an NCHWc form). Graph outputs keep their names and plain layout.
//
// Channels that are not a multiple of c are padded to whole blocks; pad
// lanes hold zeros, and every op of a region keeps them zero: convs read
// zero-padded packed weights and bias, pools and resizes of zeros are zero
// (a Resize that extrapolates a constant stays plain then), and an
// activation is admitted on a padded value only when it maps 0 to 0
// (evaluated with its reference kernel). A Conv whose input channels would
// be mostly padding (e.g. an RGB stem) reads its input plain and writes
// NCHWc (out_block): a region starts at its output, with no Reorder. Regions
// are entered at Convs only: a pool that reads a plain value stays plain, so
// its smaller output is what gets reordered.
//
// Legal because layouts are storage, not values: a Reorder is the identity
// on the logical NCHW tensor, so every node computes what it computed before.
#include <map>
#include <numeric>

#include "compiler/interp/interpreter.h"
#include "compiler/ops/epilogue.h"
#include "compiler/ops/resize.h"
#include "compiler/ops/winograd.h"
#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln {

namespace {

int64_t padded(int64_t channels, int64_t block) { return (channels + block - 1) / block * block; }

bool isRank4F32(const Value* v) { return v && v->type.dtype == DType::F32 && v->type.shape.rank() == 4; }

// At most half a block of padding per block of real channels.
bool fewPadLanes(int64_t channels, int64_t block) { return 2 * padded(channels, block) <= 3 * channels; }

bool mapsZeroToZero(const Node& n) {
  Tensor zero(DType::F32, Shape{1, 1, 1, 1});
  try {
    return evaluateNode(n, {&zero}).at(0).data<float>()[0] == 0.f;
  } catch (const Error&) {
    return false;
  }
}

// A dense Conv whose input channels would be mostly padding but whose
// outputs fill blocks (an RGB stem): it reads its input plain and writes
// NCHWc (Conv's out_block), so the region starts at its output.
bool isEntryConv(const Node& n, int64_t block) {
  if (n.opName() != "Conv" || n.input(3) || n.attrs.getInt("group") != 1) return false;
  const Value *x = n.input(0), *w = n.input(1), *bias = n.input(2);
  if (!isRank4F32(x) || x->isConstant() || x->type.layout != Layout::Plain || !isRank4F32(n.output())) return false;
  if (!w->isConstant() || (bias && !bias->isConstant())) return false;
  return !fewPadLanes(x->type.shape[1], block) && fewPadLanes(w->type.shape[0], block);
}

// Conv, ConvTranspose and a Winograd conv's input transform: the ops
// regions start at and need.
bool isConvolution(const Node& n) {
  return n.opName() == "Conv" || n.opName() == "ConvTranspose" || n.opName() == "WinogradInput";
}

bool hasNCHWcForm(const Node& n, int64_t block) {
  if (isEntryConv(n, block)) return true;
  const std::string& op = n.opName();
  Value* x = n.input(0);
  if (!isRank4F32(x) || x->isConstant() || !isRank4F32(n.output())) return false;
  const int64_t channels = x->type.shape[1];
  if (op == "Conv") {
    const Value* w = n.input(1);
    const Value* bias = n.input(2);
    if (!w->isConstant() || (bias && !bias->isConstant())) return false;
    const int64_t group = n.attrs.getInt("group");
    const int64_t outChannels = w->type.shape[0];
    const bool depthwise = group == channels && group == outChannels && group > 1;
    // Dense groups of whole blocks (Winograd's products): a block never
    // straddles two groups, so no pad lanes sit between them.
    if (group != 1 && !depthwise)
      return channels % group == 0 && outChannels % group == 0 && (channels / group) % block == 0 &&
             (outChannels / group) % block == 0;
    return fewPadLanes(channels, block) && fewPadLanes(outChannels, block);
  }
  // Winograd's transforms address channel p*C + c as block (p*C + c) / c:
  // only whole blocks per position keep a position's channels together.
  if (op == "WinogradInput") return channels % block == 0;
  if (op == "WinogradOutput")
    return (channels / winograd::kPositions) % block == 0 && (!n.input(1) || n.input(1)->isConstant());
  if (op == "ConvTranspose") {
    const Value* w = n.input(1);
    const Value* bias = n.input(2);
    if (!w->isConstant() || (bias && !bias->isConstant()) || n.attrs.getInt("group") != 1) return false;
    const int64_t outChannels = n.output()->type.shape[1];
    float zero = 0.f;
    Epilogue(n.attrs).apply(&zero, 1);
    return fewPadLanes(channels, block) && fewPadLanes(outChannels, block) && (outChannels % block == 0 || zero == 0.f);
  }
  if (op == "MaxPool" || op == "AveragePool" || op == "GlobalAveragePool" || op == "GlobalMaxPool") return true;
  if (op == "Resize") {  // of H and W only; an extrapolated constant would fill the pad lanes
    const std::vector<ResizeAxis> axes =
        resizeAxes(n.attrs, x->type.shape.withBatch(1), n.output()->type.shape.withBatch(1));
    const bool keepsNC = axes[0].identity && axes[1].identity;
    const bool zeroPadLanes = channels % block == 0 || n.attrs.getFloat("extrapolation_value") == 0.f ||
                              n.attrs.getString("coordinate_transformation_mode") != "tf_crop_and_resize";
    return keepsNC && zeroPadLanes;
  }
  if (op == "ScaleShift") return n.input(1)->isConstant() && n.input(2)->isConstant();
  if (op == "Concat") {  // along the channels, whole blocks but in the last input: blocks follow each other
    if (normalizeAxis(n.attrs.getInt("axis"), 4) != 1) return false;
    for (size_t i = 0; i < n.inputs.size(); ++i)
      if (!isRank4F32(n.input(i)) || n.input(i)->isConstant() ||
          (i + 1 < n.inputs.size() && n.input(i)->type.shape[1] % block != 0))
        return false;
    return true;
  }
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Max" || op == "Min")
    return n.inputs.size() == 2 && n.input(1) && !n.input(1)->isConstant() &&
           n.input(1)->type.shape == x->type.shape;
  static const char* unary[] = {"Relu", "LeakyRelu", "Elu",   "Selu",       "Sigmoid", "Tanh",  "HardSigmoid",
                                "HardSwish", "Softplus", "Gelu", "Clip", "Abs", "Neg", "Sqrt", "Erf",
                                "Exp", "Reciprocal", "Floor", "Ceil", "Round", "Sign"};
  // Clip's run-time bounds are plain scalars, and whether it maps 0 to 0
  // depends on their values: such a Clip stays plain.
  if (readsOnlyFirstInput(n) && std::find(std::begin(unary), std::end(unary), op) != std::end(unary))
    return channels % block == 0 || mapsZeroToZero(n);
  return false;
}

// Union-find over node indices.
struct Components {
  std::vector<size_t> parent;
  explicit Components(size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), size_t{0}); }
  size_t find(size_t i) { return parent[i] == i ? i : parent[i] = find(parent[i]); }
  void join(size_t a, size_t b) { parent[find(a)] = find(b); }
};

}  // namespace

PassDef layoutPass() {
  return {"layout", "lay out convolutional regions in blocked NCHWc, with Reorder nodes at their edges",
          [](Graph& g, PassStats& stats, const PassOptions& options) {
            const int64_t block = options.channelBlock;
            if (block <= 1) return;
            std::vector<Node*> nodes = g.nodes();
            for (const Node* n : nodes)
              if (n->opName() == "Reorder") return;  // laid out already
            std::map<const Node*, size_t> index;
            for (size_t i = 0; i < nodes.size(); ++i) index[nodes[i]] = i;
            std::vector<bool> blocked(nodes.size());
            for (size_t i = 0; i < nodes.size(); ++i) blocked[i] = hasNCHWcForm(*nodes[i], block);
            // A region starts at its Convs: a pool or elementwise node that
            // reads only values from outside stays plain (after a pool the
            // Reorder moves fewer bytes; elsewhere it moves as many).
            for (bool peeled = true; peeled;) {
              peeled = false;
              for (size_t i = 0; i < nodes.size(); ++i) {
                if (!blocked[i] || isConvolution(*nodes[i])) continue;
                bool readsRegion = false;
                for (const Value* in : nodes[i]->inputs)
                  readsRegion = readsRegion || (in && in->producer && blocked[index.at(in->producer)]);
                if (!readsRegion) blocked[i] = false, peeled = true;
              }
            }
            // Regions: connected through values passed between candidates.
            Components regions(nodes.size());
            std::vector<bool> entry(nodes.size());
            for (size_t i = 0; i < nodes.size(); ++i) entry[i] = blocked[i] && isEntryConv(*nodes[i], block);
            // The values a node reads in NCHWc: all but an entry conv's input.
            auto readsBlocked = [&](size_t i, size_t input) { return !(entry[i] && input == 0); };
            for (size_t i = 0; i < nodes.size(); ++i)
              if (blocked[i])
                for (size_t k = 0; k < nodes[i]->inputs.size(); ++k) {
                  const Value* in = nodes[i]->inputs[k];
                  if (readsBlocked(i, k) && in && in->producer && blocked[index.at(in->producer)])
                    regions.join(i, index.at(in->producer));
                }
            std::vector<bool> hasConv(nodes.size());
            for (size_t i = 0; i < nodes.size(); ++i)
              if (blocked[i] && isConvolution(*nodes[i]) && !entry[i]) hasConv[regions.find(i)] = true;
            for (size_t i = 0; i < nodes.size(); ++i) blocked[i] = blocked[i] && hasConv[regions.find(i)];
            auto inRegion = [&](const Node* n) { return n && blocked[index.at(n)]; };

            // Values produced inside regions become NCHWc.
            std::vector<Value*> laidOut;
            for (size_t i = 0; i < nodes.size(); ++i)
              if (blocked[i]) {
                stats.add("nodes laid out");
                if (entry[i]) {
                  nodes[i]->attrs.set("out_block", block);
                  stats.add("convs entering NCHWc");
                }
                for (Value* out : nodes[i]->outputs) {
                  out->type.layout = Layout::NCHWc;
                  out->type.block = static_cast<int>(block);
                  laidOut.push_back(out);
                }
              }
            // Entries: one plain -> NCHWc Reorder per value read from outside.
            std::map<Value*, Value*> entries;
            for (size_t i = 0; i < nodes.size(); ++i) {
              if (!blocked[i]) continue;
              for (size_t k = 0; k < nodes[i]->inputs.size(); ++k) {
                Value*& in = nodes[i]->inputs[k];
                if (!in || in->isConstant() || !readsBlocked(i, k) || inRegion(in->producer)) continue;
                auto it = entries.find(in);
                if (it == entries.end()) {
                  Attributes a;
                  a.set("block", block);
                  Node* r = g.addNode("Reorder", g.uniqueName(in->name + "/to_nchwc"), {in}, a,
                                      {g.uniqueName(in->name + "_nchw" + std::to_string(block) + "c")});
                  it = entries.emplace(in, r->output()).first;
                  stats.add("reorders inserted");
                }
                in = it->second;
              }
            }
            // Exits: one NCHWc -> plain Reorder per value read outside.
            for (Value* v : laidOut) {
              std::vector<Node*> outside;  // readers of v in plain layout
              for (Node* user : g.users(v)) {
                const bool entryInput = inRegion(user) && entry[index.at(user)] && user->input(0) == v;
                if ((!inRegion(user) || entryInput) && user->opName() != "Reorder") outside.push_back(user);
              }
              const bool isOutput = g.isGraphOutput(v);
              if (outside.empty() && !isOutput) continue;
              Attributes a;
              a.set("block", int64_t{0});
              Node* r = g.addNode("Reorder", g.uniqueName(v->name + "/to_nchw"), {v}, a,
                                  {g.uniqueName(v->name + "_nchw")});
              Value* plain = r->output();
              stats.add("reorders inserted");
              for (Node* user : outside)
                for (size_t k = 0; k < user->inputs.size(); ++k)
                  if (user->inputs[k] == v && (!inRegion(user) || !readsBlocked(index.at(user), k)))
                    user->inputs[k] = plain;
              if (isOutput) {
                // The graph output keeps its name and its plain layout.
                g.replaceAllUsesWith(v, plain);  // graph outputs (and, undone below, node inputs)
                for (Node* user : g.users(plain))
                  for (size_t k = 0; k < user->inputs.size(); ++k)
                    if (user->inputs[k] == plain &&
                        (user == r || (inRegion(user) && readsBlocked(index.at(user), k))))
                      user->inputs[k] = v;
                std::swap(v->name, plain->name);
              }
            }
            g.topoSort();
          }};
}

}  // namespace kiln
