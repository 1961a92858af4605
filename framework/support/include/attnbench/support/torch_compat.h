// The one place where attnbench's code differs between the libtorch versions it supports (Debian's 1.13
// on CPU, 2.x with CUDA). Built-in plugins include it; third-party plugins need not.
#pragma once

#include <ATen/ATen.h>
#include <torch/csrc/api/include/torch/version.h>

#include <cmath>

namespace attnbench::compat {

// Which key positions each query row may attend to, for queries at absolute positions offset..offset+Lq-1
// over keys 0..Lk-1: (Lq, Lk), true where allowed.
inline at::Tensor causal_mask(int64_t lq, int64_t lk, int64_t offset, const at::Device& device) {
  auto opts = at::TensorOptions().dtype(at::kLong).device(device);
  return at::arange(lk, opts).unsqueeze(0) <= (at::arange(lq, opts) + offset).unsqueeze(1);
}

// Scaled dot-product attention with scale 1/sqrt(Dh). q: (B, H, Lq, Dh), k/v: (B, H, Lk, Dh); when causal,
// query row i sits at absolute position offset + i and sees keys 0..offset+i.
inline at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t offset, bool causal) {
  const int64_t lq = q.size(2), lk = k.size(2);
  const bool needs_mask = causal && lq > 1;  // a single query at the end sees every key anyway
#if TORCH_VERSION_MAJOR >= 2
  // Fused kernels (flash / memory-efficient on CUDA, a blocked kernel on CPU).
  if (!needs_mask) return at::scaled_dot_product_attention(q, k, v);
  if (offset == 0 && lq == lk) return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
  return at::scaled_dot_product_attention(q, k, v, causal_mask(lq, lk, offset, q.device()));
#else
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)).mul_(1.0 / std::sqrt(static_cast<double>(q.size(-1))));
  if (needs_mask) scores.masked_fill_(causal_mask(lq, lk, offset, q.device()).logical_not(), -INFINITY);
  return at::matmul(at::softmax(scores, -1), v);
#endif
}

}  // namespace attnbench::compat
