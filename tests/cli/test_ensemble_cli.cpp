// Drives `kiln compile --labels`, `kiln ensemble create` and
// `kiln compile --ensemble`: labels recorded in the artifact and the header;
// manifests written and read back; the compiled ensemble, run by `kiln run`,
// against its members compiled and run one by one and combined by the test
// (every rule, both member outputs, the demo ensemble); and the errors, each
// naming the file and member, with nothing left behind.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "cli_harness.h"
#include "runtime/src/artifact_loader.h"
#include "runtime/src/ensemble_manifest.h"
#include "tests/ensemble/reference_combination.h"
#include "tools/npy.h"

namespace fs = std::filesystem;
using kiln::Tensor;
using kiln::ensemble::MemberOutput;
using kiln::ensemble::Rule;
using namespace kiln::clitest;

namespace {

void writeText(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

fs::path compileQuietly(const fs::path& dir, std::vector<std::string> source, const std::string& name) {
  fs::path so = dir / (name + ".so");
  std::vector<std::string> args = {"compile"};
  args.insert(args.end(), source.begin(), source.end());
  args.insert(args.end(), {"-o", so.string(), "--quiet"});
  REQUIRE(runKiln(dir, args).exitCode == 0);
  return so;
}

// Runs an artifact on the inputs an earlier `--random-inputs` run saved in
// `inputs` and returns its only output.
Tensor runOnSavedInputs(const fs::path& dir, const fs::path& so, const fs::path& inputs) {
  std::vector<std::string> args = {"run", so.string(), "--output-dir", (dir / "out").string()};
  std::shared_ptr<kiln::runtime::Artifact> artifact = kiln::runtime::Artifact::open(so.string());
  const kiln_artifact& d = artifact->descriptor();
  for (int32_t i = 0; i < d.num_inputs; ++i)
    args.insert(args.end(),
                {"--input", std::string(d.inputs[i].name) + "=" + (inputs / d.inputs[i].name).string() + ".npy"});
  fs::remove_all(dir / "out");
  REQUIRE(runKiln(dir, args).exitCode == 0);
  REQUIRE(d.num_outputs == 1);
  return kiln::npy::readFile((dir / "out" / (std::string(d.outputs[0].name) + ".npy")).string());
}

std::vector<std::string> labelsOf(const fs::path& so) {
  std::shared_ptr<kiln::runtime::Artifact> artifact = kiln::runtime::Artifact::open(so.string());
  const kiln_artifact& d = artifact->descriptor();
  REQUIRE(d.abi_minor >= 1);
  return std::vector<std::string>(d.labels, d.labels + d.num_labels);
}

// Compiles the manifest into one artifact, runs it on seeded random inputs,
// and holds it to the rule applied to its members, each compiled and run
// alone on the same inputs.
void checkCompiledEnsemble(const fs::path& dir, const fs::path& manifestPath) {
  const kiln::runtime::EnsembleManifest manifest = kiln::runtime::readEnsembleManifest(manifestPath.string());
  fs::path so = compileQuietly(dir, {"--ensemble", manifestPath.string()}, "ensemble");
  Result r = runKiln(
      dir, {"run", so.string(), "--random-inputs", "11", "--batch", "5", "--output-dir", (dir / "combined").string()});
  REQUIRE(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::Contains("ensemble_probabilities: f32[5x"));
  Tensor combined = kiln::npy::readFile((dir / "combined" / "ensemble_probabilities.npy").string());

  std::vector<Tensor> outputs;
  std::vector<double> weights;
  for (size_t i = 0; i < manifest.members.size(); ++i) {
    fs::path member =
        compileQuietly(dir, {kiln::runtime::resolveMemberPath(manifestPath.string(), manifest.members[i])},
                       "member" + std::to_string(i));
    outputs.push_back(runOnSavedInputs(dir, member, dir / "combined" / "inputs"));
    weights.push_back(manifest.members[i].weight);
  }
  const Rule rule = manifest.rule == kiln::runtime::EnsembleRule::Mean     ? Rule::Mean
                    : manifest.rule == kiln::runtime::EnsembleRule::Logits ? Rule::Logits
                                                                           : Rule::Vote;
  const MemberOutput output =
      manifest.memberOutput == kiln::runtime::MemberOutput::Logits ? MemberOutput::Logits : MemberOutput::Probabilities;
  INFO("rule " << kiln::testing::ruleName(rule));
  if (rule == Rule::Vote) REQUIRE(kiln::testing::topClassesAreClear(outputs));
  CHECK(kiln::testing::maxAbsDifference(combined,
                                        kiln::testing::referenceCombination(outputs, weights, rule, output)) <= 1e-6);
}

}  // namespace

TEST_CASE("kiln compile --labels records class names in the artifact and the header") {
  fs::path dir = scratchDir("compile_labels");
  writeText(dir / "labels.txt", "ant\nbee \"queen\"\r\nca*/t\ndog\n");
  fs::path so = dir / "model.so", header = dir / "model.h";
  Result r = runKiln(dir, {"compile", data("ens_a.onnx"), "-o", so.string(), "--header", header.string(), "--labels",
                           (dir / "labels.txt").string(), "--quiet"});
  REQUIRE(r.exitCode == 0);
  CHECK(labelsOf(so) == std::vector<std::string>{"ant", "bee \"queen\"", "ca*/t", "dog"});
  const std::string text = slurp(header);
  CHECK_THAT(text, Catch::Contains("#define MODEL_NUM_LABELS 4\n") && Catch::Contains("/*   0: \"ant\" */\n") &&
                       Catch::Contains("/*   1: \"bee \\\"queen\\\"\" */\n") &&
                       Catch::Contains("/*   2: \"ca*\\/t\" */\n"));

  // Without --labels the artifact carries none.
  REQUIRE(runKiln(dir, {"compile", data("ens_a.onnx"), "-o", so.string(), "--quiet"}).exitCode == 0);
  CHECK(labelsOf(so).empty());

  // The count must be the class count C of an [N, C] output; nothing is written otherwise.
  fs::remove(so);
  writeText(dir / "three.txt", "ant\nbee\ncat\n");
  r = runKiln(dir, {"compile", data("ens_a.onnx"), "-o", so.string(), "--labels", (dir / "three.txt").string()});
  CHECK(r.exitCode == 1);
  CHECK_THAT(r.err, Catch::Contains((dir / "three.txt").string() +
                                    ": 3 labels, but no f32 output of shape [N, C] has 3 classes: 'probs' has 4"));
  r = runKiln(dir, {"compile", data("any_size.onnx"), "--shape", "image=Nx3x4x4", "-o", so.string(), "--labels",
                    (dir / "three.txt").string()});
  CHECK(r.exitCode == 1);
  CHECK_THAT(r.err, Catch::Contains("3 labels, but no f32 output of shape [N, C] has 3 classes: 'pooled' has 4"));
  writeText(dir / "empty.txt", "");
  r = runKiln(dir, {"compile", data("ens_a.onnx"), "-o", so.string(), "--labels", (dir / "empty.txt").string()});
  CHECK(r.exitCode == 1);
  CHECK_THAT(r.err, Catch::Contains("empty.txt: the labels file is empty"));
  r = runKiln(dir, {"compile", data("ens_a.onnx"), "-o", so.string(), "--labels", (dir / "absent.txt").string()});
  CHECK(r.exitCode == 1);
  CHECK_THAT(r.err, Catch::Contains("absent.txt: cannot open the labels file"));
  CHECK(!fs::exists(so));
}

TEST_CASE("kiln compile --ensemble compiles the demo ensemble into one artifact") {
  fs::path dir = scratchDir("compile_demo_ensemble");
  fs::path so = dir / "fashion.so", header = dir / "fashion.h";
  Result r = runKiln(dir, {"compile", "--ensemble", KILN_DEMO_ENSEMBLE, "-o", so.string(), "--header", header.string(),
                           "--name", "fashion"});
  REQUIRE(r.exitCode == 0);
  for (const char* part : {"kiln: import 3 members ", " ms, merge (mean) ", " ms, optimize ", " ms, IR ", " ms, LLVM passes "})
    CHECK_THAT(r.err, Catch::Contains(part));

  std::shared_ptr<kiln::runtime::Artifact> artifact = kiln::runtime::Artifact::open(so.string());
  const kiln_artifact& d = artifact->descriptor();
  CHECK(std::string(d.model_name) == "ensemble");
  REQUIRE(d.num_outputs == 1);
  CHECK(std::string(d.outputs[0].name) == "ensemble_probabilities");
  CHECK(std::vector<int64_t>(d.outputs[0].dims, d.outputs[0].dims + d.outputs[0].rank) ==
        std::vector<int64_t>{KILN_DIM_BATCH, 10});
  CHECK(labelsOf(so) == kiln::runtime::readEnsembleManifest(KILN_DEMO_ENSEMBLE).labels);
  CHECK_THAT(slurp(header), Catch::Contains("fashion_kiln_artifact_v1") &&
                                Catch::Contains("#define FASHION_NUM_LABELS 10\n") &&
                                Catch::Contains("/*   9: \"Ankle boot\" */"));

  checkCompiledEnsemble(dir, KILN_DEMO_ENSEMBLE);
}

TEST_CASE("kiln ensemble create writes manifests that compile --ensemble combines by their rule") {
  fs::path dir = scratchDir("ensemble_rules");
  writeText(dir / "labels.txt", "w\nx\ny\nz\n");
  for (const char* rule : {"mean", "logits", "vote"}) {
    INFO("rule " << rule);
    fs::path manifest = dir / (std::string(rule) + ".json");
    Result r = runKiln(dir, {"ensemble", "create", "-o", manifest.string(), "--member", data("ens_a.onnx") + ":0.5",
                             "--member", data("ens_b.onnx") + ":3e-1", "--member", data("ens_c.onnx") + ":0.2",
                             "--rule", rule, "--labels", (dir / "labels.txt").string()});
    REQUIRE(r.exitCode == 0);
    CHECK(r.out ==
          "wrote " + manifest.string() + ": 3 members, rule " + rule + ", member output probabilities, 4 labels\n");
    // Read back: weights as given (readers normalize), member paths relative
    // to the manifest's folder and resolving to the member files.
    const std::string json = slurp(manifest);
    CHECK_THAT(json, Catch::Contains("\"weight\": 0.5") && Catch::Contains("\"rule\": \"" + std::string(rule) + "\""));
    const kiln::runtime::EnsembleManifest read = kiln::runtime::readEnsembleManifest(manifest.string());
    REQUIRE(read.members.size() == 3);
    CHECK(read.members[1].weight == Approx(0.3));
    CHECK(read.labels == std::vector<std::string>{"w", "x", "y", "z"});
    for (const auto& m : read.members) {
      CHECK(fs::path(m.path).is_relative());
      CHECK(fs::equivalent(kiln::runtime::resolveMemberPath(manifest.string(), m),
                           data(fs::path(m.path).filename().string())));
    }
    checkCompiledEnsemble(dir, manifest);
  }
  // Members that output logits: softmax first (mean), or used directly (logits).
  for (const char* rule : {"mean", "logits"}) {
    INFO("logit members, rule " << rule);
    fs::path manifest = dir / (std::string("logit_members_") + rule + ".json");
    REQUIRE(runKiln(dir, {"ensemble", "create", "-o", manifest.string(), "--member", data("ens_logits_a.onnx") + ":2",
                          "--member", data("ens_logits_b.onnx"), "--rule", rule, "--member-output", "logits"})
                .exitCode == 0);
    checkCompiledEnsemble(dir, manifest);
  }
}

TEST_CASE("kiln compile --ensemble leaves out members of weight 0 and rejects members it cannot merge") {
  fs::path dir = scratchDir("ensemble_errors");
  fs::path so = dir / "ensemble.so";
  auto create = [&](const std::string& name, std::vector<std::string> extra) {
    fs::path manifest = dir / name;
    std::vector<std::string> args = {"ensemble", "create", "-o", manifest.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    REQUIRE(runKiln(dir, args).exitCode == 0);
    return manifest.string();
  };
  auto requireRejected = [&](const std::string& manifest, int exitCode, const std::string& message) {
    Result r = runKiln(dir, {"compile", "--ensemble", manifest, "-o", so.string(), "--header", (dir / "e.h").string()});
    CHECK(r.exitCode == exitCode);
    CHECK_THAT(r.err, Catch::Contains("kiln: error: ") && Catch::Contains(message));
    CHECK(!fs::exists(so));
    CHECK(!fs::exists(dir / "e.h"));
  };

  std::string zero =
      create("zero.json", {"--member", data("ens_a.onnx") + ":1", "--member", data("ens_b.onnx") + ":0"});
  Result r = runKiln(dir, {"compile", "--ensemble", zero, "-o", so.string()});
  REQUIRE(r.exitCode == 0);
  CHECK_THAT(r.err, Catch::StartsWith("kiln: note: member1 ('") &&
                        Catch::Contains("ens_b.onnx') has weight 0 and is left out\nkiln: import 1 member "));
  fs::remove(so);

  fs::path artifact = compileQuietly(dir, {data("ens_a.onnx")}, "member");
  requireRejected(create("artifact.json", {"--member", data("ens_a.onnx"), "--member", artifact.string()}), 1,
                  artifact.string() + ": ensemble member1: compile --ensemble needs ONNX members");
  requireRejected(create("classes.json", {"--member", data("ens_a.onnx"), "--member", data("ens_five.onnx")}), 1,
                  "ens_five.onnx: ensemble member1: output 'probs' is f32[Nx5], but member0 ('");
  requireRejected(create("inputs.json", {"--member", data("ens_wide.onnx"), "--member", data("ens_a.onnx")}), 1,
                  "ens_a.onnx: ensemble member1: input 'x' is f32[Nx6], but member0 ('");
  requireRejected(create("outputs.json", {"--member", data("ens_a.onnx"), "--member", data("tiny_cnn.onnx")}), 1,
                  "tiny_cnn.onnx: ensemble member1: a member needs exactly one output");
  writeText(dir / "three.txt", "a\nb\nc\n");
  std::string labelled =
      create("labels.json", {"--member", data("ens_a.onnx"), "--labels", (dir / "three.txt").string()});
  requireRejected(labelled, 1, labelled + ": 3 labels, but no f32 output of shape [N, C] has 3 classes");
  writeText(dir / "broken.json", "{\"format\": \"kiln-ensemble\", ");
  requireRejected((dir / "broken.json").string(), 1, "broken.json: not valid JSON");
  requireRejected((dir / "absent.json").string(), 1, "absent.json: cannot open");

  requireUsageError(dir,
                    {"compile", "--ensemble", labelled, "-o", so.string(), "--labels", (dir / "three.txt").string()},
                    "--labels: " + labelled + " already names the classes");
  requireUsageError(dir, {"compile", data("ens_a.onnx"), "--ensemble", zero, "-o", so.string()},
                    "compile --ensemble takes no MODEL argument");
  requireUsageError(dir, {"compile", "-o", so.string()}, "compile takes one MODEL.onnx (or --ensemble ENS.json)");
  CHECK(!fs::exists(so));
}

TEST_CASE("kiln ensemble create validates members, weights and options") {
  fs::path dir = scratchDir("ensemble_create");
  fs::path out = dir / "ens.json";
  const std::string a = data("ens_a.onnx");
  auto create = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"ensemble", "create", "-o", out.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  requireUsageError(dir, {"ensemble"}, "ensemble needs a subcommand: create");
  requireUsageError(dir, {"ensemble", "merge"}, "unknown ensemble subcommand 'merge' (available: create)");
  requireUsageError(dir, {"ensemble", "create", "--member", a}, "-o ENS.json is required");
  requireUsageError(dir, create({}), "give the members with --member PATH[:WEIGHT]");
  requireUsageError(dir, create({"--member", a + ":heavy"}),
                    "malformed --member '" + a + ":heavy': the weight after the last ':' is 'heavy'");
  requireUsageError(dir, create({"--member", a + ":"}), "the weight after the last ':' is ''");
  requireUsageError(dir, create({"--member", ":1"}), "the path is empty");
  for (const char* weight : {"-0.5", "inf", "nan"})
    requireUsageError(dir, create({"--member", a + ":" + weight}), "the weight must be a finite number >= 0");
  requireUsageError(dir, create({"--member", a + ":0", "--member", a + ":0"}), "the member weights are all 0");
  requireUsageError(dir, create({"--member", a, "--rule", "median"}),
                    "unknown --rule 'median' (use mean, logits, vote)");
  requireUsageError(dir, create({"--member", a, "--member-output", "scores"}),
                    "unknown --member-output 'scores' (use probabilities, logits)");
  CHECK(!fs::exists(out));

  Result r = runKiln(dir, create({"--member", a, "--member", (dir / "absent.onnx").string() + ":1"}));
  CHECK(r.exitCode == 1);
  CHECK_THAT(r.err, Catch::Contains("absent.onnx: the member file does not exist"));
  r = runKiln(dir, create({"--member", a, "--labels", (dir / "absent.txt").string()}));
  CHECK(r.exitCode == 1);
  CHECK_THAT(r.err, Catch::Contains("absent.txt: cannot open the labels file"));
  CHECK(!fs::exists(out));
  r = runKiln(dir, {"ensemble", "create", "-o", (dir / "missing" / "ens.json").string(), "--member", a});
  CHECK(r.exitCode == 1);
  CHECK(!fs::exists(dir / "missing"));

  // A weight may be left out (1); paths relative to the manifest's folder go
  // up and over where needed.
  fs::create_directories(dir / "models");
  fs::copy_file(a, dir / "models" / "a.onnx");
  fs::create_directories(dir / "manifests");
  r = runKiln(dir, {"ensemble", "create", "-o", (dir / "manifests" / "ens.json").string(), "--member",
                    (dir / "models" / "a.onnx").string()});
  REQUIRE(r.exitCode == 0);
  const kiln::runtime::EnsembleManifest read =
      kiln::runtime::readEnsembleManifest((dir / "manifests" / "ens.json").string());
  REQUIRE(read.members.size() == 1);
  CHECK(read.members[0].path == "../models/a.onnx");
  CHECK(read.members[0].weight == 1.0);
  CHECK(read.rule == kiln::runtime::EnsembleRule::Mean);
  CHECK(read.labels.empty());

  r = runKiln(dir, {"help", "ensemble"});
  CHECK(r.exitCode == 0);
  for (const char* flag : {"--member PATH[:WEIGHT]", "--rule", "--member-output", "--labels", "exit status"})
    CHECK_THAT(r.out, Catch::Contains(flag));
  r = runKiln(dir, {"--help"});
  CHECK_THAT(r.out, Catch::Contains("  ensemble  "));
}
