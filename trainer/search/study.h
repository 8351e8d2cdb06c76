// A study file: every trial of one search in SQLite, shared by worker
// processes on one machine. WAL journal (readers never block the writer),
// a busy timeout plus retries of whole IMMEDIATE transactions, one
// connection per process (never inherited across fork).
//
// Tables: study(key, value) holds the space the study was created for;
// trials(id, state, worker, overrides, value, seconds, error, started,
// finished); params(trial, label, value) the internal coordinates the
// samplers learn from; intermediate(trial, step, value) per-epoch losses.
//
// Resume rule: a Running trial whose worker process is gone (no such pid,
// a zombie, or a pid reused by a process with another start time) is put
// back to Queued with its parameters and its intermediate values cleared;
// the next claim re-runs it before proposing anything new. A trial whose
// objective threw is Failed and stays so (it counts toward --max-evals, so a
// broken corner of the space cannot loop forever).
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "trainer/search/samplers.h"
#include "trainer/search/space.h"
#include "trainer/search/trial.h"

struct sqlite3;

namespace kiln::train::search {

struct StudyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Study {
 public:
  // Opens or creates the study at `path` for `space` (an existing study of
  // another space is an error). `seed` and the trial id seed each proposal.
  Study(const std::string& path, const SearchSpace& space, uint64_t seed);
  ~Study();
  Study(const Study&) = delete;
  Study& operator=(const Study&) = delete;

  // The next trial for this process, marked Running: a re-queued one first,
  // else a new proposal while the study has fewer than `maxEvals` trials;
  // nullopt when there is nothing left to run.
  std::optional<TrialRecord> claim(const Sampler& sampler, int64_t maxEvals);
  void report(int64_t trialId, int64_t step, double value);
  void finish(int64_t trialId, TrialState state, std::optional<double> value, double seconds, const std::string& error);
  std::vector<TrialRecord> trials() const;
  const SearchSpace& space() const { return space_; }

 private:
  sqlite3* db_ = nullptr;
  const SearchSpace& space_;
  uint64_t seed_;
  std::string self_;  // this process as "pid:starttime"
};

// Every trial of an existing study file, by id (kiln-train trials).
std::vector<TrialRecord> readStudy(const std::string& path);

// "pid:starttime" of a process (Linux /proc), empty when it is gone or a zombie.
std::string processIdentity(long pid);

}  // namespace kiln::train::search
