// Drives the built `kiln` binary: help and version, usage errors (exit 2),
// inspect and run on small models (outputs checked against numpy-computed
// values), seeded random inputs, the optimizer flags (-O levels, pass
// reports, IR and DOT dumps), --top-k, the malformed-model corpus (exit 1),
// and compile: every --emit kind, cross-compiling, headers, --shape, atomic
// outputs, and compiled artifacts run by `kiln run` against the interpreter.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "cli_harness.h"
#include "tools/npy.h"

namespace fs = std::filesystem;
using kiln::Tensor;
using namespace kiln::clitest;

namespace {

void requireClose(const Tensor& got, const Tensor& want, float tolerance) {
  REQUIRE(got.type() == want.type());
  auto g = got.values<float>(), w = want.values<float>();
  for (size_t i = 0; i < g.size(); ++i) {
    INFO("element " << i);
    CHECK(g[i] == Approx(w[i]).margin(tolerance));
  }
}

template <class T>
std::vector<T> valuesOf(const Tensor& t) {
  auto v = t.values<T>();
  return {v.begin(), v.end()};
}

// max|a-b| / max|b|: relative to the output's scale, so tiny elements
// (softmax tails, zeros after Relu) do not inflate it.
double relativeError(const Tensor& a, const Tensor& b) {
  REQUIRE(a.type() == b.type());
  auto x = a.values<float>(), y = b.values<float>();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    diff = std::max(diff, std::abs(double(x[i]) - double(y[i])));
    scale = std::max(scale, std::abs(double(y[i])));
  }
  return scale == 0 ? diff : diff / scale;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> all;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) all.push_back(line);
  return all;
}

std::vector<std::string> words(const std::string& line) {
  std::vector<std::string> all;
  std::istringstream in(line);
  for (std::string word; in >> word;) all.push_back(word);
  return all;
}

// The words of the first line of `text` whose first word is `first`, e.g. a
// row of the --after-passes op table.
std::vector<std::string> row(const std::string& text, const std::string& first) {
  for (const std::string& line : lines(text)) {
    std::vector<std::string> w = words(line);
    if (!w.empty() && w[0] == first) return w;
  }
  return {};
}

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

using Words = std::vector<std::string>;

}  // namespace

TEST_CASE("kiln --help, --version and per-command help exit 0") {
  fs::path dir = scratchDir("help");
  Result r = runKiln(dir, {"--help"});
  CHECK(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::Contains("usage: kiln") && Catch::Contains("inspect") && Catch::Contains("run"));
  r = runKiln(dir, {"--version"});
  CHECK(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::StartsWith("kiln 0."));
  r = runKiln(dir, {"help", "run"});
  CHECK(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::Contains("--random-inputs") && Catch::Contains("exit status"));
  for (const char* flag : {"-O0", "--passes", "--print-after", "--print-after-all", "--dump-dot", "--verify-each",
                           "--top-k", "--labels"})
    CHECK_THAT(r.out, Catch::Contains(flag));
  r = runKiln(dir, {"help", "inspect"});
  CHECK(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::Contains("--after-passes") && Catch::Contains("-O2") && Catch::Contains("--dump-dot"));
  r = runKiln(dir, {"run", "--help"});
  CHECK(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::StartsWith("usage: kiln run"));
  r = runKiln(dir, {"inspect", "-h"});
  CHECK(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::StartsWith("usage: kiln inspect"));
}

TEST_CASE("kiln reports bad usage with exit code 2") {
  fs::path dir = scratchDir("usage");
  Result r = runKiln(dir, {});
  CHECK(r.exitCode == 2);
  CHECK_THAT(r.err, Catch::Contains("usage: kiln"));
  requireUsageError(dir, {"frobnicate"}, "unknown command 'frobnicate'");
  requireUsageError(dir, {"--frobnicate"}, "unknown option '--frobnicate'");
  requireUsageError(dir, {"help", "frobnicate"}, "unknown command 'frobnicate'");
  requireUsageError(dir, {"inspect"}, "inspect takes one MODEL.onnx");
  requireUsageError(dir, {"inspect", data("tiny_cnn.onnx"), "--frob"}, "unknown option '--frob' for 'kiln inspect'");
  requireUsageError(dir, {"inspect", data("tiny_cnn.onnx"), "--dot"}, "option '--dot' needs a value");
  requireUsageError(dir, {"inspect", data("tiny_cnn.onnx"), "--print-ir=yes"}, "option '--print-ir' takes no value");
  requireUsageError(dir, {"run", data("tiny_cnn.onnx"), "--random-inputs", "1"}, "--output-dir DIR is required");
  requireUsageError(dir, {"run", data("tiny_cnn.onnx"), "--output-dir", "o"}, "give the inputs with --input");
  requireUsageError(dir, {"run", data("tiny_cnn.onnx"), "--output-dir", "o", "--input", "image"},
                    "malformed --input 'image': expected NAME=FILE.npy");
  requireUsageError(dir, {"run", data("tiny_cnn.onnx"), "--output-dir", "o", "--input", "=x.npy"}, "malformed --input");
  requireUsageError(dir, {"run", data("tiny_cnn.onnx"), "--output-dir", "o", "--random-inputs", "x"},
                    "option '--random-inputs' expects an integer");
  requireUsageError(dir, {"run", data("tiny_cnn.onnx"), "--output-dir", "o", "--random-inputs", "1", "--batch", "0"},
                    "option '--batch' expects an integer in [1, ");
  requireUsageError(dir, {"run", data("tiny_cnn.onnx"), "--output-dir", "o", "--engine", "jit", "--random-inputs", "1"},
                    "unknown engine 'jit' (available: interp)");
  requireUsageError(dir, {"run", data("tiny_cnn.onnx"), "--output-dir", "o", "--output-dir", "p"}, "given more than once");
}

TEST_CASE("kiln inspect summarizes a model") {
  fs::path dir = scratchDir("inspect");
  fs::path dot = dir / "graph.dot";
  Result r = runKiln(dir, {"inspect", data("tiny_cnn.onnx"), "--dot", dot.string(), "--print-ir"});
  REQUIRE(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::Contains("inputs (1):\n  image: f32[Nx2x5x5]"));
  CHECK_THAT(r.out, Catch::Contains("outputs (2):\n  head/probs: f32[Nx4]\n  features:0: f32[Nx12]"));
  CHECK_THAT(r.out, Catch::Contains("nodes: 6"));
  CHECK_THAT(r.out, Catch::Contains("  Conv: 1\n") && Catch::Contains("  Gemm: 1\n") && Catch::Contains("  Softmax: 1\n"));
  // 3*2*3*3 + 3 conv, 4*12 + 4 dense.
  CHECK_THAT(r.out, Catch::Contains("parameters: 109 (109)"));
  CHECK_THAT(r.out, Catch::Contains("MACs: ") && Catch::Contains(" per sample"));
  CHECK_THAT(r.out, Catch::Contains("Conv("));  // --print-ir
  CHECK_THAT(slurp(dot), Catch::Contains("digraph"));
}

TEST_CASE("kiln run writes outputs that match numpy") {
  fs::path dir = scratchDir("run_tiny_cnn");
  fs::path out = dir / "out" / "nested";
  Result r = runKiln(dir, {"run", data("tiny_cnn.onnx"), "--input", "image=" + data("tiny_cnn_image.npy"), "--output-dir",
                        out.string()});
  REQUIRE(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::Contains("with interp in ") && Catch::Contains("head/probs: f32[2x4] -> "));
  // '/' and ':' in output names become '_'.
  requireClose(kiln::npy::readFile((out / "head_probs.npy").string()),
               kiln::npy::readFile(data("tiny_cnn_expected_probs.npy")), 1e-5f);
  requireClose(kiln::npy::readFile((out / "features_0.npy").string()),
               kiln::npy::readFile(data("tiny_cnn_expected_features.npy")), 1e-4f);
}

TEST_CASE("kiln run accepts int64 inputs where the model takes int64") {
  fs::path dir = scratchDir("run_gather");
  Result r = runKiln(dir, {"run", data("gather.onnx"), "--input", "idx=" + data("gather_idx.npy"), "--input",
                        "data=" + data("gather_data.npy"), "--output-dir", dir.string()});
  REQUIRE(r.exitCode == 0);
  requireClose(kiln::npy::readFile((dir / "picked.npy").string()),
               kiln::npy::readFile(data("gather_expected_picked.npy")), 0);
}

TEST_CASE("kiln run rejects input names and counts that do not fit the model (exit 2)") {
  fs::path dir = scratchDir("run_usage");
  std::string image = "image=" + data("tiny_cnn_image.npy");
  requireUsageError(dir, {"run", data("tiny_cnn.onnx"), "--input", "picture=x.npy", "--output-dir", dir.string()},
                    "the model has no input 'picture'");
  requireUsageError(dir, {"run", data("tiny_cnn.onnx"), "--input", image, "--input", image, "--output-dir", dir.string()},
                    "input 'image' given twice");
  requireUsageError(dir, {"run", data("gather.onnx"), "--input", "data=" + data("gather_data.npy"), "--output-dir",
                          dir.string()},
                    "input 'idx' (i64[3]) not given");
  requireUsageError(dir, {"run", data("tiny_cnn.onnx"), "--input", image, "--random-inputs", "3", "--output-dir",
                          dir.string()},
                    "exclude each other");
  requireUsageError(dir, {"run", data("tiny_cnn.onnx"), "--input", image, "--batch", "3", "--output-dir", dir.string()},
                    "--batch applies to --random-inputs only");
  requireUsageError(dir, {"run", data("gather.onnx"), "--random-inputs", "3", "--output-dir", dir.string()},
                    "input 'idx' is i64[3]");
}

TEST_CASE("kiln run rejects unusable models and data (exit 1)") {
  fs::path dir = scratchDir("run_bad_data");
  auto requireBadInput = [&](const std::vector<std::string>& args, const std::string& expected) {
    Result r = runKiln(dir, args);
    CHECK(r.exitCode == 1);
    CHECK_THAT(r.err, Catch::StartsWith("kiln: error: ") && Catch::Contains(expected));
  };
  std::string missingModel = (dir / "missing.onnx").string();
  requireBadInput({"run", missingModel, "--random-inputs", "1", "--output-dir", dir.string()}, "missing.onnx");
  requireBadInput({"inspect", missingModel}, "missing.onnx");
  requireBadInput({"run", data("tiny_cnn.onnx"), "--input", "image=" + data("gather_data.npy"), "--output-dir",
                   dir.string()},
                  "gather_data.npy: input 'image' expects f32[Nx2x5x5], the file holds f32[3x4]");
  requireBadInput({"run", data("gather.onnx"), "--input", "idx=" + data("gather_data.npy"), "--input",
                   "data=" + data("gather_data.npy"), "--output-dir", dir.string()},
                  "input 'idx' expects i64[3], the file holds f32[3x4]");
  std::ofstream(dir / "garbage.npy") << "not an array";
  requireBadInput({"run", data("tiny_cnn.onnx"), "--input", "image=" + (dir / "garbage.npy").string(), "--output-dir",
                   dir.string()},
                  "garbage.npy: not a .npy file");
  requireBadInput({"run", data("tiny_cnn.onnx"), "--input", "image=" + (dir / "absent.npy").string(), "--output-dir",
                   dir.string()},
                  "absent.npy: cannot open");
}

TEST_CASE("kiln run --random-inputs is reproducible and saves the inputs it made") {
  fs::path dir = scratchDir("run_random");
  auto runSeed = [&](const std::string& seed, const fs::path& out) {
    Result r = runKiln(dir, {"run", data("tiny_cnn.onnx"), "--random-inputs", seed, "--batch", "3", "--output-dir",
                          out.string()});
    REQUIRE(r.exitCode == 0);
    return kiln::npy::readFile((out / "head_probs.npy").string());
  };
  Tensor first = runSeed("7", dir / "a");
  Tensor again = runSeed("7", dir / "b");
  Tensor other = runSeed("8", dir / "c");
  CHECK(first.shape() == kiln::Shape{3, 4});
  CHECK(valuesOf<float>(first) == valuesOf<float>(again));
  CHECK(valuesOf<float>(first) != valuesOf<float>(other));

  Tensor image = kiln::npy::readFile((dir / "a" / "inputs" / "image.npy").string());
  CHECK(image.shape() == kiln::Shape{3, 2, 5, 5});
  for (float v : image.values<float>()) CHECK((v >= -1.0f && v < 1.0f));

  // The saved inputs reproduce the run.
  Result r = runKiln(dir, {"run", data("tiny_cnn.onnx"), "--input", "image=" + (dir / "a" / "inputs" / "image.npy").string(),
                        "--output-dir", (dir / "d").string()});
  REQUIRE(r.exitCode == 0);
  CHECK(valuesOf<float>(kiln::npy::readFile((dir / "d" / "head_probs.npy").string())) == valuesOf<float>(first));
}

TEST_CASE("kiln rejects bad optimizer and --top-k values with exit code 2") {
  fs::path dir = scratchDir("pipeline_usage");
  std::string model = data("conv_bn_relu.onnx");
  std::vector<std::string> run = {"run", model, "--random-inputs", "1", "--output-dir", (dir / "o").string()};
  auto with = [](std::vector<std::string> base, const std::vector<std::string>& extra) {
    base.insert(base.end(), extra.begin(), extra.end());
    return base;
  };
  requireUsageError(dir, with(run, {"-O7"}), "unknown optimization level '-O7' (use -O0, -O1 or -O2)");
  requireUsageError(dir, with(run, {"-O"}), "option '-O' needs its value attached");
  requireUsageError(dir, with(run, {"-O1", "-O2"}), "option '-O' given more than once");
  requireUsageError(dir, with(run, {"--passes", "fold-batchnorm,frobnicate"}),
                    "--passes: unknown pass 'frobnicate' (known: ");
  requireUsageError(dir, with(run, {"--print-after", "frobnicate"}), "--print-after: unknown pass 'frobnicate'");
  requireUsageError(dir, with(run, {"-O1", "--print-after=fold-batchnorm"}),
                    "pass 'fold-batchnorm' is not in the -O1 pipeline");
  requireUsageError(dir, with(run, {"--dump-dot="}), "--dump-dot needs a directory name");
  requireUsageError(dir, with(run, {"--top-k", "0"}), "option '--top-k' expects an integer in [1, ");
  requireUsageError(dir, with(run, {"--top-k", "two"}), "option '--top-k' expects an integer");
  requireUsageError(dir, with(run, {"--labels", "labels.txt"}), "--labels applies to --top-k only");
  requireUsageError(dir, {"inspect", model, "-O2"}, "-O needs --after-passes");
  requireUsageError(dir, {"inspect", model, "--print-after-all"}, "--print-after-all needs --after-passes");
  requireUsageError(dir, {"inspect", model, "--after-passes", "-O3"}, "unknown optimization level '-O3'");
  requireUsageError(dir, {"inspect", model, "--after-passes", "--passes", ""}, "--passes: unknown pass ''");
}

TEST_CASE("kiln inspect --after-passes reports ops, passes and memory") {
  fs::path dir = scratchDir("inspect_passes");
  std::string model = data("conv_bn_relu.onnx");
  Result r = runKiln(dir, {"inspect", model, "--after-passes", "--verify-each"});
  REQUIRE(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::Contains("nodes: 7"));  // the plain summary still comes first
  CHECK(row(r.out, "op") == Words{"op", "before", "after"});
  // BN folds into the Conv, the Relu fuses into it, Flatten of [N,4,1,1] stays.
  CHECK(row(r.out, "BatchNormalization") == Words{"BatchNormalization", "1", "0"});
  CHECK(row(r.out, "Relu") == Words{"Relu", "1", "0"});
  CHECK(row(r.out, "Conv") == Words{"Conv", "1", "1"});
  CHECK(row(r.out, "Softmax") == Words{"Softmax", "1", "1"});
  CHECK(row(r.out, "total") == Words{"total", "7", "5"});
  CHECK_THAT(r.out, Catch::Contains("passes (-O2, 14 runs, "));
  // "fold-batchnorm  7 -> 6 nodes  0.012 ms  BN folded: 1"
  Words fold = row(r.out, "fold-batchnorm");
  REQUIRE(fold.size() == 10);
  CHECK(Words(fold.begin(), fold.begin() + 5) == Words{"fold-batchnorm", "7", "->", "6", "nodes"});
  CHECK(Words(fold.begin() + 6, fold.end()) == Words{"ms", "BN", "folded:", "1"});
  CHECK_THAT(r.out, Catch::Contains("activations fused: 1"));
  CHECK_THAT(r.out, Catch::Contains("memory per sample (plan-memory):"));
  std::vector<std::string> arena = row(r.out, "arena:");
  REQUIRE(arena.size() >= 3);
  CHECK(arena[2] == "B");
  CHECK(std::stoll(arena[1]) > 0);
  CHECK(row(r.out, "arena").size() == 4);  // "arena / tensors: RATIO"

  // --passes overrides the level; no plan-memory, no memory report.
  r = runKiln(dir, {"inspect", model, "--after-passes", "-O1", "--passes", "fold-batchnorm", "--verify-each"});
  REQUIRE(r.exitCode == 0);
  CHECK(row(r.out, "BatchNormalization") == Words{"BatchNormalization", "1", "0"});
  CHECK(row(r.out, "Relu") == Words{"Relu", "1", "1"});
  CHECK_THAT(r.out, Catch::Contains("passes (--passes, 1 runs, "));
  CHECK_THAT(r.out, !Catch::Contains("arena"));

  r = runKiln(dir, {"inspect", model, "--after-passes", "-O0", "--verify-each"});
  REQUIRE(r.exitCode == 0);
  CHECK(row(r.out, "BatchNormalization") == Words{"BatchNormalization", "1", "1"});
  CHECK_THAT(r.out, Catch::Contains("passes (-O0, 0 runs, "));

  r = runKiln(dir, {"inspect", model});
  REQUIRE(r.exitCode == 0);
  CHECK_THAT(r.out, !Catch::Contains("before") && !Catch::Contains("arena"));
}

TEST_CASE("kiln inspect --after-passes prints and dumps the IR after passes") {
  fs::path dir = scratchDir("inspect_dumps");
  std::string model = data("conv_bn_relu.onnx");
  Result r = runKiln(dir, {"inspect", model, "--after-passes", "--print-after=fold-batchnorm", "--verify-each"});
  REQUIRE(r.exitCode == 0);
  CHECK(count(r.out, "// ----- IR after ") == 1);
  size_t header = r.out.find("// ----- IR after fold-batchnorm -----\n");
  REQUIRE(header != std::string::npos);
  std::string ir = r.out.substr(header, r.out.find("ops before -> after") - header);
  CHECK_THAT(ir, Catch::Contains("Conv(") && Catch::Contains("Relu(") && !Catch::Contains("BatchNormalization("));

  r = runKiln(dir, {"inspect", model, "--after-passes", "--print-after-all", "--verify-each"});
  REQUIRE(r.exitCode == 0);
  CHECK(count(r.out, "// ----- IR after ") == 14);  // one per -O2 pass run

  fs::path dots = dir / "dots";
  r = runKiln(dir, {"inspect", model, "--after-passes", "-O1", "--dump-dot", dots.string(), "--verify-each"});
  REQUIRE(r.exitCode == 0);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dots)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == Words{"01-eliminate-identity.dot", "02-constant-fold.dot", "03-cse.dot", "04-dce.dot"});
  for (const std::string& name : names) CHECK_THAT(slurp(dots / name), Catch::Contains("digraph"));
}

TEST_CASE("kiln run -O2 agrees with -O0 and keeps the output names") {
  fs::path dir = scratchDir("run_levels");
  auto runLevel = [&](const std::string& level) {
    fs::path out = dir / level;
    Result r = runKiln(dir, {"run", data("conv_bn_relu.onnx"), "--input", "image=" + data("conv_bn_relu_image.npy"),
                          level, "--verify-each", "--output-dir", out.string()});
    REQUIRE(r.exitCode == 0);
    CHECK_THAT(r.out, Catch::Contains("optimized with " + level));
    CHECK_THAT(r.out, Catch::Contains("  probs: f32[3x5] -> ") &&
                          Catch::Contains("  features/relu:0: f32[3x4x6x6] -> "));
    return out;
  };
  fs::path o0 = runLevel("-O0"), o2 = runLevel("-O2");
  // The Relu producing features/relu:0 fuses into the Conv at -O2; the file
  // name must not change with it.
  for (const char* file : {"probs.npy", "features_relu_0.npy"}) {
    INFO(file);
    CHECK(relativeError(kiln::npy::readFile((o2 / file).string()), kiln::npy::readFile((o0 / file).string())) <= 1e-5);
  }
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(o2)) files.push_back(entry.path().filename().string());
  std::sort(files.begin(), files.end());
  CHECK(files == Words{"features_relu_0.npy", "probs.npy"});
}

TEST_CASE("kiln run --top-k prints the best classes of each sample") {
  fs::path dir = scratchDir("run_top_k");
  std::vector<std::string> labels = {"ant", "bee", "cicada", "dragonfly", "earwig"};
  std::ofstream(dir / "labels.txt") << "ant\nbee\ncicada\r\ndragonfly\nearwig\n";
  std::vector<std::string> base = {"run", data("conv_bn_relu.onnx"), "--input",
                                   "image=" + data("conv_bn_relu_image.npy"), "--output-dir", dir.string()};
  auto with = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  Result r = runKiln(dir, with({"--top-k", "2", "--labels", (dir / "labels.txt").string()}));
  REQUIRE(r.exitCode == 0);
  // The expected ranking comes from the probabilities kiln wrote.
  Tensor probs = kiln::npy::readFile((dir / "probs.npy").string());
  auto p = probs.values<float>();
  std::vector<std::string> out = lines(r.out);
  auto header = std::find(out.begin(), out.end(), "top 2 of 'probs' (5 classes):");
  REQUIRE(out.end() - header == 1 + 3 * 3);  // 3 samples: a line each, then 2 ranks
  for (size_t s = 0; s < 3; ++s) {
    std::vector<size_t> order = {0, 1, 2, 3, 4};
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[s * 5 + a] > p[s * 5 + b]; });
    auto first = header + 1 + 3 * s;
    CHECK(*first == "  sample " + std::to_string(s) + ":");
    for (size_t k = 0; k < 2; ++k) {
      std::vector<std::string> w = words(first[1 + k]);
      REQUIRE(w.size() == 3);
      CHECK(w[0] == std::to_string(k + 1) + ".");
      CHECK(w[1] == labels[order[k]]);
      CHECK(std::stof(w[2]) == Approx(p[s * 5 + order[k]]).epsilon(1e-5));
    }
  }

  // Without labels classes print as indices; K above C shows all C.
  r = runKiln(dir, with({"--top-k", "9"}));
  REQUIRE(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::Contains("top 5 of 'probs' (5 classes):\n  sample 0:\n    1. "));
  CHECK(count(r.out, "    5. ") == 3);

  std::ofstream(dir / "short.txt") << "ant\nbee\ncicada\n";
  r = runKiln(dir, with({"--top-k", "1", "--labels", (dir / "short.txt").string()}));
  CHECK(r.exitCode == 1);
  CHECK_THAT(r.err, Catch::StartsWith("kiln: error: " + (dir / "short.txt").string() +
                                      ": 3 labels, but output 'probs' has 5 classes"));
  r = runKiln(dir, with({"--top-k", "1", "--labels", (dir / "absent.txt").string()}));
  CHECK(r.exitCode == 1);
  CHECK_THAT(r.err, Catch::Contains("absent.txt: cannot open the labels file"));
}

// tests/malformed/EXPECTED.tsv lists "file<TAB>expected substring" lines for
// the importer's corpus of broken models.
TEST_CASE("kiln inspect rejects every model of the malformed corpus with exit 1") {
  fs::path corpus = KILN_MALFORMED_DIR;
  std::ifstream expected(corpus / "EXPECTED.tsv");
  if (!expected) {
    WARN("no " << (corpus / "EXPECTED.tsv").string() << "; 0 malformed models checked");
    return;
  }
  fs::path dir = scratchDir("malformed");
  int checked = 0;
  std::string line;
  while (std::getline(expected, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t tab = line.find('\t');
    INFO("EXPECTED.tsv line: " << line);
    REQUIRE(tab != std::string::npos);
    std::string file = (corpus / line.substr(0, tab)).string();
    Result r = runKiln(dir, {"inspect", file});
    CHECK(r.exitCode == 1);
    CHECK_THAT(r.err, Catch::StartsWith("kiln: error: ") && Catch::Contains(line.substr(tab + 1)));
    ++checked;
  }
  CHECK(checked > 0);
}

TEST_CASE("kiln compile builds a .so that kiln run agrees with the interpreter on") {
  fs::path dir = scratchDir("compile_so");
  fs::path so = dir / "model.so";
  Result r = runKiln(dir, {"compile", data("conv_bn_relu.onnx"), "-o", so.string(), "--verify-each"});
  REQUIRE(r.exitCode == 0);
  // "kiln: import 1.2 ms, optimize 0.3 ms, IR 2.1 ms, LLVM passes 300 ms, machine code 170 ms, link 2.0 ms,
  // total 482 ms -> DIR/model.so (TRIPLE, CPU)"
  std::vector<std::string> progress = lines(r.err);
  REQUIRE(progress.size() == 1);
  for (const char* part : {"kiln: import ", " ms, optimize ", " ms, IR ", " ms, LLVM passes ", " ms, machine code ", " ms, link ",
                           " ms, total "})
    CHECK_THAT(progress[0], Catch::Contains(part));
  CHECK_THAT(progress[0], Catch::Contains(" ms -> " + so.string() + " ("));
  REQUIRE(fs::exists(so));

  std::string image = "image=" + data("conv_bn_relu_image.npy");
  r = runKiln(dir, {"run", so.string(), "--input", image, "--output-dir", (dir / "compiled").string()});
  REQUIRE(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::Contains("ran " + so.string() + " (compiled for ") &&
                        Catch::Contains("  probs: f32[3x5] -> "));
  r = runKiln(dir, {"run", data("conv_bn_relu.onnx"), "-O0", "--input", image, "--output-dir",
                    (dir / "interp").string()});
  REQUIRE(r.exitCode == 0);
  for (const char* file : {"probs.npy", "features_relu_0.npy"}) {
    INFO(file);
    CHECK(relativeError(kiln::npy::readFile((dir / "compiled" / file).string()),
                        kiln::npy::readFile((dir / "interp" / file).string())) <= 1e-4);
  }

  // Random inputs and --top-k work the same way for artifacts; ELF files are
  // recognized by their magic whatever their name.
  fs::path renamed = dir / "model.bin";
  fs::copy_file(so, renamed);
  r = runKiln(dir, {"run", renamed.string(), "--random-inputs", "5", "--batch", "2", "--top-k", "2", "--output-dir",
                    (dir / "random").string()});
  REQUIRE(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::Contains("top 2 of 'probs' (5 classes):\n  sample 0:\n    1. "));
  CHECK(kiln::npy::readFile((dir / "random" / "probs.npy").string()).shape() == kiln::Shape{2, 5});
  r = runKiln(dir, {"run", data("conv_bn_relu.onnx"), "--random-inputs", "5", "--batch", "2", "--output-dir",
                    (dir / "random_interp").string()});
  REQUIRE(r.exitCode == 0);
  CHECK(valuesOf<float>(kiln::npy::readFile((dir / "random" / "inputs" / "image.npy").string())) ==
        valuesOf<float>(kiln::npy::readFile((dir / "random_interp" / "inputs" / "image.npy").string())));
  CHECK(relativeError(kiln::npy::readFile((dir / "random" / "probs.npy").string()),
                      kiln::npy::readFile((dir / "random_interp" / "probs.npy").string())) <= 1e-4);
}

TEST_CASE("kiln run checks inputs against an artifact's descriptor") {
  fs::path dir = scratchDir("run_artifact_checks");
  fs::path so = dir / "model.so";
  REQUIRE(runKiln(dir, {"compile", data("tiny_cnn.onnx"), "-o", so.string(), "--quiet"}).exitCode == 0);
  Tensor wrongDim(kiln::DType::F32, kiln::Shape{1, 2, 5, 4});
  std::fill_n(wrongDim.data<float>(), wrongDim.numElements(), 0.0f);
  kiln::npy::writeFile((dir / "wide.npy").string(), wrongDim);
  Result r = runKiln(dir, {"run", so.string(), "--input", "image=" + (dir / "wide.npy").string(), "--output-dir",
                           dir.string()});
  CHECK(r.exitCode == 1);
  CHECK_THAT(r.err, Catch::Contains("wide.npy: input 'image': dim 3 is 4, expected 5"));
  r = runKiln(dir, {"run", so.string(), "--input", "image=" + data("gather_data.npy"), "--output-dir", dir.string()});
  CHECK(r.exitCode == 1);
  CHECK_THAT(r.err, Catch::Contains("input 'image' expects f32[Nx2x5x5], the file holds f32[3x4]"));
  requireUsageError(dir, {"run", so.string(), "--input", "picture=x.npy", "--output-dir", dir.string()},
                    "the model has no input 'picture'");
  // The optimizer flags and --engine were the compiler's business.
  std::vector<std::string> base = {"run", so.string(), "--random-inputs", "1", "--output-dir", dir.string()};
  for (const auto& [extra, flag] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"-O0"}, "-O"}, {{"--passes", "dce"}, "--passes"}, {{"--print-after-all"}, "--print-after-all"},
           {{"--engine", "interp"}, "--engine"}}) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    requireUsageError(dir, args, flag + " applies to .onnx models");
  }
  // The tiny model's outputs match numpy through the compiled code too.
  r = runKiln(dir, {"run", so.string(), "--input", "image=" + data("tiny_cnn_image.npy"), "--output-dir",
                    (dir / "out").string()});
  REQUIRE(r.exitCode == 0);
  requireClose(kiln::npy::readFile((dir / "out" / "head_probs.npy").string()),
               kiln::npy::readFile(data("tiny_cnn_expected_probs.npy")), 1e-5f);
  requireClose(kiln::npy::readFile((dir / "out" / "features_0.npy").string()),
               kiln::npy::readFile(data("tiny_cnn_expected_features.npy")), 1e-4f);
}

TEST_CASE("kiln run rejects broken artifacts naming the file (exit 1)") {
  fs::path dir = scratchDir("run_bad_artifact");
  fs::path so = dir / "model.so";
  REQUIRE(runKiln(dir, {"compile", data("conv_bn_relu.onnx"), "-o", so.string(), "--quiet"}).exitCode == 0);
  std::string bytes = slurp(so);
  fs::path truncated = dir / "truncated.so";
  std::ofstream(truncated, std::ios::binary) << bytes.substr(0, bytes.size() / 3);
  fs::path text = dir / "text.so";
  std::ofstream(text) << "this is not a shared library\n";
  for (const fs::path& broken : {truncated, text}) {
    Result r = runKiln(dir, {"run", broken.string(), "--random-inputs", "1", "--output-dir", (dir / "o").string()});
    CHECK(r.exitCode == 1);
    CHECK_THAT(r.err, Catch::StartsWith("kiln: error: " + broken.string() + ": "));
  }
}

TEST_CASE("kiln compile emits objects, assembly, LLVM IR and headers") {
  fs::path dir = scratchDir("compile_emit");
  std::string model = data("conv_bn_relu.onnx");
  auto compile = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"compile", model, "--quiet"};
    args.insert(args.end(), extra.begin(), extra.end());
    Result r = runKiln(dir, args);
    REQUIRE(r.exitCode == 0);
    CHECK(r.err.empty());
  };
  compile({"-o", (dir / "model.o").string()});
  CHECK(slurp(dir / "model.o").starts_with("\x7f" "ELF"));
  compile({"-o", (dir / "listing.txt").string(), "--emit", "asm", "-O1"});
  CHECK_THAT(slurp(dir / "listing.txt"), Catch::Contains("model_kiln_artifact_v1"));
  compile({"-o", (dir / "model.ll").string(), "-O0"});
  CHECK_THAT(slurp(dir / "model.ll"), Catch::Contains("define") && Catch::Contains("@model_kiln_artifact_v1"));

  fs::path arm = dir / "arm.o";
  compile({"-o", arm.string(), "--target", "aarch64-linux-gnu", "--cpu", "cortex-a72", "--emit", "obj", "--name",
           "fashion_net", "--header", (dir / "fashion_net.h").string()});
  std::string elf = slurp(arm);
  REQUIRE(elf.size() > 20);
  CHECK(elf.starts_with("\x7f" "ELF"));
  int machine = static_cast<unsigned char>(elf[18]) | static_cast<unsigned char>(elf[19]) << 8;
  CHECK(machine == 183);  // EM_AARCH64
  std::string header = slurp(dir / "fashion_net.h");
  CHECK_THAT(header, Catch::Contains("fashion_net_kiln_artifact_v1") && Catch::Contains("#include <kiln/artifact.h>"));
  CHECK_THAT(slurp(arm), Catch::Contains("fashion_net_kiln_artifact_v1"));

  // The pipeline debugging flags work as for inspect; -O0 still plans memory.
  Result r = runKiln(dir, {"compile", model, "-o", (dir / "dbg.o").string(), "-O0", "--print-after=plan-memory",
                           "--dump-dot", (dir / "dots").string()});
  REQUIRE(r.exitCode == 0);
  CHECK(count(r.out, "// ----- IR after ") == 1);
  CHECK_THAT(r.out, Catch::Contains("BatchNormalization("));
  CHECK(fs::exists(dir / "dots" / "01-plan-memory.dot"));
}

// An output path that is a FIFO (like /dev/stdout under a pipe, or
// /dev/null) is written through, not replaced by a renamed regular file:
// `kiln bench --json /dev/null` once replaced the host's /dev/null (as root).
TEST_CASE("kiln compile and kiln bench write through a FIFO instead of replacing it") {
  fs::path dir = scratchDir("fifo_out");
  auto throughFifo = [&](const std::string& name, const std::vector<std::string>& args) {
    const fs::path fifo = dir / name;
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    std::string received;
    std::thread reader([&] { received = slurp(fifo); });
    std::vector<std::string> full = args;
    for (std::string& a : full)
      if (a == "FIFO") a = fifo.string();
    Result r = runKiln(dir, full);
    // Unblocks the reader if kiln never opened the FIFO.
    if (int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK); fd >= 0) ::close(fd);
    reader.join();
    INFO(r.err);
    CHECK(r.exitCode == 0);
    CHECK(fs::is_fifo(fifo));
    return received;
  };
  // The same bytes as a regular file of that name (the soname is the name).
  fs::create_directories(dir / "regular");
  const fs::path so = dir / "regular" / "out.so";
  REQUIRE(runKiln(dir, {"compile", data("conv_bn_relu.onnx"), "-o", so.string(), "--quiet"}).exitCode == 0);
  CHECK(throughFifo("out.so", {"compile", data("conv_bn_relu.onnx"), "-o", "FIFO", "--quiet"}) == slurp(so));
  CHECK(throughFifo("bench.json", {"bench", so.string(), "--iterations", "3", "--json", "FIFO"}).starts_with("{"));
  for (const auto& entry : fs::directory_iterator(dir))  // no temporary left behind
    CHECK(entry.path().filename().string().find(".tmp") == std::string::npos);
}

TEST_CASE("kiln compile --shape binds symbolic dims") {
  fs::path dir = scratchDir("compile_shape");
  std::string model = data("any_size.onnx");
  fs::path so = dir / "any.so", header = dir / "any.h";
  Result r = runKiln(dir, {"compile", model, "-o", so.string(), "--header", header.string()});
  CHECK(r.exitCode == 1);
  CHECK_THAT(r.err, Catch::Contains("any_size.onnx") && Catch::Contains("graph input 'image'") &&
                        Catch::Contains("'H'"));
  // A failed compile leaves neither file.
  CHECK(!fs::exists(so));
  CHECK(!fs::exists(header));

  r = runKiln(dir, {"compile", model, "-o", so.string(), "--shape", "image=1x4x8x8", "--quiet"});
  CHECK(r.exitCode == 1);
  CHECK_THAT(r.err, Catch::Contains("graph input 'image': dim 1 is 3 in the model, the given shape says 4"));
  r = runKiln(dir, {"compile", model, "-o", so.string(), "--shape", "image=1x3x8", "--quiet"});
  CHECK(r.exitCode == 1);
  CHECK_THAT(r.err, Catch::Contains("graph input 'image' has rank 4, the given shape has rank 3"));
  r = runKiln(dir, {"compile", model, "-o", so.string(), "--shape", "picture=1x3x8x8", "--quiet"});
  CHECK(r.exitCode == 1);
  CHECK_THAT(r.err, Catch::Contains("no input of that name"));
  CHECK(!fs::exists(so));

  // The leading dim is the batch: it stays a run-time argument.
  for (const char* shape : {"image=1x3x8x8", "image=Nx3x8x8"}) {
    INFO(shape);
    r = runKiln(dir, {"compile", model, "-o", so.string(), "--shape", shape, "--header", header.string(), "--quiet"});
    REQUIRE(r.exitCode == 0);
    CHECK_THAT(slurp(header), Catch::Contains("f32[Nx3x8x8]"));
    r = runKiln(dir, {"run", so.string(), "--random-inputs", "3", "--batch", "2", "--output-dir",
                      (dir / "out").string()});
    REQUIRE(r.exitCode == 0);
    CHECK(kiln::npy::readFile((dir / "out" / "pooled.npy").string()).shape() == kiln::Shape{2, 4});
  }
}

TEST_CASE("kiln compile leaves nothing behind when the header cannot be written") {
  fs::path dir = scratchDir("compile_header_fails");
  fs::path so = dir / "model.so";
  Result r = runKiln(dir, {"compile", data("conv_bn_relu.onnx"), "-o", so.string(), "--header",
                           (dir / "missing" / "model.h").string()});
  CHECK(r.exitCode == 1);
  CHECK_THAT(r.err, Catch::Contains("model.h"));
  CHECK(!fs::exists(so));
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir)) left.push_back(entry.path().filename().string());
  std::sort(left.begin(), left.end());
  CHECK(left == Words{"stderr", "stdout"});
}

TEST_CASE("kiln compile reports bad usage with exit code 2") {
  fs::path dir = scratchDir("compile_usage");
  std::string model = data("conv_bn_relu.onnx");
  std::string out = (dir / "model.so").string();
  auto compile = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"compile", model, "-o", out};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  requireUsageError(dir, {"compile", model}, "-o OUT is required");
  requireUsageError(dir, {"compile", "-o", out}, "compile takes one MODEL.onnx");
  requireUsageError(dir, compile({"--emit", "exe"}), "unknown --emit kind 'exe' (use so, obj, asm or llvm)");
  requireUsageError(dir, {"compile", model, "-o", (dir / "model.bin").string()}, "cannot tell what to emit");
  requireUsageError(dir, compile({"--shape", "image"}), "malformed --shape 'image': expected NAME=DIMS");
  requireUsageError(dir, compile({"--shape", "image=1x3xHx6"}), "malformed --shape 'image=1x3xHx6': dim 2 is 'H'");
  requireUsageError(dir, compile({"--shape", "image=1xNx6x6"}), "dim 1 is 'N'");
  requireUsageError(dir, compile({"--shape", "image=1x3x6x6", "--shape", "image=Nx3x6x6"}),
                    "--shape given twice for input 'image'");
  requireUsageError(dir, compile({"--name", "9lives"}), "--name '9lives' is not a C identifier");
  requireUsageError(dir, compile({"--name", "my-model"}), "--name 'my-model' is not a C identifier");
  requireUsageError(dir, compile({"-O4"}), "unknown optimization level '-O4' (use -O0, -O1, -O2 or -O3)");
  requireUsageError(dir, compile({"--cpu", "frobnicator"}), "unknown CPU 'frobnicator'");
  requireUsageError(dir, compile({"--quiet=yes"}), "option '--quiet' takes no value");
  CHECK(!fs::exists(out));

  Result r = runKiln(dir, {"help", "compile"});
  CHECK(r.exitCode == 0);
  for (const char* flag : {"--emit", "--target", "--cpu", "--features", "--shape", "--name", "--header", "-O3",
                           "--print-after", "--dump-dot", "--verify-each", "--quiet", "exit status"})
    CHECK_THAT(r.out, Catch::Contains(flag));
}
