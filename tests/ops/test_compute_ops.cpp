// Edge cases of the compute ops (Conv, SeparableConv2D, ConvTranspose, pools,
// Gemm, MatMul, BatchNormalization): values against independent oracles
// written differently from the reference kernels (im2col + matmul for
// convolutions, a gather for transposed ones, per-output window scans for
// pools, hand-computed numbers), shape inference
// with the symbolic batch, MAC counts and errors naming the node.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <limits>

#include "compiler/interp/interpreter.h"
#include "compiler/ir/graph.h"

using namespace kiln;

namespace {

TensorType f32(Shape s) { return TensorType{DType::F32, std::move(s)}; }

Attributes ints(std::initializer_list<std::pair<const char*, std::vector<int64_t>>> list) {
  Attributes a;
  for (const auto& [name, v] : list) a.set(name, v);
  return a;
}

// A graph with one op node "op": input 0 is the graph input "x" declared
// with xType, the other inputs are constants (an empty Tensor omits it).
struct OneOp {
  Graph g;
  Node* node = nullptr;

  OneOp(const std::string& op, TensorType xType, const std::vector<Tensor>& constants, Attributes attrs = {}) {
    std::vector<Value*> inputs{g.addInput("x", std::move(xType))};
    for (size_t i = 0; i < constants.size(); ++i)
      inputs.push_back(constants[i].empty() ? nullptr : g.addConstant("c" + std::to_string(i), constants[i]));
    node = g.addNode(op, "op", inputs, std::move(attrs));
    g.addOutput(node->output());
  }
  Tensor run(const Tensor& x) const { return interpret(g, {x}).at(0); }
  const Shape& outShape() const { return node->output()->type.shape; }
};

void requireClose(const Tensor& got, const std::vector<float>& want, float tol) {
  REQUIRE(got.numElements() == static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("element " << i);
    REQUIRE(got.data<float>()[i] == Approx(want[i]).margin(tol));
  }
}

std::vector<float> valuesOf(const Tensor& t) { return {t.data<float>(), t.data<float>() + t.numElements()}; }

// Decodes a flat row-major index into a multi-index of `dims`.
std::vector<int64_t> unflatten(int64_t flat, const std::vector<int64_t>& dims) {
  std::vector<int64_t> idx(dims.size());
  for (size_t d = dims.size(); d-- > 0;) {
    idx[d] = flat % dims[d];
    flat /= dims[d];
  }
  return idx;
}

int64_t flatten(const std::vector<int64_t>& idx, const std::vector<int64_t>& dims) {
  int64_t flat = 0;
  for (size_t d = 0; d < dims.size(); ++d) flat = flat * dims[d] + idx[d];
  return flat;
}

// Convolution oracle: per image and group, builds the im2col matrix
// [Cg*taps, outPositions] (zeros for padding) and multiplies W [Mg, Cg*taps]
// by it in double precision.
std::vector<float> convOracle(const Tensor& x, const Tensor& w, const Tensor* bias, const std::vector<int64_t>& strides,
                              const std::vector<int64_t>& pads, const std::vector<int64_t>& dilations, int64_t group,
                              const Shape& outShape) {
  const size_t rank = x.shape().rank() - 2;
  const int64_t n = x.shape()[0], c = x.shape()[1], m = w.shape()[0], cg = c / group, mg = m / group;
  const std::vector<int64_t> inDims(x.shape().dims.begin() + 2, x.shape().dims.end());
  const std::vector<int64_t> kDims(w.shape().dims.begin() + 2, w.shape().dims.end());
  const std::vector<int64_t> outDims(outShape.dims.begin() + 2, outShape.dims.end());
  int64_t taps = 1, positions = 1, inPlane = 1;
  for (size_t d = 0; d < rank; ++d) taps *= kDims[d], positions *= outDims[d], inPlane *= inDims[d];
  std::vector<float> y(static_cast<size_t>(n * m * positions));
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t g = 0; g < group; ++g) {
      std::vector<double> cols(static_cast<size_t>(cg * taps * positions), 0.0);
      for (int64_t row = 0; row < cg * taps; ++row) {
        const int64_t ch = g * cg + row / taps;
        const std::vector<int64_t> k = unflatten(row % taps, kDims);
        for (int64_t p = 0; p < positions; ++p) {
          std::vector<int64_t> o = unflatten(p, outDims), in(rank);
          bool inside = true;
          for (size_t d = 0; d < rank; ++d) {
            in[d] = o[d] * strides[d] - pads[d] + k[d] * dilations[d];
            inside = inside && in[d] >= 0 && in[d] < inDims[d];
          }
          if (inside) cols[static_cast<size_t>(row * positions + p)] = x.data<float>()[(b * c + ch) * inPlane + flatten(in, inDims)];
        }
      }
      for (int64_t mo = 0; mo < mg; ++mo) {
        const int64_t oc = g * mg + mo;
        for (int64_t p = 0; p < positions; ++p) {
          double acc = bias ? bias->data<float>()[oc] : 0.0;
          for (int64_t row = 0; row < cg * taps; ++row)
            acc += double(w.data<float>()[oc * cg * taps + row]) * cols[static_cast<size_t>(row * positions + p)];
          y[static_cast<size_t>((b * m + oc) * positions + p)] = static_cast<float>(acc);
        }
      }
    }
  }
  return y;
}

Attributes convAttrs(std::vector<int64_t> strides, std::vector<int64_t> pads, std::vector<int64_t> dilations,
                     int64_t group = 1) {
  Attributes a = ints({{"strides", strides}, {"pads", pads}, {"dilations", dilations}});
  a.set("group", group);
  return a;
}

}  // namespace

// ---------------------------------------------------------------- Conv

TEST_CASE("Conv 2-D with stride, asymmetric pads, dilation and bias matches im2col", "[ops][conv]") {
  const std::vector<int64_t> strides{2, 1}, pads{1, 0, 2, 1}, dilations{1, 2};
  Tensor w = Tensor::uniform({4, 3, 3, 2}, 1), b = Tensor::uniform({4}, 2);
  OneOp op("Conv", f32({kBatch, 3, 7, 6}), {w, b}, convAttrs(strides, pads, dilations));
  // H: (7 + 1 + 2 - 3) / 2 + 1 = 4; W: (6 + 0 + 1 - 3) / 1 + 1 = 5.
  CHECK(op.outShape() == Shape({kBatch, 4, 4, 5}));
  for (int64_t batch : {1, 3}) {
    Tensor x = Tensor::uniform({batch, 3, 7, 6}, 3);
    Tensor y = op.run(x);
    REQUIRE(y.shape() == Shape({batch, 4, 4, 5}));
    requireClose(y, convOracle(x, w, &b, strides, pads, dilations, 1, y.shape()), 1e-5f);
  }
}

TEST_CASE("Conv groups and depthwise match im2col", "[ops][conv]") {
  SECTION("group 2") {
    Tensor w = Tensor::uniform({6, 2, 3, 3}, 4);
    OneOp op("Conv", f32({2, 4, 5, 5}), {w}, convAttrs({1, 1}, {1, 1, 1, 1}, {1, 1}, 2));
    Tensor x = Tensor::uniform({2, 4, 5, 5}, 5);
    requireClose(op.run(x), convOracle(x, w, nullptr, {1, 1}, {1, 1, 1, 1}, {1, 1}, 2, op.outShape()), 1e-5f);
  }
  SECTION("depthwise with multiplier 2, stride 2") {
    Tensor w = Tensor::uniform({6, 1, 3, 3}, 6), b = Tensor::uniform({6}, 7);
    OneOp op("Conv", f32({1, 3, 6, 6}), {w, b}, convAttrs({2, 2}, {0, 0, 1, 1}, {1, 1}, 3));
    CHECK(op.outShape() == Shape({1, 6, 3, 3}));
    Tensor x = Tensor::uniform({1, 3, 6, 6}, 8);
    requireClose(op.run(x), convOracle(x, w, &b, {2, 2}, {0, 0, 1, 1}, {1, 1}, 3, op.outShape()), 1e-5f);
  }
}

TEST_CASE("Conv 1-D and 3-D match im2col", "[ops][conv]") {
  SECTION("1-D") {
    Tensor w = Tensor::uniform({2, 3, 3}, 9);
    OneOp op("Conv", f32({kBatch, 3, 10}), {w}, convAttrs({3}, {2, 1}, {2}));
    CHECK(op.outShape() == Shape({kBatch, 2, 3}));  // (10 + 3 - 5) / 3 + 1
    Tensor x = Tensor::uniform({3, 3, 10}, 10);
    requireClose(op.run(x), convOracle(x, w, nullptr, {3}, {2, 1}, {2}, 1, Shape({3, 2, 3})), 1e-5f);
  }
  SECTION("3-D") {
    Tensor w = Tensor::uniform({2, 2, 2, 3, 2}, 11), b = Tensor::uniform({2}, 12);
    OneOp op("Conv", f32({1, 2, 4, 5, 3}), {w, b}, convAttrs({1, 2, 1}, {0, 1, 1, 1, 0, 0}, {2, 1, 1}));
    Tensor x = Tensor::uniform({1, 2, 4, 5, 3}, 13);
    requireClose(op.run(x), convOracle(x, w, &b, {1, 2, 1}, {0, 1, 1, 1, 0, 0}, {2, 1, 1}, 1, op.outShape()),
                 1e-5f);
  }
}

TEST_CASE("Conv with padding larger than the kernel produces bias-only borders", "[ops][conv]") {
  Tensor w = Tensor::fromVector<float>({1, 1, 1, 1}, {2.f});
  Tensor b = Tensor::fromVector<float>({1}, {0.5f});
  OneOp op("Conv", f32({1, 1, 1, 1}), {w, b}, convAttrs({1, 1}, {1, 0, 1, 2}, {1, 1}));
  REQUIRE(op.outShape() == Shape({1, 1, 3, 3}));
  requireClose(op.run(Tensor::fromVector<float>({1, 1, 1, 1}, {3.f})),
               {0.5f, 0.5f, 0.5f, 6.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f}, 0.f);
}

TEST_CASE("Conv rejects malformed nodes with errors naming the node", "[ops][conv]") {
  auto attempt = [](Shape x, Shape w, Attributes attrs, std::vector<Tensor> extra = {}) {
    std::vector<Tensor> constants{Tensor(DType::F32, std::move(w))};
    for (Tensor& t : extra) constants.push_back(t);
    OneOp op("Conv", f32(std::move(x)), constants, std::move(attrs));
  };
  const auto plain = convAttrs({1, 1}, {0, 0, 0, 0}, {1, 1});
  CHECK_THROWS_WITH(attempt({1, 8, 5, 5}, {6, 2, 3, 3}, convAttrs({1, 1}, {0, 0, 0, 0}, {1, 1}, 3)),
                    Catch::Contains("node 'op' (Conv)") && Catch::Contains("group 3 does not divide input channels 8"));
  CHECK_THROWS_WITH(attempt({1, 8, 5, 5}, {6, 2, 3}, plain), Catch::Contains("node 'op'") &&
                                                                 Catch::Contains("has rank 3, expected the input's rank 4"));
  CHECK_THROWS_WITH(attempt({1, 8, 5, 5}, {6, 4, 3, 3}, plain),
                    Catch::Contains("node 'op'") && Catch::Contains("has 4 input channels per group, expected 8"));
  CHECK_THROWS_WITH(attempt({1, 8, 5, 5}, {6, 8, 3, 3}, convAttrs({1, 1}, {0, 0, 0}, {1, 1})),
                    Catch::Contains("node 'op'") && Catch::Contains("pads has 3 values, expected 4"));
  CHECK_THROWS_WITH(attempt({1, 8, 5, 5}, {6, 8, 3, 3}, convAttrs({1}, {0, 0, 0, 0}, {1, 1})),
                    Catch::Contains("strides has 1 values, expected 2"));
  CHECK_THROWS_WITH(attempt({1, 8, 2, 5}, {6, 8, 3, 3}, plain),
                    Catch::Contains("padded input 2 is smaller than the window extent 3"));
  CHECK_THROWS_WITH(attempt({1, 8, 5, 5}, {6, 8, 3, 3}, convAttrs({0, 1}, {0, 0, 0, 0}, {1, 1})),
                    Catch::Contains("must be >= 1"));
  CHECK_THROWS_WITH(attempt({1, 8, 5, 5}, {6, 8, 3, 3}, convAttrs({1, 1}, {0, -1, 0, 0}, {1, 1})),
                    Catch::Contains("pads must be >= 0"));
  CHECK_THROWS_WITH(
      attempt({1, 8, 5, 5}, {6, 8, 3, 3}, convAttrs({1, 1}, {0, 0, 0, 0}, {std::numeric_limits<int64_t>::max(), 1})),
      Catch::Contains("overflows"));
  CHECK_THROWS_WITH(attempt({1, 8, 5, 5}, {6, 8, 3, 3}, plain, {Tensor(DType::F32, {5})}),
                    Catch::Contains("bias 5 must have shape 6"));
  CHECK_THROWS_WITH(attempt({kBatch, 8}, {6, 8}, convAttrs({}, {}, {})), Catch::Contains("needs rank >= 3"));
}

TEST_CASE("Conv MACs count one batch item", "[ops][conv]") {
  OneOp op("Conv", f32({kBatch, 8, 5, 5}), {Tensor(DType::F32, {6, 4, 3, 3})},
           convAttrs({1, 1}, {1, 1, 1, 1}, {1, 1}, 2));
  REQUIRE(op.node->op->macs);
  CHECK(op.node->op->macs(*op.node) == 6 * 5 * 5 * 4 * 3 * 3);
}

// ---------------------------------------------------------------- ConvTranspose

namespace {

// ConvTranspose oracle, a gather (the reference scatters): output o of
// channel oc sums x[c, i] * w[c, oc % Mg, k] over the input channels c of
// oc's group and the taps k with o = i*stride - padBegin + k*dilation, in
// double precision.
std::vector<float> convTransposeOracle(const Tensor& x, const Tensor& w, const Tensor* bias, const Attributes& a,
                                       const Shape& outShape) {
  const std::vector<int64_t>& strides = a.getInts("strides");
  const std::vector<int64_t>& pads = a.getInts("pads");
  const std::vector<int64_t>& dilations = a.getInts("dilations");
  const int64_t group = a.getInt("group");
  const size_t rank = x.shape().rank() - 2;
  const int64_t n = x.shape()[0], c = x.shape()[1], mg = w.shape()[1], m = mg * group, cg = c / group;
  const std::vector<int64_t> inDims(x.shape().dims.begin() + 2, x.shape().dims.end());
  const std::vector<int64_t> kDims(w.shape().dims.begin() + 2, w.shape().dims.end());
  const std::vector<int64_t> outDims(outShape.dims.begin() + 2, outShape.dims.end());
  int64_t taps = 1, positions = 1, inPlane = 1;
  for (size_t d = 0; d < rank; ++d) taps *= kDims[d], positions *= outDims[d], inPlane *= inDims[d];
  std::vector<float> y(static_cast<size_t>(n * m * positions));
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oc = 0; oc < m; ++oc)
      for (int64_t p = 0; p < positions; ++p) {
        const std::vector<int64_t> o = unflatten(p, outDims);
        double acc = bias ? bias->data<float>()[oc] : 0.0;
        for (int64_t tap = 0; tap < taps; ++tap) {
          const std::vector<int64_t> k = unflatten(tap, kDims);
          std::vector<int64_t> in(rank);
          bool hit = true;
          for (size_t d = 0; d < rank && hit; ++d) {
            const int64_t shifted = o[d] + pads[d] - k[d] * dilations[d];
            in[d] = shifted / strides[d];
            hit = shifted >= 0 && shifted % strides[d] == 0 && in[d] < inDims[d];
          }
          if (!hit) continue;
          for (int64_t ci = oc / mg * cg; ci < (oc / mg + 1) * cg; ++ci)
            acc += double(x.data<float>()[(b * c + ci) * inPlane + flatten(in, inDims)]) *
                   w.data<float>()[(ci * mg + oc % mg) * taps + tap];
        }
        y[static_cast<size_t>((b * m + oc) * positions + p)] = static_cast<float>(acc);
      }
  return y;
}

Attributes transposedAttrs(std::vector<int64_t> strides, std::vector<int64_t> pads, std::vector<int64_t> dilations,
                           std::vector<int64_t> outputPadding, int64_t group = 1) {
  Attributes a = convAttrs(std::move(strides), std::move(pads), std::move(dilations), group);
  a.set("output_padding", std::move(outputPadding));
  return a;
}

}  // namespace

TEST_CASE("ConvTranspose matches the gather oracle: 1-D, 2-D, 3-D, groups, output_padding", "[ops][convtranspose]") {
  struct Case {
    Shape x, w;
    Attributes attrs;
    bool bias;
  };
  const std::vector<Case> cases = {
      {{kBatch, 3, 4, 5}, {3, 2, 3, 3}, transposedAttrs({2, 2}, {1, 0, 0, 1}, {1, 1}, {1, 0}), true},
      {{kBatch, 4, 3, 3}, {4, 3, 2, 4}, transposedAttrs({3, 2}, {0, 2, 1, 0}, {2, 1}, {2, 1}, 2), false},
      {{kBatch, 2, 5}, {2, 3, 4}, transposedAttrs({3}, {2, 1}, {2}, {1}), true},
      {{kBatch, 2, 3, 2, 3}, {2, 2, 2, 3, 2}, transposedAttrs({2, 1, 2}, {0, 1, 0, 1, 0, 0}, {1, 1, 2}, {1, 0, 0}), true},
      {{kBatch, 1, 2, 2}, {1, 1, 1, 1}, transposedAttrs({3, 3}, {0, 0, 0, 0}, {1, 1}, {2, 2}), true},  // bias-only gaps
  };
  for (const Case& c : cases) {
    INFO("x " << c.x.str() << " w " << c.w.str());
    const Tensor w = Tensor::uniform(c.w, 3);
    const Tensor b = c.bias ? Tensor::uniform(Shape({c.w[1] * c.attrs.getInt("group")}), 4) : Tensor();
    OneOp op("ConvTranspose", f32(c.x), {w, b}, c.attrs);
    CHECK(op.outShape()[0] == kBatch);
    for (int64_t batch : {1, 3}) {
      const Tensor x = Tensor::uniform(c.x.withBatch(batch), 5);
      Shape out = op.outShape().withBatch(batch);
      requireClose(op.run(x), convTransposeOracle(x, w, c.bias ? &b : nullptr, c.attrs, out), 1e-5f);
    }
  }
}

TEST_CASE("ConvTranspose shape: stride*(in-1) + output_padding + dilated kernel - pads", "[ops][convtranspose]") {
  OneOp op("ConvTranspose", f32({kBatch, 4, 5, 7}), {Tensor(DType::F32, {4, 3, 3, 2})},
           transposedAttrs({2, 3}, {1, 0, 2, 1}, {1, 2}, {1, 2}, 1));
  CHECK(op.outShape() == Shape({kBatch, 3, 2 * 4 + 1 + 3 - 1 - 2, 3 * 6 + 2 + 3 - 0 - 1}));
  REQUIRE(op.node->op->macs);
  CHECK(op.node->op->macs(*op.node) == 4 * 5 * 7 * 3 * 3 * 2);
}

TEST_CASE("ConvTranspose rejects malformed nodes with errors naming the node", "[ops][convtranspose]") {
  auto attempt = [](Shape x, Shape w, Attributes attrs) {
    OneOp op("ConvTranspose", f32(std::move(x)), {Tensor(DType::F32, std::move(w))}, std::move(attrs));
  };
  const Attributes plain = transposedAttrs({1, 1}, {0, 0, 0, 0}, {1, 1}, {0, 0});
  CHECK_THROWS_WITH(attempt({1, 8, 5, 5}, {6, 2, 3, 3}, plain),
                    Catch::Contains("node 'op' (ConvTranspose)") && Catch::Contains("input's 8 channels in dim 0"));
  CHECK_THROWS_WITH(attempt({1, 8, 5, 5}, {8, 2, 3, 3}, transposedAttrs({1, 1}, {0, 0, 0, 0}, {1, 1}, {0, 0}, 3)),
                    Catch::Contains("group 3 must be >= 1 and divide input channels 8"));
  CHECK_THROWS_WITH(attempt({1, 8, 2, 2}, {8, 2, 1, 1}, transposedAttrs({1, 1}, {1, 0, 1, 0}, {1, 1}, {0, 0})),
                    Catch::Contains("leave no output"));
  CHECK_THROWS_WITH(attempt({1, 8, 5, 5}, {8, 2, 3, 3}, transposedAttrs({1, 1}, {0, 0, 0, 0}, {1, 1}, {0})),
                    Catch::Contains("need 2 values"));
  CHECK_THROWS_WITH(attempt({1, 8, 5, 5}, {8, 2, 3, 3}, transposedAttrs({1, 1}, {0, 0, 0, 0}, {1, 1}, {-1, 0})),
                    Catch::Contains("output_padding >= 0"));
  CHECK_THROWS_WITH(
      attempt({1, 8, 5, 5}, {8, 2, 3, 3},
              transposedAttrs({std::numeric_limits<int64_t>::max(), 1}, {0, 0, 0, 0}, {1, 1}, {0, 0})),
      Catch::Contains("overflows"));
}

// ---------------------------------------------------------------- SeparableConv2D

TEST_CASE("SeparableConv2D = depthwise then pointwise conv + bias", "[ops][conv]") {
  const std::vector<int64_t> strides{2, 1}, pads{1, 1, 1, 0}, dilations{1, 2};
  Tensor wd = Tensor::uniform({6, 1, 3, 3}, 20), wp = Tensor::uniform({4, 6, 1, 1}, 21), b = Tensor::uniform({4}, 22);
  Attributes attrs = ints({{"strides", strides}, {"pads", pads}, {"dilations", dilations}});
  attrs.set("depth_multiplier", int64_t{2});
  OneOp op("SeparableConv2D", f32({kBatch, 3, 6, 7}), {wd, wp, b}, attrs);
  // H: (6 + 2 - 3) / 2 + 1 = 3; W: (7 + 1 - 5) / 1 + 1 = 4.
  CHECK(op.outShape() == Shape({kBatch, 4, 3, 4}));
  CHECK(op.node->op->macs(*op.node) == 6 * 3 * 4 * 9 + 4 * 3 * 4 * 6);
  for (int64_t batch : {1, 3}) {
    Tensor x = Tensor::uniform({batch, 3, 6, 7}, 23);
    Tensor mid = Tensor::fromVector<float>({batch, 6, 3, 4},
                                           convOracle(x, wd, nullptr, strides, pads, dilations, 3, {batch, 6, 3, 4}));
    requireClose(op.run(x), convOracle(mid, wp, &b, {1, 1}, {0, 0, 0, 0}, {1, 1}, 1, {batch, 4, 3, 4}), 1e-5f);
  }
}

TEST_CASE("SeparableConv2D checks its kernels against depth_multiplier", "[ops][conv]") {
  Attributes attrs = ints({{"strides", {1, 1}}, {"pads", {0, 0, 0, 0}}, {"dilations", {1, 1}}});
  CHECK_THROWS_WITH(OneOp("SeparableConv2D", f32({1, 3, 5, 5}),
                          {Tensor(DType::F32, {6, 1, 3, 3}), Tensor(DType::F32, {4, 6, 1, 1})}, attrs),
                    Catch::Contains("node 'op' (SeparableConv2D)") && Catch::Contains("C*depth_multiplier"));
  CHECK_THROWS_WITH(OneOp("SeparableConv2D", f32({1, 3, 5, 5}),
                          {Tensor(DType::F32, {3, 1, 3, 3}), Tensor(DType::F32, {4, 6, 1, 1})}, attrs),
                    Catch::Contains("pointwise kernel 4x6x1x1 has 6 input channels per group, expected 3"));
}

// ---------------------------------------------------------------- pools

namespace {

Attributes poolAttrs(std::vector<int64_t> kernel, std::vector<int64_t> strides, std::vector<int64_t> pads) {
  return ints({{"kernel_shape", kernel}, {"strides", strides}, {"pads", pads}});
}

// Pool oracle for 2-D: scans every tap of each window, skipping padding.
// Average divides by the taps inside input or padding when includePad is set.
std::vector<float> pool2dOracle(const Tensor& x, const Shape& outShape, bool isMax, std::vector<int64_t> kernel,
                                std::vector<int64_t> strides, std::vector<int64_t> pads,
                                std::vector<int64_t> dilations, bool includePad) {
  const int64_t h = x.shape()[2], w = x.shape()[3], oh = outShape[2], ow = outShape[3];
  std::vector<float> y;
  for (int64_t plane = 0; plane < x.shape()[0] * x.shape()[1]; ++plane) {
    const float* p = x.data<float>() + plane * h * w;
    for (int64_t i = 0; i < oh; ++i) {
      for (int64_t j = 0; j < ow; ++j) {
        double acc = isMax ? -INFINITY : 0.0;
        int64_t inside = 0, padded = 0;
        for (int64_t ki = 0; ki < kernel[0]; ++ki) {
          for (int64_t kj = 0; kj < kernel[1]; ++kj) {
            const int64_t r = i * strides[0] - pads[0] + ki * dilations[0];
            const int64_t c = j * strides[1] - pads[1] + kj * dilations[1];
            if (r < h + pads[2] && c < w + pads[3]) ++padded;
            if (r < 0 || r >= h || c < 0 || c >= w) continue;
            ++inside;
            acc = isMax ? std::max(acc, double(p[r * w + c])) : acc + p[r * w + c];
          }
        }
        y.push_back(static_cast<float>(isMax ? acc : acc / double(includePad ? padded : inside)));
      }
    }
  }
  return y;
}

}  // namespace

TEST_CASE("MaxPool ignores padding, handles dilation and keeps the batch", "[ops][pool]") {
  SECTION("negative inputs: padding never wins") {
    OneOp op("MaxPool", f32({kBatch, 1, 2, 2}), {},
             [] {
               Attributes a = poolAttrs({2, 2}, {1, 1}, {1, 1, 1, 1});
               a.set("dilations", std::vector<int64_t>{1, 1});
               return a;
             }());
    CHECK(op.outShape() == Shape({kBatch, 1, 3, 3}));
    requireClose(op.run(Tensor::fromVector<float>({1, 1, 2, 2}, {-1.f, -2.f, -3.f, -4.f})),
                 {-1.f, -1.f, -2.f, -1.f, -1.f, -2.f, -3.f, -3.f, -4.f}, 0.f);
  }
  SECTION("dilation, strides, asymmetric pads against the oracle, batch 3") {
    Attributes a = poolAttrs({3, 2}, {2, 1}, {1, 0, 0, 1});
    a.set("dilations", std::vector<int64_t>{1, 2});
    OneOp op("MaxPool", f32({kBatch, 2, 7, 6}), {}, a);
    Tensor x = Tensor::uniform({3, 2, 7, 6}, 30);
    Tensor y = op.run(x);
    REQUIRE(y.shape() == Shape({3, 2, 3, 5}));
    requireClose(y, pool2dOracle(x, y.shape(), true, {3, 2}, {2, 1}, {1, 0, 0, 1}, {1, 2}, false), 0.f);
  }
}

TEST_CASE("MaxPool propagates NaN", "[ops][pool]") {
  Attributes a = poolAttrs({2}, {2}, {0, 0});
  a.set("dilations", std::vector<int64_t>{1});
  OneOp op("MaxPool", f32({1, 1, 4}), {}, a);
  Tensor y = op.run(Tensor::fromVector<float>({1, 1, 4}, {1.f, NAN, 3.f, 2.f}));
  CHECK(std::isnan(y.data<float>()[0]));
  CHECK(y.data<float>()[1] == 3.f);
}

TEST_CASE("pool ceil_mode follows ONNX: the last window starts inside input or left padding", "[ops][pool]") {
  auto outWidth = [](int64_t in, int64_t k, int64_t s, int64_t pad, int64_t ceil) {
    Attributes a = poolAttrs({k}, {s}, {pad, pad});
    a.set("ceil_mode", ceil);
    return OneOp("AveragePool", f32({1, 1, in}), {}, a).outShape()[2];
  };
  CHECK(outWidth(5, 2, 2, 0, 0) == 2);
  CHECK(outWidth(5, 2, 2, 0, 1) == 3);
  CHECK(outWidth(6, 2, 2, 0, 1) == 3);  // exact fit: ceil changes nothing
  // padded 7, span 5: ceil gives 4 windows, but window 3 would start at 5,
  // in the right padding, so it is dropped.
  CHECK(outWidth(5, 2, 2, 1, 1) == 3);
  CHECK(outWidth(6, 3, 2, 1, 1) == 4);  // window 3 starts at 5, inside the input
}

TEST_CASE("AveragePool count_include_pad divides by the taps inside input or padding", "[ops][pool]") {
  Tensor x = Tensor::fromVector<float>({1, 1, 6}, {1.f, 2.f, 3.f, 4.f, 5.f, 6.f});
  auto run = [&](int64_t includePad) {
    Attributes a = poolAttrs({3}, {2}, {1, 1});
    a.set("ceil_mode", int64_t{1});
    a.set("count_include_pad", includePad);
    return OneOp("AveragePool", f32({1, 1, 6}), {}, a).run(x);
  };
  // Windows start at -1, 1, 3, 5; the last overhangs the right padding by one.
  requireClose(run(0), {1.5f, 3.f, 5.f, 6.f}, 1e-6f);
  requireClose(run(1), {1.f, 3.f, 5.f, 3.f}, 1e-6f);
}

TEST_CASE("AveragePool 2-D against the oracle, batch 1 and 3", "[ops][pool]") {
  for (int64_t includePad : {0, 1}) {
    Attributes a = poolAttrs({3, 3}, {2, 2}, {1, 1, 1, 1});
    a.set("count_include_pad", includePad);
    a.set("ceil_mode", int64_t{1});
    OneOp op("AveragePool", f32({kBatch, 2, 6, 5}), {}, a);
    CHECK(op.outShape() == Shape({kBatch, 2, 4, 3}));
    for (int64_t batch : {1, 3}) {
      Tensor x = Tensor::uniform({batch, 2, 6, 5}, 31);
      Tensor y = op.run(x);
      requireClose(y, pool2dOracle(x, y.shape(), false, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, includePad != 0),
                   1e-6f);
    }
  }
}

TEST_CASE("Global pools reduce every spatial dim to 1", "[ops][pool]") {
  Tensor x = Tensor::uniform({3, 2, 3, 4, 2}, 32);
  OneOp avg("GlobalAveragePool", f32({kBatch, 2, 3, 4, 2}), {});
  OneOp max("GlobalMaxPool", f32({kBatch, 2, 3, 4, 2}), {});
  CHECK(avg.outShape() == Shape({kBatch, 2, 1, 1, 1}));
  std::vector<float> wantAvg, wantMax;
  for (int64_t plane = 0; plane < 6; ++plane) {
    double sum = 0;
    float m = -INFINITY;
    for (int64_t i = 0; i < 24; ++i) {
      const float v = x.data<float>()[plane * 24 + i];
      sum += v;
      m = std::max(m, v);
    }
    wantAvg.push_back(static_cast<float>(sum / 24));
    wantMax.push_back(m);
  }
  requireClose(avg.run(x), wantAvg, 1e-6f);
  requireClose(max.run(x), wantMax, 0.f);
}

TEST_CASE("pools reject malformed nodes with errors naming the node", "[ops][pool]") {
  auto attempt = [](Shape x, Attributes a) { OneOp("AveragePool", f32(std::move(x)), {}, std::move(a)); };
  CHECK_THROWS_WITH(attempt({1, 1, 5, 5}, poolAttrs({2}, {1, 1}, {0, 0, 0, 0})),
                    Catch::Contains("node 'op' (AveragePool)") && Catch::Contains("kernel_shape has 1 values, expected 2"));
  CHECK_THROWS_WITH(attempt({1, 1, 5, 5}, poolAttrs({2, 2}, {1, 1}, {0, 0})),
                    Catch::Contains("pads has 2 values, expected 4"));
  CHECK_THROWS_WITH(attempt({1, 1, 5}, poolAttrs({6}, {1}, {0, 0})),
                    Catch::Contains("padded input 5 is smaller than the window extent 6"));
  CHECK_THROWS_WITH(attempt({1, 1, 5}, poolAttrs({2}, {1}, {2, 0})), Catch::Contains("covers only padding"));
  CHECK_THROWS_WITH(attempt({1, 5}, poolAttrs({}, {}, {})), Catch::Contains("needs rank >= 3"));
  CHECK_THROWS_WITH(OneOp("GlobalMaxPool", f32({kBatch, 5}), {}), Catch::Contains("node 'op' (GlobalMaxPool)"));
}

// ---------------------------------------------------------------- Gemm, MatMul

namespace {

// y = alpha * op(A) op(B) + beta * C with C [M,N] already broadcast.
std::vector<float> gemmOracle(const std::vector<float>& a, const std::vector<float>& b, const std::vector<float>& c,
                              int64_t m, int64_t k, int64_t n, bool transA, bool transB, float alpha, float beta) {
  std::vector<float> y;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p)
        acc += double(transA ? a[p * m + i] : a[i * k + p]) * double(transB ? b[j * k + p] : b[p * n + j]);
      y.push_back(static_cast<float>(alpha * acc + beta * c[i * n + j]));
    }
  }
  return y;
}

}  // namespace

TEST_CASE("Gemm with transposes, alpha, beta and broadcast C", "[ops][linear]") {
  for (int64_t transA : {0, 1}) {
    for (int64_t transB : {0, 1}) {
      Tensor a = Tensor::uniform(transA ? Shape{4, 3} : Shape{3, 4}, 40);
      Tensor b = Tensor::uniform(transB ? Shape{5, 4} : Shape{4, 5}, 41);
      Tensor c = Tensor::uniform({5}, 42);
      Attributes attrs;
      attrs.set("transA", transA);
      attrs.set("transB", transB);
      attrs.set("alpha", 0.5f);
      attrs.set("beta", -2.f);
      Graph g;
      Value* av = g.addInput("a", f32(a.shape()));
      Node* n = g.addNode("Gemm", "gemm", {av, g.addConstant("b", b), g.addConstant("c", c)}, attrs);
      g.addOutput(n->output());
      CHECK(n->output()->type.shape == Shape({3, 5}));
      CHECK(n->op->macs(*n) == 3 * 4 * 5);
      std::vector<float> cFull;
      for (int i = 0; i < 3; ++i) cFull.insert(cFull.end(), c.data<float>(), c.data<float>() + 5);
      requireClose(interpret(g, {a})[0],
                   gemmOracle(valuesOf(a), valuesOf(b), cFull, 3, 4, 5, transA, transB, 0.5f, -2.f), 1e-5f);
    }
  }
}

TEST_CASE("Gemm with symbolic batch rows, scalar C and no C", "[ops][linear]") {
  Tensor w = Tensor::uniform({6, 4}, 43);
  Attributes attrs;
  attrs.set("transB", int64_t{1});
  OneOp withC("Gemm", f32({kBatch, 4}), {w, Tensor::fromVector<float>({1}, {0.25f})}, attrs);
  OneOp noC("Gemm", f32({kBatch, 4}), {w}, attrs);
  CHECK(withC.outShape() == Shape({kBatch, 6}));
  CHECK(noC.node->op->macs(*noC.node) == 6 * 4);
  for (int64_t batch : {1, 3}) {
    Tensor x = Tensor::uniform({batch, 4}, 44);
    std::vector<float> quarter(static_cast<size_t>(batch * 6), 0.25f), zero(quarter.size(), 0.f);
    requireClose(withC.run(x), gemmOracle(valuesOf(x), valuesOf(w), quarter, batch, 4, 6, false, true, 1, 1), 1e-5f);
    requireClose(noC.run(x), gemmOracle(valuesOf(x), valuesOf(w), zero, batch, 4, 6, false, true, 1, 1), 1e-5f);
  }
}

TEST_CASE("Gemm rejects mismatched operands", "[ops][linear]") {
  CHECK_THROWS_WITH(OneOp("Gemm", f32({2, 3}), {Tensor(DType::F32, {4, 5})}),
                    Catch::Contains("node 'op' (Gemm)") && Catch::Contains("inner dims differ"));
  CHECK_THROWS_WITH(OneOp("Gemm", f32({2, 3}), {Tensor(DType::F32, {3, 5}), Tensor(DType::F32, {3, 5})}),
                    Catch::Contains("C 3x5 does not broadcast to 2x5"));
  Attributes transA;
  transA.set("transA", int64_t{1});
  CHECK_THROWS_WITH(OneOp("Gemm", f32({kBatch, 3}), {Tensor(DType::F32, {3, 5})}, transA),
                    Catch::Contains("symbolic batch"));
  CHECK_THROWS_WITH(OneOp("Gemm", f32({2, 3, 1}), {Tensor(DType::F32, {3, 5})}), Catch::Contains("must be 2-D"));
}

TEST_CASE("MatMul broadcasts batch dims and promotes 1-D operands", "[ops][linear]") {
  SECTION("batch broadcast [2,1,2,3] x [3,3,2]") {
    Tensor a = Tensor::fromVector<float>({2, 1, 2, 3}, {1, 2, 3, 4, 5, 6, -1, 0, 1, 2, 0, -2});
    Tensor b = Tensor::fromVector<float>({3, 3, 2}, {1, 0, 0, 1, 1, 1, 2, 0, 0, 2, 0, 0, 0, 1, 1, 0, 0, 0});
    OneOp op("MatMul", f32(a.shape()), {b});
    REQUIRE(op.outShape() == Shape({2, 3, 2, 2}));
    CHECK(op.node->op->macs(*op.node) == 2 * 3 * 2 * 3 * 2);
    // b[0] = [[1,0],[0,1],[1,1]], b[1] = 2*[[1,0],[0,1],[0,0]], b[2] = [[0,1],[1,0],[0,0]].
    requireClose(op.run(a), {4, 5, 10, 11, 2, 4, 8, 10, 2, 1, 5, 4,  // a[0]
                             0, 1, 0, -2, -2, 0, 4, 0, 0, -1, 0, 2},  // a[1]
                 0.f);
  }
  SECTION("1-D times 2-D, 2-D times 1-D, 1-D times 1-D") {
    Tensor v = Tensor::fromVector<float>({3}, {1, 2, 3});
    Tensor m = Tensor::fromVector<float>({3, 2}, {1, 2, 3, 4, 5, 6});
    OneOp vm("MatMul", f32({3}), {m});
    CHECK(vm.outShape() == Shape({2}));
    requireClose(vm.run(v), {22, 28}, 0.f);
    OneOp mv("MatMul", f32({2, 3}), {v});
    CHECK(mv.outShape() == Shape({2}));
    requireClose(mv.run(Tensor::fromVector<float>({2, 3}, {1, 0, 0, 0, 1, 1})), {1, 5}, 0.f);
    OneOp dot("MatMul", f32({3}), {v});
    CHECK(dot.outShape() == Shape{});
    requireClose(dot.run(v), {14}, 0.f);
    OneOp stacked("MatMul", f32({2, 2, 3}), {v});
    CHECK(stacked.outShape() == Shape({2, 2}));
  }
  SECTION("symbolic batch on a stack and on rows") {
    Tensor w = Tensor::uniform({4, 3}, 50);
    OneOp stack("MatMul", f32({kBatch, 2, 4}), {w});
    OneOp rows("MatMul", f32({kBatch, 4}), {w});
    CHECK(stack.outShape() == Shape({kBatch, 2, 3}));
    CHECK(rows.outShape() == Shape({kBatch, 3}));
    CHECK(stack.node->op->macs(*stack.node) == 2 * 4 * 3);
    CHECK(rows.node->op->macs(*rows.node) == 4 * 3);
    Tensor x = Tensor::uniform({3, 2, 4}, 51);
    std::vector<float> zeros(6 * 3, 0.f);
    requireClose(stack.run(x), gemmOracle(valuesOf(x), valuesOf(w), zeros, 6, 4, 3, false, false, 1, 0), 1e-5f);
  }
}

TEST_CASE("MatMul rejects mismatched operands and batch moves", "[ops][linear]") {
  CHECK_THROWS_WITH(OneOp("MatMul", f32({2, 3}), {Tensor(DType::F32, {4, 2})}),
                    Catch::Contains("node 'op' (MatMul)") && Catch::Contains("inner dims differ"));
  CHECK_THROWS_WITH(OneOp("MatMul", f32({2, 2, 3}), {Tensor(DType::F32, {3, 3, 2})}),
                    Catch::Contains("cannot broadcast"));
  CHECK_THROWS_WITH(OneOp("MatMul", f32({kBatch, 3}), {Tensor(DType::F32, {2, 3, 2})}),
                    Catch::Contains("symbolic batch would move to dim 1"));
  CHECK_THROWS_WITH(OneOp("MatMul", f32({kBatch}), {Tensor(DType::F32, {3})}), Catch::Contains("contracted"));
}

// ---------------------------------------------------------------- BatchNormalization

TEST_CASE("BatchNormalization normalizes per channel for ranks 2 to 4", "[ops][norm]") {
  const std::vector<float> scale{1.f, 2.f, -0.5f}, bias{0.f, 1.f, 3.f}, mean{0.5f, -1.f, 2.f}, var{1.f, 0.25f, 4.f};
  auto channelParams = [&] {
    return std::vector<Tensor>{Tensor::fromVector<float>({3}, scale), Tensor::fromVector<float>({3}, bias),
                               Tensor::fromVector<float>({3}, mean), Tensor::fromVector<float>({3}, var)};
  };
  for (Shape shape : {Shape{kBatch, 3}, Shape{kBatch, 3, 4}, Shape{kBatch, 3, 2, 3}}) {
    Attributes attrs;
    attrs.set("epsilon", 1e-3f);
    OneOp op("BatchNormalization", f32(shape), channelParams(), attrs);
    CHECK(op.outShape() == shape);
    Tensor x = Tensor::uniform(shape.withBatch(3), 60);
    const int64_t plane = shape.rank() > 2 ? shape.product(2, shape.rank()) : 1;
    std::vector<float> want;
    for (int64_t i = 0; i < x.numElements(); ++i) {
      const size_t c = static_cast<size_t>((i / plane) % 3);
      want.push_back(static_cast<float>((x.data<float>()[i] - mean[c]) / std::sqrt(double(var[c]) + 1e-3) * scale[c] +
                                        bias[c]));
    }
    requireClose(op.run(x), want, 1e-5f);
  }
  CHECK_THROWS_WITH(OneOp("BatchNormalization", f32({1, 4, 2}), channelParams()),
                    Catch::Contains("node 'op' (BatchNormalization)") && Catch::Contains("scale 3 must have shape 4"));
}

TEST_CASE("InstanceNormalization normalizes each sample's channel planes", "[ops][norm]") {
  Attributes noEpsilon;
  noEpsilon.set("epsilon", 0.f);
  OneOp op("InstanceNormalization", f32({kBatch, 2, 1, 4}),
           {Tensor::fromVector<float>({2}, {2.f, -1.f}), Tensor::fromVector<float>({2}, {1.f, 0.5f})}, noEpsilon);
  CHECK(op.outShape() == Shape{kBatch, 2, 1, 4});
  // Plane {1, 2, 3, 4}: mean 2.5, biased variance 1.25; the second plane is
  // the first shifted by 10, which the mean removes.
  const Tensor x = Tensor::fromVector<float>({1, 2, 1, 4}, {1, 2, 3, 4, 11, 12, 13, 14});
  const std::vector<float> z{-1.3416408f, -0.4472136f, 0.4472136f, 1.3416408f};
  std::vector<float> want;
  for (float v : z) want.push_back(2 * v + 1);
  for (float v : z) want.push_back(-v + 0.5f);
  requireClose(op.run(x), want, 1e-5f);
  CHECK_THROWS_WITH(OneOp("InstanceNormalization", f32({1, 2}), {Tensor::fromVector<float>({2}, {1, 1}),
                                                                 Tensor::fromVector<float>({2}, {0, 0})}),
                    Catch::Contains("node 'op' (InstanceNormalization)") && Catch::Contains("rank >= 3"));
}

TEST_CASE("LRN divides by the windowed sum of squares across channels", "[ops][norm]") {
  // alpha/size = 1, beta = 1, bias = 1: y = x / (1 + sum of squares in the window).
  Attributes a;
  a.set("size", int64_t{3});
  a.set("alpha", 3.f);
  a.set("beta", 1.f);
  a.set("bias", 1.f);
  OneOp odd("LRN", f32({kBatch, 3, 1, 1}), {}, a);
  const Tensor x = Tensor::fromVector<float>({1, 3, 1, 1}, {1, 2, 3});
  requireClose(odd.run(x), {1.f / 6, 2.f / 15, 3.f / 14}, 1e-6f);
  // An even size reaches one channel further after c than before it: [c, c+1].
  a.set("size", int64_t{2});
  a.set("alpha", 2.f);
  OneOp even("LRN", f32({kBatch, 3, 1, 1}), {}, a);
  requireClose(even.run(x), {1.f / 6, 2.f / 14, 3.f / 10}, 1e-6f);
  a.set("size", int64_t{0});
  CHECK_THROWS_WITH(OneOp("LRN", f32({1, 3, 1, 1}), {}, a), Catch::Contains("size must be >= 1"));
}

TEST_CASE("Resize MACs count the taps of one batch item; nearest only copies", "[ops][resize]") {
  auto macs = [](const std::string& mode) {
    Attributes a;
    a.set("sizes", std::vector<int64_t>{kBatch, 3, 8, 6});
    a.set("mode", mode);
    OneOp op("Resize", f32({kBatch, 3, 4, 3}), {}, a);
    REQUIRE(op.node->op->macs);
    return op.node->op->macs(*op.node);
  };
  CHECK(macs("nearest") == 0);
  CHECK(macs("linear") == 3 * 8 * 6 * 2 * 2);  // bilinear: 2 taps along H and along W
  CHECK(macs("cubic") == 3 * 8 * 6 * 4 * 4);
}
