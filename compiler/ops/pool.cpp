// Placeholder until the family is implemented.
#include "compiler/ops/families.h"

namespace kiln {

void registerPoolOps(OpRegistry&) {}

}  // namespace kiln
