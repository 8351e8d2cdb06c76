// Emitters for Conv (1-D and 2-D, groups incl. depthwise, strides, pads,
// dilations, bias, fused residual + epilogue activation), SeparableConv2D
// and ConvTranspose (a gather kernel of its own, at the end).
//
// One direct-convolution mechanism serves every case. Output rows are walked
// in spans whose valid kernel rows are known at compile time (padding never
// reaches an inner loop), and each row is cut into column spans the same way.
// Within a span, a register tile of (a block of output channels) x (a few
// vectors of adjacent output columns) accumulates over the input channels of
// the group (a run-time loop) and the kernel taps (unrolled): per tap, one
// vector load of input columns (strided convs shuffle a wide load) and one
// broadcast weight per output channel feed rows x chunks FMAs. Constant
// weights are repacked so that a tap's weights for the channel block are
// contiguous: per group, [channel block][Cg][KH][KW][block rows].
// Special cases fall out of the geometry: a 1x1 stride-1 unpadded conv is one
// row of H*W pixels (a GEMM of weights x input), and a depthwise conv has
// one-row tiles vectorized along the output width. SeparableConv2D computes,
// per output row, the depthwise row of all channels into a stack buffer
// (channels x output width floats) and immediately the pointwise 1x1 conv of
// that row, so the intermediate never leaves the cache and needs no workspace.
#include "compiler/codegen/ops/families.h"
#include "compiler/codegen/ops/vector_kernels.h"
#include "compiler/ops/epilogue.h"

namespace kiln::codegen {

namespace {

using kernels::AxisGeometry;
using kernels::AxisSpan;

// A 2-D convolution of one sample: channels split into groups of
// groupChannels inputs and groupOutChannels outputs; rows and cols give the
// sliding window along height and width.
struct ConvShape {
  int64_t groups, groupChannels, groupOutChannels, kernelH, kernelW;
  AxisGeometry rows, cols;

  int64_t outChannels() const { return groups * groupOutChannels; }
  int64_t taps() const { return kernelH * kernelW; }
};

// The 2-D view of Conv's operands: a 1-D conv is a 2-D one of height 1, and
// (when rows may be merged) a 1x1 stride-1 unpadded conv is one row of all the pixels.
ConvShape convShape(EmitContext& ctx, const Shape& x, const Shape& w, const Shape& y, int64_t groups, bool mergeRows) {
  const size_t spatial = x.rank() - 2;
  if (spatial > 2) ctx.fail("the LLVM backend emits 1-D and 2-D convolutions only (input " + x.str() + ")");
  const Attributes& a = ctx.attrs();
  const std::vector<int64_t>& strides = a.getInts("strides");
  const std::vector<int64_t>& pads = a.getInts("pads");
  const std::vector<int64_t>& dilations = a.getInts("dilations");
  auto axis = [&](size_t d) {
    return AxisGeometry{x[2 + d], y[2 + d], w[2 + d], strides[d], dilations[d], pads[d], pads[spatial + d]};
  };
  const AxisGeometry unit{1, 1, 1, 1, 1, 0, 0};
  ConvShape s{groups, w[1], w[0] / groups, 1, w[x.rank() - 1], unit, axis(spatial - 1)};
  if (spatial == 2) {
    s.kernelH = w[2];
    s.rows = axis(0);
  }
  const bool pointwise = s.taps() == 1 && s.rows.stride == 1 && s.cols.stride == 1 &&
                         std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p == 0; });
  if (mergeRows && pointwise && spatial == 2) {
    const int64_t pixels = s.rows.in * s.cols.in;
    s.rows = unit;
    s.cols = AxisGeometry{pixels, pixels, 1, 1, 1, 0, 0};
  }
  return s;
}

// A channels x rows x columns buffer: element (c, r, col) is at
// data[c*channelStride + r*rowStride + col].
struct Planes {
  llvm::Value* data;
  int64_t channelStride, rowStride;
};

Planes planesOf(const ConvShape& s, llvm::Value* data, bool input) {
  const AxisGeometry &rows = s.rows, &cols = s.cols;
  return input ? Planes{data, rows.in * cols.in, cols.in} : Planes{data, rows.out * cols.out, cols.out};
}

// Where the kernel reads weight (m, c, tap): constant weights are repacked
// per group into [channel block][Cg][taps][block rows] (blocks of blockRows
// output channels, the last one narrower), others are read as [M][Cg][taps].
// The same layout serves both vectorized axes: along the output row a tap's
// block rows are broadcast one by one, along the channels they are loaded as
// vectors. channelAxis picks the latter, with tiles of tileRows output rows.
struct ConvWeights {
  llvm::Value* data;
  bool packed;
  int64_t blockRows;
  bool channelAxis = false;
  int64_t tileRows = 1;
};

Tensor packWeights(const Tensor& w, const ConvShape& s, int64_t blockRows) {
  Tensor packed(DType::F32, Shape({w.numElements()}));
  const float* src = w.data<float>();
  float* dst = packed.data<float>();
  const int64_t taps = s.taps(), weightsPerChannel = s.groupChannels * taps;
  for (int64_t m = 0; m < s.outChannels(); ++m) {
    const int64_t inGroup = m % s.groupOutChannels, blockStart = inGroup / blockRows * blockRows;
    const int64_t rows = std::min(blockRows, s.groupOutChannels - blockStart), r = inGroup - blockStart;
    float* block = dst + (m - r) * weightsPerChannel;
    for (int64_t i = 0; i < weightsPerChannel; ++i) block[i * rows + r] = src[m * weightsPerChannel + i];
  }
  return packed;
}

// The vectorized axis: output rows narrower than a vector (the small maps
// at the end of a CNN) would leave most lanes idle, so when the weights can
// be repacked and the group has about a vector of output channels, vectors
// run along the output channels instead: a tile of every pixel of tileRows
// output rows x up to 8 channel vectors (few pixels need many independent
// accumulators), sized to the accumulator budget.
ConvWeights convWeights(EmitContext& ctx, const Operand& w, const ConvShape& s, bool allowChannelAxis) {
  const int64_t lanes = ctx.target.vectorFloats, width = s.cols.out;
  if (allowChannelAxis && w.constant && width < lanes && 2 * s.groupOutChannels >= lanes) {
    const int64_t budget = kernels::accumulatorBudget(ctx.target);
    const int64_t vectors =
        std::min(std::clamp<int64_t>(budget / width, 1, 8), (s.groupOutChannels + lanes - 1) / lanes);
    const int64_t blockRows = std::min(vectors * lanes, s.groupOutChannels);
    const int64_t tileRows = std::max<int64_t>(1, budget / (width * vectors));
    return {ctx.packConstant(packWeights(*w.constant, s, blockRows)), true, blockRows, true, tileRows};
  }
  const int64_t blockRows = std::min<int64_t>(s.groupOutChannels, lanes >= 16 ? 8 : 4);
  if (!w.constant) return {w.data, false, blockRows};
  return {ctx.packConstant(packWeights(*w.constant, s, blockRows)), true, blockRows};
}

// Emits convolution rows: every output channel of one output row per call.
class ConvKernel {
 public:
  ConvKernel(EmitContext& ctx, const ConvShape& s, ConvWeights w, llvm::Value* bias, std::optional<Planes> residual)
      : ctx_(ctx), b_(ctx.b), s_(s), w_(w), bias_(bias), residual_(residual) {}

  bool channelAxis() const { return w_.channelAxis; }

  // The whole output with vectors along the output channels (channelAxis):
  // per channel block, tiles of tileRows x (every column) output pixels x
  // the block's channel vectors. Per input channel and tap, one vector load
  // of weights per channel vector and one broadcast input per pixel whose
  // window reads that tap inside the input; padded taps of border pixels
  // are left out at compile time, so borders stay vectorized too. Lanes are
  // stored a channel plane apart (per-lane stores: a tile holds few pixels).
  // The work is split over the channel blocks of an ungrouped conv.
  void emitChannels(const Planes& x, const Planes& y) const {
    const int64_t fullBlocks = s_.groupOutChannels / w_.blockRows;
    const int64_t lastRows = s_.groupOutChannels % w_.blockRows;
    const int64_t blocks = fullBlocks + (lastRows ? 1 : 0);
    const LoopRange part = ctx_.split(blocks, s_.groups == 1 ? splitWays(flops(), blocks) : 1);
    ctx_.loop(s_.groups, [&](llvm::Value* g) {
      llvm::Value* groupStart = b_.CreateMul(g, ctx_.i64(s_.groupOutChannels));
      ctx_.loop(part, 0, fullBlocks, [&](llvm::Value* block) {
        emitChannelBlock(g, b_.CreateAdd(groupStart, b_.CreateMul(block, ctx_.i64(w_.blockRows))), w_.blockRows, x,
                         y);
      });
      if (lastRows)
        ctx_.when(b_.CreateICmpEQ(part.end, ctx_.i64(blocks)), [&] {
          emitChannelBlock(g, b_.CreateAdd(groupStart, ctx_.i64(fullBlocks * w_.blockRows)), lastRows, x, y);
        });
    });
  }

  // Of the whole output.
  int64_t flops() const {
    return 2 * s_.outChannels() * s_.rows.out * s_.cols.out * s_.groupChannels * s_.taps();
  }

  // Output row `oh` of y, whose window reads kernel rows `rowTaps` of x.
  void emitRow(llvm::Value* oh, const std::vector<int64_t>& rowTaps, const Planes& x, const Planes& y) const {
    const int64_t fullBlocks = s_.groupOutChannels / w_.blockRows;
    const int64_t lastRows = s_.groupOutChannels % w_.blockRows;
    ctx_.loop(s_.groups, [&](llvm::Value* g) {
      llvm::Value* groupStart = b_.CreateMul(g, ctx_.i64(s_.groupOutChannels));
      ctx_.loop(fullBlocks, [&](llvm::Value* block) {
        emitBlock(g, b_.CreateAdd(groupStart, b_.CreateMul(block, ctx_.i64(w_.blockRows))), w_.blockRows, oh, rowTaps,
                  x, y);
      });
      if (lastRows)
        emitBlock(g, b_.CreateAdd(groupStart, ctx_.i64(fullBlocks * w_.blockRows)), lastRows, oh, rowTaps, x, y);
    });
  }

 private:
  // Output channels [m, m + rows) of group g along the whole row.
  void emitBlock(llvm::Value* g, llvm::Value* m, int64_t rows, llvm::Value* oh, const std::vector<int64_t>& rowTaps,
                 const Planes& x, const Planes& y) const {
    const int64_t lanes = ctx_.target.vectorFloats;
    const int64_t vectors = std::clamp<int64_t>(kernels::accumulatorBudget(ctx_.target) / rows, 1, 4);
    for (const AxisSpan& span : kernels::axisSpans(s_.cols))
      kernels::forEachTile(ctx_, span.begin, span.end, vectors * lanes, [&](llvm::Value* ow, int64_t width) {
        kernels::AccumulatorTile acc(ctx_, rows, kernels::chunkWidths(width, lanes));
        initialize(acc, m, oh, ow);
        accumulate(acc, g, m, oh, ow, rowTaps, span.taps, x);
        for (int64_t r = 0; r < rows; ++r)
          for (size_t c = 0; c < acc.chunks().size(); ++c)
            kernels::storeVector(ctx_, pixel(y, channel(m, r), oh, ow, acc.chunkOffset(c)), acc.get(r, c));
      });
  }

  // Output channels [m, m + channels) of group g, all pixels (emitChannels).
  void emitChannelBlock(llvm::Value* g, llvm::Value* m, int64_t channels, const Planes& x, const Planes& y) const {
    const int64_t width = s_.cols.out;
    const AxisGeometry &rows = s_.rows, &cols = s_.cols;
    std::vector<std::vector<int64_t>> colTaps(static_cast<size_t>(width));  // kernel columns inside x, per column
    for (const AxisSpan& span : kernels::axisSpans(cols))
      for (int64_t o = span.begin; o < span.end; ++o) colTaps[static_cast<size_t>(o)] = span.taps;
    auto reads = [&](int64_t col, int64_t kw) {
      const std::vector<int64_t>& taps = colTaps[static_cast<size_t>(col)];
      return std::find(taps.begin(), taps.end(), kw) != taps.end();
    };
    for (const AxisSpan& span : kernels::axisSpans(rows))
      kernels::forEachTile(ctx_, span.begin, span.end, w_.tileRows, [&](llvm::Value* oh0, int64_t tileRows) {
        kernels::AccumulatorTile acc(ctx_, tileRows * width, kernels::chunkWidths(channels, ctx_.target.vectorFloats));
        auto outRow = [&](int64_t p) { return b_.CreateAdd(oh0, ctx_.i64(p / width)); };
        for (int64_t p = 0; p < acc.rows(); ++p)
          for (size_t ch = 0; ch < acc.chunks().size(); ++ch) {
            const int64_t lanes = acc.chunks()[ch], offset = acc.chunkOffset(ch);
            llvm::Value* v =
                bias_ ? kernels::loadVector(ctx_, kernels::floatPtr(ctx_, bias_, channel(m, offset)), lanes)
                      : kernels::splat(ctx_, ctx_.f32(0.f), lanes);
            if (residual_)
              v = b_.CreateFAdd(v, kernels::loadVector(ctx_,
                                                       pixel(*residual_, channel(m, offset), outRow(p), ctx_.i64(0),
                                                             p % width),
                                                       lanes, residual_->channelStride));
            acc.set(p, ch, v);
          }
        if (!span.taps.empty())
          ctx_.loop(s_.groupChannels, [&](llvm::Value* c) {
            llvm::Value* xChannel = b_.CreateAdd(b_.CreateMul(g, ctx_.i64(s_.groupChannels)), c);
            for (int64_t kh : span.taps)
              for (int64_t kw = 0; kw < s_.kernelW; ++kw) {
                bool used = false;
                for (int64_t col = 0; col < width; ++col) used = used || reads(col, kw);
                if (!used) continue;
                const int64_t tap = kh * s_.kernelW + kw;
                std::vector<llvm::Value*> weights;
                for (size_t ch = 0; ch < acc.chunks().size(); ++ch)
                  weights.push_back(kernels::loadVector(ctx_, weight(m, acc.chunkOffset(ch), channels, c, tap),
                                                        acc.chunks()[ch]));
                acc.rankOneUpdate(
                    [&](int64_t p) -> llvm::Value* {
                      const int64_t col = p % width;
                      if (!reads(col, kw)) return nullptr;
                      llvm::Value* ih = b_.CreateAdd(b_.CreateMul(outRow(p), ctx_.i64(rows.stride)),
                                                     ctx_.i64(kh * rows.dilation - rows.padBegin));
                      return pixel(x, xChannel, ih, ctx_.i64(col * cols.stride - cols.padBegin + kw * cols.dilation),
                                   0);
                    },
                    weights);
              }
          });
        for (int64_t p = 0; p < acc.rows(); ++p)
          for (size_t ch = 0; ch < acc.chunks().size(); ++ch)
            kernels::storeVector(ctx_, pixel(y, channel(m, acc.chunkOffset(ch)), outRow(p), ctx_.i64(0), p % width),
                                 emitEpilogueActivation(b_, ctx_.attrs(), acc.get(p, ch)), y.channelStride);
      });
  }

  // acc = bias + residual (zero without them).
  void initialize(const kernels::AccumulatorTile& acc, llvm::Value* m, llvm::Value* oh, llvm::Value* ow) const {
    for (int64_t r = 0; r < acc.rows(); ++r)
      for (size_t c = 0; c < acc.chunks().size(); ++c) {
        const int64_t width = acc.chunks()[c];
        llvm::Value* v = kernels::splat(
            ctx_, bias_ ? kernels::loadFloat(ctx_, bias_, channel(m, r)) : static_cast<llvm::Value*>(ctx_.f32(0.f)),
            width);
        if (residual_)
          v = b_.CreateFAdd(
              v, kernels::loadVector(ctx_, pixel(*residual_, channel(m, r), oh, ow, acc.chunkOffset(c)), width));
        acc.set(r, c, v);
      }
  }

  void accumulate(const kernels::AccumulatorTile& acc, llvm::Value* g, llvm::Value* m, llvm::Value* oh, llvm::Value* ow,
                  const std::vector<int64_t>& rowTaps, const std::vector<int64_t>& colTaps, const Planes& x) const {
    if (rowTaps.empty() || colTaps.empty()) return;  // the window reads padding only
    const AxisGeometry &rows = s_.rows, &cols = s_.cols;
    ctx_.loop(s_.groupChannels, [&](llvm::Value* c) {
      llvm::Value* xChannel = b_.CreateAdd(b_.CreateMul(g, ctx_.i64(s_.groupChannels)), c);
      // Input column of the tile's first output for kernel column 0.
      llvm::Value* firstCol = b_.CreateSub(b_.CreateMul(ow, ctx_.i64(cols.stride)), ctx_.i64(cols.padBegin));
      for (int64_t kh : rowTaps) {
        llvm::Value* ih =
            b_.CreateAdd(b_.CreateMul(oh, ctx_.i64(rows.stride)), ctx_.i64(kh * rows.dilation - rows.padBegin));
        for (int64_t kw : colTaps) {
          std::vector<llvm::Value*> inputs;
          for (size_t ch = 0; ch < acc.chunks().size(); ++ch) {
            llvm::Value* col = b_.CreateAdd(firstCol, ctx_.i64(kw * cols.dilation + acc.chunkOffset(ch) * cols.stride));
            inputs.push_back(kernels::loadVector(ctx_, pixel(x, xChannel, ih, col, 0), acc.chunks()[ch], cols.stride));
          }
          const int64_t tap = kh * s_.kernelW + kw;
          acc.rankOneUpdate([&](int64_t r) { return weight(m, r, acc.rows(), c, tap); }, inputs);
        }
      }
    });
  }

  llvm::Value* channel(llvm::Value* m, int64_t r) const { return b_.CreateAdd(m, ctx_.i64(r)); }

  llvm::Value* pixel(const Planes& p, llvm::Value* channel, llvm::Value* row, llvm::Value* col,
                     int64_t colOffset) const {
    llvm::Value* index =
        b_.CreateAdd(b_.CreateMul(channel, ctx_.i64(p.channelStride)), b_.CreateMul(row, ctx_.i64(p.rowStride)));
    index = b_.CreateAdd(index, b_.CreateAdd(col, ctx_.i64(colOffset)));
    return kernels::floatPtr(ctx_, p.data, index);
  }

  // Weight of output channel m + r (of a block of `rows` starting at m),
  // input channel c (within the group), kernel tap `tap`.
  llvm::Value* weight(llvm::Value* m, int64_t r, int64_t rows, llvm::Value* c, int64_t tap) const {
    const int64_t perChannel = s_.groupChannels * s_.taps();
    llvm::Value* inChannel = b_.CreateAdd(b_.CreateMul(c, ctx_.i64(s_.taps())), ctx_.i64(tap));
    llvm::Value* index = w_.packed ? b_.CreateAdd(b_.CreateMul(m, ctx_.i64(perChannel)),
                                                  b_.CreateAdd(b_.CreateMul(inChannel, ctx_.i64(rows)), ctx_.i64(r)))
                                   : b_.CreateAdd(b_.CreateMul(channel(m, r), ctx_.i64(perChannel)), inChannel);
    return kernels::floatPtr(ctx_, w_.data, index);
  }

  EmitContext& ctx_;
  llvm::IRBuilder<>& b_;
  ConvShape s_;
  ConvWeights w_;
  llvm::Value* bias_;
  std::optional<Planes> residual_;
};

void requirePlain(EmitContext& ctx, const Operand& t) {
  if (t.type.layout != Layout::Plain) ctx.fail("the LLVM backend expects plain (NCHW) layouts, got " + t.type.str());
}

// ---------------------------------------------------------------- NCHWc

// Direct convolution in the blocked layout: x is [C/c][H][W][c] and y is
// [M/c][OH][OW][c] per sample (channels padded to whole blocks of c, the
// vector width; pad lanes zero). A register tile holds a few output pixels
// x a few output channel blocks, one vector each. A dense conv runs over the
// real input channels of the tile's group (a run-time loop; groups hold
// whole blocks, as Winograd's 16-group products do) and the kernel taps (unrolled): per
// tap, one weight vector per output block and one broadcast input per pixel
// feed pixels x blocks FMAs, all loads contiguous. A depthwise conv
// multiplies input vectors by the tap's weight vector lane by lane. Bias,
// residual and activation are applied to the accumulators before the one
// store (the fused epilogue costs no extra pass over memory). Constant
// weights are packed at compile time: dense [M/c][C][taps][c], depthwise
// [C/c][taps][c], bias [M/c * c], zero in the pad lanes, so pad output lanes
// stay act(0) = 0 (masked when the activation maps 0 elsewhere). Rows and
// columns are walked in spans whose in-input taps are known at compile time
// (as in the plain kernel); maps narrower than a tile get tiles of several
// whole rows, each column with its own taps. A dense conv may also read a
// plain input (a stem entering an NCHWc region: Conv's out_block), the same
// kernel with a pixel's channels a plane apart instead of adjacent.
class BlockedConvKernel {
 public:
  BlockedConvKernel(EmitContext& ctx, const ConvShape& s, bool depthwise)
      : ctx_(ctx), b_(ctx.b), s_(s), depthwise_(depthwise), c_(ctx.output().type.block) {
    const Operand& x = ctx.input(0);
    inChannels_ = x.type.shape[1];
    groupInChannels_ = depthwise_ ? inChannels_ : s.groupChannels;
    outChannels_ = ctx.output().type.shape[1];
    outBlocks_ = (outChannels_ + c_ - 1) / c_;
    groupOutBlocks_ = depthwise_ || s.groups == 1 ? outBlocks_ : s.groupOutChannels / c_;
    inputBlocked_ = x.type.layout == Layout::NCHWc;
    if (inputBlocked_ ? x.type.block != c_ : depthwise_)
      ctx.fail("NCHWc convs read NCHWc inputs of their block (dense ones also plain inputs), got " + x.type.str());
    packWeights();
    const int64_t budget = c_ >= 16 ? 24 : 12;  // accumulators, leaving registers for weights and inputs
    blocksPerTile_ = depthwise_ ? 1 : std::min<int64_t>(outBlocks_, c_ >= 16 ? 4 : 2);
    // Maps of fewer pixels than a tile (the last stages at small inputs)
    // fill the tile with more output blocks instead.
    const int64_t mapPixels = s.rows.out * s.cols.out;
    if (!depthwise_ && mapPixels * blocksPerTile_ < budget)
      blocksPerTile_ = std::clamp<int64_t>(budget / mapPixels, blocksPerTile_, outBlocks_);
    while (groupOutBlocks_ % blocksPerTile_ != 0) --blocksPerTile_;  // a tile's blocks share a group
    pixelsPerTile_ = std::max<int64_t>(1, budget / blocksPerTile_);
    Epilogue epilogue(ctx.attrs());
    float zero = 0.f;
    epilogue.apply(&zero, 1);
    maskPadLanes_ = zero != 0.f && outChannels_ % c_ != 0;
  }

  // Splits the work (EmitContext::split) over output rows and the groups of
  // output blocks the tiles hold. Rows are the outer split (each thread's
  // chunk, see split) when the maps outweigh the weights: a thread then
  // reads the rows it wrote in the node before. Weight-heavy convs (the
  // last stages) split their output blocks first, so each thread streams
  // only its blocks' weights. A memory-bound conv (depthwise) counts its
  // bytes as work too: left whole, it would read the other threads' rows
  // of its input.
  void emit() {
    const int64_t groups = outBlocks_ / blocksPerTile_, rest = outBlocks_ % blocksPerTile_;
    const int64_t allGroups = groups + (rest ? 1 : 0);
    const int64_t pixels = s_.rows.out * s_.cols.out;
    const int64_t flops = 2 * pixels * outChannels_ * (depthwise_ ? 1 : groupInChannels_) * s_.taps();
    const int64_t mapBytes = 4 * (s_.rows.in * s_.cols.in * inChannels_ + pixels * outChannels_);
    const int64_t weightBytes = 4 * outChannels_ * (depthwise_ ? 1 : groupInChannels_) * s_.taps();
    const int64_t ways = splitWays(std::max(flops, 4 * mapBytes), allGroups * pixels);  // a one-row map may be refolded
    LoopRange groupRange;
    int64_t rowWays = 1;
    if (mapBytes >= weightBytes) {
      refoldPixelRow(ways);
      rowWays = std::min(s_.rows.out, ways);
      groupRange = ctx_.split(allGroups, std::min(allGroups, waysLeft(ways, rowWays)));
      rowRange_ = ctx_.split(s_.rows.out, rowWays);  // the outer split
    } else {
      const int64_t groupWays = std::min(allGroups, ways);
      if (waysLeft(ways, groupWays) >= 2) refoldPixelRow(waysLeft(ways, groupWays));
      rowWays = std::min(s_.rows.out, waysLeft(ways, groupWays));
      rowRange_ = ctx_.split(s_.rows.out, rowWays);
      groupRange = ctx_.split(allGroups, groupWays);  // the outer split
    }
    rowsSplit_ = rowWays > 1;
    ctx_.loop(groupRange, 0, groups,
              [&](llvm::Value* g) { emitBlocks(b_.CreateMul(g, ctx_.i64(blocksPerTile_)), blocksPerTile_); });
    if (rest)
      ctx_.when(b_.CreateICmpEQ(groupRange.end, ctx_.i64(allGroups)),
                [&] { emitBlocks(ctx_.i64(groups * blocksPerTile_), rest); });
  }

 private:
  // A 1x1 stride-1 unpadded conv reads pixel p for output pixel p, so its
  // map is one row of all pixels (convShape). To split it along rows, the
  // pixels are refolded into up to `rows` rows of equal width, no narrower
  // than a tile.
  void refoldPixelRow(int64_t rows) {
    const AxisGeometry& c = s_.cols;
    if (s_.rows.out != 1 || s_.taps() != 1 || c.stride != 1 || c.padBegin != 0 || c.padEnd != 0) return;
    const int64_t pixels = c.out;
    for (int64_t r = std::min(rows, pixels / pixelsPerTile_); r > 1; --r)
      if (pixels % r == 0) {
        s_.rows = AxisGeometry{r, r, 1, 1, 1, 0, 0};
        s_.cols = AxisGeometry{pixels / r, pixels / r, 1, 1, 1, 0, 0};
        return;
      }
  }

  // Output blocks [ob, ob + blocks) over the whole map. Per output row
  // span (rows reading the same kernel rows), a row is cut into tiles of up
  // to `pixels` columns: the first and last ones at compile time, each
  // column with its own in-input kernel columns (so borders cost no extra,
  // narrow tiles), the middle ones -- whose columns read every kernel column
  // -- in a run-time loop. Maps narrower than a tile get tiles of several
  // whole rows.
  void emitBlocks(llvm::Value* ob, int64_t blocks) const {
    const AxisGeometry &rows = s_.rows, &cols = s_.cols;
    const int64_t pixels = std::max<int64_t>(1, pixelsPerTile_ * blocksPerTile_ / blocks);
    std::vector<std::vector<int64_t>> colTaps(static_cast<size_t>(cols.out));
    for (const AxisSpan& span : kernels::axisSpans(cols))
      for (int64_t o = span.begin; o < span.end; ++o) colTaps[static_cast<size_t>(o)] = span.taps;
    const ColumnTaps tapsOf = [&](int64_t col) -> const std::vector<int64_t>& {
      return colTaps[static_cast<size_t>(col)];
    };
    // Split rows are walked one by one (tiles of several rows would straddle parts).
    const int64_t tileRows = cols.out < pixels && !rowsSplit_ ? std::max<int64_t>(1, pixels / cols.out) : 1;
    // Columns [begin, end) as near-equal compile-time tiles of <= pixels.
    auto staticTiles = [&](llvm::Value* oh, int64_t nrows, const std::vector<int64_t>& rowTaps, int64_t begin,
                           int64_t end) {
      const int64_t count = (end - begin + pixels - 1) / pixels;
      for (int64_t t = 0, at = begin; t < count; ++t) {
        const int64_t width = (end - at) / (count - t);
        emitTile(ob, blocks, oh, nrows, rowTaps, ctx_.i64(at), width,
                 [&, at](int64_t j) -> const std::vector<int64_t>& { return tapsOf(at + j); });
        at += width;
      }
    };
    // The middle run-time tiles [left, left + middle * pixels) lie in the
    // columns [firstFull, lastFull) that read every kernel column.
    int64_t firstFull = 0;
    while (firstFull < cols.out && static_cast<int64_t>(colTaps[static_cast<size_t>(firstFull)].size()) != s_.kernelW)
      ++firstFull;
    int64_t lastFull = firstFull;
    while (lastFull < cols.out && static_cast<int64_t>(colTaps[static_cast<size_t>(lastFull)].size()) == s_.kernelW)
      ++lastFull;
    const int64_t left = std::max(pixels, firstFull);
    const int64_t middle =
        cols.out >= 3 * pixels ? std::max<int64_t>(0, (std::min(lastFull, cols.out - pixels) - left) / pixels) : 0;
    const std::vector<int64_t>& fullTaps = colTaps[static_cast<size_t>(std::min(left, cols.out - 1))];
    for (const AxisSpan& rowSpan : kernels::axisSpans(rows)) {
      auto rowTile = [&](llvm::Value* oh, int64_t nrows) {
        if (middle == 0) return staticTiles(oh, nrows, rowSpan.taps, 0, cols.out);
        staticTiles(oh, nrows, rowSpan.taps, 0, left);
        ctx_.loop(
            ctx_.i64(left), ctx_.i64(left + middle * pixels),
            [&](llvm::Value* ow) {
              emitTile(ob, blocks, oh, nrows, rowSpan.taps, ow, pixels,
                       [&](int64_t) -> const std::vector<int64_t>& { return fullTaps; });
            },
            pixels);
        staticTiles(oh, nrows, rowSpan.taps, left + middle * pixels, cols.out);
      };
      if (rowsSplit_)
        ctx_.loop(rowRange_, rowSpan.begin, rowSpan.end, [&](llvm::Value* oh) { rowTile(oh, 1); });
      else
        kernels::forEachTile(ctx_, rowSpan.begin, rowSpan.end, tileRows, rowTile);
    }
  }

  using ColumnTaps = std::function<const std::vector<int64_t>&(int64_t col)>;

  // One register tile: output blocks [ob, ob + blocks) x rows [oh, oh +
  // nrows) x columns [ow, ow + ncols); column j reads kernel columns taps(j).
  // Addresses are a run-time base per tile (and per input channel) plus
  // compile-time offsets per pixel and tap, which fold into the loads.
  void emitTile(llvm::Value* ob, int64_t blocks, llvm::Value* oh, int64_t nrows, const std::vector<int64_t>& rowTaps,
                llvm::Value* ow, int64_t ncols, const ColumnTaps& taps) const {
    const int64_t pixels = nrows * ncols;
    const AxisGeometry &rows = s_.rows, &cols = s_.cols;
    kernels::AccumulatorTile acc(ctx_, pixels, std::vector<int64_t>(static_cast<size_t>(blocks), c_));
    // Output (and residual) element of pixel p, block ob + k: tile base + constant.
    const int64_t outPlane = rows.out * cols.out * c_;
    llvm::Value* outPixel = b_.CreateAdd(b_.CreateMul(oh, ctx_.i64(cols.out)), ow);
    llvm::Value* outTile = b_.CreateAdd(b_.CreateMul(ob, ctx_.i64(outPlane)), b_.CreateMul(outPixel, ctx_.i64(c_)));
    auto outAt = [&](llvm::Value* data, int64_t p, int64_t k) {
      const int64_t offset = k * outPlane + ((p / ncols) * cols.out + p % ncols) * c_;
      return kernels::floatPtr(ctx_, data, b_.CreateAdd(outTile, ctx_.i64(offset)));
    };
    const std::optional<Operand> residual = ctx_.hasInput(3) ? std::optional<Operand>(ctx_.input(3)) : std::nullopt;
    llvm::Value* biasBlock = b_.CreateMul(ob, ctx_.i64(c_));
    for (int64_t p = 0; p < pixels; ++p)
      for (int64_t k = 0; k < blocks; ++k) {
        llvm::Value* v = kernels::loadVector(
            ctx_, kernels::floatPtr(ctx_, bias_, b_.CreateAdd(biasBlock, ctx_.i64(k * c_))), c_);
        if (residual) v = b_.CreateFAdd(v, kernels::loadVector(ctx_, outAt(residual->data, p, k), c_));
        acc.set(p, static_cast<size_t>(k), v);
      }
    // Input element of pixel p, kernel tap (kh, kw): channel base + tile base
    // + constant. A blocked input holds a pixel's channels c floats apart
    // ([C/c][H][W][c]); a plain one (an entry conv's) one float ([C][H][W]).
    const int64_t pixelStride = inputBlocked_ ? c_ : 1, inPlane = rows.in * cols.in * pixelStride;
    llvm::Value* inTile = b_.CreateMul(
        b_.CreateAdd(b_.CreateMul(b_.CreateMul(oh, ctx_.i64(rows.stride)), ctx_.i64(cols.in)),
                     b_.CreateMul(ow, ctx_.i64(cols.stride))),
        ctx_.i64(pixelStride));
    auto inOffset = [&](int64_t p, int64_t kh, int64_t kw) {
      const int64_t row = (p / ncols) * rows.stride + kh * rows.dilation - rows.padBegin;
      const int64_t col = (p % ncols) * cols.stride + kw * cols.dilation - cols.padBegin;
      return (row * cols.in + col) * pixelStride;
    };
    auto reads = [&](int64_t p, int64_t kw) {
      const std::vector<int64_t>& t = taps(p % ncols);
      return std::find(t.begin(), t.end(), kw) != t.end();
    };
    llvm::Value* x = ctx_.input(0).data;
    if (depthwise_) {
      llvm::Value* channelBase = b_.CreateAdd(b_.CreateMul(ob, ctx_.i64(inPlane)), inTile);
      llvm::Value* wBase = b_.CreateMul(ob, ctx_.i64(s_.taps() * c_));
      for (int64_t kh : rowTaps)
        for (int64_t kw = 0; kw < s_.kernelW; ++kw) {
          const int64_t tap = kh * s_.kernelW + kw;
          llvm::Value* w = nullptr;
          for (int64_t p = 0; p < pixels; ++p) {
            if (!reads(p, kw)) continue;
            if (!w)
              w = kernels::loadVector(ctx_, kernels::floatPtr(ctx_, weights_, b_.CreateAdd(wBase, ctx_.i64(tap * c_))),
                                      c_);
            llvm::Value* in = kernels::loadVector(
                ctx_, kernels::floatPtr(ctx_, x, b_.CreateAdd(channelBase, ctx_.i64(inOffset(p, kh, kw)))), c_);
            acc.set(p, 0, kernels::fmulAdd(ctx_, in, w, acc.get(p, 0)));
          }
        }
    } else if (!rowTaps.empty()) {
      const int64_t perBlock = groupInChannels_ * s_.taps() * c_;  // packed weights of one output block
      llvm::Value* wBlocks = b_.CreateMul(ob, ctx_.i64(perBlock));
      // The tile's group reads input channels [groupBase, groupBase + groupInChannels_).
      llvm::Value* groupBase =
          b_.CreateMul(b_.CreateUDiv(ob, ctx_.i64(groupOutBlocks_)), ctx_.i64(groupInChannels_));
      ctx_.loop(groupInChannels_, [&](llvm::Value* groupChannel) {
        llvm::Value* ic = b_.CreateAdd(groupBase, groupChannel);
        // Input channel ic sits in block ic / c, lane ic % c (blocked) or plane ic (plain).
        llvm::Value* channelBase =
            inputBlocked_
                ? b_.CreateAdd(b_.CreateAdd(b_.CreateMul(b_.CreateUDiv(ic, ctx_.i64(c_)), ctx_.i64(inPlane)),
                                            b_.CreateURem(ic, ctx_.i64(c_))),
                               inTile)
                : b_.CreateAdd(b_.CreateMul(ic, ctx_.i64(inPlane)), inTile);
        llvm::Value* wBase = b_.CreateAdd(wBlocks, b_.CreateMul(groupChannel, ctx_.i64(s_.taps() * c_)));
        for (int64_t kh : rowTaps)
          for (int64_t kw = 0; kw < s_.kernelW; ++kw) {
            bool used = false;
            for (int64_t p = 0; p < pixels && !used; ++p) used = reads(p, kw);
            if (!used) continue;
            const int64_t tap = kh * s_.kernelW + kw;
            std::vector<llvm::Value*> w;
            for (int64_t k = 0; k < blocks; ++k)
              w.push_back(kernels::loadVector(
                  ctx_, kernels::floatPtr(ctx_, weights_, b_.CreateAdd(wBase, ctx_.i64(k * perBlock + tap * c_))), c_));
            acc.rankOneUpdate(
                [&](int64_t p) -> llvm::Value* {
                  if (!reads(p, kw)) return nullptr;
                  return kernels::floatPtr(ctx_, x, b_.CreateAdd(channelBase, ctx_.i64(inOffset(p, kh, kw))));
                },
                w);
          }
      });
    }
    llvm::Value* laneIndex = nullptr;
    if (maskPadLanes_) {
      std::vector<llvm::Constant*> lanes;
      for (int64_t l = 0; l < c_; ++l) lanes.push_back(b_.getInt64(static_cast<uint64_t>(l)));
      laneIndex = llvm::ConstantVector::get(lanes);
    }
    for (int64_t p = 0; p < pixels; ++p)
      for (int64_t k = 0; k < blocks; ++k) {
        llvm::Value* v = emitEpilogueActivation(b_, ctx_.attrs(), acc.get(p, static_cast<size_t>(k)));
        if (laneIndex) {
          llvm::Value* channel =
              b_.CreateAdd(kernels::splat(ctx_, b_.CreateAdd(biasBlock, ctx_.i64(k * c_)), c_), laneIndex);
          v = b_.CreateSelect(b_.CreateICmpSLT(channel, kernels::splat(ctx_, ctx_.i64(outChannels_), c_)), v,
                              kernels::splat(ctx_, ctx_.f32(0.f), c_));
        }
        kernels::storeVector(ctx_, outAt(ctx_.output().data, p, k), v);
      }
  }

  void packWeights() {
    const Operand& w = ctx_.input(1);
    if (!w.constant) ctx_.fail("NCHWc convolutions need constant weights");
    const float* src = w.constant->data<float>();
    const int64_t taps = s_.taps(), paddedOut = outBlocks_ * c_;
    const int64_t perOut = depthwise_ ? taps : groupInChannels_ * taps;
    Tensor packed(DType::F32, Shape({paddedOut * perOut}));
    float* dst = packed.data<float>();
    for (int64_t m = 0; m < outChannels_; ++m)
      for (int64_t i = 0; i < perOut; ++i)  // i = ic * taps + tap (dense) or tap (depthwise)
        dst[((m / c_) * perOut + i) * c_ + m % c_] = src[m * perOut + i];
    weights_ = ctx_.packConstant(packed);
    Tensor bias(DType::F32, Shape({paddedOut}));
    if (ctx_.hasInput(2)) {
      const Operand& bOp = ctx_.input(2);
      if (!bOp.constant) ctx_.fail("NCHWc convolutions need a constant bias");
      std::copy_n(bOp.constant->data<float>(), outChannels_, bias.data<float>());
    }
    bias_ = ctx_.packConstant(bias);
  }

  EmitContext& ctx_;
  llvm::IRBuilder<>& b_;
  ConvShape s_;
  bool depthwise_;
  int64_t c_;
  bool inputBlocked_ = true;
  int64_t inChannels_ = 0, outChannels_ = 0, outBlocks_ = 0;
  int64_t groupInChannels_ = 0, groupOutBlocks_ = 0;  // per group (a depthwise conv: all, as one)
  int64_t blocksPerTile_ = 1, pixelsPerTile_ = 1;
  bool maskPadLanes_ = false;
  llvm::Value* weights_ = nullptr;
  llvm::Value* bias_ = nullptr;
  LoopRange rowRange_{};  // this part's output rows (all when not split)
  bool rowsSplit_ = false;
};

void emitBlockedConv(EmitContext& ctx) {
  const Operand &x = ctx.input(0), &w = ctx.input(1), &y = ctx.output();
  const int64_t group = ctx.attrs().getInt("group");
  const int64_t block = y.type.block;
  const bool depthwise = group > 1 && group == x.type.shape[1] && group == y.type.shape[1];
  if (group > 1 && !depthwise && ((x.type.shape[1] / group) % block != 0 || (y.type.shape[1] / group) % block != 0))
    ctx.fail("NCHWc convolutions are dense, depthwise or grouped in whole channel blocks, got group " +
             std::to_string(group));
  if (x.type.shape.rank() != 4) ctx.fail("NCHWc convolutions are 2-D");
  const ConvShape s = convShape(ctx, x.type.shape, w.type.shape, y.type.shape, group, true);
  BlockedConvKernel(ctx, s, depthwise).emit();
}

void emitConv(EmitContext& ctx) {
  const Operand &x = ctx.input(0), &w = ctx.input(1), &y = ctx.output();
  if (x.type.layout == Layout::NCHWc || y.type.layout == Layout::NCHWc) return emitBlockedConv(ctx);
  requirePlain(ctx, x);
  requirePlain(ctx, y);
  const ConvShape s = convShape(ctx, x.type.shape, w.type.shape, y.type.shape, ctx.attrs().getInt("group"), true);
  const Planes out = planesOf(s, y.data, false);
  std::optional<Planes> residual;
  if (ctx.hasInput(3)) residual = planesOf(s, ctx.input(3).data, false);
  const ConvKernel kernel(ctx, s, convWeights(ctx, w, s, true), ctx.hasInput(2) ? ctx.input(2).data : nullptr,
                          residual);
  if (kernel.channelAxis()) return kernel.emitChannels(planesOf(s, x.data, true), out);  // activation included
  const LoopRange rows = ctx.split(s.rows.out, splitWays(kernel.flops(), s.rows.out));
  for (const AxisSpan& span : kernels::axisSpans(s.rows))
    ctx.loop(rows, span.begin, span.end, [&](llvm::Value* oh) {
      kernel.emitRow(oh, span.taps, planesOf(s, x.data, true), out);
      ctx.loop(s.outChannels(), [&](llvm::Value* m) {
        llvm::Value* row = ctx.b.CreateAdd(ctx.b.CreateMul(m, ctx.i64(out.channelStride)),
                                           ctx.b.CreateMul(oh, ctx.i64(out.rowStride)));
        kernels::applyActivation(ctx, kernels::floatPtr(ctx, y.data, row), s.cols.out);
      });
    });
}

// The depthwise row buffer is a stack array; beyond this many bytes the
// node must be split into two Convs (the split-separable pass) instead.
constexpr int64_t kMaxSeparableRowBytes = 512 * 1024;

void emitSeparableConv2D(EmitContext& ctx) {
  const Operand &x = ctx.input(0), &wd = ctx.input(1), &wp = ctx.input(2), &y = ctx.output();
  requirePlain(ctx, x);
  requirePlain(ctx, y);
  const Shape& xs = x.type.shape;
  const Shape& ys = y.type.shape;
  const int64_t depthChannels = wd.type.shape[0];
  const Shape mid({1, depthChannels, ys[2], ys[3]});
  const ConvShape depthwise = convShape(ctx, xs, wd.type.shape, mid, xs[1], false);
  const int64_t width = ys[3];
  const AxisGeometry rowOfPixels{width, width, 1, 1, 1, 0, 0};
  const ConvShape pointwise{1, depthChannels, ys[1], 1, 1, AxisGeometry{1, 1, 1, 1, 1, 0, 0}, rowOfPixels};
  if (depthChannels * width * 4 > kMaxSeparableRowBytes)
    ctx.fail("the depthwise row (" + std::to_string(depthChannels) + " channels x " + std::to_string(width) +
             " pixels) exceeds the stack buffer; split the node with the split-separable pass");

  llvm::BasicBlock& entry = ctx.b.GetInsertBlock()->getParent()->getEntryBlock();
  llvm::IRBuilder<> atEntry(&entry, entry.begin());
  llvm::AllocaInst* buffer = atEntry.CreateAlloca(ctx.f32Type(), ctx.i64(depthChannels * width), "depthwise.row");
  buffer->setAlignment(llvm::Align(64));
  const Planes row{buffer, width, 0};  // one row per channel, reused for every output row

  const ConvKernel depthwiseKernel(ctx, depthwise, convWeights(ctx, wd, depthwise, false), nullptr, std::nullopt);
  const ConvKernel pointwiseKernel(ctx, pointwise, convWeights(ctx, wp, pointwise, false),
                                   ctx.hasInput(3) ? ctx.input(3).data : nullptr, std::nullopt);
  const int64_t flops = depthwiseKernel.flops() + pointwiseKernel.flops() * ys[2];  // pointwise: one row's shape
  const LoopRange rows = ctx.split(depthwise.rows.out, splitWays(flops, depthwise.rows.out));
  for (const AxisSpan& span : kernels::axisSpans(depthwise.rows))
    ctx.loop(rows, span.begin, span.end, [&](llvm::Value* oh) {
      depthwiseKernel.emitRow(oh, span.taps, planesOf(depthwise, x.data, true), row);
      pointwiseKernel.emitRow(oh, {0}, row, Planes{y.data, ys[2] * width, width});
    });
}

// ---------------------------------------------------------------- ConvTranspose

// Outputs of one axis of a transposed convolution that gather the same
// kernel taps: o = first + stride*t for t in [0, count) reads input
// firstInput[j] + t through tap taps[j]. The outputs of one phase (o mod
// stride) form a stride-1 convolution of the input with the phase's taps, so
// a run is a phase's span whose taps all stay inside the input.
struct GatherRun {
  int64_t first, count;
  std::vector<int64_t> taps, firstInput;
};

std::vector<GatherRun> gatherRuns(const AxisGeometry& a) {
  std::vector<GatherRun> runs;
  for (int64_t phase = 0; phase < std::min(a.stride, a.out); ++phase) {
    const size_t phaseStart = runs.size();
    for (int64_t o = phase; o < a.out; o += a.stride) {
      std::vector<int64_t> taps, inputs;
      for (int64_t k = 0; k < a.kernel; ++k)
        if (const int64_t shifted = o + a.padBegin - k * a.dilation; shifted >= 0 && shifted % a.stride == 0 &&
                                                                      shifted / a.stride < a.in) {
          taps.push_back(k);
          inputs.push_back(shifted / a.stride);
        }
      if (runs.size() > phaseStart && runs.back().taps == taps) ++runs.back().count;
      else runs.push_back({o, 1, std::move(taps), std::move(inputs)});
    }
  }
  return runs;
}

// ConvTranspose (1-D and 2-D, groups, strides, pads, dilations,
// output_padding, bias, the fused residual + activation) as a gather: each
// output pixel sums, over the input channels of its group (a run-time loop)
// and the kernel taps that reach it (unrolled, known per run at compile
// time), input pixel x broadcast times a vector of the tap's weights for a
// block of output channels. A register tile holds a few pixels of one output
// row's run x the block's channel vectors. Vectors run along the output
// channels, so with NCHWc operands ([C/c][H][W][c], dense convs only) loads
// and stores are contiguous; a plain output stores lanes a channel plane
// apart. Constant weights are packed as [C][taps][M/group rounded up to
// whole vectors] (contiguous channel vectors, zero pad lanes), others read
// W [C][M/group][taps] with strided loads. Work splits over output rows.
class TransposedConvKernel {
 public:
  explicit TransposedConvKernel(EmitContext& ctx) : ctx_(ctx), b_(ctx.b) {
    const Operand &x = ctx.input(0), &w = ctx.input(1), &y = ctx.output();
    const Shape &xs = x.type.shape, &ws = w.type.shape, &ys = y.type.shape;
    const size_t spatial = xs.rank() - 2;
    if (spatial > 2) ctx.fail("the LLVM backend emits 1-D and 2-D transposed convolutions only (input " + xs.str() + ")");
    const Attributes& a = ctx.attrs();
    const std::vector<int64_t>& strides = a.getInts("strides");
    const std::vector<int64_t>& pads = a.getInts("pads");
    const std::vector<int64_t>& dilations = a.getInts("dilations");
    auto axis = [&](size_t d) {
      return AxisGeometry{xs[2 + d], ys[2 + d], ws[2 + d], strides[d], dilations[d], pads[d], pads[spatial + d]};
    };
    rows_ = spatial == 2 ? axis(0) : AxisGeometry{1, 1, 1, 1, 1, 0, 0};
    cols_ = axis(spatial - 1);
    groups_ = a.getInt("group");
    channels_ = xs[1];
    groupChannels_ = channels_ / groups_;
    groupOutChannels_ = ws[1];
    taps_ = rows_.kernel * cols_.kernel;
    blocked_ = y.type.layout == Layout::NCHWc;
    lanes_ = blocked_ ? y.type.block : ctx.target.vectorFloats;
    if (blocked_ && (x.type.layout != Layout::NCHWc || x.type.block != lanes_ || groups_ != 1 || spatial != 2))
      ctx.fail("NCHWc transposed convolutions are dense 2-D ones with NCHWc input and output, got " + x.type.str());
    if (!blocked_ && (x.type.layout != Layout::Plain || y.type.layout != Layout::Plain))
      ctx.fail("transposed convolution layouts must match, got " + x.type.str() + " -> " + y.type.str());
    paddedOutChannels_ = (groupOutChannels_ + lanes_ - 1) / lanes_ * lanes_;
    vectors_ = std::min<int64_t>(paddedOutChannels_ / lanes_, 4);
    pixels_ = std::max<int64_t>(1, kernels::accumulatorBudget(ctx.target) / vectors_);
    packOperands();
  }

  void emit() const {
    const int64_t flops = 2 * rows_.in * cols_.in * channels_ * groupOutChannels_ * taps_;
    const LoopRange part = ctx_.split(rows_.out, splitWays(flops, rows_.out));
    const std::vector<GatherRun> colRuns = gatherRuns(cols_);
    // Rows are numbered run after run (the runs' order, not the rows'), so
    // the split's share is a range of that numbering.
    int64_t at = 0;
    for (const GatherRun& rowRun : gatherRuns(rows_)) {
      ctx_.loop(part, at, at + rowRun.count, [&](llvm::Value* index) {
        llvm::Value* t = b_.CreateSub(index, ctx_.i64(at));
        llvm::Value* oh = b_.CreateAdd(ctx_.i64(rowRun.first), b_.CreateMul(t, ctx_.i64(rows_.stride)));
        std::vector<llvm::Value*> inRows;
        for (int64_t first : rowRun.firstInput) inRows.push_back(b_.CreateAdd(t, ctx_.i64(first)));
        emitRow(oh, rowRun.taps, inRows, colRuns);
      });
      at += rowRun.count;
    }
  }

 private:
  // Every output channel of output row oh, which reads input rows inRows[j]
  // through kernel rows rowTaps[j].
  void emitRow(llvm::Value* oh, const std::vector<int64_t>& rowTaps, const std::vector<llvm::Value*>& inRows,
               const std::vector<GatherRun>& colRuns) const {
    const int64_t blockWidth = vectors_ * lanes_;
    const int64_t fullBlocks = groupOutChannels_ / blockWidth, lastWidth = groupOutChannels_ % blockWidth;
    ctx_.loop(groups_, [&](llvm::Value* g) {
      auto blockAt = [&](llvm::Value* m, int64_t width) {
        for (const GatherRun& colRun : colRuns)
          kernels::forEachTile(ctx_, 0, colRun.count, pixels_, [&](llvm::Value* t0, int64_t count) {
            emitTile(g, m, width, oh, rowTaps, inRows, colRun, t0, count);
          });
      };
      ctx_.loop(fullBlocks, [&](llvm::Value* block) { blockAt(b_.CreateMul(block, ctx_.i64(blockWidth)), blockWidth); });
      // NCHWc blocks cover the pad lanes too (their weights and bias are zero).
      if (lastWidth)
        blockAt(ctx_.i64(fullBlocks * blockWidth),
                blocked_ ? (lastWidth + lanes_ - 1) / lanes_ * lanes_ : lastWidth);
    });
  }

  // Output channels [m, m + width) of group g (m within the group) at
  // output row oh, columns colRun.first + stride*(t0 + j) for j < count.
  void emitTile(llvm::Value* g, llvm::Value* m, int64_t width, llvm::Value* oh, const std::vector<int64_t>& rowTaps,
                const std::vector<llvm::Value*>& inRows, const GatherRun& colRun, llvm::Value* t0,
                int64_t count) const {
    kernels::AccumulatorTile acc(ctx_, count, kernels::chunkWidths(width, lanes_));
    llvm::Value* outChannel = b_.CreateAdd(b_.CreateMul(g, ctx_.i64(groupOutChannels_)), m);
    llvm::Value* ow0 = b_.CreateAdd(ctx_.i64(colRun.first), b_.CreateMul(t0, ctx_.i64(cols_.stride)));
    auto outAt = [&](llvm::Value* data, int64_t p, int64_t chunkOffset) {
      llvm::Value* ow = b_.CreateAdd(ow0, ctx_.i64(p * cols_.stride));
      return outputPtr(data, b_.CreateAdd(outChannel, ctx_.i64(chunkOffset)), oh, ow);
    };
    const int64_t laneStride = blocked_ ? 1 : rows_.out * cols_.out;
    for (int64_t p = 0; p < count; ++p)
      for (size_t ch = 0; ch < acc.chunks().size(); ++ch) {
        const int64_t lanes = acc.chunks()[ch], offset = acc.chunkOffset(ch);
        llvm::Value* v =
            bias_ ? kernels::loadVector(ctx_, kernels::floatPtr(ctx_, bias_, b_.CreateAdd(outChannel, ctx_.i64(offset))),
                                        lanes)
                  : kernels::splat(ctx_, ctx_.f32(0.f), lanes);
        if (ctx_.hasInput(3))
          v = b_.CreateFAdd(v, kernels::loadVector(ctx_, outAt(ctx_.input(3).data, p, offset), lanes, laneStride));
        acc.set(p, ch, v);
      }
    if (!rowTaps.empty() && !colRun.taps.empty())
      ctx_.loop(groupChannels_, [&](llvm::Value* c) {
        llvm::Value* inChannel = b_.CreateAdd(b_.CreateMul(g, ctx_.i64(groupChannels_)), c);
        for (size_t i = 0; i < rowTaps.size(); ++i)
          for (size_t j = 0; j < colRun.taps.size(); ++j) {
            const int64_t tap = rowTaps[i] * cols_.kernel + colRun.taps[j];
            std::vector<llvm::Value*> weights;
            for (size_t ch = 0; ch < acc.chunks().size(); ++ch)
              weights.push_back(weightVector(inChannel, b_.CreateAdd(m, ctx_.i64(acc.chunkOffset(ch))), tap,
                                             acc.chunks()[ch]));
            llvm::Value* iw0 = b_.CreateAdd(t0, ctx_.i64(colRun.firstInput[j]));
            acc.rankOneUpdate(
                [&](int64_t p) { return inputPtr(inChannel, inRows[i], b_.CreateAdd(iw0, ctx_.i64(p))); }, weights);
          }
      });
    for (int64_t p = 0; p < count; ++p)
      for (size_t ch = 0; ch < acc.chunks().size(); ++ch)
        kernels::storeVector(ctx_, outAt(ctx_.output().data, p, acc.chunkOffset(ch)),
                             emitEpilogueActivation(b_, ctx_.attrs(), acc.get(p, ch)), laneStride);
  }

  // Element (channel, row, col) of x / of an output-shaped operand.
  llvm::Value* inputPtr(llvm::Value* channel, llvm::Value* row, llvm::Value* col) const {
    return elementPtr(ctx_.input(0).data, channel, b_.CreateAdd(b_.CreateMul(row, ctx_.i64(cols_.in)), col),
                      rows_.in * cols_.in);
  }
  llvm::Value* outputPtr(llvm::Value* data, llvm::Value* channel, llvm::Value* row, llvm::Value* col) const {
    return elementPtr(data, channel, b_.CreateAdd(b_.CreateMul(row, ctx_.i64(cols_.out)), col),
                      rows_.out * cols_.out);
  }
  // Plain [C][pixels] or blocked [C/c][pixels][c].
  llvm::Value* elementPtr(llvm::Value* data, llvm::Value* channel, llvm::Value* pixel, int64_t plane) const {
    llvm::Value* index =
        blocked_ ? b_.CreateAdd(b_.CreateAdd(b_.CreateMul(b_.CreateUDiv(channel, ctx_.i64(lanes_)),
                                                          ctx_.i64(plane * lanes_)),
                                             b_.CreateMul(pixel, ctx_.i64(lanes_))),
                                b_.CreateURem(channel, ctx_.i64(lanes_)))
                 : b_.CreateAdd(b_.CreateMul(channel, ctx_.i64(plane)), pixel);
    return kernels::floatPtr(ctx_, data, index);
  }

  // Weights of input channel c, tap `tap`, output channels [m, m + width) of c's group.
  llvm::Value* weightVector(llvm::Value* c, llvm::Value* m, int64_t tap, int64_t width) const {
    if (packed_)
      return kernels::loadVector(
          ctx_,
          kernels::floatPtr(ctx_, weights_,
                            b_.CreateAdd(b_.CreateMul(c, ctx_.i64(taps_ * paddedOutChannels_)),
                                         b_.CreateAdd(ctx_.i64(tap * paddedOutChannels_), m))),
          width);
    llvm::Value* first = b_.CreateAdd(b_.CreateMul(b_.CreateAdd(b_.CreateMul(c, ctx_.i64(groupOutChannels_)), m),
                                                   ctx_.i64(taps_)),
                                      ctx_.i64(tap));
    return kernels::loadVector(ctx_, kernels::floatPtr(ctx_, weights_, first), width, taps_);
  }

  void packOperands() {
    const Operand& w = ctx_.input(1);
    packed_ = w.constant != nullptr;
    weights_ = w.data;
    bias_ = ctx_.hasInput(2) ? ctx_.input(2).data : nullptr;
    if (blocked_ && (!packed_ || (bias_ && !ctx_.input(2).constant)))
      ctx_.fail("NCHWc transposed convolutions need a constant weight and bias");
    if (packed_) {
      Tensor packed(DType::F32, Shape({channels_ * taps_ * paddedOutChannels_}));
      const float* src = w.constant->data<float>();
      float* dst = packed.data<float>();
      for (int64_t c = 0; c < channels_; ++c)
        for (int64_t m = 0; m < groupOutChannels_; ++m)
          for (int64_t tap = 0; tap < taps_; ++tap)
            dst[(c * taps_ + tap) * paddedOutChannels_ + m] = src[(c * groupOutChannels_ + m) * taps_ + tap];
      weights_ = ctx_.packConstant(packed);
    }
    if (blocked_) {  // zero pad lanes after the real channels
      Tensor bias(DType::F32, Shape({paddedOutChannels_}));
      if (bias_) std::copy_n(ctx_.input(2).constant->data<float>(), groupOutChannels_, bias.data<float>());
      bias_ = ctx_.packConstant(bias);
    }
  }

  EmitContext& ctx_;
  llvm::IRBuilder<>& b_;
  AxisGeometry rows_{}, cols_{};
  int64_t groups_ = 1, channels_ = 0, groupChannels_ = 0, groupOutChannels_ = 0, taps_ = 1;
  bool blocked_ = false;
  int64_t lanes_ = 1, paddedOutChannels_ = 0, vectors_ = 1, pixels_ = 1;
  bool packed_ = false;
  llvm::Value* weights_ = nullptr;
  llvm::Value* bias_ = nullptr;
};

void emitConvTranspose(EmitContext& ctx) { TransposedConvKernel(ctx).emit(); }

}  // namespace

void registerConvEmitters(EmitterRegistry& r) {
  r.add("Conv", emitConv, {0, 3});  // X and the residual hold samples
  r.add("SeparableConv2D", emitSeparableConv2D, {0});
  r.add("ConvTranspose", emitConvTranspose, {0, 3});
}

}  // namespace kiln::codegen
