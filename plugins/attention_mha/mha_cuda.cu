// MultiheadAttention's streamed step in three kernels: the in-projection (a warp per output row, which
// also appends the key and value to the cache), attention over the cache split into slices of cached
// tokens (cuda_kernels.cuh), and out_proj. From 4 sequences on, the projections read each weight row
// once for the whole batch. Through torch a token is a dozen launches, most of them on one or a few
// blocks; here each launch spreads over the GPU, which is what a latency-bound token needs.
#include "mha_cuda.h"

#include <attnbench/support/cuda_kernels.cuh>

#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>

namespace attnbench::mha {
namespace {

using attnbench::cuda::allow_shared_bytes;
using attnbench::cuda::attend_slice;
using attnbench::cuda::batched_row_dot;
using attnbench::cuda::kMaxRowBatch;
using attnbench::cuda::kMaxSharedBytes;
using attnbench::cuda::kRowWords;
using attnbench::cuda::kSliceThreads;
using attnbench::cuda::load_row_words;
using attnbench::cuda::merge_slices;
using attnbench::cuda::row_block;
using attnbench::cuda::row_grid;
using attnbench::cuda::slice_block;
using attnbench::cuda::slice_blocks_per_sm;
using attnbench::cuda::slice_grid;
using attnbench::cuda::slice_kernel_for;
using attnbench::cuda::SliceKeys;
using attnbench::cuda::SliceShared;
using attnbench::cuda::stage_async;
using attnbench::cuda::start_next_kernel;
using attnbench::cuda::wait_for_previous_kernel;
using attnbench::cuda::warp_dot;
using attnbench::cuda::warp_row;


// Everything the three kernels read and write; one struct, so a KernelChain node sees any change.
template <typename T>
struct DecodeArgs {
  const T* x;          // (B, E) the token
  const T* in_weight;  // (3E, E)
  const T* in_bias;    // (3E)
  const T* out_weight;  // (E, E)
  const T* out_bias;   // (E)
  T* k_cache;          // (B, capacity, E)
  T* v_cache;
  int64_t* position;   // cached tokens before this one
  T* q;                // (B, E)
  float* partials;     // (B, H, slices, 2 + Dh)
  unsigned* arrivals;  // (B, H)
  T* attended;         // (B, E) the heads' outputs
  T* out;              // (B, E)
  int64_t batch, capacity, e, heads, dh, rows_per_slice, slices;
  float scale;
};

// Row `row` of sequence b's [q; k; v] = in_proj x + b: q to a.q, k and v to the caches at the position.
// Rounded to T as forward's GEMM rounds it.
template <typename T>
__device__ __forceinline__ void write_projection(const DecodeArgs<T>& a, int64_t b, int64_t row, float v) {
  const int64_t part = row / a.e, col = row % a.e, slot = (b * a.capacity + *a.position) * a.e + col;
  if (part == 0) a.q[b * a.e + col] = static_cast<T>(v);
  else if (part == 1) a.k_cache[slot] = static_cast<T>(v);
  else a.v_cache[slot] = static_cast<T>(v);
}

template <typename T>
__global__ void in_projection_kernel(DecodeArgs<T> a) {
  start_next_kernel();  // attend_kernel fetches the cached keys and values meanwhile
  const int64_t row = warp_row(), b = blockIdx.y;
  if (row >= 3 * a.e) return;
  const float v = warp_dot(a.in_weight + row * a.e, a.x + b * a.e, a.e) + static_cast<float>(a.in_bias[row]);
  if (threadIdx.x % 32 == 0) write_projection(a, b, row, v);
}

// Block (h * slices + s, b): slice s of head h's cached tokens, up to and including this one. kMany:
// the build for grids of many blocks (cuda_kernels.cuh).
template <typename T, bool kMany>
__global__ void __launch_bounds__(kSliceThreads, slice_blocks_per_sm(kMany)) attend_kernel(DecodeArgs<T> a) {
  extern __shared__ __align__(16) float shared[];
  const int64_t h = blockIdx.x / a.slices, s = blockIdx.x % a.slices, b = blockIdx.y;
  const SliceShared sh = attnbench::cuda::slice_shared(shared, a.rows_per_slice, a.slices);
  const int64_t position = *a.position;  // advanced only by out_projection_kernel, after this kernel
  const int64_t filled = position + 1;
  const int64_t begin = s * a.rows_per_slice, end = begin + a.rows_per_slice < filled ? begin + a.rows_per_slice : filled;
  const int64_t cache_offset = b * a.capacity * a.e + h * a.dh;
  float* partials = a.partials + (b * a.heads + h) * a.slices * (2 + a.dh);
  start_next_kernel();  // out_projection_kernel fetches its weights meanwhile
  // Rows before `position` were cached by earlier tokens; row `position` is the previous kernel's.
  attend_slice<kMany>(sh, a.q + b * a.e + h * a.dh, SliceKeys<T>{a.k_cache + cache_offset, a.e, a.dh},
                      a.v_cache + cache_offset, a.e, begin, end, /*ready=*/position, a.dh, a.scale,
                      [](int64_t) { return 1.f; }, partials + s * (2 + a.dh));
  merge_slices(sh, partials, a.slices, a.dh, a.arrivals + b * a.heads + h, a.attended + b * a.e + h * a.dh);
}

// Weight rows a warp of the batched projections dots at once: two for 4-byte and wider weights, whose
// every input word read from shared memory then serves two rows (H100, batch 16, fp32: 32.4 to 30.1 us a
// token); one for 2-byte weights, whose words hold twice the elements already (AMP batch 4: 15.9 to 17.3
// us with two).
template <typename T>
constexpr int kBatchedRowsAWarp = sizeof(T) >= 4 ? 2 : 1;
// A block's warps at most, by rows a warp: one of two rows holds up to 128 registers a thread.
constexpr int batched_max_warps(int rows_a_warp) { return rows_a_warp == 1 ? 24 : 16; }

// Batches of kMinBatchedRows to kMaxRowBatch sequences: a block stages every sequence's input in
// shared memory and a warp reads its kRows weight rows once for all of them (cuda_kernels.cuh; 3E and E
// rows are even, so a warp's rows all exist). On the H100 at batch 16 a warp per (row, sequence) read
// 9.4 MB of weights 16 times a token: 56 us against 13.5 at batch 1.
template <int kRows, typename T>
__device__ __forceinline__ int first_batched_row(const T* weight, int e, int rows, uint4* words) {
  const int row = (blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32) * kRows;
  if (row < rows) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) load_row_words(weight + static_cast<int64_t>(row + r) * e, e, 0, words + r * kRowWords);
  }
  return row;
}

template <int kRows, typename T>
__global__ void __launch_bounds__(32 * batched_max_warps(kRows)) in_projection_batched_kernel(DecodeArgs<T> a) {
  extern __shared__ __align__(16) unsigned char smem[];
  T* inputs = reinterpret_cast<T*>(smem);
  start_next_kernel();
  const int e = static_cast<int>(a.e), batch = static_cast<int>(a.batch);
  uint4 words[kRows * kRowWords];
  const int row = first_batched_row<kRows>(a.in_weight, e, 3 * e, words);
  stage_async(inputs, a.x, batch * e * static_cast<int>(sizeof(T)));
  __pipeline_wait_prior(0);
  __syncthreads();
  if (row >= 3 * e) return;
  const float v = batched_row_dot<kRows>(a.in_weight + static_cast<int64_t>(row) * e, e, inputs, batch, words, true);
  const int lane = threadIdx.x % 32, r = lane / kMaxRowBatch, b = lane % kMaxRowBatch;
  if (r >= kRows || b >= batch) return;
  write_projection(a, b, row + r, v + static_cast<float>(a.in_bias[row + r]));
}

template <int kRows, typename T>
__global__ void __launch_bounds__(32 * batched_max_warps(kRows)) out_projection_batched_kernel(DecodeArgs<T> a) {
  extern __shared__ __align__(16) unsigned char smem[];
  T* inputs = reinterpret_cast<T*>(smem);
  const int e = static_cast<int>(a.e), batch = static_cast<int>(a.batch);
  uint4 words[kRows * kRowWords];
  const int row = first_batched_row<kRows>(a.out_weight, e, e, words);
  wait_for_previous_kernel();
  if (blockIdx.x == 0 && threadIdx.x == 0) *a.position += 1;  // as out_projection_kernel
  stage_async(inputs, a.attended, batch * e * static_cast<int>(sizeof(T)));
  __pipeline_wait_prior(0);
  __syncthreads();
  if (row >= e) return;
  const float v = batched_row_dot<kRows>(a.out_weight + static_cast<int64_t>(row) * e, e, inputs, batch, words, true);
  const int lane = threadIdx.x % 32, r = lane / kMaxRowBatch, b = lane % kMaxRowBatch;
  if (r >= kRows || b >= batch) return;
  a.out[b * a.e + row + r] = static_cast<T>(v + static_cast<float>(a.out_bias[row + r]));
}

template <typename T>
__global__ void out_projection_kernel(DecodeArgs<T> a) {
  const int64_t row = warp_row(), b = blockIdx.y;
  if (row < a.e) attnbench::cuda::warp_prefetch(a.out_weight + row * a.e, a.e * sizeof(T));
  wait_for_previous_kernel();
  // attend_kernel has read the position by now; the next token's kernels see it advanced.
  if (blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0) *a.position += 1;
  if (row >= a.e) return;
  const float v = warp_dot(a.out_weight + row * a.e, a.attended + b * a.e, a.e) + static_cast<float>(a.out_bias[row]);
  if (threadIdx.x % 32 == 0) a.out[b * a.e + row] = static_cast<T>(v);
}

// From this batch on the projections read each weight row once for the batch (a guess from the
// reservoir's fused step, whose crossover on the H100 was 4).
constexpr int64_t kMinBatchedRows = 4;

// Launch shape of a batched projection over `rows` rows on `sms` multiprocessors: a warp per
// `rows_a_warp` rows, one block per SM, since each block stages the whole batch's inputs.
struct RowBlocks {
  dim3 grid, block;
};
RowBlocks batched_row_blocks(int64_t rows, int rows_a_warp, int64_t sms) {
  const int64_t units = attnbench::cuda::ceil_div(rows, rows_a_warp);
  const int64_t warps = std::min<int64_t>(attnbench::cuda::ceil_div(units, sms), batched_max_warps(rows_a_warp));
  return {dim3(static_cast<unsigned>(attnbench::cuda::ceil_div(units, warps))), dim3(static_cast<unsigned>(32 * warps))};
}

}  // namespace

at::Tensor cuda_decode_step(const at::Tensor& x, at::Tensor& k_cache, at::Tensor& v_cache, at::Tensor& position,
                            int64_t filled, const CudaWeights& w, CudaDecodeScratch& scratch, bool graph) {
  const int64_t batch = x.size(0), e = x.size(1), capacity = k_cache.size(1), heads = w.heads, dh = e / heads;
  TORCH_CHECK(x.is_contiguous() && k_cache.is_contiguous() && v_cache.is_contiguous(), "mha cuda_decode_step: contiguous inputs");
  TORCH_CHECK(filled >= 1 && filled <= capacity, "mha cuda_decode_step: ", filled, " tokens in a cache of ", capacity);
  const c10::cuda::CUDAGuard guard(x.device());
  const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  // Slices cover the filled rows, not the capacity: a token's blocks and its merge grow with the cache
  // it attends over. Sized by capacity, a half-filled cache of 4096 ran half its blocks empty, and a
  // short stream in a large max_len paid for the whole length.
  const attnbench::cuda::Slicing slicing = attnbench::cuda::slicing_for(filled, batch * heads, sms);
  const size_t shared = attnbench::cuda::slice_shared_bytes(slicing.rows_per_slice, slicing.slices);
  TORCH_CHECK(static_cast<int64_t>(shared) <= kMaxSharedBytes, "mha: attention over ", filled,
              " cached tokens is too large for the CUDA step; stream fewer tokens (data.seq_len)");
  if (!scratch.query.defined() || scratch.query.size(0) != batch || scratch.query.scalar_type() != x.scalar_type()) {
    scratch.query = at::empty({batch, e}, x.options());
    scratch.attended = at::empty({batch, e}, x.options());
    scratch.arrivals = at::zeros({batch, heads}, x.options().dtype(at::kInt));
  }
  // Grown, never shrunk: the slice count changes as the cache fills, and a new buffer is a new pointer
  // in the graph.
  const int64_t partial_floats = batch * heads * slicing.slices * (2 + dh);
  if (!scratch.partials.defined() || scratch.partials.numel() < partial_floats) {
    scratch.partials = at::empty({partial_floats}, x.options().dtype(at::kFloat));
  }
  at::Tensor out = at::empty({batch, e}, x.options());
  const int64_t staged = batch * e * static_cast<int64_t>(x.element_size());
  const bool batched = batch >= kMinBatchedRows && batch <= kMaxRowBatch && e % 8 == 0 && staged <= kMaxSharedBytes;
  const at::Tensor token = batched ? attnbench::cuda::aligned16_or_copy(x) : x;  // the batched kernels read 16-byte words
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "mha_decode", [&] {
    const DecodeArgs<scalar_t> a{
        token.data_ptr<scalar_t>(), w.in_proj_weight.data_ptr<scalar_t>(), w.in_proj_bias.data_ptr<scalar_t>(),
        w.out_proj_weight.data_ptr<scalar_t>(), w.out_proj_bias.data_ptr<scalar_t>(), k_cache.data_ptr<scalar_t>(),
        v_cache.data_ptr<scalar_t>(), position.data_ptr<int64_t>(), scratch.query.data_ptr<scalar_t>(),
        scratch.partials.data_ptr<float>(), reinterpret_cast<unsigned*>(scratch.arrivals.data_ptr<int32_t>()),
        scratch.attended.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), batch, capacity, e, heads, dh,
        slicing.rows_per_slice, slicing.slices, 1.f / sqrtf(static_cast<float>(dh))};
    if (batched) {
      constexpr int kRows = kBatchedRowsAWarp<scalar_t>;
      const RowBlocks in = batched_row_blocks(3 * e, kRows, sms), out_rows = batched_row_blocks(e, kRows, sms);
      const auto in_kernel = in_projection_batched_kernel<kRows, scalar_t>;
      const auto out_kernel = out_projection_batched_kernel<kRows, scalar_t>;
      allow_shared_bytes(reinterpret_cast<const void*>(in_kernel), staged);
      allow_shared_bytes(reinterpret_cast<const void*>(out_kernel), staged);
      scratch.chain.set(0, in_kernel, in.grid, in.block, staged, a);
      scratch.chain.set(2, out_kernel, out_rows.grid, out_rows.block, staged, a);
    } else {
      scratch.chain.set(0, in_projection_kernel<scalar_t>, row_grid(3 * e, batch), row_block(), 0, a);
      scratch.chain.set(2, out_projection_kernel<scalar_t>, row_grid(e, batch), row_block(), 0, a);
    }
    const dim3 grid = slice_grid(heads, slicing, batch);
    const auto attend = slice_kernel_for(grid, sms, attend_kernel<scalar_t, false>, attend_kernel<scalar_t, true>, shared);
    scratch.chain.set(1, attend, grid, slice_block(), shared, a);
  });
  scratch.chain.run(at::cuda::getCurrentCUDAStream(), graph);
  return out;
}

}  // namespace attnbench::mha
