// The SQLite backend of database.h: one file per study, shared by worker
// processes on one machine. WAL journal (readers never block the writer), a
// busy timeout plus retries of whole IMMEDIATE transactions, one connection
// per process and thread (never inherited across fork).
#include <sqlite3.h>

#include <chrono>
#include <thread>

#include "trainer/search/database.h"

namespace kiln::train::search {

namespace {

// SQLITE_BUSY / SQLITE_LOCKED past the busy timeout: the transaction is retried.
struct BusyError : StudyError {
  using StudyError::StudyError;
};

class SQLiteDatabase : public Database {
 public:
  SQLiteDatabase(const StudyLocation& location, OpenMode mode) : Database(location) {
    const int flags = mode == OpenMode::Create ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
    int rc = sqlite3_open_v2(location.path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
      std::string msg = "cannot open study " + location.path + ": " + (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
      sqlite3_close(db_);
      throw StudyError(msg);
    }
    sqlite3_busy_timeout(db_, 2000);
    if (mode == OpenMode::ReadOnly) return;
    try {
      // Switching to WAL needs a moment of exclusive access: retried like a transaction.
      for (int attempt = 1;; ++attempt) {
        try {
          exec("PRAGMA journal_mode=WAL");
          break;
        } catch (const BusyError&) {
          if (attempt == 50) throw;
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
      }
      // WAL commits are durable against process kills without an fsync each.
      exec("PRAGMA synchronous=NORMAL");
    } catch (...) {
      sqlite3_close(db_);
      throw;
    }
  }
  ~SQLiteDatabase() override { sqlite3_close(db_); }

  std::vector<SqlRow> query(const std::string& sql, const std::vector<SqlValue>& args) override {
    Statement s(*this, sql, args);
    std::vector<SqlRow> rows;
    while (s.step()) rows.push_back(s.row());
    return rows;
  }

  int64_t execute(const std::string& sql, const std::vector<SqlValue>& args) override {
    Statement s(*this, sql, args);
    while (s.step()) {
    }
    return sqlite3_changes64(db_);
  }

  // BEGIN IMMEDIATE takes the write lock up front, so two workers never both
  // read-then-write and deadlock; the whole transaction is retried with
  // growing pauses while the file stays busy past the busy timeout.
  void transaction(bool write, const std::function<void()>& body) override {
    constexpr int kAttempts = 50;
    for (int attempt = 1;; ++attempt) {
      try {
        exec(write ? "BEGIN IMMEDIATE" : "BEGIN");
        try {
          body();
          exec("COMMIT");
          return;
        } catch (...) {
          sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
          throw;
        }
      } catch (const BusyError&) {
        if (attempt == kAttempts) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(10 * std::min(attempt, 20)));
      }
    }
  }

  double now() override { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }
  // The file is the study. One written before heartbeats gets their columns
  // (NULL or 0 for its trials; a running one is judged by its pid).
  void createStudy() override {
    if (!hasStudy() || !query("SELECT 1 FROM pragma_table_info('trials') WHERE name = 'heartbeat'", {}).empty()) return;
    for (const char* column : {"heartbeat DOUBLE PRECISION", "heartbeat_timeout DOUBLE PRECISION NOT NULL DEFAULT 0", "retry_of BIGINT"})
      execute(std::string("ALTER TABLE trials ADD COLUMN ") + column, {});
  }
  bool hasStudy() override { return !query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'trials'", {}).empty(); }

 private:
  [[noreturn]] void fail(int rc, const std::string& what) const {
    std::string msg = location().path + ": " + what + ": " + sqlite3_errmsg(db_);
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) throw BusyError(msg);
    throw StudyError(msg);
  }

  void exec(const char* sql) {
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) fail(rc, sql);
  }

  class Statement {
   public:
    Statement(SQLiteDatabase& db, const std::string& sql, const std::vector<SqlValue>& args) : db_(db) {
      int rc = sqlite3_prepare_v2(db.db_, sql.c_str(), static_cast<int>(sql.size()), &stmt_, nullptr);
      if (rc != SQLITE_OK) db.fail(rc, sql);
      for (size_t i = 0; i < args.size(); ++i) {
        const int at = static_cast<int>(i) + 1;
        const SqlValue& v = args[i];
        if (const auto* n = std::get_if<int64_t>(&v)) rc = sqlite3_bind_int64(stmt_, at, *n);
        else if (const auto* d = std::get_if<double>(&v)) rc = sqlite3_bind_double(stmt_, at, *d);
        else if (const auto* s = std::get_if<std::string>(&v)) rc = sqlite3_bind_text(stmt_, at, s->c_str(), static_cast<int>(s->size()), SQLITE_TRANSIENT);
        else rc = sqlite3_bind_null(stmt_, at);
        if (rc != SQLITE_OK) {
          sqlite3_finalize(stmt_);
          db.fail(rc, "bind " + sql);
        }
      }
    }
    ~Statement() { sqlite3_finalize(stmt_); }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    // True while a row is available.
    bool step() {
      int rc = sqlite3_step(stmt_);
      if (rc == SQLITE_ROW) return true;
      if (rc == SQLITE_DONE) return false;
      db_.fail(rc, sqlite3_sql(stmt_));
    }
    SqlRow row() const {
      SqlRow r;
      for (int c = 0, n = sqlite3_column_count(stmt_); c < n; ++c) {
        switch (sqlite3_column_type(stmt_, c)) {
          case SQLITE_INTEGER: r.cols.emplace_back(static_cast<int64_t>(sqlite3_column_int64(stmt_, c))); break;
          case SQLITE_FLOAT: r.cols.emplace_back(sqlite3_column_double(stmt_, c)); break;
          case SQLITE_NULL: r.cols.emplace_back(std::monostate{}); break;
          default: r.cols.emplace_back(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt_, c))));
        }
      }
      return r;
    }

   private:
    SQLiteDatabase& db_;
    sqlite3_stmt* stmt_ = nullptr;
  };

  sqlite3* db_ = nullptr;
};

}  // namespace

std::unique_ptr<Database> openSQLite(const StudyLocation& location, OpenMode mode) {
  return std::make_unique<SQLiteDatabase>(location, mode);
}

}  // namespace kiln::train::search
