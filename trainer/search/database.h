// The database behind a study: a SQLite file or one study of a PostgreSQL
// database. Study (study.h) holds every rule (claiming, heartbeats, retries)
// and the SQL, written once in the dialect both accept; a backend only runs
// statements, keeps the clock and makes write transactions exclusive among
// the study's writers. Chosen by URL:
//   PATH or sqlite:///PATH         a SQLite file (sqlite:////abs/path for an
//                                  absolute one, as SQLAlchemy and Optuna spell it)
//   postgresql://[USER[:PASSWORD]@][HOST][:PORT]/DB?study=NAME[&PARAM=VALUE...]
//                                  study NAME of a PostgreSQL database (libpq
//                                  URI; HOST may be a percent-encoded socket
//                                  folder, other PARAMs are libpq's)
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace kiln::train::search {

struct StudyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A study URL taken apart (parseStudyUrl); `url` is the text as given.
struct StudyLocation {
  enum class Kind { SQLite, PostgreSQL } kind = Kind::SQLite;
  std::string url;
  std::string path;      // SQLite: the file
  std::string conninfo;  // PostgreSQL: the libpq URI without the study parameter
  std::string study;     // PostgreSQL: the study name
};

// Throws StudyError naming `url` and the forms expected when it is none of them.
StudyLocation parseStudyUrl(const std::string& url);

using SqlValue = std::variant<std::monostate, int64_t, double, std::string>;

struct SqlRow {
  std::vector<SqlValue> cols;
  bool null(size_t i) const { return std::holds_alternative<std::monostate>(cols.at(i)); }
  int64_t integer(size_t i) const;
  double real(size_t i) const;
  std::string text(size_t i) const;  // "" for NULL
};

class Database {
 public:
  virtual ~Database() = default;
  // One statement with "?" placeholders bound to `args` in order.
  virtual std::vector<SqlRow> query(const std::string& sql, const std::vector<SqlValue>& args = {}) = 0;
  // Runs one statement; returns the number of rows it changed.
  virtual int64_t execute(const std::string& sql, const std::vector<SqlValue>& args = {}) = 0;
  // Runs `body` as one transaction. A write transaction excludes every other
  // writer of the study (SQLite: BEGIN IMMEDIATE; PostgreSQL: a transaction
  // advisory lock on the study, taken first); a read one sees one snapshot.
  // The whole body is rerun on transient failures (a busy file, a
  // serialization failure or deadlock, a lost connection) for a bounded time,
  // so it must not keep results of an attempt that did not commit.
  virtual void transaction(bool write, const std::function<void()>& body) = 0;
  // Seconds since the epoch by the database's clock: the server's for
  // PostgreSQL, so workers on several machines compare heartbeats on one clock.
  virtual double now() = 0;
  // Inside a write transaction: makes room for the study's tables
  // (PostgreSQL: its schema).
  virtual void createStudy() = 0;
  // Whether the study's tables exist.
  virtual bool hasStudy() = 0;
  const StudyLocation& location() const { return location_; }

 protected:
  explicit Database(StudyLocation location) : location_(std::move(location)) {}

 private:
  StudyLocation location_;
};

enum class OpenMode { Create, ReadOnly };

// The database at `location` (a SQLite file is created in Create mode; a
// PostgreSQL study only by createStudy). Throws StudyError naming the URL
// when it cannot be opened or reached.
std::unique_ptr<Database> openDatabase(const StudyLocation& location, OpenMode mode);
std::unique_ptr<Database> openSQLite(const StudyLocation& location, OpenMode mode);
std::unique_ptr<Database> openPostgreSQL(const StudyLocation& location, OpenMode mode);

}  // namespace kiln::train::search
