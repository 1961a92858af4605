// ReservoirAttention on CUDA: the recurrence of a whole sequence in one launch, and a streamed step of
// two or three kernels.
#pragma once

#ifdef ATTNBENCH_WITH_CUDA
#include <attnbench/support/kernel_chain.h>

#include <ATen/ATen.h>

namespace attnbench::reservoir {

// pre: (L, B, N) float32 contiguous; x: (B, N) float32, advanced in place; states: (L, B, N) out.
// W in CSR (int64 indptr/indices, float32 values), all on the same CUDA device.
void cuda_recurrence(const at::Tensor& pre, at::Tensor& x, at::Tensor& states, const at::Tensor& indptr,
                     const at::Tensor& indices, const at::Tensor& values, double leak);

struct CudaStepWeights {
  at::Tensor input_proj;                          // (in_size, E), undefined when in_size == E
  at::Tensor win_bias, win_input, query, ek, ev;  // (N), (N, in_size), (E, E), (N, E), (N, E); compute dtype
  at::Tensor indptr, indices, values;             // W in CSR
  int64_t heads = 0;
  double leak = 0;
};

// One state's scratch for streamed tokens and the launches that use it; made on the first step.
struct CudaStepScratch {
  at::Tensor projected, x_next, query, partials, arrivals;
  attnbench::KernelChain chain;
};

// One token for B sequences: u (B, E) in the compute dtype, x (B, N) float32 advanced in place.
// Returns (B, E). The kernels: [input projection,] both projections with the recurrence, then attention
// split across blocks; replayed as a CUDA graph when `graph`.
at::Tensor cuda_step(const at::Tensor& u, at::Tensor& x, const CudaStepWeights& w, CudaStepScratch& scratch, bool graph);

}  // namespace attnbench::reservoir
#endif
