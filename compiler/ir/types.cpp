#include "compiler/ir/types.h"

#include "compiler/ir/error.h"

namespace kiln {

size_t dtypeSize(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::I64: return 8;
    case DType::I32: return 4;
    case DType::Bool: return 1;
  }
  return 0;
}

const char* dtypeName(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::I64: return "i64";
    case DType::I32: return "i32";
    case DType::Bool: return "bool";
  }
  return "?";
}

int64_t Shape::product(size_t begin, size_t end) const {
  int64_t n = 1;
  for (size_t i = begin; i < end; ++i) {
    int64_t d = dims[i];
    if (d == kBatch) throw Error("shape " + str() + " has a symbolic batch dimension where a static size is needed");
    if (d < 0) throw Error("shape " + str() + " has a negative dimension");
    if (__builtin_mul_overflow(n, d, &n)) throw Error("shape " + str() + " overflows 64-bit element count");
  }
  return n;
}

int64_t Shape::numElements() const { return product(0, dims.size()); }

Shape Shape::withBatch(int64_t batch) const {
  Shape s = *this;
  if (s.hasSymbolicBatch()) s.dims[0] = batch;
  return s;
}

std::string Shape::str() const {
  if (dims.empty()) return "scalar";
  std::string out;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) out += 'x';
    out += dims[i] == kBatch ? std::string("N") : std::to_string(dims[i]);
  }
  return out;
}

size_t normalizeAxis(int64_t axis, size_t rank) {
  int64_t r = static_cast<int64_t>(rank);
  if (axis < -r || axis >= r)
    throw Error("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return static_cast<size_t>(axis < 0 ? axis + r : axis);
}

Shape TensorType::storageShape() const {
  if (layout != Layout::NCHWc) return shape;
  if (shape.rank() < 2 || block <= 0) throw Error("NCHWc type " + str() + " needs rank >= 2 and a block");
  Shape s = shape;
  s.dims[1] = (shape[1] + block - 1) / block;
  s.dims.push_back(block);
  return s;
}

std::string TensorType::str() const {
  std::string out = std::string(dtypeName(dtype)) + "[" + shape.str();
  if (layout == Layout::NCHWc) out += " NCHW" + std::to_string(block) + "c";
  return out + "]";
}

}  // namespace kiln
