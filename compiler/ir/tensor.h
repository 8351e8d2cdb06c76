// Tensor: a typed, 64-byte aligned buffer with a static shape. Used for
// constants in the IR and for values in the reference interpreter.
// Copies share storage (constants are immutable); clone() copies the bytes.
#pragma once

#include <cstring>
#include <memory>
#include <span>

#include "compiler/ir/error.h"
#include "compiler/ir/types.h"

namespace kiln {

template <class T> constexpr DType dtypeOf();
template <> constexpr DType dtypeOf<float>() { return DType::F32; }
template <> constexpr DType dtypeOf<int64_t>() { return DType::I64; }
template <> constexpr DType dtypeOf<int32_t>() { return DType::I32; }
template <> constexpr DType dtypeOf<bool>() { return DType::Bool; }

class Tensor {
 public:
  Tensor() = default;
  // Zero-filled tensor; the shape must be static and below kMaxTensorBytes.
  explicit Tensor(DType dtype, Shape shape);

  template <class T>
  static Tensor fromVector(Shape shape, const std::vector<T>& values) {
    Tensor t(dtypeOf<T>(), std::move(shape));
    if (static_cast<int64_t>(values.size()) != t.numElements())
      throw Error("tensor of shape " + t.shape().str() + " given " + std::to_string(values.size()) + " values");
    if (!values.empty()) std::memcpy(t.rawData(), values.data(), t.byteSize());
    return t;
  }
  template <class T>
  static Tensor scalar(T v) { return fromVector<T>(Shape{}, {v}); }
  // f32 values in [-1, 1) from a small LCG: the same on every platform for
  // a seed, for tests and benchmarks that need reproducible data.
  static Tensor uniform(Shape shape, uint32_t seed);

  bool empty() const { return !storage_; }
  const TensorType& type() const { return type_; }
  DType dtype() const { return type_.dtype; }
  const Shape& shape() const { return type_.shape; }
  int64_t numElements() const { return numElements_; }
  size_t byteSize() const { return static_cast<size_t>(numElements_) * dtypeSize(type_.dtype); }

  std::byte* rawData() { return storage_.get(); }
  const std::byte* rawData() const { return storage_.get(); }

  template <class T> T* data() { checkType(dtypeOf<T>()); return reinterpret_cast<T*>(storage_.get()); }
  template <class T> const T* data() const { checkType(dtypeOf<T>()); return reinterpret_cast<const T*>(storage_.get()); }
  template <class T> std::span<const T> values() const { return {data<T>(), static_cast<size_t>(numElements_)}; }

  // Integer contents (i64 or i32) widened to int64; for shape operands.
  std::vector<int64_t> toInts() const;

  Tensor clone() const;
  // Same bytes, new shape of equal element count (shares storage).
  Tensor reshaped(Shape shape) const;

 private:
  void checkType(DType want) const;
  TensorType type_;
  int64_t numElements_ = 0;
  std::shared_ptr<std::byte[]> storage_;
};

}  // namespace kiln
