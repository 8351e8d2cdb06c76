// Writing the trainer's output files (exported ONNX models, member states)
// so that a failure or a kill never leaves a half-written file under the
// final name.
#pragma once

#include <string>

namespace kiln::train {

// Writes `bytes` to a temporary file beside `path` and renames it over
// `path`. Throws std::runtime_error naming the file.
void writeFileReplacing(const std::string& path, const std::string& bytes);

}  // namespace kiln::train
