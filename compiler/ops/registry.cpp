// Populates the op registry. Each op family lives in one file of this folder
// and exposes one register function; adding a family adds one line here.
#include "compiler/ops/families.h"

namespace kiln {

const OpRegistry& OpRegistry::instance() {
  static const OpRegistry registry = [] {
    OpRegistry r;
    registerActivationOps(r);
    registerElementwiseOps(r);
    registerConvOps(r);
    registerPoolOps(r);
    registerLinearOps(r);
    registerNormalizationOps(r);
    registerSoftmaxOps(r);
    registerReduceOps(r);
    registerResizeOps(r);
    registerWinogradOps(r);
    registerShapeOps(r);
    registerLayoutOps(r);
    return r;
  }();
  return registry;
}

}  // namespace kiln
