#include "compiled_model.h"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "compiler/codegen/codegen.h"
#include "compiler/passes/pipeline.h"
#include "runtime/src/artifact_loader.h"

namespace kiln::testing {

struct CompiledModel::Impl {
  std::shared_ptr<runtime::Artifact> artifact;
  std::vector<DType> outputTypes;
};

namespace {

std::string temporaryPath() {
  static std::atomic<int> counter{0};
  auto dir = std::filesystem::temp_directory_path() / ("kiln-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / ("model" + std::to_string(counter++) + ".so")).string();
}

}  // namespace

std::unique_ptr<CompiledModel> CompiledModel::compile(const Graph& g, const std::string& cpu, bool optimize) {
  Graph copy = g.clone();
  codegen::CompileOptions options;
  options.cpu = cpu;
  PipelineOptions pipeline;
  pipeline.passes.channelBlock = codegen::channelBlock(options);
  runPipeline(copy, optimize ? pipelineForLevel(2) : std::vector<std::string>{"plan-memory"}, pipeline);
  std::string path = temporaryPath();
  codegen::compileGraph(copy, options, codegen::EmitKind::SharedLibrary, path);
  std::unique_ptr<CompiledModel> model(new CompiledModel());
  model->impl_ = std::make_unique<Impl>();
  model->impl_->artifact = runtime::Artifact::open(path);
  std::filesystem::remove(path);  // the mapping stays valid after unlinking
  for (Value* v : copy.outputs()) model->impl_->outputTypes.push_back(v->type.dtype);
  return model;
}

CompiledModel::~CompiledModel() = default;

std::vector<Tensor> CompiledModel::run(const std::vector<Tensor>& inputs) const {
  const kiln_artifact& d = impl_->artifact->descriptor();
  if (inputs.size() != static_cast<size_t>(d.num_inputs)) throw Error("wrong input count for the compiled model");
  int64_t batch = 1;
  for (int32_t i = 0; i < d.num_inputs; ++i)
    if (d.inputs[i].rank > 0 && d.inputs[i].dims[0] == KILN_DIM_BATCH) batch = inputs[i].shape()[0];
  std::vector<const void*> in;
  for (const Tensor& t : inputs) in.push_back(t.rawData());
  std::vector<Tensor> outputs;
  std::vector<void*> out;
  for (int32_t i = 0; i < d.num_outputs; ++i) {
    Shape shape(std::vector<int64_t>(d.outputs[i].dims, d.outputs[i].dims + d.outputs[i].rank));
    outputs.emplace_back(impl_->outputTypes[static_cast<size_t>(i)], shape.withBatch(batch));
    // Poison outputs so a kernel that forgets to write shows up as NaN.
    if (outputs.back().dtype() == DType::F32)
      std::fill_n(outputs.back().data<float>(), outputs.back().numElements(), std::nanf(""));
    out.push_back(outputs.back().rawData());
  }
  uint64_t workspaceBytes = std::max<uint64_t>(impl_->artifact->workspaceBytes(batch), 64);
  void* workspace = std::aligned_alloc(64, (workspaceBytes + 63) / 64 * 64);
  // Fill the workspace with NaNs too, so reads of unwritten memory surface.
  std::fill_n(static_cast<uint32_t*>(workspace), workspaceBytes / 4, 0x7fc00000u);
  impl_->artifact->run(batch, in.data(), out.data(), workspace);
  std::free(workspace);
  return outputs;
}

double maxRelativeError(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double worst = 0;
  if (a.size() != b.size()) return INFINITY;
  for (size_t k = 0; k < a.size(); ++k) {
    if (a[k].shape() != b[k].shape() || a[k].dtype() != b[k].dtype()) return INFINITY;
    if (a[k].dtype() != DType::F32) {
      if (std::memcmp(a[k].rawData(), b[k].rawData(), a[k].byteSize()) != 0) return INFINITY;
      continue;
    }
    const float* pa = a[k].data<float>();
    const float* pb = b[k].data<float>();
    double peak = 0, diff = 0;
    for (int64_t i = 0; i < b[k].numElements(); ++i) {
      if (std::isnan(pa[i]) != std::isnan(pb[i])) return INFINITY;
      if (std::isnan(pb[i])) continue;
      if (std::isinf(pb[i]) || std::isinf(pa[i])) {
        if (pa[i] != pb[i]) return INFINITY;
        continue;
      }
      peak = std::max(peak, std::fabs(double(pb[i])));
      diff = std::max(diff, std::fabs(double(pa[i]) - double(pb[i])));
    }
    worst = std::max(worst, peak > 0 ? diff / peak : diff);
  }
  return worst;
}

double maxRelativeErrorPerSample(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.size() != b.size()) return INFINITY;
  double worst = 0;
  for (size_t k = 0; k < a.size(); ++k) {
    const Shape& shape = b[k].shape();
    if (a[k].shape() != shape || shape.rank() == 0) {
      worst = std::max(worst, maxRelativeError({a[k]}, {b[k]}));
      continue;
    }
    const size_t bytes = b[k].byteSize() / static_cast<size_t>(shape[0]);
    for (int64_t n = 0; n < shape[0]; ++n) {
      Shape sampleShape = shape;
      sampleShape[0] = 1;
      Tensor sa(a[k].dtype(), sampleShape), sb(b[k].dtype(), sampleShape);
      std::memcpy(sa.rawData(), a[k].rawData() + n * bytes, bytes);
      std::memcpy(sb.rawData(), b[k].rawData() + n * bytes, bytes);
      worst = std::max(worst, maxRelativeError({sa}, {sb}));
    }
  }
  return worst;
}

}  // namespace kiln::testing
