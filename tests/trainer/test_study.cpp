// The study on both backends, a SQLite file and a private PostgreSQL server
// (postgres_fixture.h): strict URLs and clear connection errors, concurrent
// worker processes (no trial lost or duplicated, each proposal sees every
// finished trial), pruning from another worker's values, lost workers (a
// SIGKILLed one, a frozen one past the heartbeat timeout whose late result
// is refused), a server restart mid-search, study copy, and the CLI
// (search --workers, trials, study copy) on PostgreSQL.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <set>
#include <thread>

#include "tests/trainer/postgres_fixture.h"
#include "tests/trainer/search_test_util.h"

using namespace kiln::train;
using namespace kiln::train::search;
using namespace kiln::train::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A private server, or nullptr (with the reason printed) when the
// PostgreSQL binaries are not installed.
std::unique_ptr<PostgresServer> startServer() {
  const std::string why = PostgresServer::unavailable();
  if (!why.empty()) {
    WARN("PostgreSQL part skipped: " << why);
    return nullptr;
  }
  return std::make_unique<PostgresServer>();
}

// Study URLs on both backends: a SQLite file in `dir`, and study `name` on `server`.
std::vector<std::string> backends(const fs::path& dir, const PostgresServer* server, const std::string& name) {
  std::vector<std::string> urls = {"sqlite:///" + (dir / (name + ".db")).string()};
  if (server) urls.push_back(server->url(name));
  return urls;
}

// Runs `body` in a forked process that exits 0, or 1 when it throws.
pid_t spawn(const std::function<void()>& body) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int code = 0;
    try {
      body();
    } catch (const std::exception& e) {
      std::cerr << "worker " << ::getpid() << ": " << e.what() << "\n";
      code = 1;
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  return pid;
}

// The exit code of `pid`, -1 when a signal ended it.
int exitCode(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Polls the study until `done` holds for its trials (5 s at most).
bool waitFor(const std::string& url, const std::function<bool(const std::vector<TrialRecord>&)>& done) {
  for (int i = 0; i < 500; ++i) {
    try {
      if (done(readStudy(url))) return true;
    } catch (const StudyError&) {
      // not created yet
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

int64_t count(const std::vector<TrialRecord>& trials, const std::function<bool(const TrialRecord&)>& pred) {
  return std::count_if(trials.begin(), trials.end(), pred);
}

// Proposes a random x and, as "/seen", how many finished trials it was shown.
struct WitnessSampler : Sampler {
  Assignment propose(const SearchSpace&, const std::vector<TrialRecord>& history, Rng& rng) const override {
    return {{"/x", rng.uniform(-5, 5)}, {"/seen", static_cast<double>(count(history, [](const TrialRecord& t) { return t.finishedAt > 0; }))}};
  }
};

std::string capture(const std::string& cmd, int* code) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int status = ::pclose(p);
  *code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

}  // namespace

TEST_CASE("Study URLs are parsed strictly") {
  StudyLocation bare = parseStudyUrl("runs/s.db");
  CHECK(bare.kind == StudyLocation::Kind::SQLite);
  CHECK(bare.path == "runs/s.db");
  CHECK(parseStudyUrl("sqlite:///runs/s.db").path == "runs/s.db");  // SQLAlchemy's spelling: relative
  CHECK(parseStudyUrl("sqlite:////tmp/s.db").path == "/tmp/s.db");
  StudyLocation pg = parseStudyUrl("postgresql://kiln@db.example:5433/search?sslmode=disable&study=fmnist_1");
  CHECK(pg.kind == StudyLocation::Kind::PostgreSQL);
  CHECK(pg.study == "fmnist_1");
  CHECK(pg.conninfo == "postgresql://kiln@db.example:5433/search?sslmode=disable");
  CHECK(parseStudyUrl("postgres://h/db?study=a-b").conninfo == "postgres://h/db");
  for (const char* bad : {"", "sqlite://s.db", "sqlite:///", "mysql://h/db", "postgresql://h/db", "postgresql://h/db?study=",
                          "postgresql://h/db?study=a;drop", "postgresql://h?study=a", "postgresql://h/?study=a",
                          "postgresql://h/db?study=a&study=b"}) {
    INFO(bad);
    try {
      parseStudyUrl(bad);
      FAIL("accepted");
    } catch (const StudyError& e) {
      CHECK(std::string(e.what()).find(std::string("'") + bad + "'") != std::string::npos);
      CHECK(std::string(e.what()).find("expected") != std::string::npos);
    }
  }
}

TEST_CASE("Refused connections and bad URLs fail clearly and write nothing") {
  fs::path dir = scratch("badurl");
  SearchSpace space = quadraticSpace(dir);
  // libpq's own checks, and a server that is not there (a socket folder
  // without a socket, a closed port): errors at once, naming the URL.
  auto message = [&](const std::string& url) {
    try {
      Study study(url, space, 1);
    } catch (const StudyError& e) {
      return std::string(e.what());
    }
    return std::string("opened");
  };
  CHECK(message("postgresql://kiln@%2Fnone/postgres?study=s&bogus=1").find("invalid URI query parameter") != std::string::npos);
  const std::string noSocket = "postgresql://kiln@" + std::string("%2F") + "nonexistent_kiln_dir/postgres?study=s";
  CHECK(message(noSocket).find("cannot connect to study " + noSocket) != std::string::npos);
  const std::string closedPort = "postgresql://kiln@127.0.0.1:1/postgres?study=s";
  auto start = std::chrono::steady_clock::now();
  CHECK(message(closedPort).find("cannot connect to study " + closedPort) != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));  // no retrying a refused first connection
  CHECK_THROWS_AS(readStudy((dir / "absent.db").string()), StudyError);
  CHECK_FALSE(fs::exists(dir / "absent.db"));  // reading never creates

  const std::string bin = KILN_TRAIN_BINARY;
  int code = 0;
  std::string out = capture(bin + " search " + (dir / "space.json").string() + " --study mysql://h/db", &code);
  CHECK(code == 1);
  CHECK(out.find("bad study URL 'mysql://h/db'") != std::string::npos);
  out = capture(bin + " trials '" + closedPort + "'", &code);
  CHECK(code == 1);
  CHECK(out.find("cannot connect to study " + closedPort) != std::string::npos);
  out = capture(bin + " study copy " + (dir / "absent.db").string() + " sqlite:///" + (dir / "copy.db").string(), &code);
  CHECK(code == 1);
  CHECK_FALSE(fs::exists(dir / "copy.db"));
  CHECK(capture(bin + " study move a b", &code).find("usage: kiln-train study copy") != std::string::npos);
  CHECK(code == 2);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir)) left.push_back(e.path().filename().string());
  CHECK(left == std::vector<std::string>{"base.json"});
}

TEST_CASE("Four worker processes share a study: no trial lost or duplicated, every proposal sees every finished trial") {
  fs::path dir = scratch("workers");
  std::unique_ptr<PostgresServer> server = startServer();
  SearchSpace space = makeSpace(dir, {{"x", 0}, {"seen", 0}}, {{"/x", {{"uniform", {-5, 5}}}}, {"/seen", {{"uniform", {0, 1000}}}}});
  for (const std::string& url : backends(dir, server.get(), "workers")) {
    INFO(url);
    WitnessSampler sampler;
    MedianPruner pruner(1, 3);
    std::vector<pid_t> children;
    for (int w = 0; w < 4; ++w)
      children.push_back(spawn([&] {
        Study study(url, space, 9);
        runWorker(study, {80, &sampler, &pruner}, [](const json& spec, Trial& trial) {
          const double x = spec["x"].get<double>();
          double loss = 0;
          for (int64_t e = 0; e < 3; ++e) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
            trial.report(e, loss = (x - 1) * (x - 1) / double(e + 1), e == 2);
          }
          return loss;
        });
      }));
    for (pid_t pid : children) CHECK(exitCode(pid) == 0);
    std::vector<TrialRecord> trials = readStudy(url);
    REQUIRE(trials.size() == 80);
    std::set<std::string> workers;
    for (size_t i = 0; i < trials.size(); ++i) {
      const TrialRecord& t = trials[i];
      INFO("trial " << t.id << " " << stateName(t.state) << " " << t.error);
      CHECK(t.id == static_cast<int64_t>(i) + 1);
      CHECK((t.state == TrialState::Complete || t.state == TrialState::Pruned));
      CHECK(t.value.has_value());
      CHECK_FALSE(t.retryOf.has_value());
      workers.insert(t.worker);
      // The trials finished before this one was claimed are exactly those its proposal saw.
      const int64_t before = count(trials, [&](const TrialRecord& u) { return u.finishedAt <= *t.startedAt; });
      CHECK(t.overrides["/seen"].get<double>() == static_cast<double>(before));
    }
    CHECK(workers.size() == 4);
  }
}

TEST_CASE("The pruner reads the intermediate values another worker process wrote") {
  fs::path dir = scratch("crossprune");
  std::unique_ptr<PostgresServer> server = startServer();
  SearchSpace space = quadraticSpace(dir);
  for (const std::string& url : backends(dir, server.get(), "prune")) {
    INFO(url);
    RandomSampler sampler;
    MedianPruner pruner(1, 3);
    auto worker = [&](int64_t evals, double offset) {
      return spawn([&, evals, offset] {
        Study study(url, space, 3);
        runWorker(study, {evals, &sampler, &pruner}, [offset](const json&, Trial& trial) {
          double loss = 0;
          for (int64_t e = 0; e < 3; ++e) trial.report(e, loss = offset + 1.0 / double(e + 1), e == 2);
          return loss;
        });
      });
    };
    REQUIRE(exitCode(worker(3, 0)) == 0);  // three complete trials
    REQUIRE(exitCode(worker(4, 5)) == 0);  // a worse fourth, in another process with no trial of its own
    std::vector<TrialRecord> trials = readStudy(url);
    REQUIRE(trials.size() == 4);
    for (size_t i = 0; i < 3; ++i) CHECK(trials[i].state == TrialState::Complete);
    CHECK(trials[3].state == TrialState::Pruned);
    CHECK(trials[3].intermediate.size() == 2);  // stopped at step 1, the first after the warm-up
    CHECK(trials[3].worker != trials[0].worker);
  }
}

TEST_CASE("A lost worker's trial is failed and retried, and a frozen worker's late result is refused") {
  fs::path dir = scratch("lost");
  std::unique_ptr<PostgresServer> server = startServer();
  SearchSpace space = quadraticSpace(dir);
  const double timeout = 2;
  for (const std::string& url : backends(dir, server.get(), "lost")) {
    INFO(url);
    RandomSampler sampler;
    const fs::path go = dir / "go";
    fs::remove(go);
    // Trial 1: its worker is killed in the middle of it.
    pid_t killed = spawn([&] {
      Study study(url, space, 5, timeout);
      runWorker(study, {3, &sampler, nullptr}, [](const json&, Trial& trial) -> double {
        trial.report(0, 1.0, false);
        for (;;) ::pause();
      });
    });
    REQUIRE(waitFor(url, [](const auto& t) { return t.size() == 1 && !t[0].intermediate.empty(); }));
    ::kill(killed, SIGKILL);
    CHECK(exitCode(killed) == -1);
    // Trial 2, the retry of trial 1: its worker freezes (alive, no heartbeats)
    // and wakes up after the timeout.
    pid_t frozen = spawn([&] {
      Study study(url, space, 5, timeout);
      runWorker(study, {3, &sampler, nullptr}, [&](const json&, Trial& trial) {
        trial.report(0, 2.0, false);
        while (!fs::exists(go)) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        trial.report(1, 2.0, false);  // refused: throws TrialLost
        return 2.0;
      });
    });
    REQUIRE(waitFor(url, [](const auto& t) { return t.size() == 2 && !t[1].intermediate.empty(); }));
    ::kill(frozen, SIGSTOP);
    std::this_thread::sleep_for(std::chrono::duration<double>(timeout + 0.5));
    {
      Study study(url, space, 5, timeout);
      CHECK(runWorker(study, {3, &sampler, nullptr}, quadratic) == 3);  // the retry of trial 2, two new ones
    }
    ::kill(frozen, SIGCONT);
    std::ofstream(go.string()) << "go";
    CHECK(exitCode(frozen) == 0);

    std::vector<TrialRecord> t = readStudy(url);
    REQUIRE(t.size() == 5);
    CHECK(t[0].state == TrialState::Failed);
    CHECK(t[0].error.find("exited during the trial") != std::string::npos);
    CHECK(t[0].intermediate == std::map<int64_t, double>{{0, 1.0}});
    CHECK(t[1].state == TrialState::Failed);
    CHECK(t[1].error.find("no heartbeat for") != std::string::npos);
    CHECK(t[1].retryOf == 1);
    CHECK(t[1].intermediate == std::map<int64_t, double>{{0, 2.0}});  // the late report was refused
    CHECK(t[2].retryOf == 2);
    CHECK(t[2].params == t[0].params);
    for (size_t i = 2; i < 5; ++i) CHECK(t[i].state == TrialState::Complete);
    CHECK_FALSE(t[3].retryOf.has_value());
  }
}

TEST_CASE("A study file from before heartbeats is upgraded and its dead worker's trial retried") {
  fs::path dir = scratch("oldfile");
  SearchSpace space = quadraticSpace(dir);
  StudyLocation loc = parseStudyUrl((dir / "old.db").string());
  {
    // The schema and rows the previous version wrote: a trial left RUNNING by a process that is gone.
    std::unique_ptr<Database> db = openDatabase(loc, OpenMode::Create);
    db->transaction(true, [&] {
      db->execute("CREATE TABLE study(key TEXT PRIMARY KEY, value TEXT NOT NULL)");
      db->execute("CREATE TABLE trials(id INTEGER PRIMARY KEY, state TEXT NOT NULL, worker TEXT, overrides TEXT NOT NULL, value REAL,"
                  " seconds REAL NOT NULL DEFAULT 0, error TEXT, started REAL, finished REAL NOT NULL DEFAULT 0)");
      db->execute("CREATE TABLE params(trial INTEGER NOT NULL REFERENCES trials(id), label TEXT NOT NULL, value REAL NOT NULL, PRIMARY KEY(trial, label))");
      db->execute("CREATE TABLE intermediate(trial INTEGER NOT NULL REFERENCES trials(id), step INTEGER NOT NULL, value REAL NOT NULL,"
                  " PRIMARY KEY(trial, step))");
      db->execute("INSERT INTO study VALUES ('space', ?)", {space.canonical().dump()});
      db->execute("INSERT INTO trials(id, state, worker, overrides, started) VALUES (1, 'RUNNING', '999999999:1', '{\"/x\":1.0,\"/y\":2.0}', 1)");
      db->execute("INSERT INTO params VALUES (1, '/x', 1.0), (1, '/y', 2.0)");
    });
  }
  Study study(loc.path, space, 1);
  RandomSampler sampler;
  CHECK(runWorker(study, {2, &sampler, nullptr}, quadratic) == 2);
  std::vector<TrialRecord> t = study.trials();
  REQUIRE(t.size() == 3);
  CHECK(t[0].state == TrialState::Failed);
  CHECK(t[1].retryOf == 1);
  CHECK(t[1].params == Assignment{{"/x", 1.0}, {"/y", 2.0}});
  REQUIRE(t[1].value.has_value());
  CHECK(*t[1].value == Approx(0.3 * 0.3 + 4.1 * 4.1));
}

TEST_CASE("Workers ride out a PostgreSQL server restart") {
  fs::path dir = scratch("restart");
  std::unique_ptr<PostgresServer> server = startServer();
  if (!server) return;
  SearchSpace space = quadraticSpace(dir);
  const std::string url = server->url("restart");
  TpeSampler sampler;
  std::vector<pid_t> children;
  for (int w = 0; w < 2; ++w)
    children.push_back(spawn([&] {
      Study study(url, space, 2, 5);
      runWorker(study, {30, &sampler, nullptr}, [](const json& spec, Trial& trial) {
        for (int64_t e = 0; e < 3; ++e) {
          std::this_thread::sleep_for(std::chrono::milliseconds(30));
          trial.report(e, 1.0 / double(e + 1), e == 2);
        }
        return quadratic(spec, trial);
      });
    }));
  int64_t finishedBefore = 0;
  REQUIRE(waitFor(url, [&](const auto& t) { return (finishedBefore = count(t, [](const TrialRecord& r) { return r.finishedAt > 0; })) >= 4; }));
  server->stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  server->start();
  for (pid_t pid : children) CHECK(exitCode(pid) == 0);
  std::vector<TrialRecord> t = readStudy(url);
  CHECK(finishedBefore < 30);
  CHECK(count(t, [](const TrialRecord& r) { return r.state == TrialState::Complete; }) == 30);
  // A commit whose answer the restart swallowed may leave a trial behind:
  // it is failed and retried, never lost.
  for (const TrialRecord& r : t)
    if (r.state != TrialState::Complete)
      CHECK((r.state == TrialState::Failed && count(t, [&](const TrialRecord& u) { return u.retryOf == r.id; }) == 1));
}

TEST_CASE("study copy moves a study between SQLite and PostgreSQL, into empty destinations only") {
  fs::path dir = scratch("copy");
  std::unique_ptr<PostgresServer> server = startServer();
  SearchSpace space = quadraticSpace(dir);
  const std::string src = "sqlite:///" + (dir / "src.db").string();
  {
    Study study(src, space, 4);
    RandomSampler sampler;
    MedianPruner pruner(1, 2);
    runWorker(study, {6, &sampler, &pruner}, [](const json&, Trial& trial) {
      const int64_t id = trial.record().id;
      if (id == 4) throw std::runtime_error("diverged");
      double loss = 0;
      for (int64_t e = 0; e < 3; ++e) trial.report(e, loss = 1.0 / double(e + 1) + (id > 2 ? 1.0 : 0.0), e == 2);
      return loss;
    });
  }
  const std::vector<TrialRecord> original = readStudy(src);
  REQUIRE(original.size() == 6);
  auto same = [&](const std::vector<TrialRecord>& copy) {
    REQUIRE(copy.size() == original.size());
    for (size_t i = 0; i < copy.size(); ++i) {
      const TrialRecord &a = original[i], &b = copy[i];
      CHECK(a.id == b.id);
      CHECK(a.state == b.state);
      CHECK(a.params == b.params);
      CHECK(a.overrides == b.overrides);
      CHECK(a.value == b.value);
      CHECK(a.intermediate == b.intermediate);
      CHECK(a.seconds == b.seconds);
      CHECK(a.error == b.error);
      CHECK(a.worker == b.worker);
      CHECK(a.startedAt == b.startedAt);
      CHECK(a.finishedAt == b.finishedAt);
    }
  };
  std::string middle = "sqlite:///" + (dir / "direct.db").string();
  if (server) middle = server->url("copied");
  CHECK(copyStudy(src, middle) == 6);
  same(readStudy(middle));
  const std::string back = "sqlite:///" + (dir / "back.db").string();
  CHECK(copyStudy(middle, back) == 6);
  same(readStudy(back));
  CHECK_FALSE(fs::exists(dir / ("back.db.tmp-" + std::to_string(::getpid()))));
  // Non-empty destinations are refused and left as they were.
  CHECK_THROWS_WITH(copyStudy(src, middle), Catch::Contains("already holds 6 trial(s)") || Catch::Contains("exists"));
  CHECK_THROWS_WITH(copyStudy(src, back), Catch::Contains("exists"));
  same(readStudy(middle));
  // The copy is a study like any other: a worker resumes it.
  Study resumed(middle, space, 4);
  RandomSampler sampler;
  CHECK(runWorker(resumed, {8, &sampler, nullptr}, quadratic) == 2);
  CHECK(readStudy(middle).size() == 8);
  CHECK(readStudy(src).size() == 6);
}

TEST_CASE("kiln-train search --workers, trials and study copy on PostgreSQL") {
  if (!fs::exists("/usr/share/datasets/fashion-mnist")) {
    WARN("dataset-fashion-mnist is not installed; skipped");
    return;
  }
  std::unique_ptr<PostgresServer> server = startServer();
  if (!server) return;
  fs::path dir = scratch("pgcli");
  std::ofstream(dir / "tiny.json") << R"({"name": "tiny", "input_shape": [28, 28, 1],
    "layers": [{"type": "MaxPooling2D", "pool_size": 4}, {"type": "Flatten"}, {"type": "Dense", "units": 10, "activation": "softmax"}],
    "training": {"batch_size": 32, "validation_size": 200, "optimizer": {"type": "adam"}}})";
  std::ofstream(dir / "space.json") << R"({"base": "tiny.json", "params": {
    "/training/optimizer/learning_rate": {"loguniform": [1e-3, 1e-1]}}})";
  const std::string bin = KILN_TRAIN_BINARY, url = "'" + server->url("cli") + "'";
  int code = 0;
  std::string out = capture(bin + " search " + (dir / "space.json").string() + " --study " + url +
                                " --train-limit 300 --epochs 1 --workers 2 --max-evals 3 --heartbeat-timeout 10",
                            &code);
  INFO(out);
  REQUIRE(code == 0);
  CHECK(out.find("best trial") != std::string::npos);
  const std::string listed = capture(bin + " trials " + url, &code);
  REQUIRE(code == 0);
  CHECK(std::count(listed.begin(), listed.end(), '\n') == 4);  // header + 3 trials
  CHECK(std::count(listed.begin(), listed.end(), 'C') >= 3);   // COMPLETE
  const std::string copy = "sqlite:///" + (dir / "copy.db").string();
  CHECK(capture(bin + " study copy " + url + " " + copy, &code).find("copied 3 trial(s)") != std::string::npos);
  CHECK(code == 0);
  CHECK(capture(bin + " trials " + copy, &code) == listed);
  out = capture(bin + " study copy " + copy + " " + url, &code);
  CHECK(code == 1);
  CHECK(out.find("already holds 3 trial(s)") != std::string::npos);
}
