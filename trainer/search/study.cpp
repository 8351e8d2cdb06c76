// The SQLite study file (see study.h).
#include "trainer/search/study.h"

#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

namespace kiln::train::search {

namespace {

// SQLITE_BUSY / SQLITE_LOCKED past the busy timeout: the transaction is retried.
struct BusyError : StudyError {
  using StudyError::StudyError;
};

[[noreturn]] void fail(sqlite3* db, int rc, const std::string& what) {
  std::string msg = what + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) throw BusyError(msg);
  throw StudyError(msg);
}

class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
    if (rc != SQLITE_OK) fail(db, rc, sql);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, int64_t v) { return check(sqlite3_bind_int64(stmt_, i, v)); }
  Statement& bind(int i, double v) { return check(sqlite3_bind_double(stmt_, i, v)); }
  Statement& bind(int i, const std::string& v) { return check(sqlite3_bind_text(stmt_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT)); }
  Statement& bind(int i, std::optional<double> v) { return v ? bind(i, *v) : check(sqlite3_bind_null(stmt_, i)); }
  // True while a row is available.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, rc, sqlite3_sql(stmt_));
  }
  void run() {
    while (step()) {
    }
  }
  int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }
  bool null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string text(int col) const {
    const unsigned char* t = sqlite3_column_text(stmt_, col);
    return t ? reinterpret_cast<const char*>(t) : "";
  }

 private:
  Statement& check(int rc) {
    if (rc != SQLITE_OK) fail(db_, rc, "bind");
    return *this;
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

void exec(sqlite3* db, const char* sql) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) fail(db, rc, sql);
}

// Runs `body` in a BEGIN IMMEDIATE transaction (the write lock up front, so
// two workers never both read-then-write and deadlock), retrying the whole
// transaction with growing pauses when the database stays busy past the
// busy timeout.
template <class F>
auto transaction(sqlite3* db, F&& body) {
  constexpr int kAttempts = 50;
  for (int attempt = 1;; ++attempt) {
    try {
      exec(db, "BEGIN IMMEDIATE");
      try {
        auto result = body();
        exec(db, "COMMIT");
        return result;
      } catch (...) {
        sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
      }
    } catch (const BusyError&) {
      if (attempt == kAttempts) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(10 * std::min(attempt, 20)));
    }
  }
}

double now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

sqlite3* openDb(const std::string& path, int flags) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = "cannot open study " + path + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    throw StudyError(msg);
  }
  sqlite3_busy_timeout(db, 2000);
  return db;
}

std::vector<TrialRecord> readTrials(sqlite3* db) {
  std::vector<TrialRecord> out;
  std::map<int64_t, size_t> index;
  Statement t(db, "SELECT id, state, worker, overrides, value, seconds, error, finished FROM trials ORDER BY id");
  while (t.step()) {
    TrialRecord r;
    r.id = t.integer(0);
    r.state = parseState(t.text(1));
    r.worker = t.text(2);
    r.overrides = nlohmann::json::parse(t.text(3));
    if (!t.null(4)) r.value = t.real(4);
    r.seconds = t.real(5);
    r.error = t.text(6);
    r.finishedAt = t.real(7);
    index[r.id] = out.size();
    out.push_back(std::move(r));
  }
  Statement p(db, "SELECT trial, label, value FROM params");
  while (p.step()) out.at(index.at(p.integer(0))).params[p.text(1)] = p.real(2);
  Statement i(db, "SELECT trial, step, value FROM intermediate");
  while (i.step()) out.at(index.at(i.integer(0))).intermediate[i.integer(1)] = i.real(2);
  return out;
}

// The three SELECTs of readTrials see one snapshot: a read transaction of
// their own unless the caller's transaction is open already (otherwise a
// trial another worker inserts in between would have params but no row).
std::vector<TrialRecord> loadTrials(sqlite3* db) {
  if (!sqlite3_get_autocommit(db)) return readTrials(db);
  exec(db, "BEGIN");
  try {
    std::vector<TrialRecord> out = readTrials(db);
    exec(db, "COMMIT");
    return out;
  } catch (...) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

}  // namespace

const char* stateName(TrialState s) {
  switch (s) {
    case TrialState::Queued: return "QUEUED";
    case TrialState::Running: return "RUNNING";
    case TrialState::Complete: return "COMPLETE";
    case TrialState::Pruned: return "PRUNED";
    case TrialState::Failed: return "FAILED";
  }
  return "?";
}

TrialState parseState(const std::string& name) {
  for (TrialState s : {TrialState::Queued, TrialState::Running, TrialState::Complete, TrialState::Pruned, TrialState::Failed})
    if (name == stateName(s)) return s;
  throw StudyError("unknown trial state '" + name + "'");
}

std::string processIdentity(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return "";
  // Fields after the parenthesised command name (which may hold spaces):
  // state is field 3, starttime field 22.
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field, state, start;
  for (int i = 3; i <= 22 && rest >> field; ++i) {
    if (i == 3) state = field;
    if (i == 22) start = field;
  }
  if (state == "Z" || state == "X" || start.empty()) return "";
  return std::to_string(pid) + ":" + start;
}

Study::Study(const std::string& path, const SearchSpace& space, uint64_t seed)
    : db_(openDb(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)), space_(space), seed_(seed), self_(processIdentity(::getpid())) {
  try {
    // Switching to WAL needs a moment of exclusive access: retried like a transaction.
    for (int attempt = 1;; ++attempt) {
      try {
        exec(db_, "PRAGMA journal_mode=WAL");
        break;
      } catch (const BusyError&) {
        if (attempt == 50) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    // WAL commits are durable against process kills without an fsync each.
    exec(db_, "PRAGMA synchronous=NORMAL");
    const std::string canonical = space.canonical().dump();
    transaction(db_, [&] {
      exec(db_,
           "CREATE TABLE IF NOT EXISTS study(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
           "CREATE TABLE IF NOT EXISTS trials(id INTEGER PRIMARY KEY, state TEXT NOT NULL, worker TEXT,"
           " overrides TEXT NOT NULL, value REAL, seconds REAL NOT NULL DEFAULT 0, error TEXT,"
           " started REAL, finished REAL NOT NULL DEFAULT 0);"
           "CREATE TABLE IF NOT EXISTS params(trial INTEGER NOT NULL REFERENCES trials(id), label TEXT NOT NULL,"
           " value REAL NOT NULL, PRIMARY KEY(trial, label));"
           "CREATE TABLE IF NOT EXISTS intermediate(trial INTEGER NOT NULL REFERENCES trials(id), step INTEGER NOT NULL,"
           " value REAL NOT NULL, PRIMARY KEY(trial, step));");
      Statement get(db_, "SELECT value FROM study WHERE key = 'space'");
      if (get.step()) {
        if (get.text(0) != canonical) throw StudyError(path + " holds a study of a different search space");
      } else {
        Statement(db_, "INSERT INTO study(key, value) VALUES ('space', ?)").bind(1, canonical).run();
      }
      return 0;
    });
  } catch (...) {
    sqlite3_close(db_);
    throw;
  }
}

Study::~Study() { sqlite3_close(db_); }

std::optional<TrialRecord> Study::claim(const Sampler& sampler, int64_t maxEvals) {
  return transaction(db_, [&]() -> std::optional<TrialRecord> {
    std::vector<int64_t> orphans;
    {
      Statement running(db_, "SELECT id, worker FROM trials WHERE state = 'RUNNING'");
      while (running.step()) {
        std::string worker = running.text(1);
        if (processIdentity(std::stol(worker.substr(0, worker.find(':')))) != worker) orphans.push_back(running.integer(0));
      }
    }
    for (int64_t id : orphans) {
      Statement(db_, "UPDATE trials SET state = 'QUEUED', worker = NULL, started = NULL WHERE id = ?").bind(1, id).run();
      Statement(db_, "DELETE FROM intermediate WHERE trial = ?").bind(1, id).run();
    }
    std::vector<TrialRecord> history = loadTrials(db_);
    for (TrialRecord& t : history)
      if (t.state == TrialState::Queued) {
        Statement(db_, "UPDATE trials SET state = 'RUNNING', worker = ?, started = ? WHERE id = ?").bind(1, self_).bind(2, now()).bind(3, t.id).run();
        t.state = TrialState::Running;
        t.worker = self_;
        return std::move(t);
      }
    if (static_cast<int64_t>(history.size()) >= maxEvals) return std::nullopt;
    TrialRecord t;
    t.id = history.empty() ? 1 : history.back().id + 1;
    t.state = TrialState::Running;
    t.worker = self_;
    Rng rng(seed_ ^ (static_cast<uint64_t>(t.id) * 0x9E3779B97F4A7C15ull));
    t.params = sampler.propose(space_, history, rng);
    t.overrides = space_.overrides(t.params);
    Statement(db_, "INSERT INTO trials(id, state, worker, overrides, started) VALUES (?, 'RUNNING', ?, ?, ?)")
        .bind(1, t.id).bind(2, self_).bind(3, t.overrides.dump()).bind(4, now()).run();
    for (const auto& [label, value] : t.params)
      Statement(db_, "INSERT INTO params(trial, label, value) VALUES (?, ?, ?)").bind(1, t.id).bind(2, label).bind(3, value).run();
    return t;
  });
}

void Study::report(int64_t trialId, int64_t step, double value) {
  transaction(db_, [&] {
    Statement(db_, "INSERT OR REPLACE INTO intermediate(trial, step, value) VALUES (?, ?, ?)").bind(1, trialId).bind(2, step).bind(3, value).run();
    return 0;
  });
}

void Study::finish(int64_t trialId, TrialState state, std::optional<double> value, double seconds, const std::string& error) {
  transaction(db_, [&] {
    Statement(db_, "UPDATE trials SET state = ?, value = ?, seconds = ?, error = ?, finished = ? WHERE id = ?")
        .bind(1, std::string(stateName(state))).bind(2, value).bind(3, seconds).bind(4, error).bind(5, now()).bind(6, trialId).run();
    return 0;
  });
}

std::vector<TrialRecord> Study::trials() const { return loadTrials(db_); }

std::vector<TrialRecord> readStudy(const std::string& path) {
  sqlite3* db = openDb(path, SQLITE_OPEN_READONLY);
  try {
    std::vector<TrialRecord> out = loadTrials(db);
    sqlite3_close(db);
    return out;
  } catch (...) {
    sqlite3_close(db);
    throw;
  }
}

}  // namespace kiln::train::search
