// One factory per pass (one file each in compiler/passes/).
#pragma once

#include "compiler/passes/pass.h"

namespace kiln {

PassDef eliminateIdentityPass();   // eliminate_identity.cpp
PassDef constantFoldPass();        // constant_fold.cpp
PassDef cancelTransposesPass();    // cancel_transposes.cpp
PassDef splitSeparablePass();      // split_separable.cpp
PassDef foldBatchNormPass();       // fold_batchnorm.cpp
PassDef fuseActivationPass();      // fuse_activation.cpp
PassDef fuseGeluPass();            // fuse_gelu.cpp
PassDef fuseLayerNormPass();       // fuse_layernorm.cpp
PassDef csePass();                 // cse.cpp
PassDef dcePass();                 // dce.cpp
PassDef winogradPass();            // winograd.cpp
PassDef layoutPass();              // layout.cpp
PassDef planMemoryPass();          // plan_memory.cpp

}  // namespace kiln
