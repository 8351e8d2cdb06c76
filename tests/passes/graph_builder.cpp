#include "graph_builder.h"

#include <algorithm>
#include <cmath>

namespace kiln::testing {

Value* GraphBuilder::constant(Shape shape, float lo, float hi) {
  Tensor t(DType::F32, shape);
  std::uniform_real_distribution<float> dist(lo, hi);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numElements(); ++i) p[i] = dist(rng_);
  return graph.addConstant(name("w"), std::move(t));
}

Value* GraphBuilder::conv(Value* x, int64_t outChannels, int64_t kernel, int64_t stride, int64_t pad, int64_t group,
                          bool bias, int64_t dilation) {
  int64_t inChannels = x->type.shape[1];
  float bound = 1.f / std::sqrt(static_cast<float>(inChannels / group * kernel * kernel));
  std::vector<Value*> inputs{x, constant(Shape{outChannels, inChannels / group, kernel, kernel}, -bound, bound)};
  if (bias) inputs.push_back(constant(Shape{outChannels}));
  Attributes a;
  a.set("strides", std::vector<int64_t>{stride, stride});
  a.set("pads", std::vector<int64_t>{pad, pad, pad, pad});
  a.set("dilations", std::vector<int64_t>{dilation, dilation});
  a.set("group", group);
  return graph.addNode("Conv", name("conv"), inputs, a)->output();
}

Value* GraphBuilder::separable(Value* x, int64_t outChannels, int64_t kernel, int64_t multiplier, int64_t stride,
                               int64_t pad, bool bias) {
  int64_t c = x->type.shape[1];
  float dwBound = 1.f / static_cast<float>(kernel);
  float pwBound = 1.f / std::sqrt(static_cast<float>(c * multiplier));
  std::vector<Value*> inputs{x, constant(Shape{c * multiplier, 1, kernel, kernel}, -dwBound, dwBound),
                             constant(Shape{outChannels, c * multiplier, 1, 1}, -pwBound, pwBound)};
  if (bias) inputs.push_back(constant(Shape{outChannels}));
  Attributes a;
  a.set("strides", std::vector<int64_t>{stride, stride});
  a.set("pads", std::vector<int64_t>{pad, pad, pad, pad});
  a.set("dilations", std::vector<int64_t>{1, 1});
  a.set("depth_multiplier", multiplier);
  return graph.addNode("SeparableConv2D", name("sep"), inputs, a)->output();
}

Value* GraphBuilder::batchNorm(Value* x) {
  Shape c{x->type.shape[1]};
  Attributes a;
  a.set("epsilon", std::uniform_real_distribution<float>(1e-5f, 1e-2f)(rng_));
  return graph
      .addNode("BatchNormalization", name("bn"),
               {x, constant(c, 0.5f, 1.5f), constant(c), constant(c, -0.5f, 0.5f), constant(c, 0.5f, 2.f)}, a)
      ->output();
}

Value* GraphBuilder::gemm(Value* x, int64_t outFeatures, bool transB) {
  int64_t k = x->type.shape[1];
  float bound = 1.f / std::sqrt(static_cast<float>(k));
  Shape w = transB ? Shape{outFeatures, k} : Shape{k, outFeatures};
  Attributes a;
  a.set("transB", int64_t{transB ? 1 : 0});
  return graph.addNode("Gemm", name("gemm"), {x, constant(w, -bound, bound), constant(Shape{outFeatures})}, a)
      ->output();
}

Value* GraphBuilder::op(const std::string& op, std::vector<Value*> inputs, Attributes attrs) {
  return graph.addNode(op, name(op), std::move(inputs), std::move(attrs))->output();
}

Value* GraphBuilder::transpose(Value* x, std::vector<int64_t> perm) {
  Attributes a;
  a.set("perm", std::move(perm));
  return op("Transpose", {x}, a);
}

size_t countOps(const Graph& g, const std::string& op) {
  size_t n = 0;
  for (Node* node : g.nodes()) n += node->opName() == op;
  return n;
}

std::vector<Tensor> randomInputs(const Graph& g, int64_t batch, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<Tensor> inputs;
  for (Value* v : g.inputs()) {
    Tensor t(DType::F32, v->type.shape.withBatch(batch));
    for (int64_t i = 0; i < t.numElements(); ++i) t.data<float>()[i] = dist(rng);
    inputs.push_back(std::move(t));
  }
  return inputs;
}

double maxRelativeError(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double worst = 0;
  for (size_t k = 0; k < a.size(); ++k) {
    if (a[k].shape() != b[k].shape()) return INFINITY;
    const float* pa = a[k].data<float>();
    const float* pb = b[k].data<float>();
    double peak = 0, diff = 0;
    for (int64_t i = 0; i < b[k].numElements(); ++i) {
      peak = std::max(peak, std::fabs(double(pb[i])));
      double d = std::fabs(double(pa[i]) - double(pb[i]));
      if (std::isnan(d)) return INFINITY;
      diff = std::max(diff, d);
    }
    worst = std::max(worst, peak > 0 ? diff / peak : diff);
  }
  return worst;
}

}  // namespace kiln::testing
