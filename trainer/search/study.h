// A study: every trial of one search, in a SQLite file or a PostgreSQL
// database (database.h; chosen by URL), shared by worker processes on one
// machine or many. The rules below are the same for both backends.
//
// Tables: study(key, value) holds the space the study was created for;
// trials(id, state, worker, overrides, value, seconds, error, started,
// finished, heartbeat, heartbeat_timeout, retry_of); params(trial, label,
// value) the internal coordinates the samplers learn from;
// intermediate(trial, step, value) per-epoch losses.
//
// Claiming is one write transaction (exclusive among the study's writers):
// two workers never take the same id and each proposal sees every trial
// finished before it.
//
// Lost workers: a Running trial records its worker ("pid:starttime@host",
// host = kernel boot id + pid namespace) and a heartbeat that a thread of
// the worker refreshes every timeout/4 (and report() too). Its worker
// counts as lost when the heartbeat is older than the worker's timeout, or
// at once when the worker ran on this host and its process is gone (no such
// pid, a zombie, or a pid reused with another start time). The next claim
// marks a lost worker's trial Failed (its intermediate values kept) and
// queues a retry with the same parameters that takes its slot in
// --max-evals (at most kMaxAttempts runs of one parameter set); the retry
// runs before anything new is proposed. A lost worker that comes back finds
// its trial taken: its reports and result are refused. A trial whose
// objective threw is Failed and stays so (it counts toward --max-evals, so a
// broken corner of the space cannot loop forever).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "trainer/search/database.h"
#include "trainer/search/samplers.h"
#include "trainer/search/space.h"
#include "trainer/search/trial.h"

namespace kiln::train::search {

constexpr int kMaxAttempts = 3;
constexpr double kDefaultHeartbeatTimeout = 60;

class Heartbeat;

class Study {
 public:
  // Opens or creates the study at `url` (database.h) for `space` (an
  // existing study of another space is an error). `seed` and the trial id
  // seed each proposal. This worker's trials count as lost after
  // `heartbeatTimeout` seconds without a heartbeat.
  Study(const std::string& url, const SearchSpace& space, uint64_t seed, double heartbeatTimeout = kDefaultHeartbeatTimeout);
  ~Study();
  Study(const Study&) = delete;
  Study& operator=(const Study&) = delete;

  // The next trial for this process, marked Running: a queued retry first,
  // else a new proposal while the study has fewer than `maxEvals` slots
  // taken; nullopt when there is nothing left to run. Fails lost workers'
  // trials first.
  std::optional<TrialRecord> claim(const Sampler& sampler, int64_t maxEvals);
  // Stores an intermediate value; false when the trial is no longer this
  // worker's (it was taken as lost) and nothing was stored.
  bool report(int64_t trialId, int64_t step, double value);
  // Stores the result; false (nothing stored) as for report.
  bool finish(int64_t trialId, TrialState state, std::optional<double> value, double seconds, const std::string& error);
  std::vector<TrialRecord> trials() const;
  const SearchSpace& space() const { return space_; }
  const std::string& worker() const { return self_; }

 private:
  std::unique_ptr<Database> db_;
  const SearchSpace& space_;
  uint64_t seed_;
  double heartbeatTimeout_;
  std::string self_;
  std::unique_ptr<Heartbeat> heartbeat_;  // started by the first claim
};

// Every trial of an existing study, by id (kiln-train trials).
std::vector<TrialRecord> readStudy(const std::string& url);

// A complete trial's model spec: the study's stored base spec with the
// trial's overrides written in, so members can be retrained from the study
// alone (kiln-train ensemble --study).
struct TrialSpec {
  int64_t id = 0;
  double value = 0;  // its validation loss
  nlohmann::json spec;
};

// The `count` complete trials with the lowest validation loss, best first;
// a StudyError when the study holds fewer.
std::vector<TrialSpec> bestTrialSpecs(const std::string& url, size_t count);

// Copies the study at `from` (every trial with its parameters, intermediate
// values and state) into `to`, which must hold no trials: one transaction
// on a PostgreSQL destination; a SQLite destination must not exist and is
// written to a temporary file renamed into place. Returns the trials copied.
size_t copyStudy(const std::string& from, const std::string& to);

// "pid:starttime" of a process (Linux /proc), empty when it is gone or a zombie.
std::string processIdentity(long pid);

}  // namespace kiln::train::search
