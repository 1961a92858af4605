// MultiheadAttention's streamed step on CUDA: three kernels over a preallocated KV cache.
#pragma once

#ifdef ATTNBENCH_WITH_CUDA
#include <attnbench/support/kernel_chain.h>

#include <ATen/ATen.h>

namespace attnbench::mha {

struct CudaWeights {
  at::Tensor in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias;  // (3E, E), (3E), (E, E), (E)
  int64_t heads = 0;
};

// One cache's scratch for streamed tokens and the launches that use it; made on the first step.
struct CudaDecodeScratch {
  at::Tensor query, attended, partials, arrivals;
  attnbench::KernelChain chain;
};

// One token per sequence: x (B, E); k_cache, v_cache (B, capacity, E); position: one int64 on the
// device, the number of cached tokens; filled: position + 1, the host's count of the tokens attended
// over, which sizes the attention's slices. Appends the token's key and value at `position`, attends
// over positions 0..position, applies out_proj and advances `position`. The launches replay as one CUDA
// graph (when `graph`), its nodes updated in place as pointers and slices change.
at::Tensor cuda_decode_step(const at::Tensor& x, at::Tensor& k_cache, at::Tensor& v_cache, at::Tensor& position,
                            int64_t filled, const CudaWeights& w, CudaDecodeScratch& scratch, bool graph);

}  // namespace attnbench::mha
#endif
