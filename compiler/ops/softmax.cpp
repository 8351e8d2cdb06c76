// Placeholder until the family is implemented.
#include "compiler/ops/families.h"

namespace kiln {

void registerSoftmaxOps(OpRegistry&) {}

}  // namespace kiln
