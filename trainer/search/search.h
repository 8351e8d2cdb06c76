// Running a search: the objective interface, the worker loop over a study,
// the multi-process driver with its live table, and the table rows that
// `kiln-train trials` prints too.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "trainer/search/pruners.h"
#include "trainer/search/samplers.h"
#include "trainer/search/study.h"

namespace kiln::train::search {

// Thrown by Trial::report when the pruner stops the trial; not a
// std::exception, so an objective's own error handling lets it pass.
struct TrialPruned {};
// Thrown by Trial::report when the study took the trial from this worker
// (its heartbeat was late): the worker drops it and claims the next.
struct TrialLost {};

class Trial {
 public:
  Trial(Study& study, const Pruner* pruner, TrialRecord record) : study_(study), pruner_(pruner), record_(std::move(record)) {}
  const TrialRecord& record() const { return record_; }
  // Stores the validation loss after epoch `step` (0-based); throws
  // TrialPruned when the pruner stops the trial, never at the last step
  // (the training is done by then); throws TrialLost as said above.
  void report(int64_t step, double value, bool lastStep);

 private:
  Study& study_;
  const Pruner* pruner_;
  TrialRecord record_;
};

// The validation loss of the model spec `spec` (base + the trial's
// overrides), reporting per-epoch losses through `trial`.
using Objective = std::function<double(const nlohmann::json& spec, Trial& trial)>;

struct SearchConfig {
  int64_t maxEvals = 10;  // trials in the study, earlier runs' included
  const Sampler* sampler = nullptr;
  const Pruner* pruner = nullptr;  // none when null
};

// Claims and runs trials in this process until the study is done; returns
// how many it ran.
int64_t runWorker(Study& study, const SearchConfig& cfg, const Objective& objective);

// Forks `workers` processes that each open the study at `url` (study.h) and
// run runWorker; meanwhile prints one table row per finished trial to
// `table`. Returns the number of workers that failed.
int runWorkers(const std::string& url, const SearchSpace& space, uint64_t seed, const SearchConfig& cfg, int workers,
               const Objective& objective, std::ostream& table, double heartbeatTimeout = kDefaultHeartbeatTimeout);

std::string tableHeader();
std::string tableRow(const TrialRecord& t);
// Complete trials by validation loss, then pruned ones by their last loss,
// then the rest by id.
std::vector<TrialRecord> rankTrials(std::vector<TrialRecord> trials);

}  // namespace kiln::train::search
