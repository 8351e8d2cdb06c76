// Drives `kiln bench` on tiny compiled models: the JSON keys and values
// (latency order, FLOPs from the conv's MACs, batch and threads as given),
// ensembles, fixed-batch models, ABI 1.1 artifacts without a FLOP count, the
// per-layer profile of `kiln compile --profile` artifacts, --peak, and every
// bad argument refused before any JSON file is written.
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "cli_harness.h"
#include "kiln/kiln.h"

namespace fs = std::filesystem;
using Json = nlohmann::json;
using namespace kiln::clitest;

namespace {

// bench_conv.onnx: one Conv [N,16,6,6] -> [N,16,6,6], 3x3 over 16 channels.
constexpr int64_t kConvMacsPerSample = 16 * 6 * 6 * (16 * 3 * 3);
constexpr int64_t kConvFlopsPerSample = 2 * kConvMacsPerSample;

const std::vector<std::string> kQuick = {"--iterations", "5", "--warmup", "1", "--quiet"};

fs::path compiled(const fs::path& dir, const std::string& model, const std::string& name,
                  std::vector<std::string> extra = {}) {
  fs::path so = dir / (name + ".so");
  std::vector<std::string> args = {"compile", data(model), "-o", so.string(), "--quiet"};
  args.insert(args.end(), extra.begin(), extra.end());
  REQUIRE(runKiln(dir, args).exitCode == 0);
  return so;
}

// `kiln bench TARGET --json FILE ARGS... --iterations 5 --warmup 1 --quiet`'s JSON.
Json bench(const fs::path& dir, const fs::path& target, std::vector<std::string> args = {}) {
  fs::path json = dir / "bench.json";
  fs::remove(json);
  std::vector<std::string> all = {"bench", target.string(), "--json", json.string()};
  all.insert(all.end(), args.begin(), args.end());
  all.insert(all.end(), kQuick.begin(), kQuick.end());
  Result r = runKiln(dir, all);
  REQUIRE(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::Contains("latency ms") && Catch::Contains("wrote " + json.string()));
  CHECK(r.err.empty());  // --quiet
  return Json::parse(slurp(json));
}

std::set<std::string> keysOf(const Json& object) {
  std::set<std::string> keys;
  for (const auto& [key, value] : object.items()) keys.insert(key);
  return keys;
}

// Nothing but the inputs the test put there: no JSON file, no temporary.
void requireNoJson(const fs::path& dir) {
  for (const fs::directory_entry& e : fs::directory_iterator(dir))
    CHECK(e.path().filename().string().find("out.json") == std::string::npos);
}

void requireSaneLatencies(const Json& j) {
  double min = j["min_ms"], median = j["median_ms"], mean = j["mean_ms"], p90 = j["p90_ms"], p99 = j["p99_ms"],
         max = j["max_ms"];
  CHECK(min > 0);
  CHECK(min <= median);
  CHECK(median <= p90);
  CHECK(p90 <= p99);
  CHECK(p99 <= max);
  CHECK(min <= mean);
  CHECK(mean <= max);
  CHECK(j["load_ms"].get<double>() > 0);
  CHECK(j["context_ms"].get<double>() > 0);
  CHECK(j["first_run_ms"].get<double>() > 0);
  CHECK(j["throughput_samples_per_s"].get<double>() == Approx(j["batch"].get<double>() / (mean / 1e3)).epsilon(1e-9));
  CHECK(j["peak_rss_mib"].get<double>() > 1);
}

// A copy of artifact `so` whose descriptor says ABI 1.1: it ends before the
// FLOP count and the layer table for the loader and for `kiln bench`.
fs::path asAbi11(const fs::path& so, const fs::path& copy) {
  std::string bytes = slurp(so);
  const uint8_t header[] = {0x4b, 0x49, 0x4c, 0x4e, KILN_ABI_MAJOR, 0, KILN_ABI_MINOR, 0};
  size_t at = bytes.find(std::string(reinterpret_cast<const char*>(header), sizeof header));
  REQUIRE(at != std::string::npos);
  bytes[at + 6] = 1;
  std::ofstream(copy, std::ios::binary) << bytes;
  return copy;
}

}  // namespace

TEST_CASE("kiln bench writes every JSON key with sane values", "[cli][bench]") {
  fs::path dir = scratchDir("bench_json");
  fs::path so = compiled(dir, "bench_conv.onnx", "conv");
  Json j = bench(dir, so, {"--threads", "2"});
  CHECK(keysOf(j) == std::set<std::string>{"kiln_bench_version",
                                           "artifact",
                                           "kind",
                                           "model_name",
                                           "host_cpu",
                                           "target_cpu",
                                           "threads",
                                           "batch",
                                           "warmup_runs",
                                           "runs",
                                           "load_ms",
                                           "context_ms",
                                           "first_run_ms",
                                           "min_ms",
                                           "median_ms",
                                           "mean_ms",
                                           "p90_ms",
                                           "p99_ms",
                                           "max_ms",
                                           "throughput_samples_per_s",
                                           "flops_per_run",
                                           "gflops_per_s",
                                           "peak_gflops_per_s",
                                           "percent_of_peak",
                                           "peak_rss_mib"});
  CHECK(j["kiln_bench_version"] == 1);
  CHECK(j["artifact"] == so.string());
  CHECK(j["kind"] == "model");
  CHECK(j["model_name"] == "bench_conv");
  CHECK_FALSE(j["host_cpu"].get<std::string>().empty());
  CHECK_FALSE(j["target_cpu"].get<std::string>().empty());
  CHECK(j["threads"] == 2);
  CHECK(j["batch"] == 1);
  CHECK(j["warmup_runs"] == 1);
  CHECK(j["runs"] == 5);
  requireSaneLatencies(j);
  CHECK(j["flops_per_run"] == kConvFlopsPerSample);
  double gflops = j["gflops_per_s"];
  CHECK(gflops == Approx(kConvFlopsPerSample / (j["median_ms"].get<double>() * 1e6)).epsilon(1e-9));
#if defined(__x86_64__)
  double peak = j["peak_gflops_per_s"];
  CHECK(peak > 0);
  CHECK(j["percent_of_peak"].get<double>() == Approx(100 * gflops / peak).epsilon(1e-9));
#endif

  Json three = bench(dir, so, {"--batch", "3", "--threads", "2"});
  CHECK(three["batch"] == 3);
  CHECK(three["flops_per_run"] == 3 * kConvFlopsPerSample);
  requireSaneLatencies(three);
}

TEST_CASE("kiln bench times ensemble manifests with their members' FLOPs summed", "[cli][bench]") {
  fs::path dir = scratchDir("bench_ensemble");
  fs::path a = compiled(dir, "ens_a.onnx", "a"), b = compiled(dir, "ens_b.onnx", "b");
  fs::path manifest = dir / "ensemble.json";
  REQUIRE(runKiln(dir, {"ensemble", "create", "-o", manifest.string(), "--member", a.string() + ":0.25", "--member",
                        b.string() + ":0.75"})
              .exitCode == 0);
  Json j = bench(dir, manifest, {"--batch", "4"});
  CHECK(j["kind"] == "ensemble");
  CHECK(j["model_name"] == "ens_a+ens_b");
  CHECK(j["batch"] == 4);
  CHECK(j["runs"] == 5);
  requireSaneLatencies(j);
  uint64_t members = bench(dir, a, {"--batch", "4"})["flops_per_run"].get<uint64_t>() +
                     bench(dir, b, {"--batch", "4"})["flops_per_run"].get<uint64_t>();
  CHECK(members > 0);
  CHECK(j["flops_per_run"] == members);
}

TEST_CASE("kiln bench runs a fixed-batch model with its own batch and refuses another", "[cli][bench]") {
  fs::path dir = scratchDir("bench_fixed");
  fs::path so = compiled(dir, "bench_conv_fixed.onnx", "fixed");
  Json j = bench(dir, so);
  CHECK(j["batch"] == 2);
  CHECK(j["runs"] == 5);
  requireSaneLatencies(j);
  CHECK(bench(dir, so, {"--batch", "2"})["batch"] == 2);

  fs::path json = dir / "out.json";
  requireUsageError(dir, {"bench", so.string(), "--batch", "3", "--json", json.string()}, "has a fixed batch of 2");
  requireNoJson(dir);
}

TEST_CASE("kiln bench counts a fixed-batch model's FLOPs for its whole batch", "[cli][bench]") {
  fs::path dir = scratchDir("bench_fixed_flops");
  // One run of the fixed batch of 2 does the work of the symbolic-batch
  // model's run at --batch 2 (artifact.h: flops per unit of the run's batch,
  // which is 1 for a fixed batch).
  Json fixed = bench(dir, compiled(dir, "bench_conv_fixed.onnx", "fixed"));
  Json symbolic = bench(dir, compiled(dir, "bench_conv.onnx", "conv"), {"--batch", "2"});
  CHECK(symbolic["flops_per_run"] == 2 * kConvFlopsPerSample);
  CHECK(fixed["flops_per_run"] == symbolic["flops_per_run"]);
}

TEST_CASE("kiln bench reports the GFLOP/s of an ABI 1.1 artifact as unknown", "[cli][bench]") {
  fs::path dir = scratchDir("bench_abi11");
  fs::path old = asAbi11(compiled(dir, "bench_conv.onnx", "conv"), dir / "conv11.so");
  Json j = bench(dir, old);
  CHECK(j["runs"] == 5);
  CHECK(j["flops_per_run"].is_null());
  CHECK(j["gflops_per_s"].is_null());
  CHECK(j["percent_of_peak"].is_null());
  Result r = runKiln(dir, {"bench", old.string(), "--iterations", "1", "--quiet"});
  REQUIRE(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::Contains("GFLOP/s n/a"));
}

TEST_CASE("kiln bench --profile times every layer of a `kiln compile --profile` artifact", "[cli][bench]") {
  fs::path dir = scratchDir("bench_profile");
  fs::path so = compiled(dir, "bench_conv.onnx", "conv", {"--profile"});
  Json j = bench(dir, so, {"--profile"});
  REQUIRE(j.contains("layers"));

  kiln_model* model = nullptr;
  REQUIRE(kiln_model_open(so.c_str(), &model) == KILN_OK);
  const kiln_artifact* d = kiln_model_descriptor(model);
  std::multiset<std::string> expected;
  for (int32_t i = 0; i < d->num_layers; ++i) expected.insert(d->layers[i].name);
  kiln_model_release(model);

  std::multiset<std::string> listed;
  double shares = 0, previous = 100;
  for (const Json& layer : j["layers"]) {
    CHECK(keysOf(layer) == std::set<std::string>{"name", "op", "shapes", "calls", "mean_ms", "share_percent",
                                                 "gflops_per_s", "percent_of_peak"});
    listed.insert(layer["name"].get<std::string>());
    CHECK(layer["calls"] == 5);
    CHECK(layer["mean_ms"].get<double>() >= 0);
    double share = layer["share_percent"];
    CHECK(share <= previous);  // slowest first
    previous = share;
    shares += share;
    if (layer["op"] == "Conv") CHECK(layer["gflops_per_s"].get<double>() > 0);
  }
  CHECK(listed == expected);
  CHECK(shares == Approx(100).epsilon(1e-6));

  Result r = runKiln(dir, {"bench", so.string(), "--profile", "--iterations", "3", "--quiet"});
  REQUIRE(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::Contains("layers by time"));
  for (const std::string& name : expected) CHECK_THAT(r.out, Catch::Contains(name));
}

TEST_CASE("kiln bench --profile names ensemble members' layers by member", "[cli][bench]") {
  fs::path dir = scratchDir("bench_profile_ensemble");
  fs::path a = compiled(dir, "ens_a.onnx", "a", {"--profile"}), b = compiled(dir, "ens_b.onnx", "b", {"--profile"});
  fs::path manifest = dir / "ensemble.json";
  REQUIRE(runKiln(dir, {"ensemble", "create", "-o", manifest.string(), "--member", a.string(), "--member", b.string()})
              .exitCode == 0);
  Json j = bench(dir, manifest, {"--profile"});
  size_t perMember[2] = {};
  double shares = 0;
  for (const Json& layer : j["layers"]) {
    std::string name = layer["name"];
    REQUIRE(name.size() > 3);
    CHECK((name.starts_with("m0/") || name.starts_with("m1/")));
    ++perMember[name[1] - '0'];
    CHECK(layer["calls"] == 5);
    shares += layer["share_percent"].get<double>();
  }
  CHECK(perMember[0] > 0);
  CHECK(perMember[0] == perMember[1]);  // the same architecture
  CHECK(shares == Approx(100).epsilon(1e-6));
}

TEST_CASE("kiln bench --profile refuses an artifact compiled without it", "[cli][bench]") {
  fs::path dir = scratchDir("bench_no_profile");
  fs::path so = compiled(dir, "bench_conv.onnx", "conv");
  fs::path json = dir / "out.json";
  requireUsageError(dir, {"bench", so.string(), "--profile", "--json", json.string()},
                    so.string() + ": compiled without --profile; recompile with `kiln compile --profile`");
  requireNoJson(dir);
}

TEST_CASE("kiln bench --peak reports the single-core peak and its product with the threads", "[cli][bench]") {
  fs::path dir = scratchDir("bench_peak");
  fs::path json = dir / "peak.json";
  Result r = runKiln(dir, {"bench", "--peak", "--threads", "3", "--json", json.string()});
  REQUIRE(r.exitCode == 0);
  CHECK_THAT(r.out, Catch::Contains("single-core FP32 FMA peak") && Catch::Contains("the single-core peak x 3"));
  Json j = Json::parse(slurp(json));
  CHECK(keysOf(j) == std::set<std::string>{"kiln_bench_version", "host_cpu", "threads", "single_core_gflops_per_s",
                                           "ymm_gflops_per_s", "zmm_gflops_per_s", "peak_gflops_per_s"});
  CHECK(j["kiln_bench_version"] == 1);
  CHECK(j["threads"] == 3);
#if defined(__x86_64__)
  double single = j["single_core_gflops_per_s"];
  CHECK(single > 0);
  CHECK(j["ymm_gflops_per_s"].get<double>() > 0);  // the tests need AVX2
  CHECK(j["peak_gflops_per_s"].get<double>() == Approx(3 * single).epsilon(1e-9));
#endif
}

TEST_CASE("kiln bench refuses bad arguments naming them and writes no JSON", "[cli][bench]") {
  fs::path dir = scratchDir("bench_errors");
  fs::path so = compiled(dir, "bench_conv.onnx", "conv");
  std::string json = (dir / "out.json").string();
  auto usage = [&](std::vector<std::string> args, const std::string& expected) {
    args.insert(args.begin(), "bench");
    args.insert(args.end(), {"--json", json});
    requireUsageError(dir, args, expected);
  };
  usage({so.string(), "--bogus"}, "unknown option '--bogus'");
  usage({so.string(), "--iterations", "many"}, "option '--iterations' expects an integer");
  usage({so.string(), "--batch", "0"}, "option '--batch' expects an integer in [1,");
  usage({so.string(), "--warmup", "-1"}, "option '--warmup'");
  usage({so.string(), "--threads", "0"}, "option '--threads'");
  usage({so.string(), "--time", "0"}, "option '--time' expects seconds");
  usage({so.string(), "--time", "soon"}, "option '--time' expects seconds");
  usage({so.string(), "--iterations", "5", "--time", "1"}, "--iterations and --time exclude each other");
  usage({}, "bench takes one ARTIFACT.so or ENSEMBLE.json");
  usage({so.string(), so.string()}, "given 2 arguments");
  usage({"--peak", so.string()}, "--peak measures the FMA peak only");
  usage({"--peak", "--iterations", "3"}, "--iterations needs a model");
  requireUsageError(dir, {"bench", so.string(), "--json", (dir / "missing" / "out.json").string()},
                    "the folder " + (dir / "missing").string() + " does not exist");

  auto unusable = [&](const std::string& target, const std::string& expected) {
    Result r = runKiln(dir, {"bench", target, "--json", json});
    CHECK(r.exitCode == 1);
    CHECK_THAT(r.err, Catch::StartsWith("kiln: error: " + target + ": ") && Catch::Contains(expected));
  };
  unusable((dir / "missing.so").string(), "cannot open");
  unusable((dir / "missing.json").string(), "cannot open");
  { std::ofstream(dir / "garbage.so") << "not a shared object"; }
  unusable((dir / "garbage.so").string(), "not an ELF file");
  unusable(data("bench_conv.onnx"), "is an ONNX model, not a compiled artifact");
  requireNoJson(dir);
}
