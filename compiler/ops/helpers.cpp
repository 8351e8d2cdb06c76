#include "compiler/ops/helpers.h"

namespace kiln {

Shape broadcastShapes(const InferContext& ctx, const Shape& a, const Shape& b) {
  size_t rank = std::max(a.rank(), b.rank());
  Shape out;
  out.dims.resize(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i + a.rank() >= rank ? a[i + a.rank() - rank] : 1;
    int64_t db = i + b.rank() >= rank ? b[i + b.rank() - rank] : 1;
    if (da == db || db == 1) {
      out[i] = da;
    } else if (da == 1) {
      out[i] = db;
    } else {
      ctx.fail("cannot broadcast " + a.str() + " with " + b.str());
    }
  }
  for (size_t i = 1; i < rank; ++i)
    if (out[i] == kBatch) ctx.fail("the symbolic batch of " + a.str() + " / " + b.str() + " would land on dim " +
                                   std::to_string(i));
  return out;
}

std::vector<int64_t> stridesOf(const Shape& shape) {
  std::vector<int64_t> s(shape.rank(), 1);
  for (size_t i = shape.rank(); i-- > 1;) s[i - 1] = s[i] * shape[i];
  return s;
}

std::vector<int64_t> broadcastStrides(const Shape& in, const Shape& out) {
  std::vector<int64_t> own = stridesOf(in);
  std::vector<int64_t> s(out.rank(), 0);
  size_t offset = out.rank() - in.rank();
  for (size_t i = 0; i < in.rank(); ++i) s[offset + i] = in[i] == 1 ? 0 : own[i];
  return s;
}

int64_t windowSpan(const InferContext& ctx, size_t dim, int64_t in, int64_t kernel, int64_t stride, int64_t dilation,
                   int64_t padBegin, int64_t padEnd) {
  const std::string where = "spatial dim " + std::to_string(dim);
  ctx.check(kernel >= 1 && stride >= 1 && dilation >= 1, where + ": kernel, strides and dilations must be >= 1");
  ctx.check(padBegin >= 0 && padEnd >= 0, where + ": pads must be >= 0");
  int64_t extent = 0, padded = 0;
  bool overflow = __builtin_mul_overflow(dilation, kernel - 1, &extent) ||
                  __builtin_add_overflow(in, padBegin, &padded) || __builtin_add_overflow(padded, padEnd, &padded);
  ctx.check(!overflow, where + " overflows with pads/dilations");
  ++extent;
  ctx.check(padded >= extent, where + ": padded input " + std::to_string(padded) +
                                  " is smaller than the window extent " + std::to_string(extent));
  return padded - extent;
}

std::vector<TensorType> sameAsFirstInput(const InferContext& ctx) { return {ctx.input(0)}; }

void requireFloat(const InferContext& ctx, size_t i) {
  if (ctx.input(i).dtype != DType::F32)
    ctx.fail("input " + std::to_string(i) + " is " + ctx.input(i).str() + ", expected f32");
}

}  // namespace kiln
