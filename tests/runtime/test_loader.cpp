// kiln_model_open and the artifact loader: what it accepts, every way it
// refuses a file before running its code (with the status and a message
// naming the file), the CPU-feature check, and several models in one process.
#include <dlfcn.h>
#include <elf.h>

#include <cstddef>
#include <cstring>
#include <fstream>
#include <sstream>

#include "runtime/src/artifact_loader.h"
#include "runtime/src/cpu_features.h"
#include "runtime_test_util.h"

using namespace kiln_test;
using kiln::runtime::CpuFeatureSet;
using kiln::runtime::missingCpuFeatures;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A copy of artifact `name` in a scratch folder with `patch` applied to its bytes.
template <class Patch>
std::string patchedCopy(const std::string& name, const std::string& copyName, Patch patch) {
  std::string bytes = slurp(artifact(name));
  patch(bytes);
  return writeFile(scratchDir(copyName), copyName, bytes);
}

// Offset of the descriptor in an artifact file: its magic and ABI version,
// which the file holds once.
size_t descriptorOffset(const std::string& bytes) {
  const uint8_t header[] = {0x4b, 0x49, 0x4c, 0x4e, KILN_ABI_MAJOR, 0, KILN_ABI_MINOR, 0};
  std::string pattern(reinterpret_cast<const char*>(header), sizeof header);
  size_t at = bytes.find(pattern);
  REQUIRE(at != std::string::npos);
  REQUIRE(bytes.find(pattern, at + 1) == std::string::npos);
  return at;
}

template <class T>
void poke(std::string& bytes, size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof value);
}

uint64_t fnv1a(const std::string& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// A well-formed synthetic descriptor: x f32[N,3] -> y f32[N,2] with labels.
struct SyntheticArtifact {
  int64_t inputDims[2] = {KILN_DIM_BATCH, 3};
  int64_t outputDims[2] = {KILN_DIM_BATCH, 2};
  kiln_tensor_info inputs[1] = {{"x", KILN_F32, 2, inputDims}};
  kiln_tensor_info outputs[1] = {{"y", KILN_F32, 2, outputDims}};
  const char* labels[2] = {"cat", "dog"};
  std::string weights = "weights";
  kiln_artifact d{};

  SyntheticArtifact() {
    d.magic = KILN_ARTIFACT_MAGIC;
    d.abi_major = KILN_ABI_MAJOR;
    d.abi_minor = KILN_ABI_MINOR;
    d.kiln_version = d.model_name = "synthetic";
    d.target_triple = "x86_64-pc-linux-gnu";
    d.cpu_name = "skylake-avx512";
    d.cpu_features = "+avx2,+avx512f";
    d.num_inputs = d.num_outputs = 1;
    d.inputs = inputs;
    d.outputs = outputs;
    d.weights = weights.data();
    d.weights_bytes = weights.size();
    d.weights_hash = fnv1a(weights);
    d.run = [](int64_t, const void* const*, void* const*, void*, kiln_parallel_for_fn, void*) { return int32_t{0}; };
    d.run_slots = [](int64_t, const void* const*, void* const*, void*, int64_t, kiln_parallel_for_fn, void*) {
      return int32_t{0};
    };
    d.num_labels = 2;
    d.labels = labels;
  }
};

kiln_status statusOf(const kiln_artifact& d) {
  try {
    kiln::runtime::checkDescriptor(d, "synthetic.so");
    return KILN_OK;
  } catch (const kiln::runtime::StatusError& e) {
    UNSCOPED_INFO(e.what());
    return e.status();
  }
}

kiln_model* open(const std::string& path) {
  kiln_model* model = nullptr;
  REQUIRE_KILN_OK(kiln_model_open(path.c_str(), &model));
  return model;
}

}  // namespace

TEST_CASE("a compiled model opens and describes itself", "[runtime][loader]") {
  kiln_model* model = open(artifact("pair.so"));
  const kiln_artifact* d = kiln_model_descriptor(model);
  CHECK(std::string(d->model_name) == "pair");
  CHECK(kiln_model_num_inputs(model) == 2);
  CHECK(kiln_model_num_outputs(model) == 2);
  kiln_tensor_info info;
  REQUIRE_KILN_OK(kiln_model_input(model, 1, &info));
  CHECK(std::string(info.name) == "y");
  CHECK(info.rank == 2);
  CHECK(info.dims[0] == KILN_DIM_BATCH);
  CHECK(info.dims[1] == 10);
  REQUIRE_KILN_OK(kiln_model_output(model, 0, &info));
  CHECK(std::string(info.name) == "sum");
  REQUIRE_KILN_ERROR(kiln_model_output(model, 2, &info), KILN_ERR_INVALID_ARGUMENT, "index 2 is not in [0, 2)");
  REQUIRE_KILN_ERROR(kiln_model_input(model, -1, &info), KILN_ERR_INVALID_ARGUMENT, "index -1");
  REQUIRE_KILN_ERROR(kiln_model_input(model, 0, nullptr), KILN_ERR_INVALID_ARGUMENT, "out_info is NULL");
  kiln_model_release(model);

  CHECK(kiln_model_num_inputs(nullptr) == -1);
  CHECK(kiln_model_descriptor(nullptr) == nullptr);
  kiln_model_release(nullptr);
  REQUIRE_KILN_ERROR(kiln_model_open(nullptr, &model), KILN_ERR_INVALID_ARGUMENT, "path is NULL");
  CHECK(model == nullptr);
  REQUIRE_KILN_ERROR(kiln_model_open("pair.so", nullptr), KILN_ERR_INVALID_ARGUMENT, "out_model is NULL");
}

TEST_CASE("a model with labels exposes them and one without does not", "[runtime][loader]") {
  kiln_model* labeled = open(artifact("member0_probs.so"));
  const kiln_artifact* d = kiln_model_descriptor(labeled);
  REQUIRE(d->abi_minor >= 1);
  REQUIRE(d->num_labels == 5);
  CHECK(std::string(d->labels[4]) == "e");
  kiln_model* unlabeled = open(artifact("member2_probs.so"));
  CHECK(kiln_model_descriptor(unlabeled)->num_labels == 0);
  kiln_model_release(labeled);
  kiln_model_release(unlabeled);
}

TEST_CASE("files that are not artifacts are refused naming the file", "[runtime][loader]") {
  kiln_model* model = reinterpret_cast<kiln_model*>(&model);  // must be reset to NULL on failure
  std::filesystem::path dir = scratchDir("not_artifacts");

  std::string missing = (dir / "missing.so").string();
  REQUIRE_KILN_ERROR(kiln_model_open(missing.c_str(), &model), KILN_ERR_IO, missing + ": cannot open");
  CHECK(model == nullptr);
  REQUIRE_KILN_ERROR(kiln_model_open(dir.c_str(), &model), KILN_ERR_IO, "not a regular file");

  std::string text = writeFile(dir, "text.so", "this is not a shared library\n");
  REQUIRE_KILN_ERROR(kiln_model_open(text.c_str(), &model), KILN_ERR_NOT_ARTIFACT, text + ": not an ELF file");
  std::string empty = writeFile(dir, "empty.so", "");
  REQUIRE_KILN_ERROR(kiln_model_open(empty.c_str(), &model), KILN_ERR_NOT_ARTIFACT, "not an ELF file");
  std::string headerOnly = writeFile(dir, "header.so", "\x7f" "ELF");
  REQUIRE_KILN_ERROR(kiln_model_open(headerOnly.c_str(), &model), KILN_ERR_NOT_ARTIFACT, "truncated ELF file");

  // Judged by its name, before reading it: an ONNX file is never an artifact.
  std::string onnx = writeFile(dir, "cnn.onnx", "\x08\x07\x12\x04kiln");
  REQUIRE_KILN_ERROR(kiln_model_open(onnx.c_str(), &model), KILN_ERR_NOT_ARTIFACT,
                     "is an ONNX model, not a compiled artifact: compile it with `kiln compile");

  REQUIRE_KILN_ERROR(kiln_model_open(artifact("pair.o").c_str(), &model), KILN_ERR_NOT_ARTIFACT,
                     "is an object file, not a shared object");

  // A shared library that is not a kiln artifact.
  REQUIRE_KILN_ERROR(kiln_model_open(KILN_RUNTIME_SHARED_LIBRARY, &model), KILN_ERR_NOT_ARTIFACT,
                     "exports no kiln_artifact_v1 symbol");
}

TEST_CASE("a truncated shared object is refused before dlopen could fault on it", "[runtime][loader]") {
  std::string bytes = slurp(artifact("member0_probs.so"));
  for (size_t keep : {bytes.size() / 3, bytes.size() - 1, size_t{100}}) {
    INFO("keeping " << keep << " of " << bytes.size() << " bytes");
    std::string path = writeFile(scratchDir("truncated"), "truncated.so", bytes.substr(0, keep));
    kiln_model* model = nullptr;
    REQUIRE_KILN_ERROR(kiln_model_open(path.c_str(), &model), KILN_ERR_NOT_ARTIFACT, path + ": truncated");
  }
}

TEST_CASE("dlopen failures are reported with dlerror's message", "[runtime][loader]") {
  kiln_model* model = nullptr;
  REQUIRE_KILN_ERROR(kiln_model_open(KILN_RUNTIME_UNRESOLVED_LIBRARY, &model), KILN_ERR_NOT_ARTIFACT,
                     std::string(KILN_RUNTIME_UNRESOLVED_LIBRARY) + ": cannot load: ");
  CHECK_THAT(kiln_last_error(), Catch::Contains("kiln_test_symbol_nobody_defines"));
}

TEST_CASE("an artifact for another machine is refused naming both machines", "[runtime][loader]") {
  kiln_model* model = nullptr;
#if defined(__x86_64__)
  REQUIRE_KILN_ERROR(kiln_model_open(artifact("aarch64.so").c_str(), &model), KILN_ERR_CPU,
                     "is built for AArch64 (ELF machine 183), this host is x86-64 (ELF machine 62)");
#endif
  std::string wrongClass = patchedCopy("pair.so", "class32.so", [](std::string& bytes) { bytes[EI_CLASS] = ELFCLASS32; });
  REQUIRE_KILN_ERROR(kiln_model_open(wrongClass.c_str(), &model), KILN_ERR_NOT_ARTIFACT, "is a 32-bit ELF file");
  std::string wrongOrder = patchedCopy("pair.so", "msb.so", [](std::string& bytes) { bytes[EI_DATA] = ELFDATA2MSB; });
  REQUIRE_KILN_ERROR(kiln_model_open(wrongOrder.c_str(), &model), KILN_ERR_NOT_ARTIFACT, "byte order");
}

TEST_CASE("a bad magic or ABI major is KILN_ERR_ABI and a wrong hash KILN_ERR_CORRUPT", "[runtime][loader]") {
  kiln_model* model = nullptr;
  std::string badMagic = patchedCopy("member0_probs.so", "magic.so", [](std::string& bytes) {
    poke<uint32_t>(bytes, descriptorOffset(bytes), 0x12345678u);
  });
  REQUIRE_KILN_ERROR(kiln_model_open(badMagic.c_str(), &model), KILN_ERR_ABI,
                     badMagic + ": not a kiln artifact: descriptor magic is 0x0000000012345678");

  std::string newerAbi = patchedCopy("member0_probs.so", "abi.so", [](std::string& bytes) {
    poke<uint16_t>(bytes, descriptorOffset(bytes) + offsetof(kiln_artifact, abi_major), KILN_ABI_MAJOR + 1);
  });
  REQUIRE_KILN_ERROR(kiln_model_open(newerAbi.c_str(), &model), KILN_ERR_ABI,
                     "artifact ABI 2." + std::to_string(KILN_ABI_MINOR) + " is not supported by this runtime (ABI 1.x)");

  std::string badHash = patchedCopy("member0_probs.so", "hash.so", [](std::string& bytes) {
    poke<uint64_t>(bytes, descriptorOffset(bytes) + offsetof(kiln_artifact, weights_hash), 42);
  });
  REQUIRE_KILN_ERROR(kiln_model_open(badHash.c_str(), &model), KILN_ERR_CORRUPT,
                     badHash + ": the weights do not match their hash");
  CHECK(model == nullptr);
}

TEST_CASE("descriptor I/O metadata and labels are sanity-checked", "[runtime][loader]") {
  CHECK(statusOf(SyntheticArtifact().d) == KILN_OK);
  auto broken = [](auto breakIt) {
    SyntheticArtifact a;
    breakIt(a);
    return statusOf(a.d);
  };
  CHECK(broken([](SyntheticArtifact& a) { a.inputs[0].dtype = 9; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.inputs[0].name = nullptr; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.inputs[0].rank = 9; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.inputs[0].dims = nullptr; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.inputDims[1] = -3; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.outputDims[1] = KILN_DIM_BATCH; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.inputDims[1] = int64_t{1} << 50; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.d.num_inputs = -1; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.d.outputs = nullptr; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.d.num_outputs = 0; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.d.run = nullptr; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.d.run_slots = nullptr; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.d.abi_minor = 3, a.d.run_slots = nullptr; }) == KILN_OK);  // before 1.4
  CHECK(broken([](SyntheticArtifact& a) { a.d.cpu_features = nullptr; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.d.workspace_bytes_per_sample = ~uint64_t{0}; }) == KILN_ERR_CORRUPT);
  // The batch region: no bytes without a chunk (a chunk without bytes is a
  // suffix of graph-facing values only), plausible sizes; unread before 1.5.
  CHECK(broken([](SyntheticArtifact& a) { a.d.batch_region_bytes_per_sample = 64; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.d.batch_region_samples = 4; }) == KILN_OK);
  CHECK(broken([](SyntheticArtifact& a) { a.d.batch_region_bytes_per_sample = 64, a.d.batch_region_samples = 99; }) ==
        KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.d.batch_region_bytes_per_sample = 64, a.d.batch_region_samples = 4; }) ==
        KILN_OK);
  CHECK(broken([](SyntheticArtifact& a) { a.d.abi_minor = 4, a.d.batch_region_samples = 99; }) == KILN_OK);
  CHECK(broken([](SyntheticArtifact& a) { a.weights[0] = 'W'; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.d.magic = 0; }) == KILN_ERR_ABI);
  CHECK(broken([](SyntheticArtifact& a) { a.d.abi_major = 0; }) == KILN_ERR_ABI);
  // Labels: as many as some output's classes, none NULL.
  CHECK(broken([](SyntheticArtifact& a) { a.d.num_labels = 3; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.d.num_labels = -1; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.d.labels = nullptr; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.labels[1] = nullptr; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a) { a.d.num_labels = 0, a.d.labels = nullptr; }) == KILN_OK);
  // An ABI 1.0 descriptor ends before the label fields: they are not read.
  CHECK(broken([](SyntheticArtifact& a) { a.d.abi_minor = 0, a.d.num_labels = -7; }) == KILN_OK);
}

TEST_CASE("an ABI 1.2 descriptor's layer table is sanity-checked", "[runtime][loader]") {
  auto broken = [](auto breakIt) {
    SyntheticArtifact a;
    kiln_layer_info layers[2] = {{"fc", "Gemm", "Nx2 <- Nx3, 2x3", 12}, {"probs", "Softmax", "Nx2 <- Nx2", 0}};
    a.d.flops = 12;
    a.d.num_layers = 2;
    a.d.layers = layers;
    breakIt(a, layers);
    return statusOf(a.d);
  };
  using Layers = kiln_layer_info*;
  CHECK(broken([](SyntheticArtifact&, Layers) {}) == KILN_OK);
  CHECK(broken([](SyntheticArtifact& a, Layers) { a.d.num_layers = 0, a.d.layers = nullptr; }) == KILN_OK);
  CHECK(broken([](SyntheticArtifact& a, Layers) { a.d.num_layers = -1; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a, Layers) { a.d.num_layers = INT32_MAX; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact& a, Layers) { a.d.layers = nullptr; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact&, Layers l) { l[1].name = nullptr; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact&, Layers l) { l[0].op = nullptr; }) == KILN_ERR_CORRUPT);
  CHECK(broken([](SyntheticArtifact&, Layers l) { l[1].shapes = nullptr; }) == KILN_ERR_CORRUPT);
  // An ABI 1.1 descriptor ends before the layer fields: they are not read.
  CHECK(broken([](SyntheticArtifact& a, Layers) { a.d.abi_minor = 1, a.d.num_layers = -7; }) == KILN_OK);

  SyntheticArtifact a;
  kiln_layer_info layers[1] = {{"fc", nullptr, "Nx2 <- Nx3", 12}};
  a.d.num_layers = 1;
  a.d.layers = layers;
  try {
    kiln::runtime::checkDescriptor(a.d, "model.so");
    FAIL("the check passed");
  } catch (const kiln::runtime::StatusError& e) {
    CHECK_THAT(e.what(), Catch::Equals("model.so: corrupt descriptor: layer 0's op is NULL"));
  }
}

TEST_CASE("the CPU-feature check is a pure function of the artifact's and the host's features", "[runtime][cpu]") {
  CpuFeatureSet host = {"sse2", "avx", "avx2", "fma"};
  CHECK(missingCpuFeatures("", host).empty());
  CHECK(missingCpuFeatures("+sse2,+avx2,+fma", host).empty());
  // Missing checked features in list order, once each; "-" entries, tuning
  // flags and pseudo-features ignored.
  CHECK(missingCpuFeatures("+avx2,+avx512f,-avx512vl,+fast-lzcnt,+evex512,+64bit,+amx-tile,+avx512f,+avx512fp16", host) ==
        std::vector<std::string>{"avx512f", "amx-tile", "avx512fp16"});
  CHECK(missingCpuFeatures("+sse4.2,+avx512vnni,+avx512bf16", host) ==
        std::vector<std::string>{"sse4.2", "avx512vnni", "avx512bf16"});
  CHECK(missingCpuFeatures("+aes,+sha,+shstk,+xsave,+prfchw", CpuFeatureSet{}).empty());
  CHECK(kiln::runtime::isCheckedCpuFeature("avx512f"));
  CHECK_FALSE(kiln::runtime::isCheckedCpuFeature("evex512"));
  CHECK_FALSE(kiln::runtime::isCheckedCpuFeature("+avx512f"));

  SyntheticArtifact a;
  a.d.cpu_name = "sapphirerapids";
  a.d.cpu_features = "+avx2,+avx512fp16,+amx-tile";
  try {
    kiln::runtime::checkCpuFeatures(a.d, "model.so", host);
    FAIL("the check passed");
  } catch (const kiln::runtime::StatusError& e) {
    CHECK(e.status() == KILN_ERR_CPU);
    CHECK_THAT(e.what(), Catch::StartsWith("model.so: compiled for CPU 'sapphirerapids', it needs avx512fp16, "
                                           "amx-tile, which this host's CPU lacks"));
  }
  CHECK_NOTHROW(kiln::runtime::checkCpuFeatures(a.d, "model.so", {"avx2", "avx512fp16", "amx-tile"}));
}

TEST_CASE("the host check agrees with the compiler's view of this host", "[runtime][cpu]") {
  // pair.so is compiled for -mcpu=native: every checked feature LLVM found
  // on this host must be found by the runtime too, or native code is refused.
  kiln_model* model = open(artifact("pair.so"));
  CHECK(missingCpuFeatures(kiln_model_descriptor(model)->cpu_features, kiln::runtime::hostCpuFeatures()).empty());
#if defined(__x86_64__)
  CHECK(kiln::runtime::hostCpuFeatures().contains("sse2"));  // the x86-64 baseline
#endif
  kiln_model_release(model);
}

TEST_CASE("code for CPU features this host lacks is refused naming them", "[runtime][cpu]") {
  const CpuFeatureSet& host = kiln::runtime::hostCpuFeatures();
  kiln_model* model = nullptr;
  kiln_status status = kiln_model_open(artifact("sapphirerapids.so").c_str(), &model);
  if (status == KILN_OK) {
    // Only a host with every Sapphire Rapids feature gets here.
    CHECK(host.contains("avx512fp16"));
    CHECK(host.contains("amx-tile"));
    WARN("SKIPPED: this host has every feature of -mcpu=sapphirerapids code, nothing to refuse");
    kiln_model_release(model);
    return;
  }
  INFO(describeFailure(status));
  REQUIRE(status == KILN_ERR_CPU);
  CHECK_THAT(kiln_last_error(), Catch::Contains("compiled for CPU 'sapphirerapids', it needs "));
  for (const char* feature : {"avx512fp16", "amx-tile", "amx-int8", "avx512f"})
    if (!host.contains(feature)) CHECK_THAT(kiln_last_error(), Catch::Contains(feature));
}

TEST_CASE("different models load side by side without symbol clashes", "[runtime][loader]") {
  // Both export kiln_artifact_v1 and model_kiln_artifact_v1.
  kiln_model* pair = open(artifact("pair.so"));
  kiln_model* classifier = open(artifact("member0_probs.so"));
  kiln_model* again = open(artifact("pair.so"));  // the same file twice: one dlopen handle, two models
  CHECK(std::string(kiln_model_descriptor(pair)->model_name) == "pair");
  CHECK(std::string(kiln_model_descriptor(classifier)->model_name) == "member0_probs");

  kiln_context* pairContext = nullptr;
  kiln_context* classifierContext = nullptr;
  kiln_context_options options;
  kiln_context_options_init(&options);
  options.max_batch = 2;
  REQUIRE_KILN_OK(kiln_context_create(pair, &options, &pairContext));
  REQUIRE_KILN_OK(kiln_context_create(classifier, &options, &classifierContext));
  kiln_model_release(again);  // the other handle keeps the library loaded

  Buffer x({2, 10}, 1), y({2, 10}, 2), sum({2, 10}), product({2, 10});
  kiln_tensor pairIn[] = {x.tensor(), y.tensor()}, pairOut[] = {sum.tensor(), product.tensor()};
  REQUIRE_KILN_OK(kiln_run(pairContext, pairIn, 2, pairOut, 2));
  for (int64_t i = 0; i < x.size(); ++i) {
    CHECK(sum.values[i] == x.values[i] + y.values[i]);
    CHECK(product.values[i] == x.values[i] * y.values[i]);
  }
  Buffer image({2, 2, 6, 6}, 3), probs({2, 5});
  kiln_tensor classifierIn[] = {image.tensor()}, classifierOut[] = {probs.tensor()};
  REQUIRE_KILN_OK(kiln_run(classifierContext, classifierIn, 1, classifierOut, 1));
  for (int n = 0; n < 2; ++n) {
    float total = 0;
    for (int c = 0; c < 5; ++c) total += probs.values[n * 5 + c];
    CHECK(total == Approx(1.0f).epsilon(1e-5));
  }
  kiln_context_destroy(pairContext);
  kiln_context_destroy(classifierContext);
  kiln_model_release(pair);
  kiln_model_release(classifier);
}

TEST_CASE("a context keeps its model alive", "[runtime][loader]") {
  kiln_model* model = open(artifact("pair.so"));
  kiln_model_retain(model);
  kiln_model_release(model);  // back to one reference
  kiln_context* context = nullptr;
  REQUIRE_KILN_OK(kiln_context_create(model, nullptr, &context));
  kiln_model_release(model);  // the context holds the last reference
  Buffer x({1, 10}), y({1, 10}, 2), sum({1, 10}), product({1, 10});
  kiln_tensor in[] = {x.tensor(), y.tensor()}, out[] = {sum.tensor(), product.tensor()};
  REQUIRE_KILN_OK(kiln_run(context, in, 2, out, 2));
  CHECK(sum.values[3] == x.values[3] + y.values[3]);
  kiln_context_destroy(context);
  kiln_context_destroy(nullptr);
}

TEST_CASE("the shared runtime library exports the C API", "[runtime][loader]") {
  void* library = dlopen(KILN_RUNTIME_SHARED_LIBRARY, RTLD_NOW | RTLD_LOCAL);
  REQUIRE(library != nullptr);
  for (const char* name :
       {"kiln_status_name", "kiln_last_error", "kiln_version", "kiln_set_num_threads", "kiln_num_threads",
        "kiln_model_open", "kiln_model_retain", "kiln_model_release", "kiln_model_descriptor", "kiln_model_num_inputs",
        "kiln_model_num_outputs", "kiln_model_input", "kiln_model_output", "kiln_context_options_init",
        "kiln_context_create", "kiln_context_destroy", "kiln_run", "kiln_ensemble_open", "kiln_ensemble_retain",
        "kiln_ensemble_release", "kiln_ensemble_num_members", "kiln_ensemble_member", "kiln_ensemble_get_rule",
        "kiln_ensemble_num_classes", "kiln_ensemble_label", "kiln_ensemble_context_create",
        "kiln_ensemble_context_destroy", "kiln_ensemble_run"}) {
    INFO(name);
    CHECK(dlsym(library, name) != nullptr);
  }
  auto statusName = reinterpret_cast<const char* (*)(kiln_status)>(dlsym(library, "kiln_status_name"));
  CHECK(std::string(statusName(KILN_ERR_CPU)) == "KILN_ERR_CPU");
  dlclose(library);
}

TEST_CASE("a path without a folder names a file in the working directory", "[runtime][loader]") {
  // dlopen would search the library path for "pair.so" instead.
  std::filesystem::path previous = std::filesystem::current_path();
  std::filesystem::current_path(std::filesystem::path(artifact("pair.so")).parent_path());
  kiln_model* model = nullptr;
  kiln_status status = kiln_model_open("pair.so", &model);
  std::filesystem::current_path(previous);
  INFO(describeFailure(status));
  REQUIRE(status == KILN_OK);
  CHECK(std::string(kiln_model_descriptor(model)->model_name) == "pair");
  kiln_model_release(model);
}
