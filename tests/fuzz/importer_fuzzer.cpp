// libFuzzer entry point over the ONNX importer: arbitrary bytes must either
// import or fail with kiln::Error. Any other exception, crash, sanitizer
// report, timeout or out-of-memory is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "frontends/onnx/onnx_importer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    kiln::onnx_import::importModelBytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz-input");
  } catch (const kiln::Error&) {
    // The expected rejection of a malformed model.
  }
  return 0;
}
