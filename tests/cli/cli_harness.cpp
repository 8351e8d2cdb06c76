#include "cli_harness.h"

#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace kiln::clitest {

namespace {

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace

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

}  // namespace kiln::clitest
