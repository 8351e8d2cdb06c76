// The study rules over either backend (see study.h and database.h).
#include "trainer/search/study.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

namespace kiln::train::search {

namespace {

// Column types both dialects accept (SQLite maps them to its affinities).
const char* const kTables[] = {
    "CREATE TABLE IF NOT EXISTS study(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS trials(id BIGINT PRIMARY KEY, state TEXT NOT NULL, worker TEXT,"
    " overrides TEXT NOT NULL, value DOUBLE PRECISION, seconds DOUBLE PRECISION NOT NULL DEFAULT 0, error TEXT,"
    " started DOUBLE PRECISION, finished DOUBLE PRECISION NOT NULL DEFAULT 0, heartbeat DOUBLE PRECISION,"
    " heartbeat_timeout DOUBLE PRECISION NOT NULL DEFAULT 0, retry_of BIGINT)",
    "CREATE TABLE IF NOT EXISTS params(trial BIGINT NOT NULL REFERENCES trials(id), label TEXT NOT NULL,"
    " value DOUBLE PRECISION NOT NULL, PRIMARY KEY(trial, label))",
    "CREATE TABLE IF NOT EXISTS intermediate(trial BIGINT NOT NULL REFERENCES trials(id), step BIGINT NOT NULL,"
    " value DOUBLE PRECISION NOT NULL, PRIMARY KEY(trial, step))",
};

SqlValue optional(const std::optional<double>& v) { return v ? SqlValue(*v) : SqlValue(); }
SqlValue optional(const std::optional<int64_t>& v) { return v ? SqlValue(*v) : SqlValue(); }

// Inside a write transaction: the tables, and the space the study is for
// ("" when it has none yet).
std::string createTables(Database& db) {
  db.createStudy();
  for (const char* sql : kTables) db.execute(sql);
  std::vector<SqlRow> rows = db.query("SELECT value FROM study WHERE key = 'space'");
  return rows.empty() ? "" : rows[0].text(0);
}

std::vector<TrialRecord> readTrials(Database& db) {
  std::vector<TrialRecord> out;
  std::map<int64_t, size_t> index;
  for (const SqlRow& row : db.query("SELECT id, state, worker, overrides, value, seconds, error, started, finished, heartbeat,"
                                    " heartbeat_timeout, retry_of FROM trials ORDER BY id")) {
    TrialRecord r;
    r.id = row.integer(0);
    r.state = parseState(row.text(1));
    r.worker = row.text(2);
    r.overrides = nlohmann::json::parse(row.text(3));
    if (!row.null(4)) r.value = row.real(4);
    r.seconds = row.real(5);
    r.error = row.text(6);
    if (!row.null(7)) r.startedAt = row.real(7);
    r.finishedAt = row.real(8);
    if (!row.null(9)) r.heartbeat = row.real(9);
    r.heartbeatTimeout = row.real(10);
    if (!row.null(11)) r.retryOf = row.integer(11);
    index[r.id] = out.size();
    out.push_back(std::move(r));
  }
  for (const SqlRow& row : db.query("SELECT trial, label, value FROM params"))
    out.at(index.at(row.integer(0))).params[row.text(1)] = row.real(2);
  for (const SqlRow& row : db.query("SELECT trial, step, value FROM intermediate"))
    out.at(index.at(row.integer(0))).intermediate[row.integer(1)] = row.real(2);
  return out;
}

void insertTrial(Database& db, const TrialRecord& t) {
  db.execute("INSERT INTO trials(id, state, worker, overrides, value, seconds, error, started, finished, heartbeat,"
             " heartbeat_timeout, retry_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
             {t.id, std::string(stateName(t.state)), t.worker.empty() ? SqlValue() : SqlValue(t.worker), t.overrides.dump(),
              optional(t.value), t.seconds, t.error, optional(t.startedAt), t.finishedAt, optional(t.heartbeat),
              t.heartbeatTimeout, optional(t.retryOf)});
  for (const auto& [label, value] : t.params) db.execute("INSERT INTO params(trial, label, value) VALUES (?, ?, ?)", {t.id, label, value});
  for (const auto& [step, value] : t.intermediate)
    db.execute("INSERT INTO intermediate(trial, step, value) VALUES (?, ?, ?)", {t.id, step, value});
}

std::string readFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// This kernel and pid namespace: where a "pid:starttime" means the same
// process (the hostname could repeat across machines or containers).
const std::string& hostKey() {
  static const std::string key = [] {
    std::error_code ec;
    const std::string ns = std::filesystem::read_symlink("/proc/self/ns/pid", ec).string();  // "pid:[4026531836]"
    const size_t open = ns.find('['), close = ns.rfind(']');
    const std::string inode = open != std::string::npos && close != std::string::npos && open < close ? ns.substr(open + 1, close - open - 1) : ns;
    return readFirstLine("/proc/sys/kernel/random/boot_id") + "/" + inode;
  }();
  return key;
}

// Why the worker of Running trial `t` counts as lost at `now`; "" when it does not.
std::string lostReason(const TrialRecord& t, double now) {
  // "pid:starttime" without a host: a study file from before heartbeats, all on this machine.
  const size_t at = t.worker.find('@');
  if (at == std::string::npos || t.worker.compare(at + 1, std::string::npos, hostKey()) == 0) {
    const std::string process = t.worker.substr(0, at);
    if (processIdentity(std::atol(process.c_str())) != process) return "worker " + t.worker + " exited during the trial";
  }
  if (t.heartbeat && now - *t.heartbeat > t.heartbeatTimeout) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "no heartbeat for %.1f s (timeout %.1f s)", now - *t.heartbeat, t.heartbeatTimeout);
    return "worker " + t.worker + " lost: " + buf;
  }
  return "";
}

// How many runs of its parameter set `t` is (1 + the retries before it).
int attemptOf(const std::vector<TrialRecord>& history, const TrialRecord& t) {
  int n = 1;
  for (std::optional<int64_t> prev = t.retryOf; prev; ++n) {
    auto it = std::find_if(history.begin(), history.end(), [&](const TrialRecord& r) { return r.id == *prev; });
    prev = it == history.end() ? std::nullopt : it->retryOf;
  }
  return n;
}

std::unique_ptr<Database> openExisting(const std::string& url) {
  StudyLocation loc = parseStudyUrl(url);
  std::unique_ptr<Database> db = openDatabase(loc, OpenMode::ReadOnly);
  bool has = false;
  db->transaction(false, [&] { has = db->hasStudy(); });
  if (!has) throw StudyError(url + " holds no study");
  return db;
}

}  // namespace

// Refreshes the heartbeat of this worker's current trial every timeout/4
// from a thread of its own with its own connection, so an epoch that lasts
// minutes does not make the worker look lost.
class Heartbeat {
 public:
  Heartbeat(const StudyLocation& location, std::string worker, double timeout)
      : db_(openDatabase(location, OpenMode::Create)), worker_(std::move(worker)), interval_(timeout / 4) {
    thread_ = std::thread([this] { run(); });
  }
  ~Heartbeat() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  // The trial to keep alive; 0 for none.
  void watch(int64_t trial) {
    std::lock_guard<std::mutex> lock(mutex_);
    trial_ = trial;
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!wake_.wait_for(lock, interval_, [&] { return stop_; })) {
      const int64_t trial = trial_;
      if (trial == 0) continue;
      lock.unlock();
      try {
        db_->transaction(true, [&] {
          db_->execute("UPDATE trials SET heartbeat = ? WHERE id = ? AND state = 'RUNNING' AND worker = ?", {db_->now(), trial, worker_});
        });
      } catch (const std::exception& e) {
        std::cerr << "kiln-train: heartbeat of trial " << trial << ": " << e.what() << "\n";
      }
      lock.lock();
    }
  }

  std::unique_ptr<Database> db_;
  std::string worker_;
  std::chrono::duration<double> interval_;
  std::mutex mutex_;
  std::condition_variable wake_;
  int64_t trial_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

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
  std::string stat = readFirstLine("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return "";
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

Study::Study(const std::string& url, const SearchSpace& space, uint64_t seed, double heartbeatTimeout)
    : db_(openDatabase(parseStudyUrl(url), OpenMode::Create)),
      space_(space),
      seed_(seed),
      heartbeatTimeout_(heartbeatTimeout),
      self_(processIdentity(::getpid()) + "@" + hostKey()) {
  if (!(heartbeatTimeout > 0)) throw StudyError("the heartbeat timeout must be positive");
  const std::string canonical = space.canonical().dump();
  db_->transaction(true, [&] {
    const std::string held = createTables(*db_);
    if (held.empty()) db_->execute("INSERT INTO study(key, value) VALUES ('space', ?)", {canonical});
    else if (held != canonical) throw StudyError(url + " holds a study of a different search space");
  });
}

Study::~Study() = default;

std::optional<TrialRecord> Study::claim(const Sampler& sampler, int64_t maxEvals) {
  // Connected before a trial is taken, so a trial never runs without its heartbeat.
  if (!heartbeat_) heartbeat_ = std::make_unique<Heartbeat>(db_->location(), self_, heartbeatTimeout_);
  std::optional<TrialRecord> claimed;
  db_->transaction(true, [&] {
    claimed.reset();
    const double now = db_->now();
    std::vector<TrialRecord> history = readTrials(*db_);
    int64_t nextId = history.empty() ? 1 : history.back().id + 1;
    for (size_t i = 0, known = history.size(); i < known; ++i) {
      if (history[i].state != TrialState::Running) continue;
      const std::string why = lostReason(history[i], now);
      if (why.empty()) continue;
      db_->execute("UPDATE trials SET state = 'FAILED', error = ?, finished = ? WHERE id = ?", {why, now, history[i].id});
      history[i].state = TrialState::Failed;
      history[i].error = why;
      history[i].finishedAt = now;
      if (attemptOf(history, history[i]) >= kMaxAttempts) continue;
      TrialRecord retry;
      retry.id = nextId++;
      retry.params = history[i].params;
      retry.overrides = history[i].overrides;
      retry.retryOf = history[i].id;
      insertTrial(*db_, retry);
      history.push_back(std::move(retry));
    }
    auto start = [&](TrialRecord& t) {
      t.state = TrialState::Running;
      t.worker = self_;
      t.startedAt = t.heartbeat = now;
      t.heartbeatTimeout = heartbeatTimeout_;
    };
    for (TrialRecord& t : history)
      if (t.state == TrialState::Queued) {
        start(t);
        db_->execute("UPDATE trials SET state = 'RUNNING', worker = ?, started = ?, heartbeat = ?, heartbeat_timeout = ? WHERE id = ?",
                     {self_, now, now, heartbeatTimeout_, t.id});
        claimed = t;
        return;
      }
    // A retry takes the slot of the trial it reruns.
    const auto slots = static_cast<int64_t>(std::count_if(history.begin(), history.end(), [](const TrialRecord& t) { return !t.retryOf; }));
    if (slots >= maxEvals) return;
    TrialRecord t;
    t.id = nextId;
    start(t);
    Rng rng(seed_ ^ (static_cast<uint64_t>(t.id) * 0x9E3779B97F4A7C15ull));
    t.params = sampler.propose(space_, history, rng);
    t.overrides = space_.overrides(t.params);
    insertTrial(*db_, t);
    claimed = std::move(t);
  });
  if (claimed) heartbeat_->watch(claimed->id);
  return claimed;
}

bool Study::report(int64_t trialId, int64_t step, double value) {
  bool ours = false;
  db_->transaction(true, [&] {
    ours = db_->execute("UPDATE trials SET heartbeat = ? WHERE id = ? AND state = 'RUNNING' AND worker = ?", {db_->now(), trialId, self_}) == 1;
    if (ours)
      db_->execute("INSERT INTO intermediate(trial, step, value) VALUES (?, ?, ?) ON CONFLICT(trial, step) DO UPDATE SET value = excluded.value",
                   {trialId, step, value});
  });
  return ours;
}

bool Study::finish(int64_t trialId, TrialState state, std::optional<double> value, double seconds, const std::string& error) {
  if (heartbeat_) heartbeat_->watch(0);
  bool ours = false;
  db_->transaction(true, [&] {
    ours = db_->execute("UPDATE trials SET state = ?, value = ?, seconds = ?, error = ?, finished = ? WHERE id = ? AND state = 'RUNNING' AND worker = ?",
                        {std::string(stateName(state)), optional(value), seconds, error, db_->now(), trialId, self_}) == 1;
  });
  return ours;
}

std::vector<TrialRecord> Study::trials() const {
  std::vector<TrialRecord> out;
  db_->transaction(false, [&] { out = readTrials(*db_); });
  return out;
}

std::vector<TrialRecord> readStudy(const std::string& url) {
  std::unique_ptr<Database> db = openExisting(url);
  std::vector<TrialRecord> out;
  db->transaction(false, [&] { out = readTrials(*db); });
  return out;
}

namespace {

// The space a study was created for (its canonical JSON text) and its
// trials, read in one snapshot.
std::pair<std::string, std::vector<TrialRecord>> readSpaceAndTrials(Database& db) {
  std::pair<std::string, std::vector<TrialRecord>> out;
  db.transaction(false, [&] {
    out.first = db.query("SELECT value FROM study WHERE key = 'space'").at(0).text(0);
    out.second = readTrials(db);
  });
  return out;
}

}  // namespace

std::vector<TrialSpec> bestTrialSpecs(const std::string& url, size_t count) {
  auto [space, trials] = readSpaceAndTrials(*openExisting(url));
  std::erase_if(trials, [](const TrialRecord& t) { return t.state != TrialState::Complete || !t.value; });
  if (trials.size() < count)
    throw StudyError(url + " holds " + std::to_string(trials.size()) + " complete trial(s), fewer than the " +
                     std::to_string(count) + " asked for");
  std::stable_sort(trials.begin(), trials.end(), [](const TrialRecord& a, const TrialRecord& b) { return *a.value < *b.value; });
  const nlohmann::json base = nlohmann::json::parse(space).at("base");
  std::vector<TrialSpec> out;
  for (size_t i = 0; i < count; ++i) out.push_back({trials[i].id, *trials[i].value, applyOverrides(base, trials[i].overrides)});
  return out;
}

size_t copyStudy(const std::string& from, const std::string& to) {
  namespace fs = std::filesystem;
  const StudyLocation dst = parseStudyUrl(to);
  const auto [space, trials] = readSpaceAndTrials(*openExisting(from));
  auto write = [&](Database& out) {
    out.transaction(true, [&] {
      const std::string held = createTables(out);
      const int64_t present = out.query("SELECT count(*) FROM trials").at(0).integer(0);
      if (present > 0) throw StudyError(to + " already holds " + std::to_string(present) + " trial(s); study copy needs an empty destination");
      if (held.empty()) out.execute("INSERT INTO study(key, value) VALUES ('space', ?)", {space});
      else if (held != space) throw StudyError(to + " holds a study of a different search space");
      for (const TrialRecord& t : trials) insertTrial(out, t);
    });
  };
  if (dst.kind == StudyLocation::Kind::PostgreSQL) {
    write(*openDatabase(dst, OpenMode::Create));
    return trials.size();
  }
  if (fs::exists(dst.path)) throw StudyError(to + " exists; study copy writes a new SQLite file");
  // Written beside it and renamed, so the destination never holds half a copy.
  StudyLocation tmp = dst;
  tmp.path = dst.path + ".tmp-" + std::to_string(::getpid());
  auto removeTmp = [&] {
    std::error_code ignored;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(tmp.path + suffix, ignored);
  };
  removeTmp();
  try {
    write(*openDatabase(tmp, OpenMode::Create));  // closed (WAL checkpointed and removed) before the rename
    fs::rename(tmp.path, dst.path);
  } catch (...) {
    removeTmp();
    throw;
  }
  return trials.size();
}

}  // namespace kiln::train::search
