// The PostgreSQL backend of database.h, through libpq: each study is a schema
// ("kiln_NAME") of the database, so several studies share one database and
// the SQL is the same as SQLite's. Write transactions first take a
// transaction-level advisory lock keyed by the schema name (released at
// COMMIT, ROLLBACK or when the connection dies), which serializes the
// study's writers like SQLite's BEGIN IMMEDIATE while readers keep reading
// their own snapshot; serialization failures, deadlocks and lost
// connections rerun the transaction, reconnecting with backoff, for up to
// kRetrySeconds.
#include <libpq-fe.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "trainer/search/database.h"

namespace kiln::train::search {

namespace {

constexpr int kRetrySeconds = 60;

// A failure worth rerunning the transaction for.
struct TransientError : StudyError {
  using StudyError::StudyError;
};

class PostgresDatabase : public Database {
 public:
  PostgresDatabase(const StudyLocation& location, OpenMode mode)
      : Database(location), schema_("kiln_" + location.study), readOnly_(mode == OpenMode::ReadOnly) {
    char* err = nullptr;
    PQconninfoOption* options = PQconninfoParse(location.conninfo.c_str(), &err);
    if (!options) {
      std::string why = err ? err : "out of memory";
      PQfreemem(err);
      while (!why.empty() && why.back() == '\n') why.pop_back();
      throw StudyError("bad study URL '" + location.url + "': " + why);
    }
    PQconninfoFree(options);
    // The URI's own parameters override these defaults (they come later).
    const char* keys[] = {"connect_timeout", "fallback_application_name", "dbname", nullptr};
    const char* values[] = {"10", "kiln-train", location.conninfo.c_str(), nullptr};
    conn_ = PQconnectdbParams(keys, values, 1);
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
      std::string why = conn_ ? message() : "out of memory";
      PQfinish(conn_);
      throw StudyError("cannot connect to study " + location.url + ": " + why);
    }
    PQsetNoticeProcessor(conn_, [](void*, const char*) {}, nullptr);  // "schema already exists, skipping"
    try {
      configureSession();
    } catch (...) {
      PQfinish(conn_);
      throw;
    }
  }
  ~PostgresDatabase() override { PQfinish(conn_); }

  std::vector<SqlRow> query(const std::string& sql, const std::vector<SqlValue>& args) override {
    Result res(run(sql, args));
    std::vector<SqlRow> rows;
    const int n = PQntuples(res.get()), cols = PQnfields(res.get());
    for (int r = 0; r < n; ++r) {
      SqlRow row;
      for (int c = 0; c < cols; ++c) {
        const char* v = PQgetvalue(res.get(), r, c);
        if (PQgetisnull(res.get(), r, c)) row.cols.emplace_back(std::monostate{});
        else if (Oid type = PQftype(res.get(), c); type == 20 || type == 21 || type == 23) row.cols.emplace_back(static_cast<int64_t>(std::strtoll(v, nullptr, 10)));
        else if (type == 700 || type == 701 || type == 1700) row.cols.emplace_back(std::strtod(v, nullptr));  // also NaN, Infinity
        else row.cols.emplace_back(std::string(v, static_cast<size_t>(PQgetlength(res.get(), r, c))));
      }
      rows.push_back(std::move(row));
    }
    return rows;
  }

  int64_t execute(const std::string& sql, const std::vector<SqlValue>& args) override {
    Result res(run(sql, args));
    const char* changed = PQcmdTuples(res.get());
    return *changed ? std::strtoll(changed, nullptr, 10) : 0;
  }

  void transaction(bool write, const std::function<void()>& body) override {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kRetrySeconds);
    for (int attempt = 1;; ++attempt) {
      try {
        if (PQstatus(conn_) != CONNECTION_OK) reconnect();
        // Writers are serialized by the lock, so READ COMMITTED sees every
        // commit before it; readers get one snapshot for all their SELECTs.
        execute(write ? "BEGIN ISOLATION LEVEL READ COMMITTED" : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", {});
        if (write) query("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", {schema_});
        body();
        execute("COMMIT", {});
        return;
      } catch (const TransientError& e) {
        rollback();
        if (std::chrono::steady_clock::now() > deadline)
          throw StudyError(std::string(e.what()) + " (gave up after " + std::to_string(kRetrySeconds) + " s of retries)");
        std::this_thread::sleep_for(std::chrono::milliseconds(std::min(50 * attempt, 1000)));
      } catch (...) {
        rollback();
        throw;
      }
    }
  }

  double now() override { return query("SELECT extract(epoch FROM clock_timestamp())::float8", {}).at(0).real(0); }
  void createStudy() override { execute("CREATE SCHEMA IF NOT EXISTS " + quotedSchema(), {}); }
  bool hasStudy() override {
    return !query("SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = 'trials'", {schema_}).empty();
  }

 private:
  struct ResultDeleter {
    void operator()(PGresult* r) const { PQclear(r); }
  };
  using Result = std::unique_ptr<PGresult, ResultDeleter>;

  std::string quotedSchema() const { return "\"" + schema_ + "\""; }  // the name is [A-Za-z0-9_-] only

  std::string message() const {
    std::string m = PQerrorMessage(conn_);
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    return m;
  }

  // Settings every (re)connected session needs.
  void configureSession() {
    execute("SET search_path TO " + quotedSchema(), {});
    if (readOnly_) execute("SET default_transaction_read_only = on", {});
  }

  void reconnect() {
    PQreset(conn_);
    if (PQstatus(conn_) != CONNECTION_OK) throw TransientError("lost the connection to study " + location().url + ": " + message());
    configureSession();
  }

  void rollback() {
    if (PQstatus(conn_) == CONNECTION_OK && PQtransactionStatus(conn_) != PQTRANS_IDLE) PQclear(PQexec(conn_, "ROLLBACK"));
  }

  // Runs `sql` with its "?" placeholders as $1, $2, ... (no statement here
  // has a '?' in a literal); throws TransientError or StudyError.
  Result run(const std::string& sql, const std::vector<SqlValue>& args) {
    std::string text;
    int n = 0;
    for (char c : sql) text += c == '?' ? "$" + std::to_string(++n) : std::string(1, c);
    std::vector<std::string> values(args.size());
    std::vector<const char*> ptrs(args.size());
    for (size_t i = 0; i < args.size(); ++i) {
      const SqlValue& v = args[i];
      if (const auto* d = std::get_if<double>(&v)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.17g", *d);
        values[i] = std::isnan(*d) ? "NaN" : std::isinf(*d) ? (*d > 0 ? "Infinity" : "-Infinity") : buf;
      } else if (const auto* k = std::get_if<int64_t>(&v)) {
        values[i] = std::to_string(*k);
      } else if (const auto* s = std::get_if<std::string>(&v)) {
        values[i] = *s;
      }
      ptrs[i] = std::holds_alternative<std::monostate>(v) ? nullptr : values[i].c_str();
    }
    Result res(PQexecParams(conn_, text.c_str(), static_cast<int>(args.size()), nullptr, ptrs.data(), nullptr, nullptr, 0));
    const ExecStatusType status = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return res;
    const char* state = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
    const std::string code = state ? state : "";
    const std::string what = location().url + ": " + message() + (code.empty() ? "" : " [SQLSTATE " + code + "]");
    // Class 08: connection exceptions; 57P01-03: the server shuts down or
    // starts; 40001/40P01: serialization failure, deadlock.
    if (PQstatus(conn_) != CONNECTION_OK || code.empty() || code.compare(0, 2, "08") == 0 || code == "57P01" ||
        code == "57P02" || code == "57P03" || code == "40001" || code == "40P01")
      throw TransientError(what);
    throw StudyError(what + " in: " + sql);
  }

  PGconn* conn_ = nullptr;
  std::string schema_;
  bool readOnly_;
};

}  // namespace

std::unique_ptr<Database> openPostgreSQL(const StudyLocation& location, OpenMode mode) {
  return std::make_unique<PostgresDatabase>(location, mode);
}

}  // namespace kiln::train::search
