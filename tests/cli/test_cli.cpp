// Drives the built `kiln` binary: help and version, usage errors (exit 2),
// inspect and run on small models (outputs checked against numpy-computed
// values), seeded random inputs, and the malformed-model corpus (exit 1).
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tools/npy.h"

namespace fs = std::filesystem;
using kiln::Tensor;

namespace {

struct Result {
  int exitCode = -1;
  std::string out;
  std::string err;
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

fs::path scratchDir(const std::string& name) {
  fs::path dir = fs::path(KILN_CLI_SCRATCH) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Runs `kiln ARGS...` capturing stdout and stderr through files in `dir`.
Result runKiln(const fs::path& dir, const std::vector<std::string>& args) {
  std::string command = quote(KILN_EXE);
  for (const std::string& a : args) command += " " + quote(a);
  command += " >" + quote((dir / "stdout").string()) + " 2>" + quote((dir / "stderr").string());
  int status = std::system(command.c_str());
  Result r;
  r.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(dir / "stdout");
  r.err = slurp(dir / "stderr");
  UNSCOPED_INFO("kiln exited " << r.exitCode << "\nstdout:\n" << r.out << "stderr:\n" << r.err);
  return r;
}

std::string data(const std::string& file) { return std::string(KILN_CLI_DATA) + "/" + file; }

void requireUsageError(const fs::path& dir, const std::vector<std::string>& args, const std::string& expected) {
  Result r = runKiln(dir, args);
  CHECK(r.exitCode == 2);
  CHECK_THAT(r.err, Catch::StartsWith("kiln: error: ") && Catch::Contains(expected));
}

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
