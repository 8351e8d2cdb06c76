// Running compiled artifacts and ensembles through the runtime's C API, for
// `kiln predict` and `kiln run ARTIFACT.so`.
#pragma once

#include <cstdint>

#include "tools/run_io.h"

namespace kiln::cli {

struct RuntimeSettings {
  bool checkFinite = false;
  bool topClassesByDefault = false;  // `kiln predict`: top 3 classes of classifiers without --top-k
};

// Loads the artifact at request.modelPath with the runtime (all its loader
// checks), runs it on the request's inputs and finishes like `kiln run`.
// Labels embedded in the artifact name the classes unless --labels is given.
int runCompiledArtifact(RunRequest request, const RuntimeSettings& settings);

}  // namespace kiln::cli
