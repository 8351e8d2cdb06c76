// Element types, shapes and layouts: the static type of every IR value.
//
// Shapes are static except the leading batch dimension, which may be the
// symbolic `kBatch`. Layout is part of the type so that a later layout pass
// (blocked NCHWc for the backend) only changes types, never the graph shape.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

enum class DType : uint8_t { F32, I64, I32, Bool };

size_t dtypeSize(DType t);
const char* dtypeName(DType t);  // "f32", "i64", ...

// The symbolic batch dimension. Only dim 0 may be symbolic.
inline constexpr int64_t kBatch = -1;

// Upper bound on any single tensor, in bytes; larger declared shapes are
// rejected as malformed rather than attempted.
inline constexpr int64_t kMaxTensorBytes = int64_t{1} << 34;

struct Shape {
  std::vector<int64_t> dims;

  Shape() = default;
  Shape(std::initializer_list<int64_t> d) : dims(d) {}
  explicit Shape(std::vector<int64_t> d) : dims(std::move(d)) {}

  size_t rank() const { return dims.size(); }
  int64_t operator[](size_t i) const { return dims[i]; }
  int64_t& operator[](size_t i) { return dims[i]; }
  bool operator==(const Shape&) const = default;

  bool hasSymbolicBatch() const { return !dims.empty() && dims[0] == kBatch; }
  bool isStatic() const { return !hasSymbolicBatch(); }

  // Element count with overflow-checked multiplication. Throws kiln::Error
  // for symbolic or overflowing shapes.
  int64_t numElements() const;
  // Product of dims [begin, end); the range must be static.
  int64_t product(size_t begin, size_t end) const;

  // The same shape with the symbolic batch replaced by `batch`.
  Shape withBatch(int64_t batch) const;

  // "Nx3x224x224"; "scalar" for rank 0.
  std::string str() const;
};

// Normalizes a possibly negative axis into [0, rank); throws on out of range.
size_t normalizeAxis(int64_t axis, size_t rank);

enum class Layout : uint8_t {
  Plain,   // row-major in the logical dim order (NCHW for images)
  NCHWc,   // channels split into blocks of `block`, innermost (backend)
};

struct TensorType {
  DType dtype = DType::F32;
  Shape shape;
  Layout layout = Layout::Plain;
  int block = 0;  // channel block for NCHWc

  bool operator==(const TensorType&) const = default;
  // The dims as laid out in memory: NCHWc stores [N, ceil(C/c), H, W, c]
  // (channels padded to whole blocks, the pad lanes zero), Plain the shape
  // itself. Sizes of buffers come from this, never from `shape`.
  Shape storageShape() const;
  // "f32[Nx3x32x32]" (+ " NCHW16c" when blocked)
  std::string str() const;
};

}  // namespace kiln
