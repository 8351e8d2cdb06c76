// Emits the shape and data-movement ops. Reshape, Flatten, Squeeze,
// Unsqueeze, Identity and Dropout copy bytes (skipped at run time when the
// output aliases the input); Transpose, Slice, Concat, Gather and the
// planned copies (Split, Expand, Tile, DepthToSpace, SpaceToDepth) are strided
// copies (loops.h) whose innermost loop runs along the output (a memcpy
// where input and output are both contiguous along it); ScatterND
// copies its data, then each update slab to where its index tuple points;
// Pad, Cast, Shape, ConstantOfShape and Range write each output element from
// its source.
#include <algorithm>
#include <cstdint>
#include <string>

#include "compiler/codegen/ops/families.h"
#include "compiler/codegen/ops/loops.h"
#include "compiler/ops/copy_plan.h"

namespace kiln::codegen {

namespace {

using llvm::Value;

// y[offsets[0]] = x[offsets[1]] over the walk. A run contiguous in both
// (the coalesced innermost dim at unit strides) is one memcpy: as an element
// loop, LLVM fully unrolled and vectorized every short run of a nested
// walk, seconds of codegen per 6-D Transpose of Swin's window partition.
void emitStridedCopy(EmitContext& ctx, const Operand& x, const Operand& y, const StridedWalk& walk,
                     const std::vector<Value*>& bases) {
  StridedWalk runs = coalesce(walk);
  if (!runs.dims.empty() && runs.strides[0].back() == 1 && runs.strides[1].back() == 1) {
    const int64_t bytes = runs.dims.back() * static_cast<int64_t>(dtypeSize(x.type.dtype));
    const llvm::Align align(dtypeSize(x.type.dtype));
    runs.dims.pop_back();
    for (std::vector<int64_t>& strides : runs.strides) strides.pop_back();
    emitStridedLoops(ctx, runs, bases, [&](const std::vector<Value*>& offsets) {
      ctx.b.CreateMemCpy(ctx.elementPtr(y, offsets[0]), align, ctx.elementPtr(x, offsets[1]), align, ctx.i64(bytes));
    });
    return;
  }
  emitStridedLoops(ctx, walk, bases,
                   [&](const std::vector<Value*>& offsets) { ctx.store(y, offsets[0], ctx.load(x, offsets[1])); });
}

// Runs `body` only when `condition` holds.
void emitIf(EmitContext& ctx, Value* condition, const std::function<void()>& body) {
  llvm::Function* fn = ctx.b.GetInsertBlock()->getParent();
  llvm::BasicBlock* then = llvm::BasicBlock::Create(ctx.b.getContext(), "if.then", fn);
  llvm::BasicBlock* done = llvm::BasicBlock::Create(ctx.b.getContext(), "if.done", fn);
  ctx.b.CreateCondBr(condition, then, done);
  ctx.b.SetInsertPoint(then);
  body();
  ctx.b.CreateBr(done);
  ctx.b.SetInsertPoint(done);
}

// The ops whose output is the input's bytes in the same order.
void emitByteCopy(EmitContext& ctx) {
  const Operand& x = ctx.input(0);
  const Operand& y = ctx.output();
  const int64_t bytes = x.type.shape.numElements() * static_cast<int64_t>(dtypeSize(x.type.dtype));
  if (bytes == 0) return;
  const llvm::Align align(dtypeSize(x.type.dtype));
  emitIf(ctx, ctx.b.CreateICmpNE(y.data, x.data),
         [&] { ctx.b.CreateMemCpy(y.data, align, x.data, align, ctx.i64(bytes)); });
}

void emitTranspose(EmitContext& ctx) {
  const Operand& x = ctx.input(0);
  const Operand& y = ctx.output();
  const std::vector<int64_t> inStrides = stridesOf(x.type.shape);
  std::vector<int64_t> strides;
  for (int64_t p : ctx.attrs().getInts("perm")) strides.push_back(inStrides[static_cast<size_t>(p)]);
  emitStridedCopy(ctx, x, y, StridedWalk{y.type.shape.dims, {stridesOf(y.type.shape), strides}},
                  {ctx.i64(0), ctx.i64(0)});
}

// The first element a slice reads along a dim of size `dim` (ONNX clamping:
// negative starts count from the end, then clamp to [0, dim] for positive
// steps and [0, dim-1] for negative ones).
int64_t sliceStart(int64_t dim, int64_t start, int64_t step) {
  if (dim == 0) return 0;
  if (start < 0) start += dim;
  return std::clamp<int64_t>(start, 0, step > 0 ? dim : dim - 1);
}

void emitSlice(EmitContext& ctx) {
  const Operand& x = ctx.input(0);
  const Operand& y = ctx.output();
  const Shape& in = x.type.shape;
  const std::vector<int64_t>& starts = ctx.attrs().getInts("starts");
  const std::vector<int64_t>& axes = ctx.attrs().getInts("axes");
  const std::vector<int64_t>& steps = ctx.attrs().getInts("steps");
  const std::vector<int64_t> inStrides = stridesOf(in);
  std::vector<int64_t> strides = inStrides;
  int64_t base = 0;
  for (size_t k = 0; k < axes.size(); ++k) {
    const size_t a = normalizeAxis(axes[k], in.rank());
    base += sliceStart(in[a], starts[k], steps[k]) * inStrides[a];
    // A dim read once never advances (and huge steps must not overflow).
    strides[a] = y.type.shape[a] > 1 ? steps[k] * inStrides[a] : 0;
  }
  emitStridedCopy(ctx, x, y, StridedWalk{y.type.shape.dims, {stridesOf(y.type.shape), strides}},
                  {ctx.i64(0), ctx.i64(base)});
}

// Each input fills, per outer index, one contiguous block of the output.
// Blocked (NCHWc) inputs concatenate along the channels the same way, as
// stored: every input but the last holds whole channel blocks (the layout
// pass's condition), so the blocks simply follow each other.
void emitConcat(EmitContext& ctx) {
  const Operand& y = ctx.output();
  const Shape out = y.type.storageShape();
  const size_t axis = normalizeAxis(ctx.attrs().getInt("axis"), y.type.shape.rank());
  if (y.type.layout == Layout::NCHWc) {
    if (axis != 1) ctx.fail("NCHWc values concatenate along the channels only");
    for (size_t i = 0; ctx.hasInput(i + 1); ++i)
      if (ctx.input(i).type.shape[1] % y.type.block != 0)
        ctx.fail("NCHWc Concat needs whole channel blocks in every input but the last");
  }
  const int64_t outer = out.product(0, axis), outBlock = out.product(axis, out.rank());
  int64_t offset = 0;
  for (size_t i = 0; ctx.hasInput(i); ++i) {
    const Operand& x = ctx.input(i);
    const Shape in = x.type.storageShape();
    const int64_t block = in.product(axis, in.rank());
    emitStridedCopy(ctx, x, y, StridedWalk{{outer, block}, {{outBlock, 1}, {block, 1}}}, {ctx.i64(offset), ctx.i64(0)});
    offset += block;
  }
}

// Converts v from one dtype to another like the reference's Cast: float to
// integer truncates and saturates (NaN becomes 0), anything to bool is
// v != 0, bool reads as 0/1.
Value* emitConvert(llvm::IRBuilder<>& b, Value* v, DType from, DType to) {
  if (from == to) return v;
  llvm::Type* target = llvmType(b.getContext(), to);
  if (to == DType::Bool) {
    Value* nonZero = from == DType::F32 ? b.CreateFCmpUNE(v, llvm::ConstantFP::get(v->getType(), 0.0))
                                        : b.CreateICmpNE(v, llvm::ConstantInt::get(v->getType(), 0));
    return b.CreateZExt(nonZero, target);
  }
  if (to == DType::F32) return from == DType::Bool ? b.CreateUIToFP(v, target) : b.CreateSIToFP(v, target);
  if (from == DType::F32) return b.CreateIntrinsic(llvm::Intrinsic::fptosi_sat, {target, v->getType()}, {v});
  return from == DType::Bool ? b.CreateZExt(v, target) : b.CreateSExtOrTrunc(v, target);
}

// Writes `value` (already of y's element type) to every element of y.
void emitFill(EmitContext& ctx, const Operand& y, Value* value) {
  ctx.loop(y.type.shape.numElements(), [&](Value* i) { ctx.store(y, i, value); });
}

// Constant mode fills the output, then copies the kept input region into
// it; reflect and edge map each output index, dim by dim, to the input index
// it repeats.
void emitPad(EmitContext& ctx) {
  const Operand& x = ctx.input(0);
  const Operand& y = ctx.output();
  const Shape& in = x.type.shape;
  const size_t rank = in.rank();
  const std::vector<int64_t>& pads = ctx.attrs().getInts("pads");
  const std::string& mode = ctx.attrs().getString("mode");
  const std::vector<int64_t> inStrides = stridesOf(in), outStrides = stridesOf(y.type.shape);
  // Per dim: input elements cropped at the start, kept, and output elements before them.
  std::vector<int64_t> crop(rank), extent(rank), lead(rank);
  int64_t inBase = 0, outBase = 0;
  for (size_t d = 0; d < rank; ++d) {
    crop[d] = std::max<int64_t>(-pads[d], 0);
    extent[d] = in[d] - crop[d] - std::max<int64_t>(-pads[d + rank], 0);
    lead[d] = std::max<int64_t>(pads[d], 0);
    inBase += crop[d] * inStrides[d];
    outBase += lead[d] * outStrides[d];
  }
  if (mode == "constant") {
    emitFill(ctx, y, emitConvert(ctx.b, ctx.f32(ctx.attrs().getFloat("value")), DType::F32, y.type.dtype));
    emitStridedCopy(ctx, x, y, StridedWalk{extent, {outStrides, inStrides}}, {ctx.i64(outBase), ctx.i64(inBase)});
    return;
  }
  const bool reflect = mode == "reflect";
  llvm::IRBuilder<>& b = ctx.b;
  // source(d, o): the input index along dim d that output index o reads.
  auto source = [&](size_t d, Value* o) {
    Value* i = b.CreateSub(o, ctx.i64(lead[d]));
    Value* last = ctx.i64(extent[d] - 1);
    Value* before = b.CreateICmpSLT(i, ctx.i64(0));
    Value* after = b.CreateICmpSGT(i, last);
    Value* mapped = reflect ? b.CreateSelect(before, b.CreateNeg(i),
                                             b.CreateSelect(after, b.CreateSub(ctx.i64(2 * (extent[d] - 1)), i), i))
                            : b.CreateSelect(before, ctx.i64(0), b.CreateSelect(after, last, i));
    return b.CreateAdd(mapped, ctx.i64(crop[d]));
  };
  std::function<void(size_t, Value*, Value*)> level = [&](size_t d, Value* outOffset, Value* inOffset) {
    if (d == rank) {
      ctx.store(y, outOffset, ctx.load(x, inOffset));
      return;
    }
    ctx.loop(y.type.shape[d], [&](Value* o) {
      level(d + 1, b.CreateAdd(outOffset, b.CreateMul(o, ctx.i64(outStrides[d]))),
            b.CreateAdd(inOffset, b.CreateMul(source(d, o), ctx.i64(inStrides[d]))));
    });
  };
  level(0, ctx.i64(0), ctx.i64(0));
}

// An index value of a dim of size `dim` made an offset in range: negative
// ones count from the end; out-of-range run-time ones (which the reference
// rejects) are clamped so they cannot reach outside the tensor.
Value* emitIndexInDim(EmitContext& ctx, Value* index, int64_t dim) {
  llvm::IRBuilder<>& b = ctx.b;
  index = b.CreateSExt(index, b.getInt64Ty());
  index = b.CreateSelect(b.CreateICmpSLT(index, ctx.i64(0)), b.CreateAdd(index, ctx.i64(dim)), index);
  index = b.CreateSelect(b.CreateICmpSLT(index, ctx.i64(0)), ctx.i64(0), index);
  return b.CreateSelect(b.CreateICmpSGT(index, ctx.i64(dim - 1)), ctx.i64(dim - 1), index);
}

// Compile-time indices are checked as the reference checks them: index i
// addresses dim firstAxis + i % dims of `shape`.
void rejectConstantIndices(EmitContext& ctx, const Operand& indices, const Shape& shape, size_t firstAxis, size_t dims) {
  if (!indices.constant) return;
  const std::vector<int64_t> values = indices.constant->toInts();
  for (size_t i = 0; i < values.size(); ++i) {
    const size_t axis = firstAxis + i % dims;
    if (values[i] < -shape[axis] || values[i] >= shape[axis])
      ctx.fail("index " + std::to_string(values[i]) + " is out of range for dim " + std::to_string(axis) + " of size " +
               std::to_string(shape[axis]));
  }
}

// The data copied (a no-op when the output aliases it), then, tuple after
// tuple in order, the update slab written or combined at the tuple's offset.
void emitScatterND(EmitContext& ctx) {
  const Operand &data = ctx.input(0), &indices = ctx.input(1), &updates = ctx.input(2);
  const Operand& y = ctx.output();
  const Shape& shape = data.type.shape;
  const size_t k = static_cast<size_t>(indices.type.shape.dims.back());
  const int64_t tuples = indices.type.shape.numElements() / static_cast<int64_t>(k);
  const int64_t slab = shape.product(k, shape.rank());
  const std::vector<int64_t> strides = stridesOf(shape);
  rejectConstantIndices(ctx, indices, shape, 0, k);
  const int64_t count = shape.numElements();
  emitStridedCopy(ctx, data, y, StridedWalk{{count}, {{1}, {1}}}, {ctx.i64(0), ctx.i64(0)});
  if (count == 0) return;
  const std::string& reduction = ctx.attrs().getString("reduction");
  const bool isFloat = y.type.dtype == DType::F32;
  llvm::IRBuilder<>& b = ctx.b;
  ctx.loop(tuples, [&](Value* t) {
    Value* offset = ctx.i64(0);
    for (size_t j = 0; j < k; ++j) {
      Value* index = ctx.load(indices, b.CreateAdd(b.CreateMul(t, ctx.i64(static_cast<int64_t>(k))), ctx.i64(j)));
      offset = b.CreateAdd(offset, b.CreateMul(emitIndexInDim(ctx, index, shape[j]), ctx.i64(strides[j])));
    }
    Value* source = b.CreateMul(t, ctx.i64(slab));
    ctx.loop(slab, [&](Value* e) {
      Value* at = b.CreateAdd(offset, e);
      Value* u = ctx.load(updates, b.CreateAdd(source, e));
      if (reduction == "add") u = isFloat ? b.CreateFAdd(ctx.load(y, at), u) : b.CreateAdd(ctx.load(y, at), u);
      if (reduction == "mul") u = isFloat ? b.CreateFMul(ctx.load(y, at), u) : b.CreateMul(ctx.load(y, at), u);
      ctx.store(y, at, u);
    });
  });
}

// Copies, per outer index and index, the slab of data the index selects.
void emitGather(EmitContext& ctx) {
  const Operand& data = ctx.input(0);
  const Operand& indices = ctx.input(1);
  const Operand& y = ctx.output();
  const Shape& shape = data.type.shape;
  const size_t axis = normalizeAxis(ctx.attrs().getInt("axis"), shape.rank());
  const int64_t dim = shape[axis], outer = shape.product(0, axis), slab = shape.product(axis + 1, shape.rank());
  const int64_t count = indices.type.shape.numElements();
  rejectConstantIndices(ctx, indices, shape, axis, 1);
  if (count > 0 && dim == 0) ctx.fail("cannot gather from an empty dim");
  llvm::IRBuilder<>& b = ctx.b;
  ctx.loop(outer, [&](Value* o) {
    ctx.loop(count, [&](Value* j) {
      Value* index = emitIndexInDim(ctx, ctx.load(indices, j), dim);
      Value* outBase = b.CreateMul(b.CreateAdd(b.CreateMul(o, ctx.i64(count)), j), ctx.i64(slab));
      Value* inBase = b.CreateMul(b.CreateAdd(b.CreateMul(o, ctx.i64(dim)), index), ctx.i64(slab));
      emitStridedCopy(ctx, data, y, StridedWalk{{slab}, {{1}, {1}}}, {outBase, inBase});
    });
  });
}

// Split, Expand, Tile, DepthToSpace, SpaceToDepth: each output is the
// strided copy its plan (compiler/ops/copy_plan.h) describes.
void emitPlannedCopy(EmitContext& ctx) {
  const Operand& x = ctx.input(0);
  for (size_t o = 0; o < ctx.node.outputs.size(); ++o) {
    const Operand& y = ctx.output(o);
    const CopyPlan plan = copyPlan(ctx.node.opName(), ctx.attrs(), x.type.shape, y.type.shape, o);
    emitStridedCopy(ctx, x, y, StridedWalk{plan.dims, {plan.outStrides, plan.inStrides}},
                    {ctx.i64(0), ctx.i64(plan.inBase)});
  }
}

void emitCast(EmitContext& ctx) {
  const Operand& x = ctx.input(0);
  const Operand& y = ctx.output();
  ctx.loop(x.type.shape.numElements(),
           [&](Value* i) { ctx.store(y, i, emitConvert(ctx.b, ctx.load(x, i), x.type.dtype, y.type.dtype)); });
}

// The static dims [start, end) of the input (ONNX-15 slicing of the rank).
void emitShape(EmitContext& ctx) {
  const Shape& full = ctx.node.input(0)->type.shape;
  if (full.hasSymbolicBatch())
    ctx.fail("Shape of " + ctx.node.input(0)->type.str() +
             " depends on the run-time batch; the importer folds it, the backend cannot compute it");
  const int64_t rank = static_cast<int64_t>(full.rank());
  auto bound = [rank](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + rank : v, 0, rank); };
  const int64_t start = bound(ctx.attrs().getInt("start")), end = bound(ctx.attrs().getInt("end"));
  for (int64_t d = start; d < end; ++d)
    ctx.store(ctx.output(), ctx.i64(d - start), ctx.i64(full[static_cast<size_t>(d)]));
}

// start + i * delta: integers wrap, floats multiply then add like the reference.
void emitRange(EmitContext& ctx) {
  const Operand& y = ctx.output();
  llvm::IRBuilder<>& b = ctx.b;
  Value* start = ctx.load(ctx.input(0), ctx.i64(0));
  Value* delta = ctx.load(ctx.input(1), ctx.i64(0));
  const bool isFloat = y.type.dtype == DType::F32;
  ctx.loop(y.type.shape.numElements(), [&](Value* i) {
    Value* step = isFloat ? b.CreateFMul(b.CreateSIToFP(i, start->getType()), delta)
                          : b.CreateMul(b.CreateTrunc(i, start->getType()), delta);
    ctx.store(y, i, isFloat ? b.CreateFAdd(start, step) : b.CreateAdd(start, step));
  });
}

void emitConstantOfShape(EmitContext& ctx) {
  const Operand& y = ctx.output();
  emitFill(ctx, y, emitConvert(ctx.b, ctx.f32(ctx.attrs().getFloat("value")), DType::F32, y.type.dtype));
}

}  // namespace

void registerShapeEmitters(EmitterRegistry& r) {
  for (const char* op : {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"}) r.add(op, emitByteCopy);
  r.add("Transpose", emitTranspose);
  r.add("Slice", emitSlice);
  r.add("Concat", emitConcat);
  r.add("Pad", emitPad);
  r.add("Gather", emitGather);
  r.add("ScatterND", emitScatterND);
  r.add("Range", emitRange);
  r.add("Cast", emitCast);
  r.add("Shape", emitShape);
  r.add("ConstantOfShape", emitConstantOfShape);
  for (const char* op : {"Split", "Expand", "Tile", "DepthToSpace", "SpaceToDepth"}) r.add(op, emitPlannedCopy);
}

}  // namespace kiln::codegen
