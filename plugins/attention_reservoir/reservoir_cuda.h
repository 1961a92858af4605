// ReservoirAttention on CUDA: the recurrence of a whole sequence in one launch, and a streamed step of
// one kernel (batches of 4 to 16 without an input projection) or two or three.
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
  at::Tensor folded_keys;                         // (H, N, E) float32, fold_query_into_keys; the fused step, split_step_folds
  at::Tensor indptr, indices, values;             // W in CSR
  int64_t heads = 0;
  double leak = 0;
};

// Whether the fused step's kernel takes a layer of this shape (res_size n, embed_dim e).
bool fused_step_fits(int64_t n, int64_t e, int64_t heads);

// Wq folded into the keys: K'[h, r] = Wq_h^T Ek[r, h] (Wq_h: the head's Dh rows), so that the score
// q_h . Ek[r, h] is u . K'[h, r], computable from the token alone. (H, N, E) float32.
at::Tensor fold_query_into_keys(const at::Tensor& query, const at::Tensor& ek, int64_t heads);

// Whether a batch of this size streams through the fused step (one kernel a token) rather than the
// split one: its size, and folded keys (made only for layers without an input projection whose shape
// fused_step_fits). The kernel's shared memory and residency are checked on the first step.
bool fused_step_applies(const CudaStepWeights& w, int64_t batch);

// Whether the split step (batches the fused step does not take) scores u against the folded keys, so
// that its attention scores before waiting for the recurrence: where they are no more to read than Wq
// and Ek together (H N E <= E E + N E: N up to 256 at E = 768 and 4 heads) and the attention's grid
// takes the build for few blocks, which has the registers to score before its wait.
bool split_step_folds(const CudaStepWeights& w, int64_t n, int64_t e, int64_t batch);

// How the fused step splits the state's rows over blocks; blocks == 0: it does not apply.
struct FusedShape {
  int64_t rows = 0, blocks = 0;
  int threads = 0;
  bool stage_state = false;
  size_t shared = 0;
};

// One state's scratch for streamed tokens and the launches that use it; made on the first step.
struct CudaStepScratch {
  at::Tensor projected, x_next, query, partials, arrivals;  // the split step
  bool fused_decided = false;
  FusedShape fused;
  at::Tensor stats, shares, barrier;  // the fused step
  attnbench::KernelChain chain;
};

// One token for B sequences: u (B, E) in the compute dtype, x (B, N) float32 advanced in place.
// Returns (B, E). Fused (fused_step_applies): one cooperative kernel. Split:
// [input projection,] both projections with the recurrence, then attention split across blocks.
// Replayed as a CUDA graph when `graph`.
at::Tensor cuda_step(const at::Tensor& u, at::Tensor& x, const CudaStepWeights& w, CudaStepScratch& scratch, bool graph);

}  // namespace attnbench::reservoir
#endif
