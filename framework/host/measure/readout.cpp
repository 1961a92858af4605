#include "measure/readout.h"

#include <cmath>

namespace attnbench {

const std::vector<double>& ridge_grid() {
  static const std::vector<double> grid = [] {
    std::vector<double> g;
    for (int e = -8; e <= 4; ++e) g.push_back(std::pow(10.0, e));
    return g;
  }();
  return grid;
}

at::Tensor Readout::predict(const at::Tensor& x) const {
  return at::matmul(x.to(at::kDouble), weights) + bias;
}

Readout fit_ridge(const at::Tensor& features, const at::Tensor& targets, const at::Tensor& train, const at::Tensor& validation) {
  TORCH_CHECK(features.dim() == 2 && targets.dim() == 2 && features.size(0) == targets.size(0),
              "fit_ridge: features (N, F) and targets (N, K) must have the same rows");
  const at::Tensor x = features.to(at::kDouble), y = targets.to(at::kDouble);
  const at::Tensor xt = x.index({train}), yt = y.index({train});
  const at::Tensor x_mean = xt.mean(0), y_mean = yt.mean(0);
  const at::Tensor xc = xt - x_mean, yc = yt - y_mean;
  const int64_t f = x.size(1), k = y.size(1);

  Readout out;
  out.features = f;
  // XᵀX = V diag(s) Vᵀ once; every regulariser is then a rescaling: W(λ) = V diag(1/(s+λ)) Vᵀ Xᵀy.
  at::Tensor gram = at::matmul(xc.t(), xc);
  auto [s, v] = at::linalg_eigh(gram);
  s = s.clamp_min(0);
  const double scale = s.mean().item<double>();
  const at::Tensor projected = at::matmul(v.t(), at::matmul(xc.t(), yc));  // Vᵀ Xᵀ y, (F, K)
  if (!(scale > 0)) {  // constant features: nothing to read out but the mean
    out.weights = at::zeros({f, k}, at::kDouble);
    out.bias = y_mean;
    out.ridge.assign(static_cast<size_t>(k), ridge_grid().back());
    return out;
  }
  const at::Tensor xv = at::matmul(x.index({validation}) - x_mean, v);  // validation rows in the eigenbasis
  const at::Tensor yv = y.index({validation}) - y_mean;
  at::Tensor best_error = at::full({k}, INFINITY, at::kDouble);
  at::Tensor best_index = at::zeros({k}, at::kLong);
  const std::vector<double>& grid = ridge_grid();
  for (size_t i = 0; i < grid.size(); ++i) {
    const at::Tensor shrink = 1.0 / (s + grid[i] * scale);
    const at::Tensor error = (at::matmul(xv, projected * shrink.unsqueeze(1)) - yv).pow(2).sum(0);  // (K)
    const at::Tensor better = error < best_error;
    best_error = at::where(better, error, best_error);
    best_index = at::where(better, at::full_like(best_index, static_cast<int64_t>(i)), best_index);
  }
  // Each target with its own regulariser: the coefficients in the eigenbasis, shrunk per column.
  at::Tensor chosen = at::tensor(grid, at::kDouble).index({best_index}) * scale;      // (K)
  const at::Tensor shrink = 1.0 / (s.unsqueeze(1) + chosen.unsqueeze(0));               // (F, K)
  out.weights = at::matmul(v, projected * shrink);
  out.bias = y_mean - at::matmul(x_mean, out.weights);
  for (int64_t j = 0; j < k; ++j) out.ridge.push_back(grid[static_cast<size_t>(best_index[j].item<int64_t>())]);
  return out;
}

}  // namespace attnbench
