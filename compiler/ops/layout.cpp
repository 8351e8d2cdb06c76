// Reorder: changes how a value is laid out in memory, never its values. The
// layout pass inserts it at the edges of regions it lays out in blocked
// NCHWc (block = attribute `block`, 0 = back to plain NCHW). Layouts are a
// storage property of the IR types: reference kernels, the interpreter and
// constant folding see logical NCHW values, so the reference kernel is a
// copy and a laid-out graph runs in the interpreter unchanged.
#include "compiler/ops/families.h"
#include "compiler/ops/helpers.h"

namespace kiln {

void registerLayoutOps(OpRegistry& r) {
  OpDef d;
  d.name = "Reorder";
  d.attrs = {{"block", AttrKind::Int, AttrValue{int64_t{0}}}};
  d.setsLayout = true;
  d.infer = [](const InferContext& ctx) {
    requireFloat(ctx, 0);
    const int64_t block = ctx.attrs().getInt("block");
    TensorType t = ctx.input(0);
    ctx.check(block >= 0 && block <= 64, "block " + std::to_string(block) + " is out of range [0, 64]");
    ctx.check(block == 0 || t.shape.rank() == 4, "NCHWc needs a rank-4 (NCHW) value, got " + t.str());
    t.layout = block ? Layout::NCHWc : Layout::Plain;
    t.block = static_cast<int>(block);
    return std::vector<TensorType>{t};
  };
  d.reference = [](KernelContext& ctx) { ctx.output(0) = ctx.input(0); };
  r.add(std::move(d));
}

}  // namespace kiln
