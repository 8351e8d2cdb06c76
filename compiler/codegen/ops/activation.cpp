// Emits the unary activation ops (Relu, LeakyRelu, Elu, Selu, Sigmoid, Tanh,
// HardSigmoid, HardSwish, Softplus, Clip) and Log: one contiguous loop
// applying the math library's function to each element. Element i only reads
// element i, so the output may alias the input. Blocked (NCHWc) values are
// walked as stored; the layout pass admits an activation on padded channels
// only when it maps 0 to 0, so pad lanes stay zero. PRelu, which broadcasts
// its slope, is emitted with the broadcasting ops in elementwise.cpp.
#include "compiler/codegen/math.h"
#include "compiler/codegen/ops/families.h"

namespace kiln::codegen {

void registerActivationEmitters(EmitterRegistry& r) {
  for (const char* op :
       {"Relu", "LeakyRelu", "Elu", "Selu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Softplus", "Clip", "Log"}) {
    r.add(op, [](EmitContext& ctx) {
      const Operand& x = ctx.input(0);
      const Operand& y = ctx.output();
      ctx.loop(x.type.storageShape().numElements(), [&](llvm::Value* i) {
        ctx.store(y, i, emitActivation(ctx.b, ctx.node.opName(), ctx.attrs(), ctx.load(x, i)));
      });
    });
  }
}

}  // namespace kiln::codegen
