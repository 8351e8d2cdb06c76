// Populates the emitter registry; adding a family adds one line here.
#include "compiler/codegen/ops/families.h"

namespace kiln::codegen {

const EmitterRegistry& EmitterRegistry::instance() {
  static const EmitterRegistry registry = [] {
    EmitterRegistry r;
    registerActivationEmitters(r);
    registerElementwiseEmitters(r);
    registerConvEmitters(r);
    registerPoolEmitters(r);
    registerLinearEmitters(r);
    registerNormalizationEmitters(r);
    registerSoftmaxEmitters(r);
    registerReduceEmitters(r);
    registerResizeEmitters(r);
    registerWinogradEmitters(r);
    registerShapeEmitters(r);
    registerLayoutEmitters(r);
    return r;
  }();
  return registry;
}

}  // namespace kiln::codegen
