// The private PostgreSQL server of the trainer tests (see postgres_fixture.h).
#include "tests/trainer/postgres_fixture.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace kiln::train::testing {

namespace fs = std::filesystem;

namespace {

bool hasServer(const std::string& bin) { return !bin.empty() && fs::exists(bin + "/initdb") && fs::exists(bin + "/pg_ctl"); }

std::string binDir() {
  std::string bin;
  if (FILE* p = ::popen("pg_config --bindir 2>/dev/null", "r")) {
    char line[512];
    if (std::fgets(line, sizeof line, p)) bin = line;
    ::pclose(p);
  }
  while (!bin.empty() && (bin.back() == '\n' || bin.back() == ' ')) bin.pop_back();
  if (hasServer(bin)) return bin;
  // pg_config may be absent (it comes with libpq-dev) or name another version.
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& version : fs::directory_iterator("/usr/lib/postgresql", ec))
    if (hasServer((version.path() / "bin").string())) found.push_back((version.path() / "bin").string());
  std::sort(found.begin(), found.end());
  return found.empty() ? "" : found.back();
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

std::string PostgresServer::unavailable() {
  return hasServer(binDir()) ? "" : "the PostgreSQL server binaries (initdb, pg_ctl; Debian package postgresql) are not installed";
}

PostgresServer::PostgresServer() : bin_(binDir()) {
  if (!hasServer(bin_)) throw std::runtime_error(unavailable());
  char tmpl[] = "/tmp/kiln_pg_XXXXXX";  // short: a socket path has at most 107 bytes
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  if (::geteuid() == 0) {
    const passwd* pw = ::getpwnam("postgres");
    if (!pw) {
      fs::remove_all(dir_);
      throw std::runtime_error("running as root, and there is no 'postgres' user to run the server as");
    }
    if (::chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) throw std::runtime_error("cannot chown " + dir_.string());
    runAs_ = "runuser -u postgres -- ";
  }
  const std::string cmd = "cd " + dir_.string() + " && " + runAs_ + bin_ + "/initdb -D " + (dir_ / "data").string() +
                          " -U kiln --auth=trust --no-locale -E UTF8 --no-sync --no-instructions > " +
                          (dir_ / "initdb.log").string() + " 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    std::string log = slurp(dir_ / "initdb.log");
    fs::remove_all(dir_);
    throw std::runtime_error("initdb failed:\n" + log);
  }
  try {
    start();
  } catch (...) {
    fs::remove_all(dir_);
    throw;
  }
}

PostgresServer::~PostgresServer() {
  try {
    if (running_) stop();
  } catch (const std::exception&) {
    // the folder goes anyway
  }
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
}

void PostgresServer::pgCtl(const std::string& args) const {
  const std::string cmd = "cd " + dir_.string() + " && " + runAs_ + bin_ + "/pg_ctl -D " + (dir_ / "data").string() + " " + args +
                          " >> " + (dir_ / "pg_ctl.log").string() + " 2>&1";
  if (std::system(cmd.c_str()) != 0)
    throw std::runtime_error("pg_ctl " + args + " failed:\n" + slurp(dir_ / "pg_ctl.log") + slurp(dir_ / "server.log"));
}

void PostgresServer::start() {
  // No TCP listener, no fsync: a throwaway server.
  pgCtl("-w -t 60 -l " + (dir_ / "server.log").string() + " -o \"-k " + dir_.string() + " -c listen_addresses='' -F\" start");
  running_ = true;
}

void PostgresServer::stop() {
  pgCtl("-w -m immediate stop");
  running_ = false;
}

std::string PostgresServer::url(const std::string& name) const {
  std::string host;
  for (char c : dir_.string()) host += c == '/' ? std::string("%2F") : std::string(1, c);
  return "postgresql://kiln@" + host + "/postgres?study=" + name;
}

}  // namespace kiln::train::testing
