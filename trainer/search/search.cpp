// The worker loop, the forking driver and the trials table (see search.h).
#include "trainer/search/search.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <set>
#include <thread>

namespace kiln::train::search {

void Trial::report(int64_t step, double value, bool lastStep) {
  if (!study_.report(record_.id, step, value)) throw TrialLost{};
  record_.intermediate[step] = value;
  if (lastStep || !pruner_) return;
  if (pruner_->shouldPrune(record_, step, study_.trials())) throw TrialPruned{};
}

int64_t runWorker(Study& study, const SearchConfig& cfg, const Objective& objective) {
  int64_t ran = 0;
  while (std::optional<TrialRecord> claimed = study.claim(*cfg.sampler, cfg.maxEvals)) {
    Trial trial(study, cfg.pruner, std::move(*claimed));
    const int64_t id = trial.record().id;
    auto start = std::chrono::steady_clock::now();
    auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
    bool stored = false;
    try {
      double loss = objective(study.space().apply(trial.record().overrides), trial);
      if (std::isfinite(loss)) stored = study.finish(id, TrialState::Complete, loss, seconds(), "");
      else stored = study.finish(id, TrialState::Failed, std::nullopt, seconds(), "non-finite validation loss");
    } catch (const TrialPruned&) {
      stored = study.finish(id, TrialState::Pruned, trial.record().intermediate.rbegin()->second, seconds(), "");
    } catch (const TrialLost&) {
    } catch (const std::exception& e) {
      stored = study.finish(id, TrialState::Failed, std::nullopt, seconds(), e.what());
    }
    if (!stored)
      std::cerr << "kiln-train: worker " << study.worker() << ": trial " << id
                << " was taken over after a late heartbeat; its result is dropped\n";
    ++ran;
  }
  return ran;
}

namespace {

// Prints the rows of trials that finished since the last call, in finishing order.
void printNewRows(const std::vector<TrialRecord>& trials, std::set<int64_t>& printed, std::ostream& table) {
  std::vector<const TrialRecord*> done;
  for (const TrialRecord& t : trials)
    if (t.finishedAt > 0 && !printed.count(t.id)) done.push_back(&t);
  std::sort(done.begin(), done.end(), [](const TrialRecord* a, const TrialRecord* b) { return a->finishedAt < b->finishedAt; });
  for (const TrialRecord* t : done) {
    table << tableRow(*t) << std::flush;
    printed.insert(t->id);
  }
}

// `v` with every float rounded to 4 significant digits, for display.
nlohmann::json rounded(const nlohmann::json& v) {
  if (v.is_number_float()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", v.get<double>());
    return std::stod(buf);
  }
  nlohmann::json out = v;
  if (v.is_structured())
    for (auto it = out.begin(); it != out.end(); ++it) *it = rounded(*it);
  return out;
}

// One override as the table shows it: its value, or for a long structured
// one (a choice between layer lists, say) the option drawn and the values
// sampled inside it, which is what differs between trials
// ("layers[1]: 0/filters=64 7/rate=0.14"), not the whole tree.
std::string shownOverride(const std::string& path, const nlohmann::json& value, const Assignment& params) {
  const std::string whole = path.substr(1) + "=" + rounded(value).dump();
  const auto choice = params.find(path);
  if (!value.is_structured() || whole.size() <= 120 || choice == params.end()) return whole;
  const std::string option = path + "[" + std::to_string(static_cast<int64_t>(choice->second)) + "]";
  std::string out = option.substr(1) + ":";
  for (const auto& [label, x] : params)
    if (label.rfind(option + "/", 0) == 0)
      out += " " + label.substr(option.size() + 1) + "=" +
             (std::floor(x) == x ? nlohmann::json(static_cast<int64_t>(x)) : rounded(x)).dump();
  return out;
}

}  // namespace

int runWorkers(const std::string& url, const SearchSpace& space, uint64_t seed, const SearchConfig& cfg, int workers,
               const Objective& objective, std::ostream& table, double heartbeatTimeout) {
  std::set<int64_t> printed;
  {
    // Creates or checks the study, then closes: SQLite keeps per-process
    // lock bookkeeping and libpq a socket that a forked child would inherit
    // from an open connection, so none is open across fork.
    Study study(url, space, seed, heartbeatTimeout);
    for (const TrialRecord& t : study.trials())
      if (t.finishedAt > 0) printed.insert(t.id);  // rows of an earlier run are not news
  }
  table << tableHeader() << std::flush;
  std::vector<pid_t> children;
  for (int w = 0; w < workers; ++w) {
    std::cout.flush();
    pid_t pid = ::fork();
    if (pid < 0) throw StudyError("fork failed");
    if (pid == 0) {
      // The child opens its own connection and leaves with _exit, running
      // no destructor of the parent's objects.
      int code = 0;
      try {
        Study study(url, space, seed, heartbeatTimeout);
        runWorker(study, cfg, objective);
      } catch (const std::exception& e) {
        std::cerr << "kiln-train: worker " << ::getpid() << ": " << e.what() << "\n";
        code = 1;
      }
      std::fflush(nullptr);
      ::_exit(code);
    }
    children.push_back(pid);
  }
  Study watcher(url, space, seed, heartbeatTimeout);
  int failed = 0;
  while (!children.empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    printNewRows(watcher.trials(), printed, table);
    for (auto it = children.begin(); it != children.end();) {
      int status = 0;
      if (::waitpid(*it, &status, WNOHANG) == *it) {
        failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        it = children.erase(it);
      } else {
        ++it;
      }
    }
  }
  printNewRows(watcher.trials(), printed, table);
  return failed;
}

std::string tableHeader() { return "trial  state       val_loss  epochs     time  params\n"; }

std::string tableRow(const TrialRecord& t) {
  char head[128];
  char loss[32] = "-";
  if (t.value) std::snprintf(loss, sizeof loss, "%.4f", *t.value);
  std::snprintf(head, sizeof head, "%5lld  %-9s  %8s  %6zu  %6.1fs ", static_cast<long long>(t.id), stateName(t.state), loss,
                t.intermediate.size(), t.seconds);
  std::string row = head;
  for (const auto& [path, value] : t.overrides.items()) row += " " + shownOverride(path, value, t.params);
  if (!t.error.empty()) row += "  error: " + t.error;
  return row + "\n";
}

std::vector<TrialRecord> rankTrials(std::vector<TrialRecord> trials) {
  auto rank = [](const TrialRecord& t) { return t.state == TrialState::Complete ? 0 : t.state == TrialState::Pruned ? 1 : 2; };
  std::stable_sort(trials.begin(), trials.end(), [&](const TrialRecord& a, const TrialRecord& b) {
    if (rank(a) != rank(b)) return rank(a) < rank(b);
    if (rank(a) < 2) return *a.value < *b.value;
    return a.id < b.id;
  });
  return trials;
}

}  // namespace kiln::train::search
