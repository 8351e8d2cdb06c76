// winograd: a 2-D Conv with a constant 3x3 kernel, stride 1, dilation 1 and
// one group becomes WinogradInput -> Conv 1x1 with 16 groups -> WinogradOutput
// (compiler/ops/winograd.h): F(2x2, 3x3) does 16 multiplies per 2x2 outputs
// and channel pair where the direct conv does 36, so the multiply-adds drop
// 2.25x for the price of two transforms (adds only) over 4x the input's and
// the output's bytes. The kernel is transformed here, once: U = G g G^T,
// position p's matrix as group p's 1x1 weights [16*K, C, 1, 1]. Bias,
// residual and the fused activation move to WinogradOutput, which applies
// them as the Conv's epilogue did.
//
// Legal because the transforms compute the same correlation exactly in real
// arithmetic; in floats the coefficients (0, +-1/2, +-1) keep the rounding
// within a few ulps of the direct sum's (checked against the interpreter's
// direct conv in tests/passes/test_winograd.cpp).
//
// Applied only where it pays and where the blocked kernels take all three
// nodes: with a channel block (PassOptions::channelBlock, a vector target)
// dividing C and K, at least kMinChannels of each (below that the
// transforms' memory traffic outweighs the saved multiplies), and maps of at
// least kMinPixels outputs (smaller maps are bound by reading the weights,
// which the transform makes 16/9 as large).
#include "compiler/ops/winograd.h"

#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln {

namespace {

constexpr int64_t kMinChannels = 32;
constexpr int64_t kMinPixels = 49;

struct FloatOps {
  float add(float a, float b) const { return a + b; }
  float sub(float a, float b) const { return a - b; }
  float neg(float a) const { return -a; }
  float scale(float a, float c) const { return a * c; }
};

bool isWinogradConv(const Node& n, int64_t block) {
  if (n.opName() != "Conv" || block <= 0) return false;
  const Value *x = n.input(0), *w = n.input(1), *bias = n.input(2);
  if (x->type.dtype != DType::F32 || x->type.shape.rank() != 4 || x->type.layout != Layout::Plain) return false;
  if (!w->isConstant() || (bias && !bias->isConstant())) return false;
  const Shape& ws = w->type.shape;
  const Shape& y = n.output()->type.shape;
  const auto ones = std::vector<int64_t>{1, 1};
  if (ws[2] != winograd::kKernel || ws[3] != winograd::kKernel || n.attrs.getInt("group") != 1 ||
      n.attrs.getInts("strides") != ones || n.attrs.getInts("dilations") != ones || n.attrs.getInt("out_block") != 0 ||
      !n.attrs.getString("fusion_group").empty())
    return false;
  const int64_t channels = ws[1], outChannels = ws[0];
  return channels % block == 0 && outChannels % block == 0 && channels >= kMinChannels &&
         outChannels >= kMinChannels && y[2] * y[3] >= kMinPixels;
}

// U[p*K + k][c] = (G g[k][c] G^T)[p].
Tensor transformedKernel(const Tensor& w) {
  const int64_t outChannels = w.shape()[0], channels = w.shape()[1];
  Tensor u(DType::F32, Shape{winograd::kPositions * outChannels, channels, 1, 1});
  const float* g = w.data<float>();
  float* out = u.data<float>();
  for (int64_t k = 0; k < outChannels; ++k)
    for (int64_t c = 0; c < channels; ++c) {
      std::array<float, 9> taps;
      std::copy_n(g + (k * channels + c) * 9, 9, taps.begin());
      const auto t = winograd::applyTransform2D(winograd::kG, taps, FloatOps{});
      for (int64_t p = 0; p < winograd::kPositions; ++p)
        out[(p * outChannels + k) * channels + c] = t[static_cast<size_t>(p)];
    }
  return u;
}

void rewrite(Graph& g, Node& conv) {
  const std::string& base = conv.name.empty() ? g.uniqueName("conv") : conv.name;
  Attributes in;
  in.set("pads", conv.attrs.getInts("pads"));
  Node* input = g.addNode("WinogradInput", base + "/winograd_input", {conv.input(0)}, in);
  Attributes mul;
  mul.set("strides", std::vector<int64_t>{1, 1});
  mul.set("pads", std::vector<int64_t>{0, 0, 0, 0});
  mul.set("dilations", std::vector<int64_t>{1, 1});
  mul.set("group", winograd::kPositions);
  Value* u = g.addConstant(g.uniqueName(conv.input(1)->name + "_winograd"), transformedKernel(conv.input(1)->constant));
  Node* product = g.addNode("Conv", base + "/winograd_product", {input->output(), u}, mul);
  Attributes out;
  const Shape& y = conv.output()->type.shape;
  out.set("output_size", std::vector<int64_t>{y[2], y[3]});
  for (const char* a : {"activation", "activation_alpha", "activation_beta"}) out.set(a, conv.attrs.all().at(a));
  Node* output = g.addNode("WinogradOutput", base + "/winograd_output",
                           {product->output(), conv.input(2), conv.input(3)}, out);
  replaceValue(g, conv.output(), output->output());
}

}  // namespace

PassDef winogradPass() {
  return {"winograd", "3x3 stride-1 convs as Winograd F(2x2,3x3): transforms around a 16-group 1x1 conv",
          [](Graph& g, PassStats& stats, const PassOptions& options) {
            for (Node* n : g.nodes())
              if (isWinogradConv(*n, options.channelBlock)) {
                rewrite(g, *n);
                stats.add("convs as Winograd F(2x2,3x3)");
              }
            g.topoSort();
          }};
}

}  // namespace kiln
