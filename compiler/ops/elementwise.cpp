// Placeholder until the family is implemented.
#include "compiler/ops/families.h"

namespace kiln {

void registerElementwiseOps(OpRegistry&) {}

}  // namespace kiln
