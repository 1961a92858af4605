// What the built-in tasks share: scalar streams lifted to token width, splits of an episode's rows in
// time, and the scores they report.
#pragma once

#include <attnbench/task.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <string>

namespace attnbench::tasks {

// A scalar stream u (T, B) as tokens (T, B, E): u times a fixed direction of unit length (seeded, so the
// same seed lifts the same way), times `scale`. The layer sees a one-dimensional signal in E dimensions.
class Lift {
 public:
  Lift(int64_t embed_dim, uint64_t seed, double scale) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x9e3779b97f4a7c15ull);
    direction_ = at::empty({embed_dim}, at::kDouble).normal_(0.0, 1.0, gen);
    direction_ = direction_ / direction_.norm() * scale;
  }
  at::Tensor operator()(const at::Tensor& u) const {  // (...) float64 -> (..., E) float32
    return (u.to(at::kDouble).unsqueeze(-1) * direction_).to(at::kFloat);
  }

 private:
  at::Tensor direction_;
};

// Rows [0, washout) ignored, then train, validation and test rows, the same for every stream.
inline at::Tensor time_split(int64_t washout, int64_t train, int64_t validation, int64_t test, int64_t streams) {
  at::Tensor split = at::empty({washout + train + validation + test, streams}, at::kChar);
  int64_t row = 0;
  for (auto [count, role] : {std::pair{washout, Split::kIgnore}, std::pair{train, Split::kTrain},
                             std::pair{validation, Split::kValidation}, std::pair{test, Split::kTest}}) {
    split.narrow(0, row, count).fill_(static_cast<int8_t>(role));
    row += count;
  }
  return split;
}

// The squared correlation of a and b (1-D, float64); 0 when either is constant.
inline double squared_correlation(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a - a.mean(), y = b - b.mean();
  const double sxx = x.pow(2).sum().item<double>(), syy = y.pow(2).sum().item<double>();
  if (!(sxx > 0) || !(syy > 0)) return 0;
  const double sxy = (x * y).sum().item<double>();
  return sxy * sxy / (sxx * syy);
}

// Rows of a (T, B, K) tensor where `split` (T, B) equals `role`, as (N, K).
inline at::Tensor rows_of(const at::Tensor& values, const at::Tensor& split, Split role) {
  return values.reshape({-1, values.size(-1)}).index({split.reshape({-1}).eq(static_cast<int8_t>(role))});
}

}  // namespace attnbench::tasks
