// NumPy .npy I/O for kiln tensors, and the atomic file writer the tools use.
//
// Reads format versions 1.0, 2.0 and 3.0; writes 1.0 (2.0 only when the
// header would not fit 1.0's 16-bit length). Little-endian, C order only:
// <f4, <i8, <i4 and |b1. Every problem with a file is a kiln::Error whose
// site names the file.
#pragma once

#include <string>
#include <string_view>

#include "compiler/ir/tensor.h"

namespace kiln::npy {

// Parses the bytes of a .npy file; `displayName` names it in errors.
Tensor parse(std::string_view bytes, const std::string& displayName);
// Reads and parses the .npy file at `path`.
Tensor readFile(const std::string& path);

// The complete .npy encoding (header + data) of `t`.
std::string encode(const Tensor& t);
// Writes `t` to `path` atomically (see writeFileAtomically).
void writeFile(const std::string& path, const Tensor& t);

}  // namespace kiln::npy

namespace kiln {

// Writes `bytes` to a temporary file in the folder of `path`, flushes it to
// disk and renames it over `path`, so readers never see a half-written file
// and a failure leaves any previous file in place. Throws kiln::Error.
void writeFileAtomically(const std::string& path, std::string_view bytes);

}  // namespace kiln
