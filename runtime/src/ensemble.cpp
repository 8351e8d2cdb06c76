#include "runtime/src/ensemble.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <span>

#include "runtime/src/status_error.h"

using kiln::runtime::Artifact;
using kiln::runtime::StatusError;
using kiln::runtime::TensorArgument;

namespace {

// "image f32[N,2,6,6]"
std::string formatTensor(const kiln_tensor_info& t) {
  std::string text = std::string("'") + t.name + "' " + kiln::runtime::dtypeName(t.dtype) + "[";
  for (int32_t d = 0; d < t.rank; ++d)
    text += (d ? "," : "") + (t.dims[d] == KILN_DIM_BATCH ? std::string("N") : std::to_string(t.dims[d]));
  return text + "]";
}

bool sameTensor(const kiln_tensor_info& a, const kiln_tensor_info& b) {
  return std::string_view(a.name) == b.name && a.dtype == b.dtype && a.rank == b.rank &&
         std::equal(a.dims, a.dims + a.rank, b.dims);
}

std::string joinLabels(std::span<const std::string> labels) {
  std::string text;
  for (const std::string& label : labels) text += (text.empty() ? "'" : ", '") + label + "'";
  return "[" + text + "]";
}

}  // namespace

kiln_ensemble::kiln_ensemble(const std::string& manifestPath)
    : path(manifestPath), manifest(kiln::runtime::readEnsembleManifest(manifestPath)) {
  auto mismatch = [&](size_t m, const std::string& what) {
    throw StatusError(KILN_ERR_MEMBER_MISMATCH, path + ": " + memberNames[m] + " " + what);
  };
  members.reserve(manifest.members.size());  // so emplace_back cannot throw and leak a model
  for (size_t m = 0; m < manifest.members.size(); ++m) {
    const kiln::runtime::EnsembleMember& member = manifest.members[m];
    memberNames.push_back("member " + std::to_string(m) + " ('" + member.path + "')");
    try {
      members.emplace_back(new kiln_model(Artifact::open(kiln::runtime::resolveMemberPath(path, member))));
    } catch (const StatusError& e) {
      throw StatusError(e.status(), path + ": " + memberNames[m] + ": " + e.what());
    }
  }

  // Member 0 is the reference the others must agree with.
  const kiln_artifact& first = memberDescriptor(0);
  for (size_t m = 0; m < members.size(); ++m) {
    const kiln_artifact& d = memberDescriptor(m);
    if (d.num_inputs != first.num_inputs)
      mismatch(m, "has " + std::to_string(d.num_inputs) + " inputs, " + memberNames[0] + " has " +
                      std::to_string(first.num_inputs));
    for (int32_t i = 0; i < d.num_inputs; ++i)
      if (!sameTensor(d.inputs[i], first.inputs[i]))
        mismatch(m, "has input " + std::to_string(i) + " " + formatTensor(d.inputs[i]) + ", " + memberNames[0] +
                        " has " + formatTensor(first.inputs[i]));
    const kiln_tensor_info& out = d.outputs[0];
    if (d.num_outputs != 1 || out.dtype != KILN_F32 || out.rank != 2 || out.dims[1] < 1)
      mismatch(m, "must have exactly one f32 [N, C] output, it has " + std::to_string(d.num_outputs) +
                      " outputs, the first " + formatTensor(out));
    // Member 0 passed the check above before the others are compared with it.
    const kiln_tensor_info& reference = first.outputs[0];
    if (!std::equal(out.dims, out.dims + 2, reference.dims))
      mismatch(m, "has output " + formatTensor(out) + ", " + memberNames[0] + " has " + formatTensor(reference));
  }
  combinedDims[0] = first.outputs[0].dims[0];
  combinedDims[1] = classes = first.outputs[0].dims[1];

  if (!manifest.labels.empty() && static_cast<int64_t>(manifest.labels.size()) != classes)
    mismatch(0, "outputs " + std::to_string(classes) + " classes, the manifest lists " +
                    std::to_string(manifest.labels.size()) + " labels");
  // Labels the members carry (ABI 1.1) must agree with the manifest's, or
  // without those with the first member that carries labels.
  std::vector<std::string> reference = manifest.labels;
  std::string referenceName = "the manifest's";
  for (size_t m = 0; m < members.size(); ++m) {
    std::span<const char* const> labels = members[m]->artifact->labels();
    if (labels.empty()) continue;
    std::vector<std::string> own(labels.begin(), labels.end());
    if (reference.empty()) {
      reference = own;
      referenceName = memberNames[m] + "'s";
    } else if (own != reference) {
      mismatch(m, "carries the labels " + joinLabels(own) + ", which differ from " + referenceName + " " +
                      joinLabels(reference));
    }
  }
}

kiln_ensemble_context::kiln_ensemble_context(kiln_ensemble* ensemble, const kiln::runtime::ContextSettings& settings)
    : ensemble(kiln::runtime::Ref<kiln_ensemble>::retained(ensemble)),
      settings(settings),
      executor(kiln::runtime::startExecutor(settings)) {
  size_t members = ensemble->members.size();
  uint64_t outputBytes = static_cast<uint64_t>(ensemble->classes) * sizeof(float);
  if (static_cast<uint64_t>(settings.maxBatch) > std::numeric_limits<uint64_t>::max() / outputBytes)
    throw StatusError(KILN_ERR_OUT_OF_MEMORY, ensemble->path + ": member outputs for max_batch " +
                                                  std::to_string(settings.maxBatch) + " exceed the address space");
  for (size_t m = 0; m < members; ++m) {
    workspaces.push_back(kiln::runtime::allocateWorkspace(*ensemble->members[m]->artifact, settings.maxBatch, executor.slots));
    memberScratch.emplace_back(outputBytes * static_cast<uint64_t>(settings.maxBatch));
  }
  const kiln_artifact& first = ensemble->memberDescriptor(0);
  for (int32_t i = 0; i < first.num_inputs; ++i) arguments.push_back({nullptr, &first.inputs[i], nullptr, "input", false});
  arguments.push_back({nullptr, &ensemble->combined, "ensemble", "output", true});
  for (size_t m = 0; m < members; ++m)
    arguments.push_back({nullptr, &ensemble->memberDescriptor(m).outputs[0], ensemble->memberNames[m].c_str(), "output", true});
  inputData.resize(static_cast<size_t>(first.num_inputs));
  memberData.resize(members);
  memberResults.resize(members);
  classAccumulator.resize(static_cast<size_t>(ensemble->classes));
}

void kiln_ensemble_context::runMember(size_t m) {
  void* output = memberData[m];
  memberResults[m] = ensemble->members[m]->artifact->run(batch, inputData.data(), &output, workspaces[m].data(),
                                                         executor.parallelFor, executor.pool, executor.slots);
}

void kiln_ensemble_context::run(const kiln_tensor* inputs, int32_t numInputs, const kiln_tensor* combinedOutput,
                                const kiln_tensor* memberOutputs) {
  const size_t members = ensemble->members.size();
  const auto modelInputs = static_cast<int32_t>(inputData.size());
  if (numInputs != modelInputs)
    throw StatusError(KILN_ERR_INPUT_COUNT, ensemble->path + ": the members take " + std::to_string(modelInputs) +
                                                " inputs, given " + std::to_string(numInputs));
  if ((numInputs > 0 && !inputs) || !combinedOutput)
    throw StatusError(KILN_ERR_INVALID_ARGUMENT, ensemble->path + ": the input array or the combined tensor is NULL");
  const auto firstMember = static_cast<size_t>(numInputs) + 1;
  for (int32_t i = 0; i < numInputs; ++i) arguments[static_cast<size_t>(i)].tensor = &inputs[i];
  arguments[firstMember - 1].tensor = combinedOutput;
  for (size_t m = 0; memberOutputs && m < members; ++m) arguments[firstMember + m].tensor = &memberOutputs[m];
  std::span<const TensorArgument> given(arguments.data(), memberOutputs ? arguments.size() : firstMember);
  batch = kiln::runtime::checkArguments(given, settings.maxBatch);

  for (int32_t i = 0; i < numInputs; ++i) inputData[static_cast<size_t>(i)] = inputs[i].data;
  for (size_t m = 0; m < members; ++m)
    memberData[m] = static_cast<float*>(memberOutputs ? memberOutputs[m].data : memberScratch[m].data());
  if (executor.parallelFor) {
    executor.parallelFor(
        executor.pool, static_cast<int64_t>(members),
        [](void* context, int64_t m) { static_cast<kiln_ensemble_context*>(context)->runMember(static_cast<size_t>(m)); },
        this);
  } else {
    for (size_t m = 0; m < members; ++m) runMember(m);
  }
  for (size_t m = 0; m < members; ++m)
    if (memberResults[m] != 0)
      throw StatusError(KILN_ERR_INTERNAL, ensemble->path + ": " + ensemble->memberNames[m] +
                                               ": the model's run function returned " + std::to_string(memberResults[m]));
  if (settings.checkNonFinite()) {
    for (size_t m = 0; m < members; ++m) {
      kiln_tensor scratch{KILN_F32, 2, nullptr, memberData[m]};
      TensorArgument output = arguments[firstMember + m];
      output.tensor = &scratch;
      kiln::runtime::checkFinite(output, batch);
    }
  }
  combine(static_cast<float*>(combinedOutput->data));
  if (settings.checkNonFinite()) kiln::runtime::checkFinite(arguments[firstMember - 1], batch);
}

// Per sample, with w the normalized weights (members of weight 0 do not
// contribute, not even their NaNs):
//   mean:   sum_m w_m p_m, p_m the member's probabilities (softmax of its
//           logits when member_output is "logits")
//   logits: softmax(sum_m w_m z_m), z_m the member's logits (log(max(p_m,
//           FLT_MIN)) when member_output is "probabilities")
//   vote:   per class, the summed weight of the members whose first maximum
//           it is; a member whose row holds a NaN makes the sample's row NaN
// Accumulates in double; NaN and Inf propagate.
void kiln_ensemble_context::combine(float* out) {
  using kiln::runtime::EnsembleRule;
  const auto classes = static_cast<size_t>(ensemble->classes);
  const bool memberLogits = ensemble->manifest.memberOutput == kiln::runtime::MemberOutput::Logits;
  const EnsembleRule rule = ensemble->manifest.rule;
  double* acc = classAccumulator.data();
  auto softmaxInto = [classes](auto get, auto put) {
    double peak = -std::numeric_limits<double>::infinity();
    for (size_t c = 0; c < classes; ++c) peak = std::max(peak, double(get(c)));
    double sum = 0;
    for (size_t c = 0; c < classes; ++c) sum += std::exp(double(get(c)) - peak);
    for (size_t c = 0; c < classes; ++c) put(c, std::exp(double(get(c)) - peak) / sum);
  };
  for (int64_t n = 0; n < batch; ++n) {
    std::fill_n(acc, classes, 0.0);
    bool undefinedVote = false;
    for (size_t m = 0; m < memberData.size(); ++m) {
      const double w = ensemble->manifest.members[m].weight;
      if (w == 0) continue;
      const float* row = memberData[m] + static_cast<size_t>(n) * classes;
      auto value = [row](size_t c) { return row[c]; };
      switch (rule) {
        case EnsembleRule::Mean:
          if (memberLogits)
            softmaxInto(value, [&](size_t c, double p) { acc[c] += w * p; });
          else
            for (size_t c = 0; c < classes; ++c) acc[c] += w * row[c];
          break;
        case EnsembleRule::Logits:
          for (size_t c = 0; c < classes; ++c)
            acc[c] += w * (memberLogits ? double(row[c]) : std::log(double(std::max(row[c], FLT_MIN))));
          break;
        case EnsembleRule::Vote:
          if (std::any_of(row, row + classes, [](float v) { return std::isnan(v); }))
            undefinedVote = true;
          else
            acc[std::max_element(row, row + classes) - row] += w;
          break;
      }
    }
    float* outRow = out + static_cast<size_t>(n) * classes;
    if (rule == EnsembleRule::Logits)
      softmaxInto([acc](size_t c) { return acc[c]; }, [outRow](size_t c, double p) { outRow[c] = float(p); });
    else
      for (size_t c = 0; c < classes; ++c) outRow[c] = undefinedVote ? std::nanf("") : float(acc[c]);
  }
}
