// Helpers of the runtime tests: where the test artifacts are, owned f32
// tensors, scratch folders, manifests and status checks. Uses only the
// runtime's public C API, so the ThreadSanitizer build can share it.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "kiln/kiln.h"

namespace kiln_test {

// A file written by make_test_artifacts ("pair.so").
std::string artifact(const std::string& name);

// An empty folder of this process's own.
std::filesystem::path scratchDir(const std::string& name);

// Writes `text` to dir/name and returns the path.
std::string writeFile(const std::filesystem::path& dir, const std::string& name, const std::string& text);

// A manifest listing `members` (artifact names, written relative to the
// manifest's folder) with `weights`; `extra` is spliced into the JSON object
// ("\"rule\": \"vote\",").
std::string writeManifest(const std::filesystem::path& dir, const std::vector<std::string>& members,
                          const std::vector<double>& weights, const std::string& extra = "");

// An owned dense f32 tensor with deterministic values in [-1, 1).
struct Buffer {
  explicit Buffer(std::vector<int64_t> dims, uint32_t seed = 1);
  kiln_tensor tensor();
  int64_t size() const { return static_cast<int64_t>(values.size()); }

  std::vector<int64_t> dims;
  std::vector<float> values;
};

// Runs artifact `name` on `input` in a fresh context with `flags`; returns
// its only output, of `outputDims`.
std::vector<float> runOnce(const std::string& name, Buffer& input, std::vector<int64_t> outputDims, uint32_t flags);

// The status name and message of a failed call, for REQUIRE_KILN_ERROR.
std::string describeFailure(kiln_status status);

}  // namespace kiln_test

// Requires `call` to fail with `status` and kiln_last_error() to contain `text`.
#define REQUIRE_KILN_ERROR(call, status, text)                                 \
  do {                                                                          \
    kiln_status actual_ = (call);                                               \
    INFO(kiln_test::describeFailure(actual_));                                  \
    REQUIRE(std::string(kiln_status_name(actual_)) == kiln_status_name(status)); \
    CHECK_THAT(kiln_last_error(), Catch::Contains(text));                       \
  } while (false)

#define REQUIRE_KILN_OK(call)                                   \
  do {                                                          \
    kiln_status actual_ = (call);                               \
    INFO(kiln_test::describeFailure(actual_));                  \
    REQUIRE(actual_ == KILN_OK);                                \
  } while (false)
