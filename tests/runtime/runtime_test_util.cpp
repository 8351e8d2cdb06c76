#include "runtime_test_util.h"

#include <unistd.h>

#include <fstream>

namespace kiln_test {

std::string artifact(const std::string& name) { return (std::filesystem::path(KILN_RUNTIME_TEST_ARTIFACTS) / name).string(); }

std::filesystem::path scratchDir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("kiln-runtime-test-" + std::to_string(::getpid())) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string writeFile(const std::filesystem::path& dir, const std::string& name, const std::string& text) {
  std::filesystem::path path = dir / name;
  std::ofstream(path, std::ios::binary) << text;
  return path.string();
}

std::string writeManifest(const std::filesystem::path& dir, const std::vector<std::string>& members,
                          const std::vector<double>& weights, const std::string& extra) {
  std::string list;
  for (size_t m = 0; m < members.size(); ++m) {
    std::string path = std::filesystem::relative(artifact(members[m]), dir).string();
    list += (m ? ", " : "") + std::string("{\"path\": \"") + path + "\", \"weight\": " + std::to_string(weights[m]) + "}";
  }
  return writeFile(dir, "ensemble.json",
                   "{\"format\": \"kiln-ensemble\", \"version\": 1, " + extra + " \"members\": [" + list + "]}");
}

Buffer::Buffer(std::vector<int64_t> dims, uint32_t seed) : dims(std::move(dims)) {
  int64_t count = 1;
  for (int64_t d : this->dims) count *= d;
  values.resize(static_cast<size_t>(count));
  uint32_t state = seed * 2654435761u + 1;
  for (float& v : values) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<float>(state >> 8) / static_cast<float>(1u << 23) - 1.0f;
  }
}

kiln_tensor Buffer::tensor() {
  return {KILN_F32, static_cast<int32_t>(dims.size()), dims.data(), values.data()};
}

std::string describeFailure(kiln_status status) {
  return std::string(kiln_status_name(status)) + ": " + kiln_last_error();
}

std::vector<float> runOnce(const std::string& name, Buffer& input, std::vector<int64_t> outputDims, uint32_t flags) {
  kiln_model* model = nullptr;
  REQUIRE_KILN_OK(kiln_model_open(artifact(name).c_str(), &model));
  kiln_context_options options;
  kiln_context_options_init(&options);
  options.flags = flags;
  options.max_batch = input.dims[0];
  kiln_context* context = nullptr;
  REQUIRE_KILN_OK(kiln_context_create(model, &options, &context));
  Buffer output(std::move(outputDims));
  kiln_tensor in = input.tensor(), out = output.tensor();
  REQUIRE_KILN_OK(kiln_run(context, &in, 1, &out, 1));
  kiln_context_destroy(context);
  kiln_model_release(model);
  return output.values;
}

}  // namespace kiln_test
