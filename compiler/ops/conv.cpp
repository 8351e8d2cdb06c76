// Convolutions: Conv (any spatial rank, groups, strides, pads, dilations,
// optional bias, and the fused epilogue: optional residual input 3 and an
// activation), SeparableConv2D (depthwise Conv then 1x1 Conv + bias) and
// ConvTranspose (any spatial rank, Conv's attributes plus output_padding,
// the same epilogue). The first two run on the one direct-loop reference
// kernel `convolve`; ConvTranspose scatters (`convolveTransposed`). Conv's output
// has its input's layout, or NCHW`out_block`c when the layout pass starts an
// NCHWc region at it; its residual has the output's type, layout included.
#include <algorithm>
#include <string>

#include "compiler/ir/graph.h"
#include "compiler/ops/epilogue.h"
#include "compiler/ops/families.h"
#include "compiler/ops/helpers.h"

namespace kiln {

namespace {

// The spatial attributes of one convolution (pads = begins then ends).
struct ConvParams {
  std::vector<int64_t> strides, pads, dilations;
  int64_t group = 1;
};

ConvParams convParams(const Attributes& a, int64_t group) {
  return {a.getInts("strides"), a.getInts("pads"), a.getInts("dilations"), group};
}

std::string str(int64_t v) { return std::to_string(v); }

// Checks x [N, C, spatial...] against weights w [M, C/group, kernel...] and
// returns the output shape [N, M, out...].
Shape convOutputShape(const InferContext& ctx, const Shape& x, const Shape& w, const ConvParams& p,
                      const std::string& weightName) {
  ctx.check(x.rank() >= 3, "input " + x.str() + " needs rank >= 3 (N, C, at least one spatial dim)");
  ctx.check(w.rank() == x.rank(), weightName + " " + w.str() + " has rank " + str(int64_t(w.rank())) +
                                       ", expected the input's rank " + str(int64_t(x.rank())));
  ctx.check(w.isStatic(), weightName + " " + w.str() + " must have a static shape");
  const size_t spatial = x.rank() - 2;
  ctx.check(p.strides.size() == spatial, "strides has " + str(int64_t(p.strides.size())) + " values, expected " +
                                             str(int64_t(spatial)));
  ctx.check(p.dilations.size() == spatial, "dilations has " + str(int64_t(p.dilations.size())) +
                                               " values, expected " + str(int64_t(spatial)));
  ctx.check(p.pads.size() == 2 * spatial, "pads has " + str(int64_t(p.pads.size())) + " values, expected " +
                                              str(int64_t(2 * spatial)) + " (begins then ends)");
  const int64_t channels = x[1], outChannels = w[0];
  ctx.check(p.group >= 1, "group " + str(p.group) + " must be >= 1");
  ctx.check(channels % p.group == 0, "group " + str(p.group) + " does not divide input channels " + str(channels));
  ctx.check(outChannels % p.group == 0,
            "group " + str(p.group) + " does not divide output channels " + str(outChannels));
  ctx.check(w[1] == channels / p.group, weightName + " " + w.str() + " has " + str(w[1]) +
                                            " input channels per group, expected " + str(channels / p.group));
  Shape out({x[0], outChannels});
  for (size_t d = 0; d < spatial; ++d) {
    const int64_t in = x[2 + d], kernel = w[2 + d], stride = p.strides[d], dilation = p.dilations[d];
    const int64_t padBegin = p.pads[d], padEnd = p.pads[spatial + d];
    out.dims.push_back(windowSpan(ctx, d, in, kernel, stride, dilation, padBegin, padEnd) / stride + 1);
  }
  return out;
}

// Advances idx (row-major) through the box lo <= idx < hi over its first
// idx.size() dims; returns false after the last position.
bool nextInBox(std::vector<int64_t>& idx, const std::vector<int64_t>& lo, const std::vector<int64_t>& hi) {
  for (size_t d = idx.size(); d-- > 0;) {
    if (++idx[d] < hi[d]) return true;
    idx[d] = lo[d];
  }
  return false;
}

// y = conv(x, w) + bias, y allocated with the inferred shape. For each kernel
// tap the outputs that read inside the input form a box; padding reads are
// the skipped zeros outside it. The last spatial dim is the inner loop.
void convolve(const Tensor& x, const Tensor& w, const Tensor* bias, const ConvParams& p, Tensor& y) {
  const Shape &xs = x.shape(), &ws = w.shape(), &ys = y.shape();
  const size_t rank = xs.rank() - 2, last = rank - 1;
  const int64_t batch = xs[0], channels = xs[1], outChannels = ws[0];
  const int64_t groupChannels = ws[1], groupOutChannels = outChannels / p.group;
  const int64_t inPlane = xs.product(2, xs.rank()), outPlane = ys.product(2, ys.rank());
  const int64_t taps = ws.product(2, ws.rank());
  const std::vector<int64_t> inStrides = stridesOf(Shape(std::vector<int64_t>(xs.dims.begin() + 2, xs.dims.end())));
  const std::vector<int64_t> outStrides = stridesOf(Shape(std::vector<int64_t>(ys.dims.begin() + 2, ys.dims.end())));

  // Per tap: the box [lo, hi) of outputs whose input index
  // o*stride - padBegin + k*dilation lies in [0, in), and the input offset
  // of output position 0 for this tap (the box keeps real reads in range).
  struct Tap {
    std::vector<int64_t> lo, hi;
    int64_t inOffset = 0;
    bool empty = false;
  };
  std::vector<Tap> tapBoxes(static_cast<size_t>(taps));
  std::vector<int64_t> k(rank, 0);
  for (Tap& tap : tapBoxes) {
    for (size_t d = 0; d < rank; ++d) {
      const int64_t in = xs[2 + d], out = ys[2 + d], stride = p.strides[d];
      const int64_t shift = k[d] * p.dilations[d] - p.pads[d];  // input index of output 0
      // Smallest o with o*stride + shift >= 0, one past the largest with < in.
      const int64_t lo = shift >= 0 ? 0 : (-shift + stride - 1) / stride;
      const int64_t hi = in - shift <= 0 ? 0 : std::min(out, (in - shift - 1) / stride + 1);
      tap.lo.push_back(lo);
      tap.hi.push_back(hi);
      tap.empty = tap.empty || lo >= hi;
      tap.inOffset += shift * inStrides[d];
    }
    for (size_t d = rank; d-- > 0;)
      if (++k[d] < ws[2 + d]) break;
      else k[d] = 0;
  }

  const float* xd = x.data<float>();
  const float* wd = w.data<float>();
  float* yd = y.data<float>();
  const int64_t lastStride = p.strides[last];
  std::vector<int64_t> row(last);
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t m = 0; m < outChannels; ++m) {
      float* yPlane = yd + (n * outChannels + m) * outPlane;
      if (bias) std::fill(yPlane, yPlane + outPlane, bias->data<float>()[m]);
      const int64_t firstChannel = (m / groupOutChannels) * groupChannels;
      for (int64_t c = 0; c < groupChannels; ++c) {
        const float* xPlane = xd + (n * channels + firstChannel + c) * inPlane;
        const float* wTaps = wd + (m * groupChannels + c) * taps;
        for (int64_t t = 0; t < taps; ++t) {
          const Tap& tap = tapBoxes[static_cast<size_t>(t)];
          if (tap.empty) continue;
          const float wv = wTaps[t];
          std::copy(tap.lo.begin(), tap.lo.begin() + static_cast<std::ptrdiff_t>(last), row.begin());
          do {
            int64_t yRow = 0, xRow = tap.inOffset;
            for (size_t d = 0; d < last; ++d) {
              yRow += row[d] * outStrides[d];
              xRow += row[d] * p.strides[d] * inStrides[d];
            }
            float* yr = yPlane + yRow;
            const float* xr = xPlane + xRow;
            if (lastStride == 1) {  // the common case, written so the compiler vectorizes it
              for (int64_t o = tap.lo[last]; o < tap.hi[last]; ++o) yr[o] += wv * xr[o];
            } else {
              for (int64_t o = tap.lo[last]; o < tap.hi[last]; ++o) yr[o] += wv * xr[o * lastStride];
            }
          } while (nextInBox(row, tap.lo, tap.hi));
        }
      }
    }
  }
}

void requireBias(const InferContext& ctx, size_t i, int64_t outChannels) {
  if (!ctx.hasInput(i)) return;
  requireFloat(ctx, i);
  ctx.check(ctx.input(i).shape == Shape({outChannels}),
            "bias " + ctx.input(i).shape.str() + " must have shape " + Shape({outChannels}).str());
}

// Multiply-accumulates of a convolution producing `out` (every row of a
// static batch; the caller makes a symbolic batch 1).
int64_t convMacs(const Shape& out, const Shape& w) { return out.product(0, out.rank()) * w.product(1, w.rank()); }

// The sliding window every convolution op requires (the importer writes
// them explicitly), then `extra`.
std::vector<AttrSpec> windowAttrs(std::vector<AttrSpec> extra) {
  std::vector<AttrSpec> attrs = {{"strides", AttrKind::Ints, std::nullopt},
                                 {"pads", AttrKind::Ints, std::nullopt},
                                 {"dilations", AttrKind::Ints, std::nullopt}};
  for (AttrSpec& a : extra) attrs.push_back(std::move(a));
  return attrs;
}

void registerConv(OpRegistry& r) {
  OpDef d;
  d.name = "Conv";
  d.minInputs = 2;
  d.maxInputs = 4;  // X, W, [B], [residual] (fuse-activation)
  d.attrs = windowAttrs({{"group", AttrKind::Int, AttrValue{int64_t{1}}},
                         // Nodes with the same non-empty fusion_group (the two halves of
                         // a split SeparableConv2D) may be fused again by the backend.
                         {"fusion_group", AttrKind::String, AttrValue{std::string()}},
                         // The layout pass's channel block of the output when the input
                         // stays plain (a stem conv entering an NCHWc region); 0: the
                         // output has the input's layout, like every op.
                         {"out_block", AttrKind::Int, AttrValue{int64_t{0}}}});
  for (AttrSpec& s : epilogueAttrSpecs()) d.attrs.push_back(std::move(s));
  d.setsLayout = true;
  d.infer = [](const InferContext& ctx) {
    requireFloat(ctx, 0);
    requireFloat(ctx, 1);
    const ConvParams p = convParams(ctx.attrs(), ctx.attrs().getInt("group"));
    Shape out = convOutputShape(ctx, ctx.input(0).shape, ctx.input(1).shape, p, "weight");
    requireBias(ctx, 2, out[1]);
    TensorType y{DType::F32, out, ctx.input(0).layout, ctx.input(0).block};
    if (const int64_t block = ctx.attrs().getInt("out_block"); block != 0) {
      ctx.check(block > 0 && block <= 64 && out.rank() == 4 && ctx.input(0).layout == Layout::Plain &&
                    !ctx.hasInput(3),
                "out_block " + std::to_string(block) + " needs a 2-D conv with a plain input and no residual");
      y.layout = Layout::NCHWc;
      y.block = static_cast<int>(block);
    }
    ctx.check(!ctx.hasInput(3) || ctx.input(3) == y,
              "residual " + (ctx.hasInput(3) ? ctx.input(3).str() : std::string()) + " must have the output type " +
                  y.str());
    checkEpilogue(ctx);
    return std::vector<TensorType>{y};
  };
  d.reference = [](KernelContext& ctx) {
    const ConvParams p = convParams(ctx.attrs(), ctx.attrs().getInt("group"));
    Tensor& y = ctx.output(0);
    convolve(ctx.input(0), ctx.input(1), ctx.hasInput(2) ? &ctx.input(2) : nullptr, p, y);
    float* out = y.data<float>();
    if (ctx.hasInput(3)) {
      const float* residual = ctx.input(3).data<float>();
      for (int64_t i = 0; i < y.numElements(); ++i) out[i] += residual[i];
    }
    Epilogue(ctx.attrs()).apply(out, y.numElements());
  };
  d.macs = [](const Node& n) { return convMacs(n.output()->type.shape.withBatch(1), n.input(1)->type.shape); };
  r.add(std::move(d));
}

// SeparableConv2D = depthwise Conv (group = C, depth_multiplier outputs per
// channel) with the spatial attributes, then a 1x1 Conv + bias.
ConvParams pointwiseParams() { return {{1, 1}, {0, 0, 0, 0}, {1, 1}, 1}; }

Shape depthwiseOutputShape(const InferContext& ctx) {
  const Shape& x = ctx.input(0).shape;
  const Shape& wd = ctx.input(1).shape;
  ctx.check(x.rank() == 4, "input " + x.str() + " must have rank 4 (NCHW)");
  const int64_t multiplier = ctx.attrs().getInt("depth_multiplier");
  int64_t depthChannels = 0;
  ctx.check(multiplier >= 1 && !__builtin_mul_overflow(x[1], multiplier, &depthChannels),
            "depth_multiplier " + str(multiplier) + " must be >= 1");
  ctx.check(wd.rank() == 4 && wd[0] == depthChannels && wd[1] == 1,
            "depthwise kernel " + wd.str() + " must have shape " + str(depthChannels) + "x1xKHxKW (C*depth_multiplier)");
  return convOutputShape(ctx, x, wd, convParams(ctx.attrs(), x[1]), "depthwise kernel");
}

void registerSeparableConv2D(OpRegistry& r) {
  OpDef d;
  d.name = "SeparableConv2D";
  d.minInputs = 3;
  d.maxInputs = 4;
  d.attrs = windowAttrs({{"depth_multiplier", AttrKind::Int, AttrValue{int64_t{1}}}});
  d.infer = [](const InferContext& ctx) {
    for (size_t i = 0; i < 3; ++i) requireFloat(ctx, i);
    const Shape depthwise = depthwiseOutputShape(ctx);
    const Shape& wp = ctx.input(2).shape;
    ctx.check(wp.rank() == 4 && wp[2] == 1 && wp[3] == 1,
              "pointwise kernel " + wp.str() + " must have shape Mx" + str(depthwise[1]) + "x1x1");
    Shape out = convOutputShape(ctx, depthwise, wp, pointwiseParams(), "pointwise kernel");
    requireBias(ctx, 3, out[1]);
    return std::vector<TensorType>{{DType::F32, out}};
  };
  d.reference = [](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    const Tensor& wd = ctx.input(1);
    Tensor& y = ctx.output(0);
    Shape mid = y.shape();
    mid[1] = wd.shape()[0];
    Tensor depthwise(DType::F32, mid);
    convolve(x, wd, nullptr, convParams(ctx.attrs(), x.shape()[1]), depthwise);
    convolve(depthwise, ctx.input(2), ctx.hasInput(3) ? &ctx.input(3) : nullptr, pointwiseParams(), y);
  };
  d.macs = [](const Node& n) {
    Shape out = n.output()->type.shape.withBatch(1);
    const Shape& wd = n.input(1)->type.shape;
    const Shape& wp = n.input(2)->type.shape;
    Shape mid = out;
    mid[1] = wd[0];
    return convMacs(mid, wd) + convMacs(out, wp);
  };
  r.add(std::move(d));
}

// ConvTranspose: the adjoint of a strided convolution. Input pixel i of
// channel c spreads x[c, i] * w[c, m, k] onto output o = i*stride - padBegin
// + k*dilation of every output channel m of c's group; output_padding adds
// rows/columns at the end (which only the bias reaches). W is [C, M/group,
// kernel...] (the output channel is W's dim 1 within each group).
struct TransposedParams {
  ConvParams conv;
  std::vector<int64_t> outputPadding;
};

TransposedParams transposedParams(const Attributes& a) {
  return {convParams(a, a.getInt("group")), a.getInts("output_padding")};
}

// Checks x [N, C, spatial...] against w [C, M/group, kernel...] and returns
// [N, M, out...] with out = stride*(in-1) + output_padding + dilation*(kernel-1)
// + 1 - padBegin - padEnd.
Shape transposedOutputShape(const InferContext& ctx, const Shape& x, const Shape& w, const TransposedParams& t) {
  const ConvParams& p = t.conv;
  ctx.check(x.rank() >= 3, "input " + x.str() + " needs rank >= 3 (N, C, at least one spatial dim)");
  ctx.check(w.rank() == x.rank(), "weight " + w.str() + " must have the input's rank " + str(int64_t(x.rank())));
  ctx.check(w.isStatic(), "weight " + w.str() + " must have a static shape");
  const size_t spatial = x.rank() - 2;
  ctx.check(p.strides.size() == spatial && p.dilations.size() == spatial && t.outputPadding.size() == spatial &&
                p.pads.size() == 2 * spatial,
            "strides, dilations and output_padding need " + str(int64_t(spatial)) + " values, pads " +
                str(int64_t(2 * spatial)) + " (begins then ends)");
  ctx.check(p.group >= 1 && x[1] % p.group == 0,
            "group " + str(p.group) + " must be >= 1 and divide input channels " + str(x[1]));
  ctx.check(w[0] == x[1], "weight " + w.str() + " must have the input's " + str(x[1]) + " channels in dim 0");
  Shape out({x[0], w[1] * p.group});
  for (size_t d = 0; d < spatial; ++d) {
    const int64_t in = x[2 + d], kernel = w[2 + d], stride = p.strides[d], dilation = p.dilations[d];
    const int64_t padBegin = p.pads[d], padEnd = p.pads[spatial + d], extra = t.outputPadding[d];
    ctx.check(kernel >= 1 && stride >= 1 && dilation >= 1 && padBegin >= 0 && padEnd >= 0 && extra >= 0,
              "spatial dim " + str(int64_t(d)) + ": kernel, strides and dilations must be >= 1, pads and "
              "output_padding >= 0");
    int64_t size = 0, reach = 0;
    ctx.check(!__builtin_mul_overflow(in - 1, stride, &size) && !__builtin_mul_overflow(kernel - 1, dilation, &reach) &&
                  !__builtin_add_overflow(size, reach, &size) && !__builtin_add_overflow(size, extra, &size) &&
                  !__builtin_add_overflow(size, 1, &size),
              "spatial dim " + str(int64_t(d)) + " overflows");
    size -= padBegin + padEnd;
    ctx.check(size >= 1, "spatial dim " + str(int64_t(d)) + ": pads " + str(padBegin) + "+" + str(padEnd) +
                             " leave no output (" + str(size) + ")");
    out.dims.push_back(size);
  }
  return out;
}

// y = convTranspose(x, w) + bias, y allocated with the inferred shape: a
// scatter of every input pixel through every kernel tap, dropping the
// outputs that land in the cropped pads.
void convolveTransposed(const Tensor& x, const Tensor& w, const Tensor* bias, const TransposedParams& t, Tensor& y) {
  const ConvParams& p = t.conv;
  const Shape &xs = x.shape(), &ws = w.shape(), &ys = y.shape();
  const size_t rank = xs.rank() - 2;
  const int64_t batch = xs[0], channels = xs[1], groupChannels = channels / p.group;
  const int64_t groupOutChannels = ws[1], outChannels = ys[1];
  const Shape inSpatial(std::vector<int64_t>(xs.dims.begin() + 2, xs.dims.end()));
  const Shape outSpatial(std::vector<int64_t>(ys.dims.begin() + 2, ys.dims.end()));
  const Shape kernel(std::vector<int64_t>(ws.dims.begin() + 2, ws.dims.end()));
  const int64_t inPlane = inSpatial.numElements(), outPlane = outSpatial.numElements(), taps = kernel.numElements();
  const std::vector<int64_t> outStrides = stridesOf(outSpatial);

  // Output offset of every (input pixel, tap) pair, -1 where it is cropped.
  std::vector<int64_t> target(static_cast<size_t>(inPlane * taps));
  const std::vector<int64_t> zero(rank, 0);
  std::vector<int64_t> i(rank, 0);
  size_t at = 0;
  do {
    std::vector<int64_t> k(rank, 0);
    do {
      int64_t offset = 0;
      for (size_t d = 0; d < rank && offset >= 0; ++d) {
        const int64_t o = i[d] * p.strides[d] - p.pads[d] + k[d] * p.dilations[d];
        offset = o >= 0 && o < outSpatial[d] ? offset + o * outStrides[d] : -1;
      }
      target[at++] = offset;
    } while (nextInBox(k, zero, kernel.dims));
  } while (nextInBox(i, zero, inSpatial.dims));

  const float* xd = x.data<float>();
  const float* wd = w.data<float>();
  float* yd = y.data<float>();
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t m = 0; m < outChannels; ++m) {
      float* yPlane = yd + (n * outChannels + m) * outPlane;
      std::fill(yPlane, yPlane + outPlane, bias ? bias->data<float>()[m] : 0.f);
      const int64_t group = m / groupOutChannels, mInGroup = m % groupOutChannels;
      for (int64_t c = group * groupChannels; c < (group + 1) * groupChannels; ++c) {
        const float* xPlane = xd + (n * channels + c) * inPlane;
        const float* wTaps = wd + (c * groupOutChannels + mInGroup) * taps;
        for (int64_t pixel = 0; pixel < inPlane; ++pixel)
          for (int64_t tap = 0; tap < taps; ++tap)
            if (const int64_t o = target[static_cast<size_t>(pixel * taps + tap)]; o >= 0)
              yPlane[o] += xPlane[pixel] * wTaps[tap];
      }
    }
}

void registerConvTranspose(OpRegistry& r) {
  OpDef d;
  d.name = "ConvTranspose";
  d.minInputs = 2;
  d.maxInputs = 4;  // X, W, [B], [residual] (fuse-activation)
  d.attrs = windowAttrs({{"output_padding", AttrKind::Ints, std::nullopt},
                         {"group", AttrKind::Int, AttrValue{int64_t{1}}}});
  for (AttrSpec& s : epilogueAttrSpecs()) d.attrs.push_back(std::move(s));
  d.infer = [](const InferContext& ctx) {
    requireFloat(ctx, 0);
    requireFloat(ctx, 1);
    const Shape out = transposedOutputShape(ctx, ctx.input(0).shape, ctx.input(1).shape, transposedParams(ctx.attrs()));
    requireBias(ctx, 2, out[1]);
    const TensorType y{DType::F32, out, ctx.input(0).layout, ctx.input(0).block};
    ctx.check(!ctx.hasInput(3) || ctx.input(3) == y,
              "residual " + (ctx.hasInput(3) ? ctx.input(3).str() : std::string()) + " must have the output type " +
                  y.str());
    checkEpilogue(ctx);
    return std::vector<TensorType>{y};
  };
  d.reference = [](KernelContext& ctx) {
    Tensor& y = ctx.output(0);
    convolveTransposed(ctx.input(0), ctx.input(1), ctx.hasInput(2) ? &ctx.input(2) : nullptr,
                       transposedParams(ctx.attrs()), y);
    float* out = y.data<float>();
    if (ctx.hasInput(3)) {
      const float* residual = ctx.input(3).data<float>();
      for (int64_t i = 0; i < y.numElements(); ++i) out[i] += residual[i];
    }
    Epilogue(ctx.attrs()).apply(out, y.numElements());
  };
  // Every input pixel meets every tap of its group's output channels.
  d.macs = [](const Node& n) {
    const Shape x = n.input(0)->type.shape.withBatch(1);
    return x.product(0, x.rank()) * n.input(1)->type.shape.product(1, n.input(1)->type.shape.rank());
  };
  r.add(std::move(d));
}

}  // namespace

void registerConvOps(OpRegistry& r) {
  registerConv(r);
  registerSeparableConv2D(r);
  registerConvTranspose(r);
}

}  // namespace kiln
