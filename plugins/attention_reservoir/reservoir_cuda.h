// ReservoirAttention on CUDA: the recurrence of a whole sequence in one launch, and a fused step.
#pragma once

#ifdef ATTNBENCH_WITH_CUDA
#include <ATen/ATen.h>

namespace attnbench::reservoir {

// Whether N fits the recurrence kernel's shared-memory state, and N and Dh the fused step's.
bool cuda_recurrence_fits(int64_t size);
bool cuda_step_fits(int64_t size, int64_t head_dim);

// pre: (L, B, N) float32 contiguous; x: (B, N) float32, advanced in place; states: (L, B, N) out.
// W in CSR (int64 indptr/indices, float32 values), all on the same CUDA device.
void cuda_recurrence(const at::Tensor& pre, at::Tensor& x, at::Tensor& states, const at::Tensor& indptr,
                     const at::Tensor& indices, const at::Tensor& values, double leak);

struct CudaStepWeights {
  at::Tensor win_bias, win_input, query, ek, ev;  // (N), (N, E), (E, E), (N, E), (N, E) in the compute dtype
  at::Tensor indptr, indices, values;             // W in CSR
  int64_t heads = 0;
  double leak = 0;
};

// One token for B sequences in three launches (both projections, the recurrence, the attention
// readout), for a CUDA graph to replay: u (B, E) in the compute dtype, x (B, N) float32 advanced in
// place. Returns (B, E). Requires in_size == E.
at::Tensor cuda_fused_step(const at::Tensor& u, at::Tensor& x, const CudaStepWeights& w);

}  // namespace attnbench::reservoir
#endif
