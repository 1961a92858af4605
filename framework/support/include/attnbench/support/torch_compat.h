// The one place where attnbench's code differs between the libtorch versions it supports (Debian's 1.13
// on CPU, 2.x with CUDA). Built-in plugins include it; third-party plugins need not.
#pragma once

#include <ATen/ATen.h>
#include <c10/core/Allocator.h>
#include <torch/csrc/api/include/torch/version.h>

#include <algorithm>
#include <cmath>

namespace attnbench::compat {

// Which key positions each query row may attend to, for queries at absolute positions offset..offset+Lq-1
// over keys 0..Lk-1: (Lq, Lk), true where allowed.
inline at::Tensor causal_mask(int64_t lq, int64_t lk, int64_t offset, const at::Device& device) {
  auto opts = at::TensorOptions().dtype(at::kLong).device(device);
  return at::arange(lk, opts).unsqueeze(0) <= (at::arange(lq, opts) + offset).unsqueeze(1);
}

// One block of attention, whatever its size: the torch version's own kernel.
inline at::Tensor attention_block(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t offset,
                                  bool causal) {
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

// Scaled dot-product attention with scale 1/sqrt(Dh). q: (B, H, Lq, Dh), k/v: (B, H, Lk, Dh); when causal,
// query row i sits at absolute position offset + i and sees keys 0..offset+i.
//
// Memory stays O(L) per head: queries go in blocks whose scores (B, H, block, Lk) fit kScoreBytes, each
// against only the keys it may see; a fused kernel that needs no score matrix (torch 2's causal flash
// attention over a whole sequence) takes the whole sequence at once.
inline at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t offset, bool causal) {
  constexpr int64_t kScoreBytes = int64_t{64} << 20;
  const int64_t lq = q.size(2), lk = k.size(2);
  const int64_t per_row = q.size(0) * q.size(1) * lk * static_cast<int64_t>(sizeof(float));
  const bool fused_whole = TORCH_VERSION_MAJOR >= 2 && causal && offset == 0 && lq == lk;
  if (lq * per_row <= kScoreBytes || fused_whole || lq == 1) return attention_block(q, k, v, offset, causal);
  const int64_t rows = std::max<int64_t>(1, kScoreBytes / per_row);
  at::Tensor out = at::empty_like(q);
  for (int64_t start = 0; start < lq; start += rows) {
    const int64_t n = std::min(rows, lq - start);
    const int64_t keys = causal ? std::min(lk, offset + start + n) : lk;  // later keys are masked anyway
    out.narrow(2, start, n)
        .copy_(attention_block(q.narrow(2, start, n), k.narrow(2, 0, keys), v.narrow(2, 0, keys), offset + start, causal));
  }
  return out;
}

// c10::Allocator's interface: allocate() lost its const and copy_data() became required in torch 2.3.
// An allocator derives from this and implements allocate_bytes().
class CpuAllocatorBase : public c10::Allocator {
 public:
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  c10::DataPtr allocate(size_t bytes) override { return allocate_bytes(bytes); }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#else
  c10::DataPtr allocate(size_t bytes) const override { return allocate_bytes(bytes); }
#endif

 protected:
  virtual c10::DataPtr allocate_bytes(size_t bytes) const = 0;
};

}  // namespace attnbench::compat
