// CPU kernels for a streamed token, in Eigen (header-only; include where Eigen is on the include path).
// A token's step is a handful of matrix-vector products over weights that sit in cache: through torch
// each costs an operator's overhead and whatever BLAS the torch build links (Debian's OpenBLAS, a wheel's
// MKL), which made the same step 3x slower on one build than on another. Owning the GEMV makes the step
// cost the same on every build: about the time to read the weights.
#pragma once

#include <ATen/ATen.h>
#include <Eigen/Core>

#include <algorithm>

namespace attnbench::cpu {

using RowMajorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// f(part, begin, end) for the parts of [0, n), at most `threads` of them, on a team of `threads` OpenMP
// threads where the including target is built with OpenMP (else one after another). A token's step is
// bound by the bandwidth one core draws from cache, so each core added brings its own. Every region of a
// step gets the same team, even when it has fewer parts than threads: GOMP re-forms its team when the
// size changes, which cost more than the work (RA's 256 steps at 4 threads on a 16-core Xeon: 36 ms with
// a team per region's size, 6 ms with one size). Its own team, not torch's pool: where torch runs on
// OpenBLAS, the runner keeps torch's pool at one thread.
template <typename F>
void parallel_parts(int64_t n, int threads, const F& f) {
  const int parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, n)));
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
#endif
  for (int part = 0; part < parts; ++part) f(part, n * part / parts, n * (part + 1) / parts);
}

// out = w x (+ bias): w (rows, cols) float32 row-major and contiguous, x (cols), bias (rows) or undefined;
// `out` points at `rows` floats (a row of a KV cache, a scratch buffer); the rows split over `threads`.
inline void gemv(float* out, const at::Tensor& w, const float* x, const at::Tensor& bias = at::Tensor(),
                 int threads = 1) {
  const int64_t cols = w.size(1);
  const float* weights = w.data_ptr<float>();
  const float* shift = bias.defined() ? bias.data_ptr<float>() : nullptr;
  parallel_parts(w.size(0), threads, [&](int, int64_t begin, int64_t end) {
    Eigen::Map<const RowMajorMatrix> m(weights + begin * cols, end - begin, cols);
    Eigen::Map<const Eigen::VectorXf> v(x, cols);
    Eigen::Map<Eigen::VectorXf> y(out + begin, end - begin);
    if (shift != nullptr) {
      y.noalias() = m * v + Eigen::Map<const Eigen::VectorXf>(shift + begin, end - begin);
    } else {
      y.noalias() = m * v;
    }
  });
}

}  // namespace attnbench::cpu
