#include "compiler/ir/tensor.h"

#include <cstdlib>

namespace kiln {

Tensor::Tensor(DType dtype, Shape shape) {
  type_.dtype = dtype;
  type_.shape = std::move(shape);
  numElements_ = type_.shape.numElements();
  int64_t bytes = 0;
  if (__builtin_mul_overflow(numElements_, static_cast<int64_t>(dtypeSize(dtype)), &bytes) || bytes > kMaxTensorBytes)
    throw Error("tensor of shape " + type_.shape.str() + " exceeds the " + std::to_string(kMaxTensorBytes >> 30) +
                " GiB limit");
  size_t alloc = (static_cast<size_t>(bytes) + 63) / 64 * 64;
  if (alloc == 0) alloc = 64;
  auto* p = static_cast<std::byte*>(std::aligned_alloc(64, alloc));
  if (!p) throw Error("out of memory allocating " + std::to_string(alloc) + " bytes");
  std::memset(p, 0, alloc);
  storage_ = std::shared_ptr<std::byte[]>(p, [](std::byte* q) { std::free(q); });
}

Tensor Tensor::uniform(Shape shape, uint32_t seed) {
  Tensor t(DType::F32, std::move(shape));
  float* d = t.data<float>();
  uint32_t s = seed * 2654435761u + 7u;
  for (int64_t i = 0; i < t.numElements(); ++i) {
    s = s * 1664525u + 1013904223u;
    d[i] = static_cast<float>(s >> 8) / static_cast<float>(1u << 23) - 1.f;
  }
  return t;
}

std::vector<int64_t> Tensor::toInts() const {
  std::vector<int64_t> out(static_cast<size_t>(numElements_));
  if (dtype() == DType::I64) {
    std::memcpy(out.data(), rawData(), byteSize());
  } else if (dtype() == DType::I32) {
    const int32_t* p = data<int32_t>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = p[i];
  } else {
    throw Error(std::string("expected an integer tensor, got ") + type_.str());
  }
  return out;
}

Tensor Tensor::clone() const {
  if (empty()) return {};
  Tensor t(type_.dtype, type_.shape);
  t.type_ = type_;
  std::memcpy(t.rawData(), rawData(), byteSize());
  return t;
}

Tensor Tensor::reshaped(Shape shape) const {
  Tensor t = *this;
  if (shape.numElements() != numElements_)
    throw Error("cannot reshape " + type_.shape.str() + " to " + shape.str());
  t.type_.shape = std::move(shape);
  return t;
}

void Tensor::checkType(DType want) const {
  if (type_.dtype != want)
    throw Error(std::string("tensor holds ") + dtypeName(type_.dtype) + ", accessed as " + dtypeName(want));
}

}  // namespace kiln
