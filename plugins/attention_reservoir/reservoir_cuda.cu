// ReservoirAttention on CUDA.
//
// The sequential part is a chain of tiny sparse matrix-vector products; launched per token through torch
// it costs ~20 ms for 256 tokens. esn_sequence_kernel runs a whole sequence in one launch: one block
// per sequence, the state and W in shared memory, the time loop inside the kernel. A larger W goes to
// esn_sequence_grid_kernel instead: its rows spread over many blocks of a cooperative launch, which
// meet at a grid-wide barrier after each token.
//
// A streamed token is latency, not arithmetic. A batch of 4 to 16 sequences takes the fused step below:
// one cooperative kernel a token that reads each weight once for the whole batch. Otherwise (batch 1
// to 3, or an input projection) the split step: two kernels (three with an input projection), each
// spread over many blocks. The first computes Win u and Wq u, a warp per row, and the warps of the
// state's rows finish the recurrence right away (a row of W x needs only the old state). The second
// splits attention over the static keys into slices of rows (cuda_kernels.cuh); it starts while the
// first still runs and fetches its keys and values before it waits for the first's results.
#include "reservoir_cuda.h"

#include <attnbench/support/cuda_kernels.cuh>

#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <cooperative_groups.h>
#include <cuda_pipeline_primitives.h>

namespace attnbench::reservoir {
namespace {

using attnbench::cuda::allow_shared_bytes;
using attnbench::cuda::attend_slice;
using attnbench::cuda::batched_row_dot;
using attnbench::cuda::kMaxSharedBytes;
using attnbench::cuda::kRowWarps;
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
using attnbench::cuda::warp_sum;

constexpr int kThreads = 1024;                  // the one-block recurrence
constexpr int kGridThreads = 256;               // the many-block recurrence: 8 warps, ~4 rows each
constexpr int64_t kMaxStagedState = 12 * 1024;  // N floats in 48 KB: the step stages the state up to this
// Up to this many nonzeros one block runs the recurrence; past it, the cooperative grid. On the H100
// one block costs ~1.2 ns per nonzero per token and a grid-wide barrier ~7 us: N=256 (655 nonzeros)
// took 0.31 ms for a 256-token forward on one block, N=1024 (10.5k) 4.3 ms, N=4096 on the grid 2.0 ms.
constexpr int64_t kOneBlockNonzeros = 4096;

// The next value of a state row: (1 - a) x_r + a tanh(pre + W[r] . x), with W[r] the nonzeros
// [k_begin, k_end) and their dot product with the state (read by `load`) summed by the warp's lanes.
template <typename Load>
__device__ __forceinline__ float advance_row(const int64_t* indices, const float* values, int64_t k_begin, int64_t k_end,
                                             float x_r, float pre, float leak, Load load) {
  float acc = 0.f;
  for (int64_t k = k_begin + threadIdx.x % 32; k < k_end; k += 32) acc += values[k] * load(indices[k]);
  acc = warp_sum(acc);
  return (1.f - leak) * x_r + leak * tanhf(pre + acc);
}

// kStage: the CSR arrays are copied into shared memory first (small W), so the time loop reads no
// global memory but `pre`. kWarpPerRow: lanes split a row's nonzeros (long rows, large N); otherwise a
// thread per row, which wastes nothing when rows hold a handful of nonzeros.
template <bool kStage, bool kWarpPerRow>
__global__ void esn_sequence_kernel(const float* __restrict__ pre, float* __restrict__ x, float* __restrict__ states,
                                    const int64_t* __restrict__ indptr, const int64_t* __restrict__ indices,
                                    const float* __restrict__ values, int64_t length, int64_t batch, int64_t n,
                                    int64_t nnz, float leak) {
  extern __shared__ __align__(16) float shared[];
  float* cur = shared;
  float* next = shared + n;
  const int64_t* ptr = indptr;
  const int64_t* idx = indices;
  const float* val = values;
  if (kStage) {
    auto* s_ptr = reinterpret_cast<int64_t*>(shared + 2 * n);  // 2n floats keep it 8-byte aligned
    int64_t* s_idx = s_ptr + n + 1;
    auto* s_val = reinterpret_cast<float*>(s_idx + nnz);
    for (int64_t i = threadIdx.x; i <= n; i += blockDim.x) s_ptr[i] = indptr[i];
    for (int64_t i = threadIdx.x; i < nnz; i += blockDim.x) {
      s_idx[i] = indices[i];
      s_val[i] = values[i];
    }
    ptr = s_ptr;
    idx = s_idx;
    val = s_val;
  }
  const int64_t b = blockIdx.x;
  const int64_t first = kWarpPerRow ? threadIdx.x / 32 : threadIdx.x;
  const int64_t stride = kWarpPerRow ? blockDim.x / 32 : blockDim.x;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) cur[i] = x[b * n + i];
  __syncthreads();
  for (int64_t t = 0; t < length; ++t) {
    const float* pre_t = pre + (t * batch + b) * n;
    float* out_t = states + (t * batch + b) * n;
    for (int64_t r = first; r < n; r += stride) {
      float v;
      if (kWarpPerRow) {
        v = advance_row(idx, val, ptr[r], ptr[r + 1], cur[r], pre_t[r], leak, [cur](int64_t i) { return cur[i]; });
        if (threadIdx.x % 32 != 0) continue;
      } else {
        float acc = 0.f;
        for (int64_t k = ptr[r]; k < ptr[r + 1]; ++k) acc += val[k] * cur[idx[k]];
        v = (1.f - leak) * cur[r] + leak * tanhf(pre_t[r] + acc);
      }
      next[r] = v;
      out_t[r] = v;
    }
    __syncthreads();  // every row of step t is written before any thread reads it in step t + 1
    float* swap = cur;
    cur = next;
    next = swap;
  }
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) x[b * n + i] = cur[i];
}

struct GridRecurrence {
  const float* pre;     // (L, B, N)
  float* x;             // (B, N)
  float* states;        // (L, B, N)
  float* buffer;        // (2, B, N): the state before and after a token
  const int64_t* indptr;
  const int64_t* indices;
  const float* values;
  int64_t length, batch, n;
  float leak;
};

// Launched cooperatively, gridDim.x blocks per sequence (blockIdx.y); warps take rows round-robin.
__global__ void esn_sequence_grid_kernel(GridRecurrence a) {
  cooperative_groups::grid_group grid = cooperative_groups::this_grid();
  const int64_t b = blockIdx.y;
  const int64_t first_warp = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, warps = gridDim.x * (blockDim.x / 32);
  const int64_t first = blockIdx.x * blockDim.x + threadIdx.x, threads = gridDim.x * blockDim.x;
  float* cur = a.buffer + b * a.n;
  float* next = a.buffer + (a.batch + b) * a.n;
  for (int64_t i = first; i < a.n; i += threads) cur[i] = a.x[b * a.n + i];
  grid.sync();
  for (int64_t t = 0; t < a.length; ++t) {
    const float* pre_t = a.pre + (t * a.batch + b) * a.n;
    float* out_t = a.states + (t * a.batch + b) * a.n;
    // __ldcg: other blocks wrote the state, so it is read from L2, never from a stale L1 line.
    auto load = [cur](int64_t i) { return __ldcg(cur + i); };
    for (int64_t r = first_warp; r < a.n; r += warps) {
      const float v = advance_row(a.indices, a.values, a.indptr[r], a.indptr[r + 1], load(r), pre_t[r], a.leak, load);
      if (threadIdx.x % 32 == 0) {
        next[r] = v;
        out_t[r] = v;
      }
    }
    grid.sync();
    float* swap = cur;
    cur = next;
    next = swap;
  }
  for (int64_t i = first; i < a.n; i += threads) a.x[b * a.n + i] = __ldcg(cur + i);
}

// Everything a streamed token's kernels read and write. One struct for all of them, so a KernelChain
// node sees a change of any pointer.
template <typename T>
struct StepArgs {
  const T* u;            // (B, E) the token
  const T* input_proj;   // (in, E), or null when in == E
  T* projected;          // (B, in), or null
  const T* win_bias;     // (N)
  const T* win_input;    // (N, in)
  const T* query;        // (E, E)
  const int64_t* indptr;
  const int64_t* indices;
  const float* values;
  const T* ek;           // (N, E)
  const T* ev;           // (N, E)
  const float* folded_keys;  // (H, N, E) or null: attend_kernel<..., true> scores u against these
  float* x;              // (B, N) the state, advanced
  float* x_next;         // (B, N) the new state, until the old one has been read by every row
  T* q;                  // (B, E)
  float* partials;       // (B, H, slices, 2 + Dh)
  unsigned* arrivals;    // (B, H)
  T* out;                // (B, E)
  int64_t n, e, in, heads, dh, rows_per_slice, slices;
  float leak, scale;
};

template <typename T>
__global__ void input_projection_kernel(StepArgs<T> a) {
  start_next_kernel();
  const int64_t row = warp_row(), b = blockIdx.y;
  if (row >= a.in) return;
  const float v = warp_dot(a.input_proj + row * a.e, a.u + b * a.e, a.e);
  if (threadIdx.x % 32 == 0) a.projected[b * a.in + row] = static_cast<T>(v);
}

// Rows [0, N): the recurrence of state row r; rows [N, N + E): q = Wq u, unless the keys are folded.
// Everything a row needs but W's nonzeros is loaded at once: the row's bounds in W, the old state (into
// shared memory, when N is at most kMaxStagedState) and the dot product's operands; the nonzeros
// follow, then the state is gathered from shared memory: two round trips to memory instead of three.
template <typename T>
__global__ void project_kernel(StepArgs<T> a) {
  extern __shared__ __align__(16) float shared[];
  start_next_kernel();         // attend_kernel fetches its keys and values meanwhile
  wait_for_previous_kernel();  // the input projection, when there is one
  const int64_t row = warp_row(), b = blockIdx.y;
  const T* u = a.u + b * a.e;
  const float* x = a.x + b * a.n;
  const bool stage = blockIdx.x * kRowWarps < a.n && a.n <= kMaxStagedState;  // a block with state rows
  int64_t k_begin = 0, k_end = 0;
  float x_r = 0.f, v = 0.f;
  if (row < a.n) {
    k_begin = a.indptr[row];
    k_end = a.indptr[row + 1];
    x_r = x[row];
  }
  if (stage) {
    for (int64_t i = threadIdx.x; i < a.n; i += blockDim.x) shared[i] = x[i];
  }
  if (row < a.n) {
    const T* input = a.projected ? a.projected + b * a.in : u;
    v = warp_dot(a.win_input + row * a.in, input, a.in) + static_cast<float>(a.win_bias[row]);
  } else if (!a.folded_keys && row < a.n + a.e) {
    v = warp_dot(a.query + (row - a.n) * a.e, u, a.e);
  }
  if (stage) __syncthreads();
  if (row < a.n) {
    const float* state = stage ? shared : x;
    // pre rounded to the compute dtype, as forward's GEMM rounds it, so step and forward agree under AMP.
    v = advance_row(a.indices, a.values, k_begin, k_end, x_r, static_cast<float>(static_cast<T>(v)), a.leak,
                    [state](int64_t i) { return state[i]; });
  }
  if (threadIdx.x % 32 != 0 || row >= (a.folded_keys ? a.n : a.n + a.e)) return;
  if (row < a.n) a.x_next[b * a.n + row] = v;
  else a.q[b * a.e + row - a.n] = static_cast<T>(v);
}

// Block (h * slices + s, b): slice s of head h's keys; weights are softmax times the new state. kMany:
// the build for grids of many blocks (cuda_kernels.cuh). kFolded: scores are u . K'[h, r], which need
// nothing of project_kernel's, so they and their softmax are done before waiting for it and only the
// new state's weights follow (H100, N = 256, E = 768: batch 1 11.4-11.5 to 10.9-11.0 us a token, batch 2
// 12.1 to 11.3-11.4).
template <typename T, bool kMany, bool kFolded>
__global__ void __launch_bounds__(kSliceThreads, slice_blocks_per_sm(kMany)) attend_kernel(StepArgs<T> a) {
  extern __shared__ __align__(16) float shared[];
  const int64_t h = blockIdx.x / a.slices, s = blockIdx.x % a.slices, b = blockIdx.y;
  const SliceShared sh = attnbench::cuda::slice_shared(shared, a.rows_per_slice, a.slices);
  const int64_t begin = s * a.rows_per_slice, end = begin + a.rows_per_slice < a.n ? begin + a.rows_per_slice : a.n;
  const float* x_next = a.x_next + b * a.n;
  float* partials = a.partials + (b * a.heads + h) * a.slices * (2 + a.dh);
  const auto weight = [x_next](int64_t r) { return x_next[r]; };
  if constexpr (kFolded) {
    attend_slice<kMany, true>(sh, a.u + b * a.e, SliceKeys<float>{a.folded_keys + h * a.n * a.e, a.e, a.e},
                              a.ev + h * a.dh, a.e, begin, end, /*ready=*/end, a.dh, a.scale, weight,
                              partials + s * (2 + a.dh));
  } else {
    attend_slice<kMany>(sh, a.q + b * a.e + h * a.dh, SliceKeys<T>{a.ek + h * a.dh, a.e, a.dh}, a.ev + h * a.dh, a.e,
                        begin, end, /*ready=*/end, a.dh, a.scale, weight, partials + s * (2 + a.dh));
  }
  // The previous kernel was the old state's only reader, so it can be overwritten now.
  if (h == 0) {
    for (int64_t r = begin + threadIdx.x; r < end; r += blockDim.x) a.x[b * a.n + r] = x_next[r];
  }
  merge_slices(sh, partials, a.slices, a.dh, a.arrivals + b * a.heads + h, a.out + b * a.e + h * a.dh);
}

// The fused step: one kernel a token, for up to kMaxFusedBatch sequences. With Wq folded into the keys
// (K'[h, r] = Wq_h^T Ek[r, h], so a score is u . K'[h, r]), nothing a state row needs depends on another
// block: block j owns `rows` state rows and, for every sequence, computes their recurrence, their scores
// and their share of each head's softmax and weighted values; weight rows are read once for the whole
// batch. The blocks then meet once (a grid barrier; the launch is cooperative) and each block merges
// a tile of outputs across the blocks' shares, exactly and in a fixed order.
//
// A token is a few dependent trips to memory, and reading its weights is bound by how many load
// instructions the SMs issue: on the H100 a 4.7 MB read by 128 blocks adds 2.5-4 us to a kernel in
// 4-byte loads and ~1 us in 16-byte ones (docs/bench/gpu_floors.cu). So the weights, the token, Ev's
// rows and the shares move in 16-byte words, and everything that depends on nothing (weights, token,
// Ev's rows, the old state, W's row bounds) is requested in the first trip; the token, Ev and the state
// go to shared memory by asynchronous copies. Index arithmetic is 32-bit: a 64-bit division is a long
// software routine.
constexpr int kMaxFusedBatch = attnbench::cuda::kMaxRowBatch;
// Below this batch the split step was as fast or faster on the H100, N = 256 (a token at batch 1: 11.4
// us split against 13.8 fused; batch 4 in fp32: 14.4 against 15.9); from it on the fused one wins
// (batch 4 under AMP: 17.2 against 15.3; at N = 1024: 32.3 against 24.6; batch 16: 37.3 against 19.7).
constexpr int kMinFusedBatch = 4;
// Blocks the state's rows are spread over (fewer when they would not all be resident). On the H100 at
// N = 256, 128 blocks beat 64 at batch 1 and 16 (13.8 vs 14.8 and 22.2 vs 32.5 us a token).
constexpr int64_t kFusedBlocks = 128;
constexpr int kMaxFusedWarps = 16;  // a block's warps, the gather warp included (the registers allow 20)
constexpr int kMergeLoads = 8;   // blocks' shares a lane loads at once when it merges them
constexpr int kGatherLoads = 8;  // W's nonzeros a lane loads at once

template <typename T>
struct FusedArgs {
  const T* u;                // (B, E) the token
  const T* win_bias;         // (N)
  const T* win_input;        // (N, E)
  const float* folded_keys;  // (H, N, E)
  const int64_t* indptr;
  const int64_t* indices;
  const float* values;
  const T* ev;               // (N, E)
  float* x;                  // (B, N) the state, advanced
  float* stats;              // (blocks, B, H, 2): each block's softmax max and sum of exponentials
  float* shares;             // (blocks, B, E): each block's exp-weighted values
  unsigned long long* arrivals;  // the grid barrier's count; only ever grows
  T* out;                    // (B, E)
  int batch, n, e, heads, dh, rows;
  bool stage_state;          // the old state (B, N) is copied to shared memory
  float leak, scale;
};

// The fused kernel's shared memory, in 16-byte aligned pieces; the host sizes it with the same code.
struct FusedLayout {
  int inputs, values, state, dots, weights, old, recurrent, next, bias, merged, bytes;  // byte offsets
  __host__ __device__ FusedLayout(int batch, int n, int e, int heads, int rows, bool stage_state, int threads,
                                  int element_size) {
    int at = 0;
    auto take = [&at](int bytes) {
      const int start = at;
      at += (bytes + 15) / 16 * 16;
      return start;
    };
    inputs = take(batch * e * element_size);         // (B, E) the token
    values = take(rows * e * element_size);          // (rows, E) Ev's rows
    state = take(stage_state ? batch * n * 4 : 0);   // (B, N) the old state
    dots = take(rows * (1 + heads) * batch * 4);     // (rows * (1 + H), B)
    weights = take(batch * heads * rows * 4);        // (B, H, rows) softmax numerators times the new state
    old = take(batch * rows * 4);                    // (B, rows) the rows' old state
    recurrent = take(batch * rows * 4);              // (B, rows) W x
    next = take(batch * rows * 4);                   // (B, rows) the new state
    bias = take(rows * 4);                           // (rows)
    merged = take(threads * 6 * 4);                  // (warps, 32, 2 + 4) the warps' merges of a tile
    bytes = at;
  }
};

// Dot row i of the block (Win's row r0 + i for i < owned, then K'[h, r0 + k] at i = owned + h * owned + k)
// with every input into out[0, batch); its first pass's words may already be in `words`.
template <typename T>
__device__ void dot_row(const FusedArgs<T>& a, const T* inputs, int r0, int owned, int i, bool have_words,
                        uint4* words, float* out) {
  float v;
  if (i < owned) {
    v = batched_row_dot(a.win_input + static_cast<int64_t>(r0 + i) * a.e, a.e, inputs, a.batch, words, have_words);
  } else {
    const int h = (i - owned) / owned, k = (i - owned) % owned;
    const float* row = a.folded_keys + (static_cast<int64_t>(h) * a.n + r0 + k) * a.e;
    v = batched_row_dot(row, a.e, inputs, a.batch, words, have_words);
  }
  const int lane = threadIdx.x % 32;
  if (lane < a.batch) out[lane] = v;
}

// The grid barrier (the launch is cooperative, so every block is resident): each block adds one to a
// count that only ever grows, then waits for it to reach the next multiple of the grid's size. A block
// reads the count when it starts, before it can have arrived, so it knows that multiple without a
// round trip of its own: arrivals of this launch leave the count short of it.
__device__ __forceinline__ unsigned long long barrier_target(const unsigned long long* arrivals) {
  ::cuda::atomic_ref<const unsigned long long, ::cuda::thread_scope_device> count(*arrivals);
  return (count.load(::cuda::memory_order_relaxed) / gridDim.x + 1) * gridDim.x;
}

// What a block wrote before it is visible to every block after it (read those with __ldcg: another SM's
// L1 may hold stale lines).
__device__ void grid_barrier(unsigned long long* arrivals, unsigned long long target) {
  __syncthreads();
  if (threadIdx.x == 0) {
    ::cuda::atomic_ref<unsigned long long, ::cuda::thread_scope_device> count(*arrivals);
    count.fetch_add(1ull, ::cuda::memory_order_release);  // its result unused: no round trip to wait for
    while (count.load(::cuda::memory_order_acquire) < target) {
    }
  }
  __syncthreads();
}

// Folds (m2, t2, v2[4]), a softmax max, its sum of exponentials and four weighted values, into (m, t, v).
__device__ __forceinline__ void fold_share(float& m, float& t, float* v, float m2, float t2, const float* v2) {
  const float mm = fmaxf(m, m2);
  if (mm == -INFINITY) return;  // neither holds a block yet
  const float f = m == -INFINITY ? 0.f : expf(m - mm), g = m2 == -INFINITY ? 0.f : expf(m2 - mm);
  t = t * f + t2 * g;
#pragma unroll
  for (int k = 0; k < 4; ++k) v[k] = v[k] * f + v2[k] * g;
  m = mm;
}

// Block j: state rows [j * rows, ...). Its last warp computes W x for those rows while the others dot
// the block's Win and K' rows with every input.
template <typename T>
__global__ void fused_step_kernel(FusedArgs<T> a) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int batch = a.batch, e = a.e, heads = a.heads, rows = a.rows, n = a.n;
  const int r0 = blockIdx.x * rows, owned = min(rows, n - r0), dot_rows = owned * (1 + heads);
  const FusedLayout layout(batch, n, e, heads, rows, a.stage_state, blockDim.x, sizeof(T));
  T* inputs = reinterpret_cast<T*>(smem + layout.inputs);
  T* values = reinterpret_cast<T*>(smem + layout.values);
  float* state = reinterpret_cast<float*>(smem + layout.state);
  float* dots = reinterpret_cast<float*>(smem + layout.dots);
  float* weights = reinterpret_cast<float*>(smem + layout.weights);
  float* old = reinterpret_cast<float*>(smem + layout.old);
  float* recurrent = reinterpret_cast<float*>(smem + layout.recurrent);
  float* next = reinterpret_cast<float*>(smem + layout.next);
  float* bias = reinterpret_cast<float*>(smem + layout.bias);
  float* merged = reinterpret_cast<float*>(smem + layout.merged);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, gather_warp = blockDim.x / 32 - 1;

  // First trip. A worker's first weight row and the gather warp's first row bounds of W go to registers.
  uint4 words[kRowWords];
  const bool have_words = warp < gather_warp && warp < dot_rows;
  if (have_words) {
    if (warp < owned) load_row_words(a.win_input + static_cast<int64_t>(r0 + warp) * e, e, 0, words);
    else load_row_words(a.folded_keys + (static_cast<int64_t>((warp - owned) / owned) * n + r0 + (warp - owned) % owned) * e, e, 0, words);
  }
  const unsigned long long target = threadIdx.x == 0 ? barrier_target(a.arrivals) : 0;
  int64_t nz_begin = 0, nz_end = 0;
  if (warp == gather_warp && lane < batch * owned) {
    nz_begin = a.indptr[r0 + lane % owned];
    nz_end = a.indptr[r0 + lane % owned + 1];
  }
  stage_async(inputs, a.u, batch * e * static_cast<int>(sizeof(T)));
  stage_async(values, a.ev + static_cast<int64_t>(r0) * e, owned * e * static_cast<int>(sizeof(T)));
  if (a.stage_state) {
    for (int i = threadIdx.x; i < batch * n; i += blockDim.x) __pipeline_memcpy_async(state + i, a.x + i, 4);
    __pipeline_commit();
  }
  for (int t = threadIdx.x; t < batch * owned; t += blockDim.x) old[(t / owned) * rows + t % owned] = a.x[(t / owned) * n + r0 + t % owned];
  for (int t = threadIdx.x; t < owned; t += blockDim.x) bias[t] = static_cast<float>(a.win_bias[r0 + t]);
  __pipeline_wait_prior(0);
  __syncthreads();

  if (warp == gather_warp) {
    for (int t = lane; t < batch * owned; t += 32) {
      const int b = t / owned, k = t % owned;
      if (t >= 32) {
        nz_begin = a.indptr[r0 + k];
        nz_end = a.indptr[r0 + k + 1];
      }
      const float* x = a.stage_state ? state + b * n : a.x + static_cast<int64_t>(b) * n;
      float acc = 0.f;
      for (int64_t base = nz_begin; base < nz_end; base += kGatherLoads) {
        int64_t col[kGatherLoads];
        float val[kGatherLoads];
#pragma unroll
        for (int q = 0; q < kGatherLoads; ++q) {
          if (base + q < nz_end) {
            col[q] = a.indices[base + q];
            val[q] = a.values[base + q];
          }
        }
#pragma unroll
        for (int q = 0; q < kGatherLoads; ++q) {
          if (base + q < nz_end) acc += val[q] * x[col[q]];
        }
      }
      recurrent[b * rows + k] = acc;
    }
  } else {
    for (int i = warp; i < dot_rows; i += gather_warp) {
      dot_row(a, inputs, r0, owned, i, have_words && i == warp, words, dots + i * batch);
    }
  }
  __syncthreads();
  for (int t = threadIdx.x; t < batch * owned; t += blockDim.x) {
    const int b = t / owned, k = t % owned, i = b * rows + k;
    // pre rounded to the compute dtype, as forward's GEMM rounds it, so step and forward agree under AMP.
    const float pre = static_cast<float>(static_cast<T>(dots[k * batch + b] + bias[k]));
    next[i] = (1.f - a.leak) * old[i] + a.leak * tanhf(pre + recurrent[i]);
  }
  __syncthreads();
  float* stats = a.stats + static_cast<int64_t>(blockIdx.x) * batch * heads * 2;
  for (int t = threadIdx.x; t < batch * heads; t += blockDim.x) {
    const int b = t / heads, h = t % heads;
    const float* score = dots + (owned + h * owned) * batch + b;  // row k's score at score[k * batch]
    float m = -INFINITY;
    for (int k = 0; k < owned; ++k) m = fmaxf(m, score[k * batch] * a.scale);
    float total = 0.f;
    for (int k = 0; k < owned; ++k) {
      const float p = expf(score[k * batch] * a.scale - m);
      total += p;
      weights[t * rows + k] = p * next[b * rows + k];
    }
    stats[2 * t] = m;
    stats[2 * t + 1] = total;
  }
  __syncthreads();
  float4* shares = reinterpret_cast<float4*>(a.shares + static_cast<int64_t>(blockIdx.x) * batch * e);
  for (int i = threadIdx.x; i < batch * e / 4; i += blockDim.x) {  // four columns of one head a thread
    const int b = i / (e / 4), c = (i - b * (e / 4)) * 4;
    const float* wk = weights + (b * heads + c / a.dh) * rows;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int k = 0; k < owned; ++k) {
      const T* v = values + k * e + c;
      acc.x += wk[k] * static_cast<float>(v[0]);
      acc.y += wk[k] * static_cast<float>(v[1]);
      acc.z += wk[k] * static_cast<float>(v[2]);
      acc.w += wk[k] * static_cast<float>(v[3]);
    }
    shares[i] = acc;
  }
  grid_barrier(a.arrivals, target);
  // Every block has read the old state by now.
  for (int t = threadIdx.x; t < batch * owned; t += blockDim.x) {
    a.x[(t / owned) * n + r0 + t % owned] = next[(t / owned) * rows + t % owned];
  }
  // A block per tile of 128 outputs (b, c..c+127): lane l takes columns c + 4l..c + 4l + 3 (one head),
  // warp w the blocks' shares j = w, w + warps, ...; then the warps' merges are folded in warp order.
  const int warps = blockDim.x / 32, blocks = gridDim.x, column_tiles = (e + 127) / 128;
  for (int tile = blockIdx.x; tile < batch * column_tiles; tile += blocks) {
    const int b = tile / column_tiles, c = (tile % column_tiles) * 128 + lane * 4, h = min(c, e - 1) / a.dh;
    float m = -INFINITY, total = 0.f, acc[4] = {0.f, 0.f, 0.f, 0.f};
    for (int first = warp; first < blocks; first += warps * kMergeLoads) {
      float2 st[kMergeLoads];
      float4 v[kMergeLoads];
#pragma unroll
      for (int q = 0; q < kMergeLoads; ++q) {
        const int j = first + q * warps;
        if (j >= blocks) break;
        st[q] = __ldcg(reinterpret_cast<const float2*>(a.stats) + (j * batch + b) * heads + h);
        v[q] = c < e ? __ldcg(reinterpret_cast<const float4*>(a.shares + (static_cast<int64_t>(j) * batch + b) * e + c))
                     : make_float4(0.f, 0.f, 0.f, 0.f);
      }
#pragma unroll
      for (int q = 0; q < kMergeLoads; ++q) {
        if (first + q * warps >= blocks) break;
        const float v2[4] = {v[q].x, v[q].y, v[q].z, v[q].w};
        fold_share(m, total, acc, st[q].x, st[q].y, v2);
      }
    }
    float* mine = merged + threadIdx.x * 6;
    mine[0] = m;
    mine[1] = total;
    for (int k = 0; k < 4; ++k) mine[2 + k] = acc[k];
    __syncthreads();
    if (warp == 0) {
      m = -INFINITY, total = 0.f;
      for (int k = 0; k < 4; ++k) acc[k] = 0.f;
      for (int w = 0; w < warps; ++w) {
        const float* theirs = merged + (w * 32 + lane) * 6;
        fold_share(m, total, acc, theirs[0], theirs[1], theirs + 2);
      }
      if (c < e) {
        for (int k = 0; k < 4; ++k) a.out[b * e + c + k] = static_cast<T>(acc[k] / total);
      }
    }
    __syncthreads();
  }
}

// Blocks per sequence for esn_sequence_grid_kernel: ~4 rows per warp, as many as stay co-resident.
int64_t grid_blocks(int64_t n, int64_t batch) {
  int per_sm = 0;
  C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, esn_sequence_grid_kernel, kGridThreads, 0));
  const int64_t resident = static_cast<int64_t>(per_sm) * at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  return std::min(attnbench::cuda::ceil_div(n, kGridThreads / 32 * 4), resident / batch);
}

}  // namespace

void cuda_recurrence(const at::Tensor& pre, at::Tensor& x, at::Tensor& states, const at::Tensor& indptr,
                     const at::Tensor& indices, const at::Tensor& values, double leak) {
  TORCH_CHECK(pre.is_cuda() && pre.scalar_type() == at::kFloat && pre.is_contiguous(), "cuda_recurrence: pre must be contiguous float32 CUDA");
  TORCH_CHECK(x.is_contiguous() && states.is_contiguous(), "cuda_recurrence: x and states must be contiguous");
  const int64_t length = pre.size(0), batch = pre.size(1), n = pre.size(2);
  if (length == 0) return;
  const c10::cuda::CUDAGuard guard(pre.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const int64_t nnz = values.numel();
  const size_t state_bytes = static_cast<size_t>(2 * n) * sizeof(float);
  const size_t staged_bytes = state_bytes + static_cast<size_t>(n + 1 + nnz) * sizeof(int64_t) + nnz * sizeof(float);
  const bool stage = static_cast<int64_t>(staged_bytes) <= kMaxSharedBytes;
  const int64_t blocks = stage && nnz <= kOneBlockNonzeros ? 0 : grid_blocks(n, batch);
  if (blocks > 0) {
    at::Tensor buffer = at::empty({2, batch, n}, x.options());
    GridRecurrence a{pre.data_ptr<float>(), x.data_ptr<float>(), states.data_ptr<float>(), buffer.data_ptr<float>(),
                     indptr.data_ptr<int64_t>(), indices.data_ptr<int64_t>(), values.data_ptr<float>(),
                     length, batch, n, static_cast<float>(leak)};
    void* args[] = {&a};
    C10_CUDA_CHECK(cudaLaunchCooperativeKernel(reinterpret_cast<const void*>(esn_sequence_grid_kernel),
                                               dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(batch)),
                                               dim3(kGridThreads), args, 0, stream));
    return;
  }
  // One block per sequence: W staged when it fits, else read from global memory (a batch too large for
  // the cooperative grid to hold).
  TORCH_CHECK(static_cast<int64_t>(state_bytes) <= kMaxSharedBytes, "cuda_recurrence: N=", n, " with batch ", batch,
              " fits neither one block's shared memory nor a cooperative grid; lower the batch");
  const bool warp_per_row = nnz >= 8 * n;  // rows of 8+ nonzeros on average
  const size_t shared = stage ? staged_bytes : state_bytes;
  auto launch = [&](auto kernel) {
    allow_shared_bytes(reinterpret_cast<const void*>(kernel), shared);
    kernel<<<static_cast<unsigned>(batch), kThreads, shared, stream>>>(
        pre.data_ptr<float>(), x.data_ptr<float>(), states.data_ptr<float>(), indptr.data_ptr<int64_t>(),
        indices.data_ptr<int64_t>(), values.data_ptr<float>(), length, batch, n, nnz, static_cast<float>(leak));
  };
  if (stage && warp_per_row) launch(esn_sequence_kernel<true, true>);
  else if (stage) launch(esn_sequence_kernel<true, false>);
  else if (warp_per_row) launch(esn_sequence_kernel<false, true>);
  else launch(esn_sequence_kernel<false, false>);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

bool fused_step_applies(const CudaStepWeights& w, int64_t batch) {
  return w.folded_keys.defined() && batch >= kMinFusedBatch && batch <= kMaxFusedBatch;
}

// 32-bit offsets into a weight; rows of whole 16-byte words; four columns a thread within one head.
bool fused_step_fits(int64_t n, int64_t e, int64_t heads) {
  return heads * n * e < (int64_t{1} << 31) && e % 8 == 0 && (e / heads) % 4 == 0;
}

namespace {

// split_step_folds, given the attention's grid.
bool folds_with(const CudaStepWeights& w, int64_t n, int64_t e, dim3 grid, int sms) {
  return w.folded_keys.defined() && w.heads * n <= e + n && !attnbench::cuda::takes_many_blocks(grid, sms);
}

}  // namespace

bool split_step_folds(const CudaStepWeights& w, int64_t n, int64_t e, int64_t batch) {
  const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  return folds_with(w, n, e, slice_grid(w.heads, attnbench::cuda::slicing_for(n, batch * w.heads, sms), batch), sms);
}

at::Tensor fold_query_into_keys(const at::Tensor& query, const at::Tensor& ek, int64_t heads) {
  const int64_t n = ek.size(0), e = ek.size(1), dh = e / heads;
  // In float64, so the only rounding is the final one to float32.
  const at::Tensor q = query.to(at::kDouble).reshape({heads, dh, e});
  const at::Tensor k = ek.to(at::kDouble).reshape({n, heads, dh}).permute({1, 0, 2});
  return at::bmm(k, q).to(at::kFloat).contiguous();
}

namespace {

// The fused step's shape for this batch: how many state rows a block owns, so that every block is
// resident at once (the barrier needs it) and its shared memory fits; blocks == 0 when it does not fit.
template <typename T>
FusedShape fused_shape(int64_t batch, int64_t n, int64_t e, int64_t heads) {
  if (!fused_step_fits(n, e, heads)) return {};
  const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  for (int64_t rows = attnbench::cuda::ceil_div(n, kFusedBlocks); rows <= n; rows *= 2) {
    FusedShape f;
    f.rows = rows;
    f.blocks = attnbench::cuda::ceil_div(n, rows);
    f.threads = 32 * static_cast<int>(std::min<int64_t>(rows * (1 + heads), kMaxFusedWarps - 1) + 1);
    auto layout = [&](bool stage_state) {
      return FusedLayout(static_cast<int>(batch), static_cast<int>(n), static_cast<int>(e), static_cast<int>(heads),
                         static_cast<int>(rows), stage_state, f.threads, static_cast<int>(sizeof(T))).bytes;
    };
    f.stage_state = layout(true) <= kMaxSharedBytes;
    f.shared = static_cast<size_t>(layout(f.stage_state));
    if (static_cast<int64_t>(f.shared) > kMaxSharedBytes) return {};
    allow_shared_bytes(reinterpret_cast<const void*>(fused_step_kernel<T>), f.shared);
    int per_sm = 0;
    C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fused_step_kernel<T>, f.threads, f.shared));
    if (f.blocks <= static_cast<int64_t>(per_sm) * sms) return f;
  }
  return {};
}

}  // namespace

at::Tensor cuda_step(const at::Tensor& u, at::Tensor& x, const CudaStepWeights& w, CudaStepScratch& scratch, bool graph) {
  TORCH_CHECK(u.is_contiguous() && x.is_contiguous(), "reservoir cuda_step: u and x must be contiguous");
  const int64_t batch = u.size(0), e = u.size(1), n = x.size(1), heads = w.heads, dh = e / heads;
  const int64_t in = w.win_input.size(1);
  const c10::cuda::CUDAGuard guard(u.device());
  at::Tensor out = at::empty({batch, e}, u.options());
  if (!scratch.fused_decided) {  // once per state: its batch and dtype never change
    scratch.fused_decided = true;
    if (fused_step_applies(w, batch)) {
      AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, u.scalar_type(), "reservoir_fused_shape", [&] {
        scratch.fused = fused_shape<scalar_t>(batch, n, e, heads);
      });
    }
    if (scratch.fused.blocks > 0) {
        scratch.stats = at::empty({scratch.fused.blocks, batch, heads, 2}, x.options());
        scratch.shares = at::empty({scratch.fused.blocks, batch, e}, x.options());
        scratch.barrier = at::zeros({1}, x.options().dtype(at::kLong));
    }
  }
  const FusedShape& f = scratch.fused;
  if (f.blocks > 0) {
    const at::Tensor token = attnbench::cuda::aligned16_or_copy(u);  // the kernel reads 16-byte words
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, u.scalar_type(), "reservoir_fused_step", [&] {
      const FusedArgs<scalar_t> a{
          token.data_ptr<scalar_t>(), w.win_bias.data_ptr<scalar_t>(), w.win_input.data_ptr<scalar_t>(),
          w.folded_keys.data_ptr<float>(), w.indptr.data_ptr<int64_t>(), w.indices.data_ptr<int64_t>(),
          w.values.data_ptr<float>(), w.ev.data_ptr<scalar_t>(), x.data_ptr<float>(), scratch.stats.data_ptr<float>(),
          scratch.shares.data_ptr<float>(), reinterpret_cast<unsigned long long*>(scratch.barrier.data_ptr<int64_t>()),
          out.data_ptr<scalar_t>(), static_cast<int>(batch), static_cast<int>(n), static_cast<int>(e),
          static_cast<int>(heads), static_cast<int>(dh), static_cast<int>(f.rows), f.stage_state,
          static_cast<float>(w.leak), 1.f / sqrtf(static_cast<float>(dh))};
      scratch.chain.set(0, fused_step_kernel<scalar_t>, dim3(static_cast<unsigned>(f.blocks)),
                        dim3(static_cast<unsigned>(f.threads)), f.shared, a, /*cooperative=*/true);
    });
    scratch.chain.run(at::cuda::getCurrentCUDAStream(), graph);
    return out;
  }
  const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const attnbench::cuda::Slicing slicing = attnbench::cuda::slicing_for(n, batch * heads, sms);
  if (!scratch.x_next.defined() || !scratch.x_next.sizes().equals(x.sizes()) || scratch.query.scalar_type() != u.scalar_type()) {
    scratch.x_next = at::empty_like(x);
    scratch.query = at::empty({batch, e}, u.options());
    scratch.projected = w.input_proj.defined() ? at::empty({batch, in}, u.options()) : at::Tensor();
    scratch.partials = at::empty({batch, heads, slicing.slices, 2 + dh}, x.options());
    scratch.arrivals = at::zeros({batch, heads}, x.options().dtype(at::kInt));
  }
  const size_t shared = attnbench::cuda::slice_shared_bytes(slicing.rows_per_slice, slicing.slices);
  TORCH_CHECK(static_cast<int64_t>(shared) <= kMaxSharedBytes, "reservoir: res_size ", n, " is too large for the CUDA step");
  const dim3 grid = slice_grid(heads, slicing, batch);
  const bool folded = folds_with(w, n, e, grid, sms);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, u.scalar_type(), "reservoir_step", [&] {
    auto ptr = [](const at::Tensor& t) { return t.defined() ? t.data_ptr<scalar_t>() : nullptr; };
    const StepArgs<scalar_t> a{
        u.data_ptr<scalar_t>(), ptr(w.input_proj), ptr(scratch.projected), w.win_bias.data_ptr<scalar_t>(),
        w.win_input.data_ptr<scalar_t>(), w.query.data_ptr<scalar_t>(), w.indptr.data_ptr<int64_t>(),
        w.indices.data_ptr<int64_t>(), w.values.data_ptr<float>(), w.ek.data_ptr<scalar_t>(), w.ev.data_ptr<scalar_t>(),
        folded ? w.folded_keys.data_ptr<float>() : nullptr, x.data_ptr<float>(), scratch.x_next.data_ptr<float>(),
        scratch.query.data_ptr<scalar_t>(),
        scratch.partials.data_ptr<float>(), reinterpret_cast<unsigned*>(scratch.arrivals.data_ptr<int32_t>()),
        out.data_ptr<scalar_t>(), n, e, in, heads, dh, slicing.rows_per_slice, slicing.slices,
        static_cast<float>(w.leak), 1.f / sqrtf(static_cast<float>(dh))};
    size_t i = 0;
    if (w.input_proj.defined()) scratch.chain.set(i++, input_projection_kernel<scalar_t>, row_grid(in, batch), row_block(), 0, a);
    const size_t staged_state = n <= kMaxStagedState ? static_cast<size_t>(n) * sizeof(float) : 0;
    const int64_t rows = folded ? n : n + e;
    scratch.chain.set(i++, project_kernel<scalar_t>, row_grid(rows, batch), row_block(), staged_state, a);
    // split_step_folds keeps folded scores to grids of few blocks: no build for many.
    const auto attend = folded ? slice_kernel_for(grid, sms, attend_kernel<scalar_t, false, true>,
                                                  attend_kernel<scalar_t, false, true>, shared)
                               : slice_kernel_for(grid, sms, attend_kernel<scalar_t, false, false>,
                                                  attend_kernel<scalar_t, true, false>, shared);
    scratch.chain.set(i++, attend, grid, slice_block(), shared, a);
  });
  scratch.chain.run(at::cuda::getCurrentCUDAStream(), graph);
  return out;
}

}  // namespace attnbench::reservoir
