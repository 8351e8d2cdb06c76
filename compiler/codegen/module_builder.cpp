#include "compiler/codegen/module_builder.h"

#include <algorithm>
#include <map>
#include <set>

#include <llvm/IR/Intrinsics.h>
#include <llvm/TargetParser/Triple.h>

#include "compiler/codegen/weights.h"
#include "compiler/ir/op.h"
#include "kiln/artifact.h"

namespace kiln::codegen {

namespace {

bool isBatched(const Value* v) { return v->type.shape.hasSymbolicBatch(); }

// The rows a node's task runs for one batch item: once per row of a static
// dim 0 (the model was exported with a fixed batch, e.g. torch.onnx without
// dynamic axes) for emitters written for one sample, of which every NCHWc
// kernel is one, else once. `operands` are then the values addressed one row
// at a time: the outputs, the emitter's sample inputs and blocked inputs
// (activations; weights and other parameters are shared by all rows).
struct StaticRows {
  int64_t count = 1;
  std::set<const Value*> operands;

  bool sampled(const Value* v) const { return isBatched(v) || operands.count(v); }
};

StaticRows staticRows(const Node& n, const Emitter& emitter) {
  StaticRows rows;
  std::vector<const Value*> samples(n.outputs.begin(), n.outputs.end());
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    const Value* in = n.inputs[i];
    if (!in || in->isConstant()) continue;
    if (isBatched(in)) return rows;
    const bool sampleInput = std::find(emitter.sampleInputs.begin(), emitter.sampleInputs.end(), i) !=
                             emitter.sampleInputs.end();
    if (sampleInput || in->type.layout == Layout::NCHWc) samples.push_back(in);
  }
  if (samples.size() == n.outputs.size() && emitter.sampleInputs.empty() &&
      std::none_of(samples.begin(), samples.end(), [](const Value* v) { return v->type.layout == Layout::NCHWc; }))
    return rows;  // a whole-tensor emitter on plain operands
  const Shape& first = samples.front()->type.shape;
  if (isBatched(samples.front()) || first.rank() == 0 || first[0] <= 1) return rows;
  for (const Value* v : samples)
    if (v->type.shape.rank() == 0 || v->type.shape[0] != first[0])
      throw Error("the LLVM backend runs this op one sample at a time, but its sample operands do not share dim 0 (" +
                      first.str() + " vs " + v->type.shape.str() + ")",
                  n.site());
  rows.count = first[0];
  rows.operands.insert(samples.begin(), samples.end());
  return rows;
}

// Bytes of one sample of a sampled value (or the whole value otherwise).
int64_t sampleBytes(const Value* v, const StaticRows& rows) {
  const Shape s = v->type.storageShape();
  return s.product(rows.sampled(v) ? 1 : 0, s.rank()) * static_cast<int64_t>(dtypeSize(v->type.dtype));
}

TensorType perSampleType(const Value* v, const StaticRows& rows) {
  TensorType t = v->type;
  if (rows.sampled(v)) t.shape.dims[0] = 1;
  return t;
}

int32_t abiDType(DType t) {
  switch (t) {
    case DType::F32: return KILN_F32;
    case DType::I64: return KILN_I64;
    case DType::I32: return KILN_I32;
    case DType::Bool: return KILN_BOOL;
  }
  return 0;
}

}  // namespace

BatchSchedule batchSchedule(const Graph& g) {
  BatchSchedule schedule{0, g.arenaBytes, 0};
  bool anyBatched = false;
  for (const auto* values : {&g.inputs(), &g.outputs()})
    for (const Value* v : *values)
      if (isBatched(v)) {
        schedule.sampleBytes += sampleBytes(v, StaticRows{});
        anyBatched = true;
      }
  // A node without a batch dim keeps its value in sample 0's arena, where a
  // group could read it after another group's later nodes reused the region.
  for (const Node* n : g.nodes()) {
    if (std::any_of(n->outputs.begin(), n->outputs.end(), isBatched)) continue;
    if (!anyBatched) schedule.workspaceSamples = 1;  // no batch at all: every run is one sample
    return schedule;
  }
  // As many samples as fit a 32 KiB L1 data cache (Zen 1's; 48 KiB on Zen
  // 4/5 and Sapphire Rapids); 1 for all but tiny nets. A group whose
  // intermediates spill to L2 runs slower per sample than single samples,
  // whose values stay in L1 from one node to the next: on Sapphire Rapids
  // the Fashion-MNIST CNN (74 KiB per sample) at batch 32 took 0.281 ms on 1
  // thread and 0.21 ms on 2 in groups of 6 (a 512 KiB budget), 0.277 ms on 1
  // in groups of 2, and 0.258 / 0.135 ms in groups of 1.
  constexpr int64_t kGroupBytes = 32 * 1024;
  schedule.samplesPerGroup = std::clamp<int64_t>(kGroupBytes / std::max<int64_t>(schedule.sampleBytes, 1), 1, 256);
  schedule.workspaceSamples = schedule.samplesPerGroup * BatchSchedule::kMaxGroupsInFlight;
  return schedule;
}

namespace {

class ModuleBuilder {
 public:
  ModuleBuilder(const Graph& g, llvm::LLVMContext& ctx, const CompileOptions& options, const ModuleTarget& target)
      : g_(g),
        ctx_(ctx),
        options_(options),
        target_(target),
        module_(std::make_unique<llvm::Module>(options.symbolPrefix, ctx)),
        weights_(*module_),
        ptr_(llvm::PointerType::get(ctx, 0)),
        i64_(llvm::Type::getInt64Ty(ctx)),
        i32_(llvm::Type::getInt32Ty(ctx)),
        // The sample tasks' shared arguments: {batch, inputs, outputs,
        // workspace, region} (see operand for the last two).
        argsType_(llvm::StructType::create(ctx, {i64_, ptr_, ptr_, ptr_, ptr_}, "kiln_run_args")) {
    module_->setTargetTriple(target.resolved.triple);
    module_->setDataLayout(target.dataLayout);
    for (size_t i = 0; i < g.inputs().size(); ++i) inputIndex_[g.inputs()[i]] = i;
    for (size_t i = 0; i < g.outputs().size(); ++i) outputIndex_[g.outputs()[i]] = i;
  }

  std::unique_ptr<llvm::Module> build(bool exportUnprefixedEntry) {
    std::vector<Task> tasks;
    std::vector<Node*> nodes = g_.nodes();
    for (size_t k = 0; k < nodes.size(); ++k) tasks.push_back(emitNodeTask(*nodes[k], k));
    // Outputs no node computes (a folded constant, an input returned as is)
    // are copied into the caller's buffer.
    for (size_t k = 0; k < g_.outputs().size(); ++k) {
      const Value* v = g_.outputs()[k];
      if (!v->producer) tasks.push_back({emitOutputCopy(v, k), isBatched(v), 1, 1, -1});
    }
    profile_ = options_.profile ? profileCounters(nodes.size()) : nullptr;
    llvm::Function* runSlots = emitRun(tasks);
    llvm::Function* run = emitRunAllSlots(runSlots);
    weights_.finalize();
    emitDescriptor(run, runSlots, exportUnprefixedEntry);
    for (llvm::Function& f : *module_) {
      if (f.isDeclaration()) continue;
      f.addFnAttr("target-cpu", target_.resolved.cpu);
      f.addFnAttr("target-features", target_.resolved.features);
      f.addFnAttr(llvm::Attribute::NoUnwind);
    }
    return std::move(module_);
  }

 private:
  // One parallel-for of the run function: `parts` tasks (the node split by
  // its emitter, see EmitContext::split) for each sample (of the symbolic
  // batch, or one of `rows` of a static dim 0), or for the single invocation
  // of an unbatched step; task index = sample * parts + part. `layer`: the
  // node's index in the layer table, -1 for output copies.
  struct Task {
    llvm::Function* fn;
    bool batched;
    int64_t rows;
    int64_t parts;
    int64_t layer;
  };

  // One node for one sample and part, void kiln_node_K(ptr args, i64
  // sample, i64 part), behind its task void kiln_task_K(ptr args, i64 index).
  // kiln_node_K only finds the node's operands (arena offsets, weights) and
  // calls its kernel, which the emitter wrote (see emitKernel).
  Task emitNodeTask(const Node& n, size_t k) {
    const Emitter* emitter = EmitterRegistry::instance().find(n.opName());
    if (!emitter) throw Error("the LLVM backend has no emitter for this op yet", n.site());
    const StaticRows rows = staticRows(n, *emitter);
    llvm::IRBuilder<> b(ctx_);
    auto [fn, frame] = beginTask("kiln_node_" + std::to_string(k), b, true);
    std::vector<std::optional<Operand>> inputs;
    for (Value* in : n.inputs)
      inputs.push_back(in ? std::optional<Operand>(operand(b, frame, in, rows)) : std::nullopt);
    std::vector<Operand> outputs;
    for (Value* out : n.outputs) outputs.push_back(operand(b, frame, out, rows));
    const Kernel kernel = emitKernel(n, *emitter, inputs, outputs, k);
    std::vector<llvm::Value*> args = kernel.operands;
    args.push_back(fn->getArg(2));
    b.CreateCall(kernel.fn, args);
    b.CreateRetVoid();
    bool batched = false;
    for (const Value* out : n.outputs) batched = batched || isBatched(out);
    return {emitPartsTask(fn, kernel.parts, k), batched, rows.count, kernel.parts, static_cast<int64_t>(k)};
  }

  struct Kernel {
    llvm::Function* fn;
    std::vector<llvm::Value*> operands;  // its pointer arguments, as the node's caller passes them
    int64_t parts;
  };

  // void kiln_kernel_K(ptr operand..., ptr packed..., i64 part): the
  // emitter's code for node K, reading every operand and packed constant
  // through an argument, never at a fixed address. Nodes of the same op,
  // shapes, attributes and epilogue so get identical kernels, which the
  // optimizer's first pass (MergeFunctions, see compileGraph) folds into
  // one: a network's repeated blocks are optimized and compiled once. Only
  // the operands the code reads become arguments (a weight the emitter
  // repacked is not, so the blob leaves it out). Kernels stay out of line:
  // inlined, a shared kernel would be optimized once per caller again.
  Kernel emitKernel(const Node& n, const Emitter& emitter, const std::vector<std::optional<Operand>>& inputs,
                    const std::vector<Operand>& outputs, size_t k) {
    // A draft with an argument per operand; the packed constants' arguments
    // are known only once the emitter is done.
    std::vector<const Operand*> operands;
    for (const auto& in : inputs)
      if (in) operands.push_back(&*in);
    for (const Operand& out : outputs) operands.push_back(&out);
    std::vector<llvm::Type*> draftParams(operands.size(), ptr_);
    draftParams.push_back(i64_);
    auto* draft = llvm::Function::Create(llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), draftParams, false),
                                         llvm::GlobalValue::InternalLinkage, "kiln_kernel_" + std::to_string(k),
                                         *module_);
    llvm::BasicBlock* entry = llvm::BasicBlock::Create(ctx_, "entry", draft);
    llvm::IRBuilder<> b(entry);
    size_t next = 0;
    auto argumentFor = [&](const Operand& op) {
      Operand in = op;
      in.data = draft->getArg(static_cast<unsigned>(next++));
      return in;
    };
    std::vector<std::optional<Operand>> kernelInputs;
    for (const auto& in : inputs) kernelInputs.push_back(in ? std::optional<Operand>(argumentFor(*in)) : std::nullopt);
    std::vector<Operand> kernelOutputs;
    for (const Operand& out : outputs) kernelOutputs.push_back(argumentFor(out));
    // A packed constant is a placeholder instruction at the top of the entry
    // block (an instruction, so no constant expression folds it away) until
    // it becomes an argument.
    std::vector<std::pair<llvm::Instruction*, llvm::Value*>> packed;  // placeholder, address in the blob
    auto pack = [&](const Tensor& t) -> llvm::Value* {
      auto* placeholder = new llvm::FreezeInst(llvm::PoisonValue::get(ptr_), "packed", entry->begin());
      llvm::IRBuilder<> at(ctx_);
      packed.emplace_back(placeholder, weights_.add(at, t));
      return placeholder;
    };
    EmitContext ctx(b, n, std::move(kernelInputs), std::move(kernelOutputs), target_.info, pack,
                    draft->getArg(static_cast<unsigned>(operands.size())));
    emitter.fn(ctx);
    b.CreateRetVoid();

    Kernel kernel{nullptr, {}, ctx.parts()};
    std::vector<llvm::Value*> from;  // the draft's values each argument replaces
    std::vector<bool> readOnly;
    for (size_t i = 0; i < operands.size(); ++i)
      if (!draft->getArg(static_cast<unsigned>(i))->use_empty()) {
        from.push_back(draft->getArg(static_cast<unsigned>(i)));
        kernel.operands.push_back(operands[i]->data);
        readOnly.push_back(operands[i]->constant != nullptr);
      }
    for (const auto& [placeholder, address] : packed) {
      from.push_back(placeholder);
      kernel.operands.push_back(address);
      readOnly.push_back(true);
    }
    from.push_back(draft->getArg(static_cast<unsigned>(operands.size())));
    std::vector<llvm::Type*> params(kernel.operands.size(), ptr_);
    params.push_back(i64_);
    kernel.fn = llvm::Function::Create(llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), params, false),
                                       llvm::GlobalValue::InternalLinkage, "", *module_);
    kernel.fn->takeName(draft);
    kernel.fn->splice(kernel.fn->begin(), draft);
    for (size_t i = 0; i < from.size(); ++i) from[i]->replaceAllUsesWith(kernel.fn->getArg(static_cast<unsigned>(i)));
    for (const auto& [placeholder, address] : packed) placeholder->eraseFromParent();
    draft->eraseFromParent();
    // Weights are 64-byte aligned in the blob and nothing writes them, so no
    // other pointer the kernel holds modifies what they point to.
    for (size_t i = 0; i < readOnly.size(); ++i)
      if (readOnly[i]) {
        const auto arg = static_cast<unsigned>(i);
        kernel.fn->addParamAttr(arg, llvm::Attribute::NoAlias);
        kernel.fn->addParamAttr(arg, llvm::Attribute::ReadOnly);
        kernel.fn->addParamAttr(arg, llvm::Attribute::getWithAlignment(ctx_, llvm::Align(64)));
      }
    kernel.fn->addFnAttr(llvm::Attribute::NoInline);
    return kernel;
  }

  // kiln_task_K(args, index) = kiln_node_K(args, index / parts, index % parts).
  llvm::Function* emitPartsTask(llvm::Function* node, int64_t parts, size_t k) {
    auto* type = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), {ptr_, i64_}, false);
    auto* fn = llvm::Function::Create(type, llvm::GlobalValue::InternalLinkage, "kiln_task_" + std::to_string(k),
                                      *module_);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx_, "entry", fn));
    llvm::Value* index = fn->getArg(1);
    llvm::Value* whole = b.getInt64(static_cast<uint64_t>(parts));
    b.CreateCall(node, {fn->getArg(0), parts == 1 ? index : b.CreateUDiv(index, whole),
                        parts == 1 ? b.getInt64(0) : b.CreateURem(index, whole)});
    b.CreateRetVoid();
    return fn;
  }

  struct Frame {
    llvm::Value *inputs, *outputs, *workspace, *region, *sample;
  };

  // A function void NAME(ptr args, i64 sample[, i64 part]) with its frame loaded.
  std::pair<llvm::Function*, Frame> beginTask(const std::string& name, llvm::IRBuilder<>& b, bool withPart = false) {
    std::vector<llvm::Type*> params = {ptr_, i64_};
    if (withPart) params.push_back(i64_);
    auto* type = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), params, false);
    auto* fn = llvm::Function::Create(type, llvm::GlobalValue::InternalLinkage, name, *module_);
    b.SetInsertPoint(llvm::BasicBlock::Create(ctx_, "entry", fn));
    llvm::Value* args = fn->getArg(0);
    auto field = [&](unsigned i, llvm::Type* t) { return b.CreateLoad(t, b.CreateStructGEP(argsType_, args, i)); };
    return {fn, Frame{field(1, ptr_), field(2, ptr_), field(3, ptr_), field(4, ptr_), fn->getArg(1)}};
  }

  // The profile's counters, {cycles, calls} per layer, zero-initialized
  // writable data of the artifact.
  llvm::GlobalVariable* profileCounters(size_t layers) {
    auto* type = llvm::ArrayType::get(i64_, 2 * layers);
    return new llvm::GlobalVariable(*module_, type, false, llvm::GlobalValue::InternalLinkage,
                                    llvm::ConstantAggregateZero::get(type), "kiln_profile");
  }

  // The target's free-running counter: rdtsc on x86 (constant rate); on
  // AArch64 the virtual counter (the cycle counter traps in user mode).
  llvm::Value* readCounter(llvm::IRBuilder<>& b) {
    const bool aarch64 = llvm::Triple(target_.resolved.triple).isAArch64();
    return b.CreateIntrinsic(aarch64 ? llvm::Intrinsic::readsteadycounter : llvm::Intrinsic::readcyclecounter, {}, {});
  }

  void countProfile(llvm::IRBuilder<>& b, int64_t layer, llvm::Value* start) {
    llvm::Value* ticks = b.CreateSub(readCounter(b), start);
    auto counter = [&](int64_t i) {
      return b.CreateConstInBoundsGEP2_64(profile_->getValueType(), profile_, 0, static_cast<uint64_t>(i));
    };
    b.CreateAtomicRMW(llvm::AtomicRMWInst::Add, counter(2 * layer), ticks, llvm::MaybeAlign(8),
                      llvm::AtomicOrdering::Monotonic);
    b.CreateAtomicRMW(llvm::AtomicRMWInst::Add, counter(2 * layer + 1), b.getInt64(1), llvm::MaybeAlign(8),
                      llvm::AtomicOrdering::Monotonic);
  }

  llvm::Function* emitOutputCopy(const Value* v, size_t index) {
    llvm::IRBuilder<> b(ctx_);
    auto [fn, frame] = beginTask("kiln_output_" + std::to_string(index), b);
    const StaticRows whole;
    Operand source = operand(b, frame, v, whole);
    llvm::Value* dest = b.CreateLoad(ptr_, b.CreateConstInBoundsGEP1_64(ptr_, frame.outputs, index));
    if (isBatched(v))
      dest = b.CreateInBoundsGEP(b.getInt8Ty(), dest,
                                 b.CreateMul(frame.sample, b.getInt64(static_cast<uint64_t>(sampleBytes(v, whole)))));
    b.CreateMemCpy(dest, llvm::MaybeAlign(1), source.data, llvm::MaybeAlign(1),
                   static_cast<uint64_t>(sampleBytes(v, whole)));
    b.CreateRetVoid();
    return fn;
  }

  // Where value v's data for the current sample lives, in a task run for
  // `rows` (see staticRows).
  Operand operand(llvm::IRBuilder<>& b, const Frame& f, const Value* v, const StaticRows& rows) {
    Operand op;
    op.type = perSampleType(v, rows);
    if (v->isConstant()) {
      op.constant = &v->constant;
      auto it = constants_.find(v);
      if (it == constants_.end()) it = constants_.emplace(v, weights_.add(b, v->constant)).first;
      op.data = it->second;
      return op;
    }
    llvm::Value* base;
    if (auto in = inputIndex_.find(v); in != inputIndex_.end()) {
      base = b.CreateLoad(ptr_, b.CreateConstInBoundsGEP1_64(ptr_, f.inputs, in->second), v->name);
    } else if (auto out = outputIndex_.find(v); out != outputIndex_.end()) {
      base = b.CreateLoad(ptr_, b.CreateConstInBoundsGEP1_64(ptr_, f.outputs, out->second), v->name);
    } else {
      if (v->arenaOffset < 0)
        throw Error("value '" + v->name + "' has no workspace offset: run the plan-memory pass before compiling");
      if (v->inBatchRegion) {  // sample s's copy at region + s * regionBytes (region shifted for the chunk)
        llvm::Value* copy = b.CreateMul(f.sample, b.getInt64(static_cast<uint64_t>(g_.batchSuffix.regionBytes)));
        op.data = b.CreateGEP(b.getInt8Ty(), f.region,
                              b.CreateAdd(copy, b.getInt64(static_cast<uint64_t>(v->arenaOffset))));
        return op;
      }
      // Each sample has an arena of its own, the plan's per-sample layout at
      // workspace + sample * arenaBytes: a group of samples runs a segment's
      // nodes in order while other groups are at other nodes, so a region
      // the plan reuses over time must never be shared between samples.
      // Values without a batch dim live in sample 0's arena.
      llvm::Value* offset = b.getInt64(static_cast<uint64_t>(v->arenaOffset));
      if (isBatched(v)) {
        llvm::Value* arena = b.CreateMul(f.sample, b.getInt64(static_cast<uint64_t>(g_.arenaBytes)));
        op.data = b.CreateGEP(b.getInt8Ty(), f.workspace, b.CreateAdd(arena, offset));  // a group's workspace is shifted
        return op;
      }
      base = b.CreateInBoundsGEP(b.getInt8Ty(), f.workspace, offset);
    }
    op.data = rows.sampled(v) ? b.CreateInBoundsGEP(b.getInt8Ty(), base,
                                                       b.CreateMul(f.sample, b.getInt64(static_cast<uint64_t>(
                                                                                 sampleBytes(v, rows)))))
                                 : base;
    return op;
  }

  // i32 run(i64 batch, ptr inputs, ptr outputs, ptr workspace, ptr parallel_for, ptr pool)
  //
  // The schedule. Consecutive batched steps form a segment that runs
  // depth-first over groups of samples: each group of up to samplesPerGroup()
  // samples goes through the whole segment before the next one starts, so
  // its intermediates stay in cache instead of the batch's streaming through
  // memory between layers, and the groups are spread over the pool. Within a
  // group a step still splits into parts (EmitContext::split) on the pool,
  // which is all the parallelism there is at batch 1 (one group). Steps
  // without a batch dim (constants of the batch, a fixed batch's rows) run
  // between segments, over their rows and parts. Every (sample, part) task
  // computes the same whatever group or thread runs it, so results are
  // bit-identical to a node-by-node schedule.
  //
  // With a whole-batch suffix (Graph::BatchSuffix, chosen by plan-memory for
  // weight-heavy nodes) the batch runs in chunks of up to `chunk` samples:
  // the segment before the suffix for the chunk's groups, then each suffix
  // step over the chunk, part by part (every sample of a part before the
  // next part, so the part's share of the weights is read once per chunk).
  // The workspace then starts with the chunk's batch region, the arenas
  // after it.
  //
  // kiln_run_slots(batch, inputs, outputs, workspace, slots, parallel_for,
  // pool) is the ABI 1.4 entry; kiln_run, the 1.0 one, calls it with the
  // most slots (KILN_MAX_SLOTS), for which older runtimes size the workspace.
  llvm::Function* emitRun(const std::vector<Task>& tasks) {
    auto* type = llvm::FunctionType::get(i32_, {i64_, ptr_, ptr_, ptr_, i64_, ptr_, ptr_}, false);
    auto* fn = llvm::Function::Create(type, llvm::GlobalValue::InternalLinkage, "kiln_run_slots", *module_);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx_, "entry", fn));
    llvm::Value* batch = fn->getArg(0);
    llvm::Value* args = b.CreateAlloca(argsType_);
    for (unsigned i = 0; i < 4; ++i) b.CreateStore(fn->getArg(i), b.CreateStructGEP(argsType_, args, i));
    b.CreateStore(llvm::ConstantPointerNull::get(ptr_), b.CreateStructGEP(argsType_, args, 4));
    llvm::Value* slots = fn->getArg(4);
    const Pool pool{fn->getArg(5), fn->getArg(6)};
    const Graph::BatchSuffix& suffix = g_.batchSuffix;
    if (suffix.chunk == 0) {
      for (size_t i = 0; i < tasks.size();) {
        if (!tasks[i].batched) {
          emitStep(b, pool, tasks[i], args, b.getInt64(static_cast<uint64_t>(tasks[i].rows)), b.getInt64(0));
          ++i;
          continue;
        }
        size_t end = i;
        while (end < tasks.size() && tasks[end].batched) ++end;
        emitSegment(b, pool, {tasks.begin() + i, tasks.begin() + end}, batchSchedule(g_).samplesPerGroup, args,
                    b.getInt64(0), batch, slots);
        i = end;
      }
      b.CreateRet(b.getInt32(0));
      return fn;
    }
    // Every step is batched here (plan-memory chooses a suffix only then).
    const auto chunk = b.getInt64(static_cast<uint64_t>(suffix.chunk));
    const auto regionBytes = b.getInt64(static_cast<uint64_t>(suffix.regionBytes));
    llvm::Value* workspace = fn->getArg(3);
    b.CreateStore(b.CreateInBoundsGEP(b.getInt8Ty(), workspace,
                                      b.CreateMul(b.CreateBinaryIntrinsic(llvm::Intrinsic::smin, batch, chunk),
                                                  regionBytes)),
                  b.CreateStructGEP(argsType_, args, 3));
    const auto first = static_cast<size_t>(suffix.firstNode);
    llvm::BasicBlock* entry = b.GetInsertBlock();
    llvm::BasicBlock* header = llvm::BasicBlock::Create(ctx_, "chunk", fn);
    llvm::BasicBlock* body = llvm::BasicBlock::Create(ctx_, "chunk.body", fn);
    llvm::BasicBlock* done = llvm::BasicBlock::Create(ctx_, "chunk.done", fn);
    b.CreateBr(header);
    b.SetInsertPoint(header);
    llvm::PHINode* start = b.CreatePHI(i64_, 2);
    start->addIncoming(b.getInt64(0), entry);
    b.CreateCondBr(b.CreateICmpSLT(start, batch), body, done);
    b.SetInsertPoint(body);
    llvm::Value* count = b.CreateBinaryIntrinsic(llvm::Intrinsic::smin, b.CreateSub(batch, start), chunk);
    // Sample s of the chunk keeps its copy of the region's values at
    // workspace + (s - start) * regionBytes.
    b.CreateStore(b.CreateGEP(b.getInt8Ty(), workspace, b.CreateNeg(b.CreateMul(start, regionBytes))),
                  b.CreateStructGEP(argsType_, args, 4));
    if (first > 0)
      emitSegment(b, pool, {tasks.begin(), tasks.begin() + static_cast<std::ptrdiff_t>(first)},
                  batchSchedule(g_).samplesPerGroup, args, start, count, slots);
    for (size_t i = first; i < tasks.size(); ++i) emitStep(b, pool, tasks[i], args, count, start, true);
    start->addIncoming(b.CreateAdd(start, chunk), b.GetInsertBlock());
    b.CreateBr(header);
    b.SetInsertPoint(done);
    b.CreateRet(b.getInt32(0));
    return fn;
  }

  llvm::Function* emitRunAllSlots(llvm::Function* runSlots) {
    auto* type = llvm::FunctionType::get(i32_, {i64_, ptr_, ptr_, ptr_, ptr_, ptr_}, false);
    auto* fn = llvm::Function::Create(type, llvm::GlobalValue::InternalLinkage, "kiln_run", *module_);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx_, "entry", fn));
    b.CreateRet(b.CreateCall(runSlots, {fn->getArg(0), fn->getArg(1), fn->getArg(2), fn->getArg(3),
                                        b.getInt64(KILN_MAX_SLOTS), fn->getArg(4), fn->getArg(5)}));
    return fn;
  }

  struct Pool {
    llvm::Value *parallelFor, *context;  // the run function's; parallelFor NULL: serial
  };

  // The segment's steps for every group of the `count` samples from
  // `start`: parallel_for(groups) of kiln_segment_S(ptr {args, parallel_for,
  // pool, flags, slots, start, count}, i64 group).
  //
  // A group works in one of the batch's arenas, a slot it claims for the
  // segment: the slots in use are the lowest free ones, so a thread's next
  // group finds its intermediates' memory still in cache (with each
  // sample's own arena, every sample of a large batch ran on cold memory).
  // Slots of `group` arenas each, at most `slots` (the workspace holds that
  // many, at most kSlots), their flags on kiln_run's stack.
  static constexpr int64_t kSlots = BatchSchedule::kMaxGroupsInFlight;
  static_assert(kSlots == KILN_MAX_SLOTS, "the flags hold the most slots the ABI allows");
  void emitSegment(llvm::IRBuilder<>& b, const Pool& pool, const std::vector<Task>& steps, int64_t group,
                   llvm::Value* args, llvm::Value* start, llvm::Value* count, llvm::Value* slots) {
    auto* contextType = llvm::StructType::get(ctx_, {ptr_, ptr_, ptr_, ptr_, i64_, i64_, i64_});
    auto* fnType = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), {ptr_, i64_}, false);
    auto* segment = llvm::Function::Create(fnType, llvm::GlobalValue::InternalLinkage,
                                           "kiln_segment_" + std::to_string(segments_++), *module_);
    {
      llvm::IRBuilder<> sb(llvm::BasicBlock::Create(ctx_, "entry", segment));
      llvm::Value* context = segment->getArg(0);
      auto field = [&](unsigned i) { return sb.CreateLoad(ptr_, sb.CreateStructGEP(contextType, context, i)); };
      llvm::Value* runArgs = field(0);
      const Pool inner{field(1), field(2)};
      llvm::Value* flags = field(3);
      llvm::Value* total = sb.CreateLoad(i64_, sb.CreateStructGEP(contextType, context, 6));
      llvm::Value* size = group > 0 ? sb.getInt64(static_cast<uint64_t>(group)) : total;
      llvm::Value* relative = sb.CreateMul(segment->getArg(1), size);
      llvm::Value* first = sb.CreateAdd(sb.CreateLoad(i64_, sb.CreateStructGEP(contextType, context, 5)), relative);
      llvm::Value* samples = sb.CreateBinaryIntrinsic(llvm::Intrinsic::smin, sb.CreateSub(total, relative), size);
      // Slot k holds arenas [k * size, k * size + samples), within the batch's.
      llvm::Value* slotsGiven = sb.CreateBinaryIntrinsic(
          llvm::Intrinsic::smax, sb.getInt64(1),
          sb.CreateBinaryIntrinsic(llvm::Intrinsic::smin, sb.getInt64(kSlots),
                                   sb.CreateLoad(i64_, sb.CreateStructGEP(contextType, context, 4))));
      llvm::Value* slots = sb.CreateBinaryIntrinsic(
          llvm::Intrinsic::smin, slotsGiven,
          sb.CreateAdd(sb.CreateUDiv(sb.CreateSub(total, samples), size), sb.getInt64(1)));
      llvm::Value* slot = claimSlot(sb, flags, slots);
      // The group's args: sample s's arena is arena slot * size + s - first.
      llvm::Value* groupArgs = entryAlloca(sb, argsType_);
      for (unsigned i : {0, 1, 2, 4})
        sb.CreateStore(sb.CreateLoad(argsType_->getElementType(i), sb.CreateStructGEP(argsType_, runArgs, i)),
                       sb.CreateStructGEP(argsType_, groupArgs, i));
      llvm::Value* workspace = sb.CreateLoad(ptr_, sb.CreateStructGEP(argsType_, runArgs, 3));
      llvm::Value* shift = sb.CreateMul(sb.CreateSub(sb.CreateMul(slot, size), first),
                                        sb.getInt64(static_cast<uint64_t>(g_.arenaBytes)));
      sb.CreateStore(sb.CreateGEP(sb.getInt8Ty(), workspace, shift), sb.CreateStructGEP(argsType_, groupArgs, 3));
      for (const Task& step : steps) emitStep(sb, inner, step, groupArgs, samples, first);
      llvm::StoreInst* release = sb.CreateStore(sb.getInt8(0), sb.CreateGEP(sb.getInt8Ty(), flags, slot));
      release->setAtomic(llvm::AtomicOrdering::Release);
      release->setAlignment(llvm::Align(1));
      sb.CreateRetVoid();
    }
    auto* flagsType = llvm::ArrayType::get(b.getInt8Ty(), kSlots);
    llvm::Value* flags = entryAlloca(b, flagsType);
    b.CreateMemSet(flags, b.getInt8(0), kSlots, llvm::MaybeAlign(1));
    llvm::Value* context = entryAlloca(b, contextType);
    b.CreateStore(args, b.CreateStructGEP(contextType, context, 0));
    b.CreateStore(pool.parallelFor, b.CreateStructGEP(contextType, context, 1));
    b.CreateStore(pool.context, b.CreateStructGEP(contextType, context, 2));
    b.CreateStore(flags, b.CreateStructGEP(contextType, context, 3));
    b.CreateStore(slots, b.CreateStructGEP(contextType, context, 4));
    b.CreateStore(start, b.CreateStructGEP(contextType, context, 5));
    b.CreateStore(count, b.CreateStructGEP(contextType, context, 6));
    llvm::Value* groups = group > 0 ? b.CreateUDiv(b.CreateAdd(count, b.getInt64(static_cast<uint64_t>(group - 1))),
                                                   b.getInt64(static_cast<uint64_t>(group)))
                                    : b.getInt64(1);
    emitParallelFor(b, pool, groups, segment, context);
  }

  // The lowest free one of `slots` flags (i8, 0 free), set to 1; tries the
  // flags in turn until one is free (at most as many groups run at once as
  // there are threads, and a slot frees when its group's segment ends).
  llvm::Value* claimSlot(llvm::IRBuilder<>& b, llvm::Value* flags, llvm::Value* slots) {
    llvm::Function* fn = b.GetInsertBlock()->getParent();
    llvm::BasicBlock* entry = b.GetInsertBlock();
    llvm::BasicBlock* header = llvm::BasicBlock::Create(ctx_, "slot", fn);
    llvm::BasicBlock* taken = llvm::BasicBlock::Create(ctx_, "slot.taken", fn);
    llvm::BasicBlock* done = llvm::BasicBlock::Create(ctx_, "slot.done", fn);
    b.CreateBr(header);
    b.SetInsertPoint(header);
    llvm::PHINode* i = b.CreatePHI(i64_, 2);
    i->addIncoming(b.getInt64(0), entry);
    llvm::Value* claim = b.CreateAtomicCmpXchg(b.CreateGEP(b.getInt8Ty(), flags, i), b.getInt8(0), b.getInt8(1),
                                               llvm::MaybeAlign(1), llvm::AtomicOrdering::Acquire,
                                               llvm::AtomicOrdering::Monotonic);
    b.CreateCondBr(b.CreateExtractValue(claim, 1), done, taken);
    b.SetInsertPoint(taken);
    llvm::Value* next = b.CreateAdd(i, b.getInt64(1));
    i->addIncoming(b.CreateSelect(b.CreateICmpEQ(next, slots), b.getInt64(0), next), taken);
    b.CreateBr(header);
    b.SetInsertPoint(done);
    return i;
  }

  // One step for `samples` samples (or rows) from `first`: its tasks
  // first * parts ... (first + samples) * parts - 1, counted in the profile;
  // sample by sample, or part by part when partMajor.
  void emitStep(llvm::IRBuilder<>& b, const Pool& pool, const Task& step, llvm::Value* args, llvm::Value* samples,
                llvm::Value* first, bool partMajor = false) {
    llvm::Value* start = profile_ && step.layer >= 0 ? readCounter(b) : nullptr;
    const auto parts = b.getInt64(static_cast<uint64_t>(step.parts));
    llvm::Value* context = entryAlloca(b, taskRangeType());
    b.CreateStore(step.fn, b.CreateStructGEP(taskRangeType(), context, 0));
    b.CreateStore(args, b.CreateStructGEP(taskRangeType(), context, 1));
    b.CreateStore(first, b.CreateStructGEP(taskRangeType(), context, 2));
    b.CreateStore(samples, b.CreateStructGEP(taskRangeType(), context, 3));
    b.CreateStore(parts, b.CreateStructGEP(taskRangeType(), context, 4));
    emitParallelFor(b, pool, b.CreateMul(samples, parts), rangeTask(partMajor), context);
    if (start) countProfile(b, step.layer, start);
  }

  // A stack slot in the function's entry block (a fixed frame, not one that
  // grows where the slot is used).
  llvm::Value* entryAlloca(llvm::IRBuilder<>& b, llvm::Type* type) {
    llvm::BasicBlock& entry = b.GetInsertBlock()->getParent()->getEntryBlock();
    return llvm::IRBuilder<>(&entry, entry.getFirstInsertionPt()).CreateAlloca(type);
  }

  // {task, args, first, samples, parts}: a step's tasks for `samples` samples from `first`.
  llvm::StructType* taskRangeType() { return llvm::StructType::get(ctx_, {ptr_, ptr_, i64_, i64_, i64_}); }

  // void kiln_sample_major_task(ptr range, i64 i): task(args, first * parts + i);
  // void kiln_part_major_task(ptr range, i64 i): task(args, (first + i % samples) * parts + i / samples).
  llvm::Function* rangeTask(bool partMajor) {
    llvm::Function*& fn = partMajor ? partMajorTask_ : sampleMajorTask_;
    if (fn) return fn;
    auto* type = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), {ptr_, i64_}, false);
    fn = llvm::Function::Create(type, llvm::GlobalValue::InternalLinkage,
                                partMajor ? "kiln_part_major_task" : "kiln_sample_major_task", *module_);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx_, "entry", fn));
    llvm::Value* range = fn->getArg(0);
    auto field = [&](unsigned i, llvm::Type* t) { return b.CreateLoad(t, b.CreateStructGEP(taskRangeType(), range, i)); };
    llvm::Value* task = field(0, ptr_);
    llvm::Value* first = field(2, i64_);
    llvm::Value* parts = field(4, i64_);
    llvm::Value* i = fn->getArg(1);
    llvm::Value* index;
    if (partMajor) {
      llvm::Value* samples = field(3, i64_);
      index = b.CreateAdd(b.CreateMul(b.CreateAdd(first, b.CreateURem(i, samples)), parts), b.CreateUDiv(i, samples));
    } else {
      index = b.CreateAdd(b.CreateMul(first, parts), i);
    }
    b.CreateCall(type, task, {field(1, ptr_), index});
    b.CreateRetVoid();
    return fn;
  }

  // parallel_for(pool, count, task, context), or a loop on this thread
  // when the run is serial (parallel_for NULL).
  void emitParallelFor(llvm::IRBuilder<>& b, const Pool& pool, llvm::Value* count, llvm::Value* task,
                       llvm::Value* context) {
    llvm::Function* fn = b.GetInsertBlock()->getParent();
    auto* taskType = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), {ptr_, i64_}, false);
    auto* parallelForType = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), {ptr_, i64_, ptr_, ptr_}, false);
    llvm::BasicBlock* serialBlock = llvm::BasicBlock::Create(ctx_, "serial", fn);
    llvm::BasicBlock* poolBlock = llvm::BasicBlock::Create(ctx_, "pool", fn);
    llvm::BasicBlock* next = llvm::BasicBlock::Create(ctx_, "next", fn);
    b.CreateCondBr(b.CreateICmpEQ(pool.parallelFor, llvm::ConstantPointerNull::get(ptr_)), serialBlock, poolBlock);
    b.SetInsertPoint(poolBlock);
    b.CreateCall(parallelForType, pool.parallelFor, {pool.context, count, task, context});
    b.CreateBr(next);
    b.SetInsertPoint(serialBlock);
    llvm::BasicBlock* header = llvm::BasicBlock::Create(ctx_, "tasks", fn);
    llvm::BasicBlock* body = llvm::BasicBlock::Create(ctx_, "task", fn);
    b.CreateBr(header);
    b.SetInsertPoint(header);
    llvm::PHINode* i = b.CreatePHI(i64_, 2);
    i->addIncoming(b.getInt64(0), serialBlock);
    b.CreateCondBr(b.CreateICmpSLT(i, count), body, next);
    b.SetInsertPoint(body);
    b.CreateCall(taskType, task, {context, i});
    i->addIncoming(b.CreateAdd(i, b.getInt64(1)), body);
    b.CreateBr(header);
    b.SetInsertPoint(next);
  }

  llvm::Constant* string(const std::string& s) {
    auto* init = llvm::ConstantDataArray::getString(ctx_, s);
    return new llvm::GlobalVariable(*module_, init->getType(), true, llvm::GlobalValue::PrivateLinkage, init, "str");
  }

  llvm::Constant* tensorInfos(const std::vector<Value*>& values, const std::string& name) {
    auto* infoType = llvm::StructType::get(ctx_, {ptr_, i32_, i32_, ptr_});
    std::vector<llvm::Constant*> infos;
    for (const Value* v : values) {
      std::vector<int64_t> dims = v->type.shape.dims;  // kBatch == KILN_DIM_BATCH == -1
      auto* dimsInit = llvm::ConstantDataArray::get(ctx_, llvm::ArrayRef<int64_t>(dims));
      auto* dimsGlobal = new llvm::GlobalVariable(*module_, dimsInit->getType(), true,
                                                  llvm::GlobalValue::PrivateLinkage, dimsInit, "dims");
      infos.push_back(llvm::ConstantStruct::get(
          infoType, {string(v->name), llvm::ConstantInt::get(i32_, static_cast<uint64_t>(abiDType(v->type.dtype))),
                     llvm::ConstantInt::get(i32_, v->type.shape.rank()), dimsGlobal}));
    }
    auto* arrayType = llvm::ArrayType::get(infoType, infos.size());
    return new llvm::GlobalVariable(*module_, arrayType, true, llvm::GlobalValue::PrivateLinkage,
                                    llvm::ConstantArray::get(arrayType, infos), name);
  }

  // The ABI 1.1 label table: an array of C strings, or NULL without labels.
  llvm::Constant* labels() {
    if (options_.labels.empty()) return llvm::ConstantPointerNull::get(ptr_);
    std::vector<llvm::Constant*> names;
    for (const std::string& label : options_.labels) names.push_back(string(label));
    auto* arrayType = llvm::ArrayType::get(ptr_, names.size());
    return new llvm::GlobalVariable(*module_, arrayType, true, llvm::GlobalValue::PrivateLinkage,
                                    llvm::ConstantArray::get(arrayType, names), "kiln_labels");
  }

  // Floating-point operations of a node per unit of the run's batch: two
  // per multiply-accumulate its op counts (0 for ops that count none).
  static uint64_t nodeFlops(const Node& n) {
    return n.op->macs ? 2 * static_cast<uint64_t>(std::max<int64_t>(0, n.op->macs(n))) : 0;
  }

  static std::string shapesOf(const Node& n) {
    std::string text;
    for (const Value* v : n.outputs) text += (text.empty() ? "" : ", ") + v->type.shape.str();
    text += " <-";
    bool first = true;
    for (const Value* v : n.inputs) {
      if (!v) continue;
      text += (first ? " " : ", ") + v->type.shape.str();
      first = false;
    }
    return text;
  }

  // The ABI 1.2 layer table: {name, op, shapes, flops} per node.
  llvm::Constant* layerTable() {
    auto* infoType = llvm::StructType::get(ctx_, {ptr_, ptr_, ptr_, i64_});
    std::vector<llvm::Constant*> infos;
    for (const Node* n : g_.nodes())
      infos.push_back(llvm::ConstantStruct::get(
          infoType, {string(n->name), string(n->opName()), string(shapesOf(*n)), llvm::ConstantInt::get(i64_, nodeFlops(*n))}));
    auto* arrayType = llvm::ArrayType::get(infoType, infos.size());
    return new llvm::GlobalVariable(*module_, arrayType, true, llvm::GlobalValue::PrivateLinkage,
                                    llvm::ConstantArray::get(arrayType, infos), "kiln_layers");
  }

  void emitDescriptor(llvm::Function* run, llvm::Function* runSlots, bool exportUnprefixedEntry) {
    static_assert(KILN_DIM_BATCH == kBatch, "the IR's symbolic batch is the ABI's batch marker");
    auto* i16 = llvm::Type::getInt16Ty(ctx_);
    auto* descType = llvm::StructType::get(ctx_, {i32_, i16, i16, ptr_, ptr_, ptr_, ptr_, ptr_, i32_, i32_, ptr_, ptr_,
                                                  i64_, ptr_, i64_, i64_, ptr_, i32_, ptr_, i64_, i32_, ptr_, ptr_,
                                                  i64_, i64_, ptr_, i64_, i64_});
    uint64_t flops = 0;
    for (const Node* n : g_.nodes()) flops += nodeFlops(*n);
    llvm::Constant* fields[] = {
        llvm::ConstantInt::get(i32_, KILN_ARTIFACT_MAGIC),
        llvm::ConstantInt::get(i16, KILN_ABI_MAJOR),
        llvm::ConstantInt::get(i16, KILN_ABI_MINOR),
        string(KILN_VERSION),
        string(options_.modelName.empty() ? g_.name : options_.modelName),
        string(target_.resolved.triple),
        string(target_.resolved.cpu),
        string(target_.resolved.features),
        llvm::ConstantInt::get(i32_, g_.inputs().size()),
        llvm::ConstantInt::get(i32_, g_.outputs().size()),
        tensorInfos(g_.inputs(), "kiln_inputs"),
        tensorInfos(g_.outputs(), "kiln_outputs"),
        llvm::ConstantInt::get(i64_, static_cast<uint64_t>(g_.arenaBytes)),
        weights_.global(),
        llvm::ConstantInt::get(i64_, weights_.size()),
        llvm::ConstantInt::get(i64_, weights_.hash()),
        run,
        llvm::ConstantInt::get(i32_, options_.labels.size()),
        labels(),
        llvm::ConstantInt::get(i64_, flops),
        llvm::ConstantInt::get(i32_, g_.nodes().size()),
        layerTable(),
        profile_ ? static_cast<llvm::Constant*>(profile_) : llvm::ConstantPointerNull::get(ptr_),
        llvm::ConstantInt::get(i64_, static_cast<uint64_t>(batchSchedule(g_).workspaceSamples)),
        llvm::ConstantInt::get(i64_, static_cast<uint64_t>(batchSchedule(g_).samplesPerGroup)),
        runSlots,
        llvm::ConstantInt::get(i64_, static_cast<uint64_t>(g_.batchSuffix.regionBytes)),
        llvm::ConstantInt::get(i64_, static_cast<uint64_t>(g_.batchSuffix.chunk)),
    };
    auto* desc = new llvm::GlobalVariable(*module_, descType, true, llvm::GlobalValue::PrivateLinkage,
                                          llvm::ConstantStruct::get(descType, fields), "kiln_descriptor");
    auto* entryType = llvm::FunctionType::get(ptr_, {}, false);
    auto* entry = llvm::Function::Create(entryType, llvm::GlobalValue::ExternalLinkage,
                                         options_.symbolPrefix + "_kiln_artifact_v1", *module_);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx_, "entry", entry));
    b.CreateRet(desc);
    if (exportUnprefixedEntry)
      llvm::GlobalAlias::create(llvm::GlobalValue::ExternalLinkage, "kiln_artifact_v1", entry);
  }

  const Graph& g_;
  llvm::LLVMContext& ctx_;
  const CompileOptions& options_;
  const ModuleTarget& target_;
  std::unique_ptr<llvm::Module> module_;
  WeightsBuilder weights_;
  llvm::PointerType* ptr_;
  llvm::IntegerType* i64_;
  llvm::IntegerType* i32_;
  llvm::StructType* argsType_;
  std::map<const Value*, size_t> inputIndex_, outputIndex_;
  std::map<const Value*, llvm::Value*> constants_;
  llvm::GlobalVariable* profile_ = nullptr;
  llvm::Function* sampleMajorTask_ = nullptr, *partMajorTask_ = nullptr;
  int segments_ = 0;
};

}  // namespace

std::unique_ptr<llvm::Module> buildModule(const Graph& g, llvm::LLVMContext& ctx, const CompileOptions& options,
                                          const ModuleTarget& target, bool exportUnprefixedEntry) {
  return ModuleBuilder(g, ctx, options, target).build(exportUnprefixedEntry);
}

}  // namespace kiln::codegen
