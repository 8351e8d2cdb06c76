// The trainer's tensor: a dense float array with a shape (NCHW for images,
// [N, features] after Flatten). Plain value type; layers own their buffers.
#pragma once

#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace kiln::train {

using Dims = std::vector<int64_t>;

inline int64_t product(const Dims& d, size_t from = 0) {
  int64_t n = 1;
  for (size_t i = from; i < d.size(); ++i) n *= d[i];
  return n;
}

inline std::string dimsStr(const Dims& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

struct Tensor {
  Dims shape;
  std::vector<float> data;

  Tensor() = default;
  explicit Tensor(Dims s, float fill = 0.0f) : shape(std::move(s)), data(static_cast<size_t>(product(shape)), fill) {}

  int64_t size() const { return static_cast<int64_t>(data.size()); }
  int64_t dim(size_t i) const { return shape.at(i); }
  float* ptr() { return data.data(); }
  const float* ptr() const { return data.data(); }
  float& operator[](int64_t i) { return data[static_cast<size_t>(i)]; }
  float operator[](int64_t i) const { return data[static_cast<size_t>(i)]; }
};

}  // namespace kiln::train
