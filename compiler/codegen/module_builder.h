// Builds the LLVM module of one compiled model: a per-node function computing
// one sample (a thin caller of the node's kernel, which identical nodes
// share), the run function sequencing nodes and fanning samples out
// through the runtime's parallel-for, the weights blob and the descriptor of
// runtime/include/kiln/artifact.h behind the entry symbol.
#pragma once

#include <memory>

#include <llvm/IR/Module.h>

#include "compiler/codegen/codegen.h"
#include "compiler/codegen/emitter.h"

namespace kiln::codegen {

struct ModuleTarget {
  ResolvedTarget resolved;
  TargetInfo info;
  std::string dataLayout;
};

std::unique_ptr<llvm::Module> buildModule(const Graph& g, llvm::LLVMContext& ctx, const CompileOptions& options,
                                          const ModuleTarget& target, bool exportUnprefixedEntry);

}  // namespace kiln::codegen
