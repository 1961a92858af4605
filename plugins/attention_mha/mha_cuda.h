// MultiheadAttention's streamed step on CUDA: attention over the KV cache in one kernel.
#pragma once

#ifdef ATTNBENCH_WITH_CUDA
#include <ATen/ATen.h>

namespace attnbench::mha {

// Whether a cache of `capacity` tokens and heads of `head_dim` fit the kernel's shared memory.
bool cuda_decode_fits(int64_t capacity, int64_t head_dim);

// qkv: (B, 3E) projections of one token per sequence; k_cache, v_cache: (B, capacity, E); position: one
// int64 on the device, the number of cached tokens; done: one int32 on the device, zero between calls.
// Appends k and v at `position`, attends over positions 0..position, advances `position`. Shapes do not
// depend on the fill, so a CUDA graph can replay it. Returns the heads' outputs (B, E), before out_proj.
at::Tensor cuda_decode_attention(const at::Tensor& qkv, at::Tensor& k_cache, at::Tensor& v_cache, at::Tensor& position,
                                 at::Tensor& done, int64_t heads);

}  // namespace attnbench::mha
#endif
