// Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms
// for Convolutional Neural Networks", 2015): a 2x2 tile of a 3x3 stride-1
// correlation's outputs from the 4x4 input tile d around it as
//   Y = A^T [(G g G^T) (.) (B^T d B)] A,
// 16 multiplies per channel pair instead of 36. The winograd pass rewrites a
// Conv into WinogradInput (V = B^T d B of every tile), a Conv 1x1 with 16
// groups (one per transformed position: M = V x U, U = G g G^T packed at
// compile time) and WinogradOutput (Y = A^T M A plus bias, residual and the
// fused activation). The reference kernels and the emitters share these
// matrices and `applyTransform`, so both compute the same sums in the same order.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace kiln::winograd {

inline constexpr int64_t kInputTile = 4;   // input tile side
inline constexpr int64_t kOutputTile = 2;  // output tile side
inline constexpr int64_t kKernel = 3;
inline constexpr int64_t kPositions = kInputTile * kInputTile;  // transformed positions (the groups)

inline constexpr float kBT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
inline constexpr float kG[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};
inline constexpr float kAT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};

// out[i] = sum_j m[i][j] * in[j] over the nonzero coefficients: the first
// +1 term (else the first term) starts the sum, the others follow in order
// of j; +-1 are adds and subtracts, others multiply. T is float or an
// emitter's value type; ops supplies add, sub, scale (x * c) and neg.
template <std::size_t Rows, std::size_t Cols, typename T, typename Ops>
std::array<T, Rows> applyTransform(const float (&m)[Rows][Cols], const std::array<T, Cols>& in, const Ops& ops) {
  std::array<T, Rows> out;
  for (std::size_t i = 0; i < Rows; ++i) {
    std::size_t first = Cols;
    for (std::size_t j = 0; j < Cols && first == Cols; ++j)
      if (m[i][j] == 1.f) first = j;
    for (std::size_t j = 0; j < Cols && first == Cols; ++j)
      if (m[i][j] != 0.f) first = j;
    const float c0 = m[i][first];
    T sum = c0 == 1.f ? in[first] : c0 == -1.f ? ops.neg(in[first]) : ops.scale(in[first], c0);
    for (std::size_t j = 0; j < Cols; ++j) {
      const float c = m[i][j];
      if (c == 0.f || j == first) continue;
      sum = c == 1.f ? ops.add(sum, in[j]) : c == -1.f ? ops.sub(sum, in[j]) : ops.add(sum, ops.scale(in[j], c));
    }
    out[i] = sum;
  }
  return out;
}

// M^T X M of a square tile stored row-major (X is Cols x Cols, the result
// Rows x Rows): the transform along rows, then along columns.
template <std::size_t Rows, std::size_t Cols, typename T, typename Ops>
std::array<T, Rows * Rows> applyTransform2D(const float (&m)[Rows][Cols], const std::array<T, Cols * Cols>& x,
                                            const Ops& ops) {
  std::array<T, Rows * Cols> half;  // m applied down each column
  for (std::size_t c = 0; c < Cols; ++c) {
    std::array<T, Cols> column;
    for (std::size_t r = 0; r < Cols; ++r) column[r] = x[r * Cols + c];
    const std::array<T, Rows> t = applyTransform(m, column, ops);
    for (std::size_t r = 0; r < Rows; ++r) half[r * Cols + c] = t[r];
  }
  std::array<T, Rows * Rows> out;
  for (std::size_t r = 0; r < Rows; ++r) {
    std::array<T, Cols> row;
    for (std::size_t c = 0; c < Cols; ++c) row[c] = half[r * Cols + c];
    const std::array<T, Rows> t = applyTransform(m, row, ops);
    for (std::size_t c = 0; c < Rows; ++c) out[r * Rows + c] = t[c];
  }
  return out;
}

// Tiles covering `outputs` outputs along one axis.
inline int64_t tilesFor(int64_t outputs) { return (outputs + kOutputTile - 1) / kOutputTile; }

}  // namespace kiln::winograd
