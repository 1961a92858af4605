// Device code the built-in plugins' kernels share: warp and block reductions, programmatic dependent
// launch, a warp's dot product in 16-byte loads, rows dotted with a batch of inputs, and attention of
// one query split across blocks.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAException.h>
#include <cuda/atomic>
#include <cuda_pipeline_primitives.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <type_traits>
#include <utility>

namespace attnbench::cuda {

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Sum or max of one value per thread over the whole block; every thread gets the result. `scratch`
// holds 32 floats of shared memory; blockDim.x must be a multiple of 32.
template <bool kMax>
__device__ float block_reduce(float v, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = kMax ? warp_max(v) : warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : (kMax ? -INFINITY : 0.f);
  return kMax ? warp_max(v) : warp_sum(v);
}

// Dynamic shared memory the built-in kernels allow themselves: under the H100's 227 KB opt-in limit.
constexpr int64_t kMaxSharedBytes = 200 * 1024;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Kernels with a warp per output row (the projections): kRowWarps warps a block, blockIdx.y the sequence.
constexpr int kRowWarps = 8;
__device__ __forceinline__ int64_t warp_row() { return blockIdx.x * kRowWarps + threadIdx.x / 32; }
inline dim3 row_grid(int64_t rows, int64_t batch) {
  return dim3(static_cast<unsigned>(ceil_div(rows, kRowWarps)), static_cast<unsigned>(batch));
}
inline dim3 row_block() { return dim3(kRowWarps * 32); }

__device__ __forceinline__ bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// Programmatic dependent launch (sm_90 and later; no-ops before). A kernel that a KernelChain launches
// after another may start while that one still runs: it loads what the previous kernel does not write
// (weights), then waits here until the previous kernel's writes are visible.
__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
// Lets the next kernel of the chain start now rather than when this one ends.
__device__ __forceinline__ void start_next_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// The warp asks for `bytes` from p to be brought into L1, one 128-byte line per lane, and does not wait.
__device__ __forceinline__ void warp_prefetch(const void* p, int64_t bytes) {
  const char* base = static_cast<const char*>(p);
  for (int64_t offset = (threadIdx.x % 32) * 128; offset < bytes; offset += 32 * 128) {
    asm volatile("prefetch.global.L1 [%0];" ::"l"(base + offset));
  }
}

// sum_i a[i] b[i], i < len, by one warp; every lane gets it. With both rows 16-byte aligned each lane
// issues all its 16-byte loads (up to kChunks of them per row) before it uses any, so the loads of a
// row (6 a lane for 768 floats) are in flight together: these dots are latency-bound. A short row (a
// head's Dh) needs fewer chunks, and fewer registers.
template <int kChunks = 8, typename A, typename B>
__device__ float warp_dot(const A* a, const B* b, int64_t len) {
  constexpr int kVec = 16 / (sizeof(A) < sizeof(B) ? sizeof(A) : sizeof(B));
  constexpr int kWordsA = kVec * sizeof(A) / 16, kWordsB = kVec * sizeof(B) / 16;
  const int lane = threadIdx.x % 32;
  float acc = 0.f;
  int64_t tail = 0;
  if (aligned16(a) && aligned16(b)) {
    tail = len / kVec * kVec;
    for (int64_t base = 0; base < tail; base += 32 * kVec * kChunks) {
      uint4 wa[kChunks][kWordsA], wb[kChunks][kWordsB];
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        const int64_t i = base + (c * 32 + lane) * kVec;
        if (i >= tail) break;
#pragma unroll
        for (int w = 0; w < kWordsA; ++w) wa[c][w] = reinterpret_cast<const uint4*>(a + i)[w];
#pragma unroll
        for (int w = 0; w < kWordsB; ++w) wb[c][w] = reinterpret_cast<const uint4*>(b + i)[w];
      }
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        if (base + (c * 32 + lane) * kVec >= tail) break;
        const A* x = reinterpret_cast<const A*>(wa[c]);
        const B* y = reinterpret_cast<const B*>(wb[c]);
#pragma unroll
        for (int k = 0; k < kVec; ++k) acc += static_cast<float>(x[k]) * static_cast<float>(y[k]);
      }
    }
  }
  for (int64_t i = tail + lane; i < len; i += 32) acc += static_cast<float>(a[i]) * static_cast<float>(b[i]);
  return warp_sum(acc);
}

// Rows read once for a batch of inputs. A streamed batch is latency and weight reads: a warp per row
// over each sequence would read every weight B times. Instead a block stages its B inputs in shared
// memory (stage_async) and a warp holds a row's 16-byte words in registers while it dots them with
// every input; on the H100 16-byte words read 4.7 MB ~1.5-3 us faster than 4-byte loads.
constexpr int kMaxRowBatch = 16;  // sequences; a lane accumulates one float for each
constexpr int kRowWords = 8;      // 16-byte words of a row a lane holds at once

// `t`, or where it starts off a 16-byte boundary (a view into a larger tensor) a copy that does not:
// for kernels that read a token in 16-byte words.
inline at::Tensor aligned16_or_copy(const at::Tensor& t) {
  return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0 ? t : t.clone();
}

// Copies `bytes` (whole 16-byte words, both pointers 16-byte aligned) to shared memory asynchronously;
// the block waits with __pipeline_wait_prior(0) and __syncthreads().
__device__ __forceinline__ void stage_async(void* shared, const void* global, int bytes) {
  for (int i = threadIdx.x; i < bytes / 16; i += blockDim.x) {
    __pipeline_memcpy_async(static_cast<uint4*>(shared) + i, static_cast<const uint4*>(global) + i, 16);
  }
  __pipeline_commit();
}

// A lane's 16-byte words of pass `pass` over a row of `e` elements W: word q at (pass * kRowWords + q) * 32 + lane.
template <typename W>
__device__ __forceinline__ void load_row_words(const W* row, int e, int pass, uint4* words) {
  constexpr int kVec = 16 / sizeof(W);
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int q = 0; q < kRowWords; ++q) {
    const int word = (pass * kRowWords + q) * 32 + lane;
    if (word * kVec < e) words[q] = reinterpret_cast<const uint4*>(row)[word];
  }
}

// acc[r * kMaxRowBatch + b] += this lane's words of row r (elements W; row r's at words + r * kRowWords) .
// inputs[b * e ...] (elements X, shared memory), r < kRows, b < batch. Each input word read serves all
// kRows rows: shared memory bandwidth, not the weights, bounds a batch of 16.
template <int kRows, typename W, typename X>
__device__ __forceinline__ void dot_words(const uint4* words, const X* inputs, int batch, int e, int pass, float* acc) {
  constexpr int kVec = 16 / sizeof(W);
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int q = 0; q < kRowWords; ++q) {
    const int first = ((pass * kRowWords + q) * 32 + lane) * kVec;
    if (first >= e) break;
#pragma unroll
    for (int b = 0; b < kMaxRowBatch; ++b) {
      if (b >= batch) break;
      const X* input = inputs + b * e + first;
      float in[kVec];
      if constexpr (sizeof(X) == sizeof(W)) {
        const uint4 word = *reinterpret_cast<const uint4*>(input);
        const X* x = reinterpret_cast<const X*>(&word);
#pragma unroll
        for (int k = 0; k < kVec; ++k) in[k] = static_cast<float>(x[k]);
      } else {
#pragma unroll
        for (int k = 0; k < kVec; ++k) in[k] = static_cast<float>(input[k]);
      }
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const W* w = reinterpret_cast<const W*>(&words[r * kRowWords + q]);
#pragma unroll
        for (int k = 0; k < kVec; ++k) acc[r * kMaxRowBatch + b] += static_cast<float>(w[k]) * in[k];
      }
    }
  }
}

// Warp totals of N values a lane at once (N a power of two, at most 32) in N - 1 shuffles and 5 - log2 N
// more, where N warp_sums take 5 N: each step sends the half of its values that the lane across `offset`
// keeps, and adds what comes back to the half it keeps. Lane l ends with value l >> (5 - log2 N). The
// additions pair the lanes as warp_sum's do, so each total has warp_sum's bits.
template <int N, int kOffset = 16>
__device__ __forceinline__ float warp_sum_each(float* v) {
  static_assert(N >= 1 && N <= 32 && (N & (N - 1)) == 0, "warp_sum_each: N a power of two, at most 32");
  if constexpr (kOffset == 0) {
    return v[0];
  } else if constexpr (N == 1) {
    v[0] += __shfl_xor_sync(0xffffffffu, v[0], kOffset);
    return warp_sum_each<1, kOffset / 2>(v);
  } else {
    const bool upper = (threadIdx.x & kOffset) != 0;
#pragma unroll
    for (int k = 0; k < N / 2; ++k) {
      const float send = upper ? v[k] : v[k + N / 2];
      v[k] = (upper ? v[k + N / 2] : v[k]) + __shfl_xor_sync(0xffffffffu, send, kOffset);
    }
    return warp_sum_each<N / 2, kOffset / 2>(v);
  }
}

// Rows row .. row + kRows - 1 (each e elements, consecutive; all must exist) . inputs[b], b < batch (at
// most kMaxRowBatch), by one warp: lane r * kMaxRowBatch + b returns row r's dot with sequence b (other
// lanes: whatever). `words` (kRows * kRowWords) holds the rows' first pass already when `have_first`.
template <int kRows = 1, typename W, typename X>
__device__ float batched_row_dot(const W* row, int e, const X* inputs, int batch, uint4* words, bool have_first) {
  constexpr int kValues = kRows * kMaxRowBatch;
  static_assert(kValues <= 32, "batched_row_dot: a lane returns one row's dot with one sequence");
  float acc[kValues];
#pragma unroll
  for (int i = 0; i < kValues; ++i) acc[i] = 0.f;
  for (int pass = 0; pass * 32 * kRowWords * (16 / static_cast<int>(sizeof(W))) < e; ++pass) {
    if (!(have_first && pass == 0)) {
#pragma unroll
      for (int r = 0; r < kRows; ++r) load_row_words(row + static_cast<int64_t>(r) * e, e, pass, words + r * kRowWords);
    }
    dot_words<kRows, W>(words, inputs, batch, e, pass, acc);
  }
  const float total = warp_sum_each<kValues>(acc);
  // Lane l holds value l / (32 / kValues); spread them so that lane i holds value i.
  return kValues == 32 ? total : __shfl_sync(0xffffffffu, total, (threadIdx.x % kValues) * (32 / kValues));
}

// Kernels that attend a slice per block: block (h * slices + s, b) takes slice s of head h of sequence b.
// Each comes in two builds. The one for few blocks has 128 registers a thread, two blocks an SM, scores
// its rows in groups (group_scores) and prefetches their values. A grid larger than that takes the one
// for many blocks: a row at a time and no values prefetched, so it fits 64 registers without spilling
// and four blocks share an SM (on the H100, 1024 blocks of MHA at batch 16 ran in two waves rather than
// four: 23.5 to 18.0 us under Nsight Compute). The larger build for small grids: the scheduler stacked
// four blocks of the other on an SM while others idled, and MHA at batch 4 slowed from 18.6 to 20.6 us.
constexpr int kSliceThreads = 256;
// A build's blocks an SM (its __launch_bounds__); many: the build for many blocks.
constexpr int slice_blocks_per_sm(bool many) { return many ? 4 : 2; }
// warp_dot's loads a lane holds at once when a slice kernel scores a row at a time: few enough for the
// 64 registers of the build for many blocks, and for the groups' registers in the other.
constexpr int kSliceDotChunks = 2;
// The same where a slice scores before its wait (kQueryReady), with no values held yet: a row of 768
// floats in one trip. H100, RA's folded keys at batch 1, each against the same base (11.4-11.6 us a
// token) in its own run: 2 chunks 11.1-11.6 us, 6 chunks 10.9-11.0.
constexpr int kReadyDotChunks = 6;

// Attention of one query over keys split into slices, one slice per block ("flash decoding"): a
// streamed token's attention is too little work for one block per head to be anything but latency,
// so each block scores its rows, softmaxes them locally and writes (max m, sum of exp(s - m), values
// weighted by exp(s - m) * row_scale(r)); the head's last block to finish merges the slices exactly.
// Loads that do not depend on earlier results are issued first, so each phase is one round trip.
struct SliceShared {
  float* scores;   // one float per row of the slice
  float* merge;    // two floats per slice of the head
  float* scratch;  // 32 floats
};

constexpr int kEarly = 16;  // value rows (and merged slices) a thread loads before it needs them

// Scores of a slice's rows by a warp kGroupRows at a time, for heads of whole 16-byte words, at most
// kGroupWords of them a lane (256 columns, 128 in fp64), and rows 16-byte aligned: every key word a
// group needs is loaded before any is used, so a group is one trip to memory where a row at a time is
// one each, and the group's sums are reduced together (warp_sum_each). Each sum adds as warp_dot's
// does: the same bits. On the H100: MHA fp32 batch 16 28.7 to 25.8 us a token, L = 4096 22.1 to 19.7;
// attention at batch 16 under Nsight Compute 13.9 to 11.1 us.
constexpr int kGroupRows = 8;
template <typename T>
constexpr int kGroupWords = sizeof(T) >= 4 ? 2 : 1;
template <typename T>
__device__ __forceinline__ bool groups_fit(const T* query, const T* keys, int64_t stride, int64_t dh) {
  constexpr int kVec = 16 / sizeof(T);
  return dh % kVec == 0 && dh <= 32 * kGroupWords<T> * kVec && aligned16(query) && aligned16(keys) &&
         stride * static_cast<int64_t>(sizeof(T)) % 16 == 0;
}
// Rows first, first + step, ... (kGroupRows of them, those below `rows`) of `keys` against the query's
// words: lane l returns the score of row first + l / (32 / kGroupRows) * step.
template <typename T>
__device__ __forceinline__ float group_scores(const uint4* query, const T* keys, int64_t stride, int64_t first,
                                              int64_t step, int64_t rows, int64_t dh) {
  constexpr int kVec = 16 / sizeof(T);
  const int lane = threadIdx.x % 32;
  uint4 words[kGroupRows][kGroupWords<T>];
#pragma unroll
  for (int k = 0; k < kGroupRows; ++k) {
#pragma unroll
    for (int w = 0; w < kGroupWords<T>; ++w) {
      const int word = w * 32 + lane;
      if (first + k * step < rows && word * kVec < dh) {
        words[k][w] = reinterpret_cast<const uint4*>(keys + (first + k * step) * stride)[word];
      }
    }
  }
  float sums[kGroupRows];
#pragma unroll
  for (int k = 0; k < kGroupRows; ++k) {
    sums[k] = 0.f;
#pragma unroll
    for (int w = 0; w < kGroupWords<T>; ++w) {
      if (first + k * step < rows && (w * 32 + lane) * kVec < dh) {
        const T* q = reinterpret_cast<const T*>(&query[w]);
        const T* key = reinterpret_cast<const T*>(&words[k][w]);
#pragma unroll
        for (int e = 0; e < kVec; ++e) sums[k] += static_cast<float>(q[e]) * static_cast<float>(key[e]);
      }
    }
  }
  return warp_sum_each<kGroupRows>(sums);
}

// The keys a slice scores: row r at rows + r * stride, `len` elements, as long as the query.
template <typename K>
struct SliceKeys {
  const K* rows;
  int64_t stride, len;
};

// Rows [begin, end) of `keys` against `query`, weighting `values` (row r at r * stride, dh of them); an
// empty slice writes m = -inf, sum 0. partial: 2 + dh floats. Rows before `ready` are not written by
// the previous kernel of the chain, so they are fetched before waiting for it; the rows from `ready`
// on and row_scale(r), a factor on row r's weight, are read after, and so is the query unless
// kQueryReady: then the query and keys are not the previous kernel's either, and the scores and their
// softmax are done before the wait, leaving only the row scales and the weighted values after it.
// kMany: the build for many blocks.
template <bool kMany, bool kQueryReady = false, typename Q, typename K, typename T, typename RowScale>
__device__ void attend_slice(const SliceShared& sh, const Q* query, const SliceKeys<K>& keys, const T* values,
                             int64_t stride, int64_t begin, int64_t end, int64_t ready, int64_t dh, float scale,
                             RowScale row_scale, float* partial) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const int64_t rows = end > begin ? end - begin : 0, early_rows = ready - begin < rows ? ready - begin : rows;
  const int64_t column = threadIdx.x;  // the first column this thread sums; its first rows load early
  const K* slice_keys = keys.rows + begin * keys.stride;
  for (int64_t i = warp; i < early_rows; i += warps) {
    warp_prefetch(slice_keys + i * keys.stride, keys.len * sizeof(K));
    // Values past a thread's first kEarly rows too, in the slices of up to kMaxSliceRows that fill one
    // wave of the build for few blocks. (In the other build, with more blocks an SM sharing L1, this
    // slowed MHA at L = 16384 from 45.7 to 47.2 us a token on the H100.)
    if (!kMany && i >= kEarly) warp_prefetch(values + (begin + i) * stride, dh * sizeof(T));
  }
  // A thread's first kEarly values: rows before `ready` are loaded before the wait, the rest after it.
  T early[kEarly];
  auto load_ready = [&] {
#pragma unroll
    for (int i = 0; i < kEarly; ++i) {
      if (column < dh && i < early_rows) early[i] = values[(begin + i) * stride + column];
    }
  };
  auto load_rest = [&] {
#pragma unroll
    for (int i = 0; i < kEarly; ++i) {
      if (column < dh && i >= early_rows && i < rows) early[i] = values[(begin + i) * stride + column];
    }
  };
  float own_scale = 0.f;
  if constexpr (!kQueryReady) {
    load_ready();
    wait_for_previous_kernel();
    load_rest();
    // This thread's row scale is read with the query, not after the softmax.
    own_scale = threadIdx.x < rows ? row_scale(begin + threadIdx.x) : 0.f;
  }
  bool grouped = false;
  if constexpr (!kMany && std::is_same_v<Q, K>) {
    if (groups_fit(query, slice_keys, keys.stride, keys.len)) {
      grouped = true;
      uint4 query_words[kGroupWords<K>];
#pragma unroll
      for (int w = 0; w < kGroupWords<K>; ++w) {
        const int word = w * 32 + lane;
        if (word * (16 / static_cast<int>(sizeof(K))) < keys.len) query_words[w] = reinterpret_cast<const uint4*>(query)[word];
      }
      for (int64_t first = warp; first < rows; first += kGroupRows * warps) {
        const float s = group_scores(query_words, slice_keys, keys.stride, first, warps, rows, keys.len);
        const int64_t i = first + lane / (32 / kGroupRows) * warps;
        if (lane % (32 / kGroupRows) == 0 && i < rows) sh.scores[i] = s * scale;
      }
    }
  }
  if (!grouped) {
    for (int64_t i = warp; i < rows; i += warps) {
      constexpr int kChunks = kQueryReady ? kReadyDotChunks : kSliceDotChunks;
      const float s = warp_dot<kChunks>(query, slice_keys + i * keys.stride, keys.len);
      if (lane == 0) sh.scores[i] = s * scale;
    }
  }
  __syncthreads();
  float m = -INFINITY;
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x) m = fmaxf(m, sh.scores[i]);
  m = block_reduce<true>(m, sh.scratch);
  float total = 0.f;
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x) {
    const float p = expf(sh.scores[i] - m);
    total += p;
    sh.scores[i] = kQueryReady ? p : p * (i == threadIdx.x ? own_scale : row_scale(begin + i));
  }
  total = block_reduce<false>(total, sh.scratch);  // its barriers also publish the weights
  if constexpr (kQueryReady) {
    // The values after the scores, which then hold fewer registers.
    load_ready();
    wait_for_previous_kernel();
    load_rest();
    own_scale = threadIdx.x < rows ? row_scale(begin + threadIdx.x) : 0.f;
    for (int64_t i = threadIdx.x; i < rows; i += blockDim.x) {
      sh.scores[i] *= i == threadIdx.x ? own_scale : row_scale(begin + i);
    }
    __syncthreads();
  }
  for (int64_t d = column; d < dh; d += blockDim.x) {
    float acc = 0.f;
    int64_t i = 0;
    if (d == column) {
#pragma unroll
      for (; i < kEarly && i < rows; ++i) acc += sh.scores[i] * static_cast<float>(early[i]);
    }
    for (; i < rows; ++i) acc += sh.scores[i] * static_cast<float>(values[(begin + i) * stride + d]);
    partial[2 + d] = acc;
  }
  if (threadIdx.x == 0) {
    partial[0] = m;
    partial[1] = total;
  }
}

// After attend_slice, by every block of the head: the last of `slices` blocks to arrive at `arrivals`
// merges the head's partials (slices x (2 + dh) floats) into out[0, dh) and zeroes `arrivals` for the
// next launch.
template <typename T>
__device__ void merge_slices(const SliceShared& sh, const float* partials, int64_t slices, int64_t dh,
                             unsigned* arrivals, T* out) {
  __shared__ bool last;
  __syncthreads();  // the whole partial is written before thread 0 publishes it
  if (threadIdx.x == 0) {
    // Release orders this block's partial (the barrier put it before this) ahead of the count; the
    // acquire of the last arrival orders every other block's partial ahead of its reads.
    ::cuda::atomic_ref<unsigned, ::cuda::thread_scope_device> count(*arrivals);
    last = count.fetch_add(1u, ::cuda::memory_order_acq_rel) == slices - 1;
  }
  __syncthreads();
  if (!last) return;
  const int64_t width = 2 + dh, column = threadIdx.x;
  // __ldcg: other blocks wrote these, so they are read from L2, never from a stale L1 line.
  float early[kEarly];
#pragma unroll
  for (int s = 0; s < kEarly; ++s) {
    if (column < dh && s < slices) early[s] = __ldcg(partials + s * width + 2 + column);
  }
  float m = -INFINITY;
  for (int64_t s = threadIdx.x; s < slices; s += blockDim.x) {
    sh.merge[s] = __ldcg(partials + s * width);
    sh.merge[slices + s] = __ldcg(partials + s * width + 1);
    m = fmaxf(m, sh.merge[s]);
  }
  m = block_reduce<true>(m, sh.scratch);
  float total = 0.f;
  for (int64_t s = threadIdx.x; s < slices; s += blockDim.x) {
    sh.merge[s] = expf(sh.merge[s] - m);  // the slice's weight; 0 for an empty slice
    total += sh.merge[s] * sh.merge[slices + s];
  }
  total = block_reduce<false>(total, sh.scratch);  // its barriers also publish the weights
  const float inv = 1.f / total;
  for (int64_t d = column; d < dh; d += blockDim.x) {
    float acc = 0.f;
    int64_t s = 0;
    if (d == column) {
#pragma unroll
      for (; s < kEarly && s < slices; ++s) acc += sh.merge[s] * early[s];
    }
    for (; s < slices; ++s) acc += sh.merge[s] * __ldcg(partials + s * width + 2 + d);
    out[d] = static_cast<T>(acc * inv);
  }
  if (threadIdx.x == 0) *arrivals = 0;
}

// How the keys of `groups` attentions (sequences x heads), `rows` keys each, are cut into slices on a
// device of `sms` multiprocessors: 16 rows a slice (two per warp of a 256-thread block, within what a
// thread loads ahead), more once a head would have over 256 slices for its merge to read, and up to
// kMaxSliceRows where the grid would otherwise exceed one wave of the build for few blocks. On the H100
// one wave of larger slices beat waves of small ones: MHA fp32 30.6 to 22.4 us a token at L = 4096,
// 21.9 to 17.6 at L = 2048, 30.1 to 28.6 at L = 256 and batch 16 (AMP 30.4 to 27.3). Where the groups
// alone exceed that wave, slices keep 16 rows; where slices of kMaxSliceRows still do (L = 16384 with
// 4 heads), they keep that. Either grid takes the build for many blocks.
struct Slicing {
  int64_t rows_per_slice, slices;
};
// Beyond this a slice's keys and values, which attend_slice prefetches to L1, outgrow two blocks' share.
constexpr int64_t kMaxSliceRows = 64;
inline Slicing slicing_for(int64_t rows, int64_t groups, int64_t sms) {
  int64_t per = std::max<int64_t>(ceil_div(rows, 256), 16);
  const int64_t fit = slice_blocks_per_sm(false) * sms / groups;  // a group's slices in one wave
  if (fit >= 1 && ceil_div(rows, per) > fit) per = std::max(per, std::min(ceil_div(rows, fit), kMaxSliceRows));
  return {per, ceil_div(rows, per)};
}
inline dim3 slice_grid(int64_t heads, const Slicing& slicing, int64_t batch) {
  return dim3(static_cast<unsigned>(heads * slicing.slices), static_cast<unsigned>(batch));
}
inline dim3 slice_block() { return dim3(kSliceThreads); }

// Dynamic shared memory for a SliceShared of these sizes, and its layout over `base`.
inline size_t slice_shared_bytes(int64_t rows_per_slice, int64_t slices) {
  return static_cast<size_t>(rows_per_slice + 2 * slices + 32) * sizeof(float);
}
__device__ inline SliceShared slice_shared(float* base, int64_t rows_per_slice, int64_t slices) {
  return {base, base + rows_per_slice, base + rows_per_slice + 2 * slices};
}

// Lets `kernel` take `bytes` of dynamic shared memory on the current device; past 48 KB a kernel must
// opt in. Every streamed token asks, so the largest opt-in made is kept per device and kernel and the
// driver is called only to raise it.
inline void allow_shared_bytes(const void* kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return;
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  static std::mutex mutex;
  static std::map<std::pair<int, const void*>, size_t> allowed;
  const std::lock_guard<std::mutex> lock(mutex);
  size_t& largest = allowed[{device, kernel}];
  if (bytes <= largest) return;
  C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  largest = bytes;
}

// Whether a slice kernel's `grid` takes the build for many blocks on a device of `sms` multiprocessors.
inline bool takes_many_blocks(dim3 grid, int sms) {
  return static_cast<int64_t>(grid.x) * grid.y > int64_t{slice_blocks_per_sm(false)} * sms;
}
// The build of a slice kernel that `grid` takes on a device of `sms` multiprocessors, allowed `bytes`
// of dynamic shared memory.
template <typename Kernel>
Kernel slice_kernel_for(dim3 grid, int sms, Kernel few_blocks, Kernel many_blocks, size_t bytes) {
  const Kernel kernel = takes_many_blocks(grid, sms) ? many_blocks : few_blocks;
  allow_shared_bytes(reinterpret_cast<const void*>(kernel), bytes);
  return kernel;
}

}  // namespace attnbench::cuda
