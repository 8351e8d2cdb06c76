// fold-batchnorm: an inference BatchNormalization computes y = s*x + t per
// channel with s = gamma / sqrt(var + eps) and t = beta - s*mean. When its
// input comes from a Conv or ConvTranspose (any group count, with or without
// bias), a Gemm or a MatMul(+Add) with constant weights, and nothing else
// reads that input, the affine map folds into the producer: weights of output
// channel c scale by s[c] and the bias becomes s*(b - mean) + beta
// (ConvTranspose's W is [C, M/group, kernel...]: output channel g*M/group + j
// is W's dim 1 index j in the rows of group g). That is exact algebra (up to
// float rounding), so the BN node disappears. A BN that cannot fold becomes a
// single per-channel ScaleShift(x, s, t).
#include <cmath>

#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln {

namespace {

struct ChannelAffine {
  std::vector<float> scale, shift;  // y = scale*x + shift, per channel
};

std::optional<ChannelAffine> affineOf(const Node& bn) {
  for (size_t i = 1; i < 5; ++i)
    if (!bn.input(i)->isConstant()) return std::nullopt;
  const float* gamma = bn.input(1)->constant.data<float>();
  const float* beta = bn.input(2)->constant.data<float>();
  const float* mean = bn.input(3)->constant.data<float>();
  const float* var = bn.input(4)->constant.data<float>();
  float eps = bn.attrs.getFloat("epsilon");
  size_t channels = static_cast<size_t>(bn.input(1)->constant.numElements());
  ChannelAffine a;
  for (size_t c = 0; c < channels; ++c) {
    float s = gamma[c] / std::sqrt(var[c] + eps);
    a.scale.push_back(s);
    a.shift.push_back(beta[c] - s * mean[c]);
  }
  return a;
}

// New bias: s*b + t (b = 0 when absent).
Tensor foldedBias(const ChannelAffine& a, const Value* bias) {
  std::vector<float> out(a.scale.size());
  for (size_t c = 0; c < out.size(); ++c) {
    float b = bias ? bias->constant.data<float>()[c] : 0.f;
    out[c] = a.scale[c] * b + a.shift[c];
  }
  return Tensor::fromVector<float>(Shape{static_cast<int64_t>(out.size())}, out);
}

// Scales the weights of output channel c by s[c], channels along `axis`.
Tensor scaleChannels(const Tensor& w, const std::vector<float>& s, size_t axis) {
  Tensor out = w.clone();
  const Shape& shape = w.shape();
  int64_t inner = shape.product(axis + 1, shape.rank());
  int64_t channels = shape[axis];
  int64_t outer = shape.product(0, axis);
  float* p = out.data<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t i = 0; i < inner; ++i) p[(o * channels + c) * inner + i] *= s[c];
  return out;
}

// ConvTranspose's weights: row c of W belongs to group c / (C/group), whose
// output channels are W's dim 1.
Tensor scaleTransposedChannels(const Tensor& w, const std::vector<float>& s, int64_t group) {
  Tensor out = w.clone();
  const Shape& shape = w.shape();
  const int64_t channels = shape[0], groupOutChannels = shape[1], inner = shape.product(2, shape.rank());
  const int64_t groupChannels = channels / group;
  float* p = out.data<float>();
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t j = 0; j < groupOutChannels; ++j)
      for (int64_t i = 0; i < inner; ++i)
        p[(c * groupOutChannels + j) * inner + i] *= s[static_cast<size_t>(c / groupChannels * groupOutChannels + j)];
  return out;
}

bool isConstantF32(const Value* v) { return v && v->isConstant() && v->type.dtype == DType::F32; }

// Bias of a Gemm as one value per output column, if C is absent or constant
// per column; nullopt when C varies along rows.
std::optional<std::vector<float>> gemmColumnBias(const Node& gemm, size_t columns) {
  std::vector<float> bias(columns, 0.f);
  const Value* c = gemm.input(2);
  if (!c) return bias;
  if (!isConstantF32(c)) return std::nullopt;
  const Shape& s = c->type.shape;
  int64_t n = s.numElements();
  if (s.rank() == 2 && s[0] != 1) return std::nullopt;
  float beta = gemm.attrs.getFloat("beta");
  for (size_t j = 0; j < columns; ++j) bias[j] = beta * c->constant.data<float>()[n == 1 ? 0 : j];
  return bias;
}

bool foldIntoConv(Graph& g, Node& conv, const ChannelAffine& a) {
  if (!isConstantF32(conv.input(1)) || (conv.input(2) && !isConstantF32(conv.input(2)))) return false;
  const Tensor& weights = conv.input(1)->constant;
  Value* w = g.addConstant(g.uniqueName(conv.input(1)->name + "_bnfold"),
                           conv.opName() == "ConvTranspose"
                               ? scaleTransposedChannels(weights, a.scale, conv.attrs.getInt("group"))
                               : scaleChannels(weights, a.scale, 0));
  Value* b = g.addConstant(g.uniqueName(conv.name + "_bias_bnfold"), foldedBias(a, conv.input(2)));
  conv.inputs.resize(3);
  conv.inputs[1] = w;
  conv.inputs[2] = b;
  return true;
}

bool foldIntoGemm(Graph& g, Node& gemm, const ChannelAffine& a) {
  if (!isConstantF32(gemm.input(1))) return false;
  auto bias = gemmColumnBias(gemm, a.scale.size());
  if (!bias) return false;
  bool transB = gemm.attrs.getInt("transB") != 0;
  Tensor w = scaleChannels(gemm.input(1)->constant, a.scale, transB ? 0 : 1);
  std::vector<float> c(a.scale.size());
  for (size_t j = 0; j < c.size(); ++j) c[j] = a.scale[j] * (*bias)[j] + a.shift[j];
  gemm.inputs.resize(3);
  gemm.inputs[1] = g.addConstant(g.uniqueName(gemm.input(1)->name + "_bnfold"), std::move(w));
  gemm.inputs[2] = g.addConstant(g.uniqueName(gemm.name + "_bias_bnfold"),
                                 Tensor::fromVector<float>(Shape{static_cast<int64_t>(c.size())}, c));
  gemm.attrs.set("beta", 1.f);
  return true;
}

// MatMul(x, W[K,M]) optionally followed by Add(bias[M]); `add` may be null.
// Returns the value the BN output is replaced with, or null.
Value* foldIntoMatMul(Graph& g, Node& matmul, Node* add, const ChannelAffine& a) {
  const Value* w = matmul.input(1);
  if (!isConstantF32(w) || w->type.shape.rank() != 2) return nullptr;
  const Value* bias = nullptr;
  if (add) {
    bias = add->input(0) == matmul.output() ? add->input(1) : add->input(0);
    if (!isConstantF32(bias) || bias->type.shape.numElements() != static_cast<int64_t>(a.scale.size()) ||
        bias->type.shape.rank() != 1)
      return nullptr;
  }
  matmul.inputs[1] = g.addConstant(g.uniqueName(w->name + "_bnfold"), scaleChannels(w->constant, a.scale, 1));
  Value* newBias = g.addConstant(g.uniqueName(matmul.name + "_bias_bnfold"), foldedBias(a, bias));
  if (add) {
    add->inputs = {matmul.output(), newBias};
    return add->output();
  }
  Node* created = g.addNode("Add", g.uniqueName(matmul.name + "_bias"), {matmul.output(), newBias});
  return created->output();
}

bool tryFold(Graph& g, Node& bn, const ChannelAffine& a) {
  Value* x = bn.input(0);
  Node* producer = x->producer;
  if (!producer || !hasSingleUse(g, x)) return false;
  const std::string& op = producer->opName();
  if (op == "Conv" || op == "ConvTranspose") return foldIntoConv(g, *producer, a) && replaceValue(g, bn.output(), x);
  if (x->type.shape.rank() != 2) return false;
  if (op == "Gemm") return foldIntoGemm(g, *producer, a) && replaceValue(g, bn.output(), x);
  if (op == "MatMul") {
    Value* y = foldIntoMatMul(g, *producer, nullptr, a);
    return y && replaceValue(g, bn.output(), y);
  }
  if (op == "Add") {
    for (size_t i = 0; i < 2; ++i) {
      Value* side = producer->input(i);
      if (side->producer && side->producer->opName() == "MatMul" && hasSingleUse(g, side)) {
        Value* y = foldIntoMatMul(g, *side->producer, producer, a);
        return y && replaceValue(g, bn.output(), y);
      }
    }
  }
  return false;
}

}  // namespace

PassDef foldBatchNormPass() {
  return {"fold-batchnorm", "fold inference BatchNormalization into Conv/ConvTranspose/Gemm/MatMul, else into a ScaleShift",
          [](Graph& g, PassStats& stats, const PassOptions&) {
            for (Node* bn : g.nodes()) {
              if (bn->opName() != "BatchNormalization") continue;
              auto affine = affineOf(*bn);
              if (!affine) continue;
              if (tryFold(g, *bn, *affine)) {
                stats.add("BN folded");
                continue;
              }
              int64_t channels = static_cast<int64_t>(affine->scale.size());
              Value* s = g.addConstant(g.uniqueName(bn->name + "_scale"),
                                       Tensor::fromVector<float>(Shape{channels}, affine->scale));
              Value* t = g.addConstant(g.uniqueName(bn->name + "_shift"),
                                       Tensor::fromVector<float>(Shape{channels}, affine->shift));
              Node* ss = g.addNode("ScaleShift", bn->name, {bn->input(0), s, t});
              Value* out = bn->output();
              g.replaceAllUsesWith(out, ss->output());
              std::swap(out->name, ss->output()->name);
              g.eraseNode(bn);
              stats.add("BN to ScaleShift");
            }
            g.topoSort();
            g.pruneValues();
          }};
}

}  // namespace kiln
