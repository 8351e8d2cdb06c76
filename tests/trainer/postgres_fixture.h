// A private PostgreSQL server for one test: initdb and pg_ctl on a fresh
// temporary folder, listening only on a Unix socket inside it (no TCP
// port), trust authentication for the superuser "kiln". Run as the
// "postgres" system user when the tests run as root (initdb refuses root).
// The destructor stops it (pg_ctl stop -m immediate) and removes the folder,
// also when the test failed.
#pragma once

#include <filesystem>
#include <string>

namespace kiln::train::testing {

class PostgresServer {
 public:
  // Why no server can start here ("" when one can): the binaries (initdb,
  // pg_ctl; found by pg_config --bindir or /usr/lib/postgresql/*/bin) are
  // absent.
  static std::string unavailable();

  PostgresServer();  // initdb + start; throws std::runtime_error with the server log
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // The study URL of study `name` in database "postgres".
  std::string url(const std::string& name) const;
  // The folder of the Unix socket.
  const std::filesystem::path& socketDir() const { return dir_; }
  void stop();   // immediate: clients see their connections die
  void start();

 private:
  void pgCtl(const std::string& args) const;
  std::filesystem::path dir_;
  std::string bin_;
  std::string runAs_;  // "runuser -u postgres -- " when root
  bool running_ = false;
};

}  // namespace kiln::train::testing
