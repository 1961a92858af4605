// CPU kernels for a streamed token, in Eigen (header-only; include where Eigen is on the include path).
// A token's step is a handful of matrix-vector products over weights that sit in cache: through torch
// each costs an operator's overhead and whatever BLAS the torch build links (Debian's OpenBLAS, a wheel's
// MKL), which made the same step 3x slower on one build than on another. Owning the GEMV makes the step
// cost the same on every build: about the time to read the weights.
#pragma once

#include <ATen/ATen.h>
#include <Eigen/Core>

namespace attnbench::cpu {

using RowMajorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// out = w x (+ bias): w (rows, cols) float32 row-major and contiguous, x (cols), bias (rows) or undefined;
// `out` points at `rows` floats (a row of a KV cache, a scratch buffer).
inline void gemv(float* out, const at::Tensor& w, const float* x, const at::Tensor& bias = at::Tensor()) {
  const int64_t rows = w.size(0), cols = w.size(1);
  Eigen::Map<const RowMajorMatrix> m(w.data_ptr<float>(), rows, cols);
  Eigen::Map<const Eigen::VectorXf> v(x, cols);
  Eigen::Map<Eigen::VectorXf> y(out, rows);
  if (bias.defined()) {
    y.noalias() = m * v + Eigen::Map<const Eigen::VectorXf>(bias.data_ptr<float>(), rows);
  } else {
    y.noalias() = m * v;
  }
}

}  // namespace attnbench::cpu
