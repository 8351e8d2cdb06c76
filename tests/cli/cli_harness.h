// Runs the built `kiln` binary as a user would, for the CLI tests: each test
// gets a fresh scratch folder, and a run's exit code, stdout and stderr come
// back together (and are printed when a check fails).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace kiln::clitest {

struct Result {
  int exitCode = -1;
  std::string out;
  std::string err;
};

// A new, empty folder under the tests' scratch folder.
std::filesystem::path scratchDir(const std::string& name);

// Runs `kiln ARGS...` capturing stdout and stderr through files in `dir`.
Result runKiln(const std::filesystem::path& dir, const std::vector<std::string>& args);

// The whole content of a file ("" when it cannot be read).
std::string slurp(const std::filesystem::path& path);

// A file written by make_models.py.
std::string data(const std::string& file);

// Checks that `kiln ARGS...` fails with exit 2 and an error containing `expected`.
void requireUsageError(const std::filesystem::path& dir, const std::vector<std::string>& args,
                       const std::string& expected);

}  // namespace kiln::clitest
