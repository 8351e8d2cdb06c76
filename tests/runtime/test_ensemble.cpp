// kiln_ensemble_*: loading a manifest and its members, the checks that
// members agree, the three combination rules against a computation done here
// independently, run-time checks and checked mode naming the member.
#include <cfloat>
#include <cmath>

#include "runtime_test_util.h"

using namespace kiln_test;

namespace {

const std::vector<double> kWeights = {5, 3, 2};  // normalized: 0.5, 0.3, 0.2

struct EnsembleRun {
  EnsembleRun(const std::string& manifest, int64_t batch, uint32_t flags = 0)
      : image({batch, 2, 6, 6}, 7), combined({batch, 5}) {
    REQUIRE_KILN_OK(kiln_ensemble_open(manifest.c_str(), &ensemble));
    kiln_context_options options;
    kiln_context_options_init(&options);
    options.flags = flags;
    options.max_batch = batch;
    REQUIRE_KILN_OK(kiln_ensemble_context_create(ensemble, &options, &context));
    for (int32_t m = 0; m < kiln_ensemble_num_members(ensemble); ++m) members.emplace_back(std::vector<int64_t>{batch, 5});
    for (Buffer& member : members) memberTensors.push_back(member.tensor());
    inputs = {image.tensor()};
    combinedTensor = combined.tensor();
  }
  ~EnsembleRun() {
    kiln_ensemble_context_destroy(context);
    kiln_ensemble_release(ensemble);
  }
  kiln_status run(bool withMembers = true) {
    return kiln_ensemble_run(context, inputs.data(), 1, &combinedTensor, withMembers ? memberTensors.data() : nullptr);
  }

  kiln_ensemble* ensemble = nullptr;
  kiln_ensemble_context* context = nullptr;
  Buffer image, combined;
  std::vector<Buffer> members;
  std::vector<kiln_tensor> inputs, memberTensors;
  kiln_tensor combinedTensor;
};

std::vector<double> softmax(std::vector<double> z) {
  double peak = *std::max_element(z.begin(), z.end()), sum = 0;
  for (double& v : z) sum += (v = std::exp(v - peak));
  for (double& v : z) v /= sum;
  return z;
}

// The ensemble's prediction for one sample, from the members' rows.
std::vector<double> combineHere(const std::string& rule, bool memberLogits,
                                const std::vector<std::vector<double>>& rows) {
  double total = kWeights[0] + kWeights[1] + kWeights[2];
  std::vector<double> out(5, 0.0);
  for (size_t m = 0; m < rows.size(); ++m) {
    double w = kWeights[m] / total;
    if (rule == "mean") {
      std::vector<double> p = memberLogits ? softmax(rows[m]) : rows[m];
      for (size_t c = 0; c < 5; ++c) out[c] += w * p[c];
    } else if (rule == "logits") {
      for (size_t c = 0; c < 5; ++c)
        out[c] += w * (memberLogits ? rows[m][c] : std::log(std::max(rows[m][c], double(FLT_MIN))));
    } else {
      out[static_cast<size_t>(std::max_element(rows[m].begin(), rows[m].end()) - rows[m].begin())] += w;
    }
  }
  return rule == "logits" ? softmax(out) : out;
}

std::vector<std::string> memberFiles(const std::string& suffix) {
  return {"member0_" + suffix + ".so", "member1_" + suffix + ".so", "member2_" + suffix + ".so"};
}

}  // namespace

TEST_CASE("an ensemble loads its members relative to the manifest", "[runtime][ensemble]") {
  std::filesystem::path dir = scratchDir("load");
  std::string manifest = writeManifest(dir, memberFiles("probs"), kWeights,
                                       "\"rule\": \"vote\", \"labels\": [\"a\", \"b\", \"c\", \"d\", \"e\"],");
  kiln_ensemble* ensemble = nullptr;
  REQUIRE_KILN_OK(kiln_ensemble_open(manifest.c_str(), &ensemble));
  CHECK(kiln_ensemble_num_members(ensemble) == 3);
  CHECK(kiln_ensemble_get_rule(ensemble) == KILN_RULE_VOTE);
  CHECK(kiln_ensemble_num_classes(ensemble) == 5);
  CHECK(std::string(kiln_ensemble_label(ensemble, 1)) == "b");
  CHECK(kiln_ensemble_label(ensemble, 5) == nullptr);
  CHECK(kiln_ensemble_label(ensemble, -1) == nullptr);
  const kiln_model* member = nullptr;
  float weight = 0;
  REQUIRE_KILN_OK(kiln_ensemble_member(ensemble, 1, &member, &weight));
  CHECK(weight == Approx(0.3f));
  CHECK(std::string(kiln_model_descriptor(member)->model_name) == "member1_probs");
  REQUIRE_KILN_ERROR(kiln_ensemble_member(ensemble, 3, &member, &weight), KILN_ERR_INVALID_ARGUMENT,
                     "index 3 is not in [0, 3)");
  REQUIRE_KILN_ERROR(kiln_ensemble_member(ensemble, 0, &member, nullptr), KILN_ERR_INVALID_ARGUMENT,
                     "out_weight is NULL");
  kiln_ensemble_release(ensemble);

  CHECK(kiln_ensemble_num_members(nullptr) == -1);
  CHECK(kiln_ensemble_num_classes(nullptr) == -1);
  CHECK(kiln_ensemble_label(nullptr, 0) == nullptr);
  kiln_ensemble_release(nullptr);
  REQUIRE_KILN_ERROR(kiln_ensemble_open(nullptr, &ensemble), KILN_ERR_INVALID_ARGUMENT, "manifest_path is NULL");
}

TEST_CASE("ensemble rules equal the weighted combination computed here", "[runtime][ensemble]") {
  struct Case {
    std::string rule, memberOutput;
  };
  for (const Case& c : std::vector<Case>{{"mean", "probabilities"},
                                         {"mean", "logits"},
                                         {"logits", "logits"},
                                         {"logits", "probabilities"},
                                         {"vote", "probabilities"},
                                         {"vote", "logits"}}) {
    INFO("rule " << c.rule << ", member_output " << c.memberOutput);
    bool memberLogits = c.memberOutput == "logits";
    std::vector<std::string> files = memberFiles(memberLogits ? "logits" : "probs");
    std::filesystem::path dir = scratchDir("rules");
    std::string manifest = writeManifest(
        dir, files, kWeights, "\"rule\": \"" + c.rule + "\", \"member_output\": \"" + c.memberOutput + "\",");
    const int64_t batch = 6;
    EnsembleRun pooled(manifest, batch);
    REQUIRE_KILN_OK(pooled.run());
    std::vector<std::vector<float>> alone;
    for (size_t m = 0; m < files.size(); ++m) {
      alone.push_back(runOnce(files[m], pooled.image, {pooled.image.dims[0], 5}, KILN_CONTEXT_SERIAL));
      CHECK(pooled.members[m].values == alone[m]);
    }
    for (int64_t n = 0; n < batch; ++n) {
      std::vector<std::vector<double>> rows;
      for (const std::vector<float>& member : alone) rows.emplace_back(member.begin() + n * 5, member.begin() + n * 5 + 5);
      std::vector<double> expected = combineHere(c.rule, memberLogits, rows);
      for (size_t k = 0; k < 5; ++k) {
        INFO("sample " << n << ", class " << k);
        CHECK(std::abs(pooled.combined.values[static_cast<size_t>(n * 5) + k] - expected[k]) <= 1e-6);
      }
    }
    // Without member outputs (context scratch), and serially: the same.
    EnsembleRun serial(manifest, batch, KILN_CONTEXT_SERIAL);
    REQUIRE_KILN_OK(serial.run(false));
    CHECK(serial.combined.values == pooled.combined.values);
  }
}

TEST_CASE("manifest errors are KILN_ERR_MANIFEST", "[runtime][ensemble]") {
  std::filesystem::path dir = scratchDir("manifests");
  kiln_ensemble* ensemble = nullptr;
  auto refused = [&](const std::string& text, const std::string& message) {
    std::string path = writeFile(dir, "bad.json", text);
    REQUIRE_KILN_ERROR(kiln_ensemble_open(path.c_str(), &ensemble), KILN_ERR_MANIFEST, path + ": " + message);
    CHECK(ensemble == nullptr);
  };
  std::string head = R"({"format": "kiln-ensemble", "version": 1, )";
  std::string member = std::filesystem::relative(artifact("member0_probs.so"), dir).string();
  refused("{\"format\": ", "not valid JSON");
  // JSON has no NaN or Inf, and the parser refuses numbers beyond a double.
  refused(head + R"("members": [{"path": "a.so", "weight": NaN}]})", "not valid JSON");
  refused(head + R"("members": [{"path": "a.so", "weight": 1e999}]})", "not valid JSON");
  refused(head + R"("members": [{"path": "a.so", "weight": -0.5}]})",
          "member 0 ('a.so'): weight -0.5 is not a finite non-negative number");
  refused(head + R"("members": [{"path": "a.so", "weight": "1"}]})", "member 0 ('a.so'): 'weight' must be a number");
  refused(head + R"("members": [{"path": "a.so", "weight": 0}, {"path": "b.so", "weight": 0}]})",
          "member weights are all zero");
  refused(head + R"("rule": "median", "members": [{"path": "a.so"}]})",
          "'rule' is 'median', expected one of 'mean', 'logits', 'vote'");
  refused(head + R"("member_output": "scores", "members": [{"path": "a.so"}]})", "'member_output' is 'scores'");
  refused(head + R"("members": []})", "'members' must be a non-empty array");
  refused(R"({"format": "kiln-ensemble", "version": 2, "members": [{"path": "a.so"}]})", "unsupported manifest version");
  std::string missing = (dir / "missing.json").string();
  REQUIRE_KILN_ERROR(kiln_ensemble_open(missing.c_str(), &ensemble), KILN_ERR_MANIFEST, missing + ": cannot open");
}

TEST_CASE("a member that cannot be loaded is named", "[runtime][ensemble]") {
  std::filesystem::path dir = scratchDir("bad_members");
  kiln_ensemble* ensemble = nullptr;
  std::string onnx = writeFile(dir, "m.json", R"({"format": "kiln-ensemble", "version": 1,
      "members": [{"path": ")" + std::filesystem::relative(artifact("member0_probs.so"), dir).string() +
                                                  R"("}, {"path": "member1.onnx"}]})");
  REQUIRE_KILN_ERROR(kiln_ensemble_open(onnx.c_str(), &ensemble), KILN_ERR_NOT_ARTIFACT,
                     onnx + ": member 1 ('member1.onnx'): " + (dir / "member1.onnx").string() +
                         ": is an ONNX model, not a compiled artifact: compile it with `kiln compile");
  std::string missing = writeFile(dir, "n.json", R"({"format": "kiln-ensemble", "version": 1,
      "members": [{"path": "gone.so"}]})");
  REQUIRE_KILN_ERROR(kiln_ensemble_open(missing.c_str(), &ensemble), KILN_ERR_IO,
                     missing + ": member 0 ('gone.so'): " + (dir / "gone.so").string() + ": cannot open");
}

TEST_CASE("members must agree on inputs and output and labels", "[runtime][ensemble]") {
  std::filesystem::path dir = scratchDir("mismatch");
  kiln_ensemble* ensemble = nullptr;
  auto refused = [&](const std::vector<std::string>& files, const std::string& extra, const std::string& message) {
    std::string manifest = writeManifest(dir, files, std::vector<double>(files.size(), 1.0), extra);
    REQUIRE_KILN_ERROR(kiln_ensemble_open(manifest.c_str(), &ensemble), KILN_ERR_MEMBER_MISMATCH, message);
    CHECK(ensemble == nullptr);
  };
  auto member = [&](int index, const std::string& name) {
    return "member " + std::to_string(index) + " ('" + std::filesystem::relative(artifact(name), dir).string() + "')";
  };
  refused({"member0_probs.so", "other_input.so"}, "",
          "ensemble.json: " + member(1, "other_input.so") + " has input 0 'image' f32[N,2,8,8], " +
              member(0, "member0_probs.so") + " has 'image' f32[N,2,6,6]");
  refused({"member0_probs.so", "three_classes.so"}, "", "has output 'probs' f32[N,3], member 0");
  refused({"member0_probs.so", "pair.so"}, "", "has 2 inputs, member 0");
  refused({"pair.so"}, "", member(0, "pair.so") + " must have exactly one f32 [N, C] output, it has 2 outputs");
  refused({"member0_probs.so", "other_labels.so"}, "",
          member(1, "other_labels.so") + " carries the labels ['v', 'w', 'x', 'y', 'z'], which differ from " +
              member(0, "member0_probs.so") + "'s ['a', 'b', 'c', 'd', 'e']");
  refused({"member0_probs.so"}, R"("labels": ["a", "b", "c", "d"],)", "outputs 5 classes, the manifest lists 4 labels");
  refused({"member2_probs.so", "member0_probs.so"}, R"("labels": ["a", "b", "c", "d", "x"],)",
          "which differ from the manifest's ['a', 'b', 'c', 'd', 'x']");

  // Members without labels take the manifest's; without manifest labels the
  // members' own must agree, and kiln_ensemble_label has none to give.
  std::string ok = writeManifest(dir, {"member2_probs.so", "member0_probs.so", "member1_probs.so"}, kWeights,
                                 R"("labels": ["a", "b", "c", "d", "e"],)");
  REQUIRE_KILN_OK(kiln_ensemble_open(ok.c_str(), &ensemble));
  kiln_ensemble_release(ensemble);
  ok = writeManifest(dir, memberFiles("probs"), kWeights);
  REQUIRE_KILN_OK(kiln_ensemble_open(ok.c_str(), &ensemble));
  CHECK(kiln_ensemble_label(ensemble, 0) == nullptr);
  kiln_ensemble_release(ensemble);
}

TEST_CASE("ensemble runs check their tensors", "[runtime][ensemble]") {
  std::string manifest = writeManifest(scratchDir("run_checks"), memberFiles("probs"), kWeights);
  EnsembleRun r(manifest, 2);
  REQUIRE_KILN_ERROR(kiln_ensemble_run(r.context, r.inputs.data(), 2, &r.combinedTensor, nullptr),
                     KILN_ERR_INPUT_COUNT, "the members take 1 inputs, given 2");
  REQUIRE_KILN_ERROR(kiln_ensemble_run(r.context, r.inputs.data(), 1, nullptr, nullptr), KILN_ERR_INVALID_ARGUMENT,
                     "the combined tensor is NULL");
  REQUIRE_KILN_ERROR(kiln_ensemble_run(nullptr, r.inputs.data(), 1, &r.combinedTensor, nullptr),
                     KILN_ERR_INVALID_ARGUMENT, "kiln_ensemble_run: context is NULL");

  int64_t fourClasses[] = {2, 4};
  r.combinedTensor.dims = fourClasses;
  REQUIRE_KILN_ERROR(r.run(), KILN_ERR_SHAPE, "ensemble output 'combined': dim 1 is 4, expected 5");
  r.combinedTensor = r.combined.tensor();
  r.memberTensors[2].dims = fourClasses;
  REQUIRE_KILN_ERROR(r.run(), KILN_ERR_SHAPE, "member 2 ('");
  CHECK_THAT(kiln_last_error(), Catch::Contains("member2_probs.so') output 'probs': dim 1 is 4, expected 5"));
  r.memberTensors[2] = r.members[2].tensor();
  r.memberTensors[1].dtype = KILN_I64;
  REQUIRE_KILN_ERROR(r.run(), KILN_ERR_DTYPE, "output 'probs': dtype i64 (2), expected f32");
  r.memberTensors[1] = r.members[1].tensor();

  r.memberTensors[0].data = r.combined.values.data();
  REQUIRE_KILN_ERROR(r.run(), KILN_ERR_ALIASING, "overlaps the buffer of ensemble output 'combined'");
  r.memberTensors[0] = r.members[0].tensor();
  r.combinedTensor.data = r.image.values.data();
  REQUIRE_KILN_ERROR(r.run(), KILN_ERR_ALIASING, "ensemble output 'combined': its buffer overlaps the buffer of input 'image'");
  r.combinedTensor = r.combined.tensor();

  Buffer three({3, 2, 6, 6});
  r.inputs[0] = three.tensor();
  REQUIRE_KILN_ERROR(r.run(false), KILN_ERR_BATCH, "input 'image': batch (dim 0) is 3, the context takes 1 to 2");
  r.inputs[0] = r.image.tensor();
  int64_t one[] = {1, 5};
  r.combinedTensor.dims = one;
  REQUIRE_KILN_ERROR(r.run(false), KILN_ERR_SHAPE, "ensemble output 'combined': batch (dim 0) is 1, but input 'image' has batch 2");
  r.combinedTensor = r.combined.tensor();
  r.inputs[0].data = nullptr;
  REQUIRE_KILN_ERROR(r.run(), KILN_ERR_NULL_DATA, "input 'image': data is NULL");
  r.inputs[0] = r.image.tensor();
  REQUIRE_KILN_OK(r.run());
}

TEST_CASE("checked ensemble runs name the member with the first non-finite output", "[runtime][ensemble]") {
  std::filesystem::path dir = scratchDir("non_finite");
  std::string manifest = writeManifest(dir, memberFiles("probs"), kWeights);
  EnsembleRun unchecked(manifest, 2);
  unchecked.image.values[80] = std::nanf("");  // sample 1
  REQUIRE_KILN_OK(unchecked.run(false));
  CHECK(std::isfinite(unchecked.combined.values[0]));
  CHECK(std::isnan(unchecked.combined.values[5]));

  EnsembleRun checked(manifest, 2, KILN_CONTEXT_CHECK_NON_FINITE);
  REQUIRE_KILN_OK(checked.run(false));
  checked.image.values[80] = std::nanf("");
  REQUIRE_KILN_ERROR(checked.run(false), KILN_ERR_NON_FINITE,
                     "member 0 ('" + std::filesystem::relative(artifact("member0_probs.so"), dir).string() +
                         "') output 'probs': element 5 (flat index) is NaN");
}

TEST_CASE("an ensemble context keeps its ensemble alive", "[runtime][ensemble]") {
  std::string manifest = writeManifest(scratchDir("lifetime"), memberFiles("logits"), kWeights,
                                       R"("rule": "logits", "member_output": "logits",)");
  kiln_ensemble* ensemble = nullptr;
  REQUIRE_KILN_OK(kiln_ensemble_open(manifest.c_str(), &ensemble));
  kiln_ensemble_retain(ensemble);
  kiln_ensemble_release(ensemble);
  kiln_ensemble_context* context = nullptr;
  REQUIRE_KILN_OK(kiln_ensemble_context_create(ensemble, nullptr, &context));
  kiln_ensemble_release(ensemble);
  Buffer image({1, 2, 6, 6}), combined({1, 5});
  kiln_tensor in = image.tensor(), out = combined.tensor();
  REQUIRE_KILN_OK(kiln_ensemble_run(context, &in, 1, &out, nullptr));
  double total = 0;
  for (float p : combined.values) total += p;
  CHECK(total == Approx(1.0));
  kiln_ensemble_context_destroy(context);
  kiln_ensemble_context_destroy(nullptr);
}
