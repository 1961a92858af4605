// The linear readout quality tasks fit on a layer's outputs: ridge regression in float64, as a
// reservoir is read out. The regulariser is chosen per target from a logarithmic grid on the validation
// rows; the intercept is not penalised.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace attnbench {

struct Readout {
  at::Tensor weights;  // (F, K) float64
  at::Tensor bias;     // (K) float64
  std::vector<double> ridge;  // per target: the regulariser chosen, relative to the mean eigenvalue of XᵀX
  int64_t features = 0;

  at::Tensor predict(const at::Tensor& features) const;  // (..., F) -> (..., K) float64
};

// The relative regularisers tried: 1e-8, 1e-7, ..., 1e4 times the mean eigenvalue of the centred XᵀX,
// so the grid does not depend on the features' scale.
const std::vector<double>& ridge_grid();

// features (N, F), targets (N, K), both any floating dtype on the CPU; train and validation: (N) bool.
// Fitted on the training rows; for each target, the regulariser with the least squared error on the
// validation rows. Features that are all equal (a layer that outputs zeros) give the training mean.
Readout fit_ridge(const at::Tensor& features, const at::Tensor& targets, const at::Tensor& train, const at::Tensor& validation);

}  // namespace attnbench
