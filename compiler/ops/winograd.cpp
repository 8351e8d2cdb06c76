// WinogradInput and WinogradOutput: the two transforms of a Conv the
// winograd pass rewrote (compiler/ops/winograd.h). Between them runs an
// ordinary grouped 1x1 Conv, so the multiplies reuse the conv kernels.
//
// WinogradInput(X[N,C,H,W]; pads) -> V[N, 16*C, TH, TW]: tile (ty, tx) reads
// the 4x4 input window at rows 2*ty - pad_top.., cols 2*tx - pad_left..
// (zeros outside X), and V's channel p*C + c holds transformed position p of
// channel c. TH, TW = ceil(OH/2), ceil(OW/2) with OH = H + pads - 2.
//
// WinogradOutput(M[N, 16*K, TH, TW], [B[K]], [residual]; output_size,
// epilogue) -> Y[N, K, OH, OW]: each tile's 2x2 outputs, cut to OH x OW,
// plus bias and residual, then the fused activation (as Conv's epilogue).
#include "compiler/ops/winograd.h"

#include <string>

#include "compiler/ops/epilogue.h"
#include "compiler/ops/families.h"
#include "compiler/ops/helpers.h"

namespace kiln {

namespace {

using winograd::kInputTile;
using winograd::kOutputTile;
using winograd::kPositions;

struct FloatOps {
  float add(float a, float b) const { return a + b; }
  float sub(float a, float b) const { return a - b; }
  float neg(float a) const { return -a; }
  float scale(float a, float c) const { return a * c; }
};

std::string str(int64_t v) { return std::to_string(v); }

void registerWinogradInput(OpRegistry& r) {
  OpDef d;
  d.name = "WinogradInput";
  d.attrs = {{"pads", AttrKind::Ints, std::nullopt}};
  d.infer = [](const InferContext& ctx) {
    requireFloat(ctx, 0);
    const Shape& x = ctx.input(0).shape;
    const std::vector<int64_t> pads = ctx.attrs().getInts("pads");
    ctx.check(x.rank() == 4 && pads.size() == 4, "input " + x.str() + " must be NCHW, with 4 pads");
    const int64_t outH = x[2] + pads[0] + pads[2] - 2, outW = x[3] + pads[1] + pads[3] - 2;
    ctx.check(outH >= 1 && outW >= 1 && pads[0] >= 0 && pads[1] >= 0 && pads[2] >= 0 && pads[3] >= 0,
              "input " + x.str() + " with its pads is smaller than the 3x3 kernel");
    TensorType v = ctx.input(0);
    v.shape = Shape{x[0], kPositions * x[1], winograd::tilesFor(outH), winograd::tilesFor(outW)};
    return std::vector<TensorType>{v};
  };
  d.reference = [](KernelContext& ctx) {
    const Tensor& xt = ctx.input(0);
    const Shape& x = xt.shape();
    const std::vector<int64_t> pads = ctx.attrs().getInts("pads");
    Tensor& v = ctx.output(0);
    const int64_t n = x[0], channels = x[1], h = x[2], w = x[3], tilesH = v.shape()[2], tilesW = v.shape()[3];
    const float* in = xt.data<float>();
    float* out = v.data<float>();
    for (int64_t s = 0; s < n; ++s)
      for (int64_t c = 0; c < channels; ++c)
        for (int64_t ty = 0; ty < tilesH; ++ty)
          for (int64_t tx = 0; tx < tilesW; ++tx) {
            std::array<float, kPositions> d{};
            for (int64_t i = 0; i < kInputTile; ++i)
              for (int64_t j = 0; j < kInputTile; ++j) {
                const int64_t row = kOutputTile * ty - pads[0] + i, col = kOutputTile * tx - pads[1] + j;
                if (row >= 0 && row < h && col >= 0 && col < w)
                  d[static_cast<size_t>(i * kInputTile + j)] = in[((s * channels + c) * h + row) * w + col];
              }
            const auto t = winograd::applyTransform2D(winograd::kBT, d, FloatOps{});
            for (int64_t p = 0; p < kPositions; ++p)
              out[(((s * kPositions + p) * channels + c) * tilesH + ty) * tilesW + tx] = t[static_cast<size_t>(p)];
          }
  };
  r.add(std::move(d));
}

void registerWinogradOutput(OpRegistry& r) {
  OpDef d;
  d.name = "WinogradOutput";
  d.minInputs = 1;
  d.maxInputs = 3;  // M, [B], [residual]
  d.attrs = {{"output_size", AttrKind::Ints, std::nullopt}};
  for (AttrSpec& s : epilogueAttrSpecs()) d.attrs.push_back(std::move(s));
  d.infer = [](const InferContext& ctx) {
    requireFloat(ctx, 0);
    const Shape& m = ctx.input(0).shape;
    const std::vector<int64_t> size = ctx.attrs().getInts("output_size");
    ctx.check(m.rank() == 4 && m[1] % kPositions == 0 && size.size() == 2 && size[0] >= 1 && size[1] >= 1 &&
                  winograd::tilesFor(size[0]) == m[2] && winograd::tilesFor(size[1]) == m[3],
              "input " + m.str() + " must hold 16 positions per channel of 2x2 tiles covering output_size");
    TensorType y = ctx.input(0);
    y.shape = Shape{m[0], m[1] / kPositions, size[0], size[1]};
    if (ctx.hasInput(1)) {
      requireFloat(ctx, 1);
      ctx.check(ctx.input(1).shape == Shape{y.shape[1]}, "bias " + ctx.input(1).shape.str() + " must have shape [" +
                                                             str(y.shape[1]) + "]");
    }
    ctx.check(!ctx.hasInput(2) || ctx.input(2) == y,
              "residual " + (ctx.hasInput(2) ? ctx.input(2).str() : std::string()) + " must have the output type " +
                  y.str());
    checkEpilogue(ctx);
    return std::vector<TensorType>{y};
  };
  d.reference = [](KernelContext& ctx) {
    const Tensor& mt = ctx.input(0);
    Tensor& y = ctx.output(0);
    const int64_t n = y.shape()[0], channels = y.shape()[1], outH = y.shape()[2], outW = y.shape()[3];
    const int64_t tilesH = mt.shape()[2], tilesW = mt.shape()[3];
    const float* m = mt.data<float>();
    const float* bias = ctx.hasInput(1) ? ctx.input(1).data<float>() : nullptr;
    const float* residual = ctx.hasInput(2) ? ctx.input(2).data<float>() : nullptr;
    float* out = y.data<float>();
    for (int64_t s = 0; s < n; ++s)
      for (int64_t k = 0; k < channels; ++k)
        for (int64_t ty = 0; ty < tilesH; ++ty)
          for (int64_t tx = 0; tx < tilesW; ++tx) {
            std::array<float, kPositions> t;
            for (int64_t p = 0; p < kPositions; ++p)
              t[static_cast<size_t>(p)] = m[(((s * kPositions + p) * channels + k) * tilesH + ty) * tilesW + tx];
            const auto o = winograd::applyTransform2D(winograd::kAT, t, FloatOps{});
            for (int64_t i = 0; i < kOutputTile; ++i)
              for (int64_t j = 0; j < kOutputTile; ++j) {
                const int64_t row = kOutputTile * ty + i, col = kOutputTile * tx + j;
                if (row >= outH || col >= outW) continue;
                const int64_t at = ((s * channels + k) * outH + row) * outW + col;
                float value = o[static_cast<size_t>(i * kOutputTile + j)] + (bias ? bias[k] : 0.f);
                if (residual) value += residual[at];
                out[at] = value;
              }
          }
    Epilogue(ctx.attrs()).apply(out, y.numElements());
  };
  r.add(std::move(d));
}

}  // namespace

void registerWinogradOps(OpRegistry& r) {
  registerWinogradInput(r);
  registerWinogradOutput(r);
}

}  // namespace kiln
