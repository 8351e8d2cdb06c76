// Passes rewrite a Graph in place. Each pass lives in its own file, opening
// with a comment saying what it rewrites and why that is legal, and exposes
// one PassDef; pipeline.cpp lists them and defines the -O pipelines.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "compiler/ir/graph.h"

namespace kiln {

// Counters a pass reports ("nodes removed", "BN folded", ...), printed by
// `kiln inspect --after-passes` and checked by tests.
class PassStats {
 public:
  void add(const std::string& counter, int64_t n = 1) { counters_[counter] += n; }
  int64_t get(const std::string& counter) const {
    auto it = counters_.find(counter);
    return it == counters_.end() ? 0 : it->second;
  }
  const std::map<std::string, int64_t>& all() const { return counters_; }

 private:
  std::map<std::string, int64_t> counters_;
};

// What the pipeline's driver tells passes about the target without the IR
// knowing the backend.
struct PassOptions {
  // Channel block of the blocked NCHWc layout the layout pass may choose
  // (the target's f32 vector width: 16 AVX-512, 8 AVX2, 4 NEON/SSE); 0
  // keeps every value plain.
  int channelBlock = 0;
};

struct PassDef {
  std::string name;     // command-line name, e.g. "fold-batchnorm"
  std::string summary;  // one line for --help
  std::function<void(Graph&, PassStats&, const PassOptions&)> run;
};

}  // namespace kiln
