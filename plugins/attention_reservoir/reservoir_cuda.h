// The reservoir recurrence on CUDA: a whole sequence in one launch (see reservoir_cuda.cu).
#pragma once

#ifdef ATTNBENCH_WITH_CUDA
#include <ATen/ATen.h>

namespace attnbench::reservoir {

// Whether N fits the kernel's shared-memory state (two copies of N floats).
bool cuda_recurrence_fits(int64_t size);

// pre: (L, B, N) float32 contiguous; x: (B, N) float32, advanced in place; states: (L, B, N) out.
// W in CSR (int64 indptr/indices, float32 values), all on the same CUDA device.
void cuda_recurrence(const at::Tensor& pre, at::Tensor& x, at::Tensor& states, const at::Tensor& indptr,
                     const at::Tensor& indices, const at::Tensor& values, double leak);

}  // namespace attnbench::reservoir
#endif
