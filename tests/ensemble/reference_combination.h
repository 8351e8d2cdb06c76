// The kiln-ensemble rules written out directly, in double, over member
// outputs a test computed separately: the oracle the ensemble tests (library
// and CLI) hold compiled ensembles to.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <vector>

#include "compiler/ensemble/ensemble.h"

namespace kiln::testing {

inline const char* ruleName(ensemble::Rule rule) {
  return rule == ensemble::Rule::Mean ? "mean" : rule == ensemble::Rule::Logits ? "logits" : "vote";
}

// outputs: each member's f32 [N, C]; weights: normalized, one per member.
inline std::vector<double> referenceCombination(const std::vector<Tensor>& outputs, const std::vector<double>& weights,
                                                ensemble::Rule rule, ensemble::MemberOutput memberOutput) {
  using ensemble::Rule;
  const bool logitsOut = memberOutput == ensemble::MemberOutput::Logits;
  const int64_t n = outputs.at(0).shape()[0], c = outputs.at(0).shape()[1];
  auto softmax = [](std::vector<double>& row) {
    double max = -INFINITY, sum = 0;
    for (double v : row) max = std::max(max, v);
    for (double& v : row) sum += (v = std::exp(v - max));
    for (double& v : row) v /= sum;
  };
  std::vector<double> result(static_cast<size_t>(n * c), 0.0);
  for (int64_t s = 0; s < n; ++s) {
    std::vector<double> combined(static_cast<size_t>(c), 0.0);
    for (size_t i = 0; i < outputs.size(); ++i) {
      std::vector<double> row(outputs[i].data<float>() + s * c, outputs[i].data<float>() + (s + 1) * c);
      if (rule == Rule::Vote) {
        // The first maximum: only a strictly greater score replaces it.
        size_t first = 0;
        for (size_t k = 1; k < row.size(); ++k)
          if (row[k] > row[first]) first = k;
        combined[first] += weights[i];
        continue;
      }
      if (rule == Rule::Mean && logitsOut) softmax(row);
      if (rule == Rule::Logits && !logitsOut)
        for (double& v : row) v = std::log(std::max<double>(v, FLT_MIN));
      for (int64_t k = 0; k < c; ++k) combined[k] += weights[i] * row[k];
    }
    if (rule == Rule::Logits) softmax(combined);
    std::copy(combined.begin(), combined.end(), result.begin() + s * c);
  }
  return result;
}

// Vote compares member maxima, so checking it against separately computed
// outputs is only meaningful where no member's top two classes are so close
// that rounding could swap them.
inline bool topClassesAreClear(const std::vector<Tensor>& outputs) {
  for (const Tensor& t : outputs) {
    const int64_t n = t.shape()[0], c = t.shape()[1];
    for (int64_t s = 0; s < n; ++s) {
      std::vector<float> row(t.data<float>() + s * c, t.data<float>() + (s + 1) * c);
      std::partial_sort(row.begin(), row.begin() + 2, row.end(), std::greater<float>());
      if (!(row[0] - row[1] > 1e-4f)) return false;
    }
  }
  return true;
}

// max |got - want| over all elements; infinite for NaN or a size mismatch.
inline double maxAbsDifference(const Tensor& got, const std::vector<double>& want) {
  if (got.numElements() != static_cast<int64_t>(want.size())) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = std::fabs(double(got.data<float>()[i]) - want[i]);
    worst = std::isnan(d) ? INFINITY : std::max(worst, d);
  }
  return worst;
}

}  // namespace kiln::testing
