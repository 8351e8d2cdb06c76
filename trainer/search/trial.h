// One trial of a study as stored in the study file (study.h) and read by the
// samplers and pruners.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "trainer/search/space.h"

namespace kiln::train::search {

// Queued: a retry of a trial whose worker was lost, waiting to run with its
// parameters; Pruned: stopped early by the pruner, `value` is its last
// intermediate value; Failed: the objective threw or its worker was lost
// (message in `error`).
enum class TrialState { Queued, Running, Complete, Pruned, Failed };

const char* stateName(TrialState s);
TrialState parseState(const std::string& name);

struct TrialRecord {
  int64_t id = 0;  // 1, 2, ... in creation order
  TrialState state = TrialState::Queued;
  Assignment params;             // internal coordinates (choice indices)
  nlohmann::json overrides;      // the values written into the base spec
  std::optional<double> value;   // validation loss (Complete, Pruned)
  std::map<int64_t, double> intermediate;  // epoch (0-based) -> validation loss
  double seconds = 0;            // objective run time
  std::optional<double> startedAt;  // unix time the current or last run started
  double finishedAt = 0;         // unix time; 0 while unfinished
  std::string error;
  std::string worker;            // "pid:starttime@host" of the running process (study.h)
  std::optional<double> heartbeat;  // unix time (the database's clock) of the last sign of life
  double heartbeatTimeout = 0;   // seconds without one after which the worker counts as lost
  std::optional<int64_t> retryOf;  // the lost trial this one reruns
};

}  // namespace kiln::train::search
