// ReservoirAttention on CUDA.
//
// The sequential part is a chain of tiny sparse matrix-vector products; launched per token through torch
// it costs ~20 ms for 256 tokens. esn_sequence_kernel runs a whole sequence in one launch: one block
// per sequence, the state and W in shared memory, the time loop inside the kernel. A larger W goes to
// esn_sequence_grid_kernel instead: its rows spread over many blocks of a cooperative launch, which
// meet at a grid-wide barrier after each token.
//
// A streamed token is latency, not arithmetic: two kernels (three with an input projection), each
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

namespace attnbench::reservoir {
namespace {

using attnbench::cuda::allow_shared_bytes;
using attnbench::cuda::attend_slice;
using attnbench::cuda::kMaxSharedBytes;
using attnbench::cuda::kRowWarps;
using attnbench::cuda::merge_slices;
using attnbench::cuda::row_block;
using attnbench::cuda::row_grid;
using attnbench::cuda::slice_block;
using attnbench::cuda::slice_grid;
using attnbench::cuda::SliceShared;
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

// Rows [0, N): the recurrence of state row r; rows [N, N + E): q = Wq u. Everything a row needs but W's
// nonzeros is loaded at once: the row's bounds in W, the old state (into shared memory, when N is at most
// kMaxStagedState) and the dot product's operands; the nonzeros follow, then the state is gathered
// from shared memory: two round trips to memory instead of three.
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
  } else if (row < a.n + a.e) {
    v = warp_dot(a.query + (row - a.n) * a.e, u, a.e);
  }
  if (stage) __syncthreads();
  if (row < a.n) {
    const float* state = stage ? shared : x;
    // pre rounded to the compute dtype, as forward's GEMM rounds it, so step and forward agree under AMP.
    v = advance_row(a.indices, a.values, k_begin, k_end, x_r, static_cast<float>(static_cast<T>(v)), a.leak,
                    [state](int64_t i) { return state[i]; });
  }
  if (threadIdx.x % 32 != 0 || row >= a.n + a.e) return;
  if (row < a.n) a.x_next[b * a.n + row] = v;
  else a.q[b * a.e + row - a.n] = static_cast<T>(v);
}

// Block (h * slices + s, b): slice s of head h's keys; weights are softmax times the new state.
template <typename T>
__global__ void attend_kernel(StepArgs<T> a) {
  extern __shared__ __align__(16) float shared[];
  const int64_t h = blockIdx.x / a.slices, s = blockIdx.x % a.slices, b = blockIdx.y;
  const SliceShared sh = attnbench::cuda::slice_shared(shared, a.rows_per_slice, a.slices);
  const int64_t begin = s * a.rows_per_slice, end = begin + a.rows_per_slice < a.n ? begin + a.rows_per_slice : a.n;
  const float* x_next = a.x_next + b * a.n;
  float* partials = a.partials + (b * a.heads + h) * a.slices * (2 + a.dh);
  attend_slice(sh, a.q + b * a.e + h * a.dh, a.ek + h * a.dh, a.ev + h * a.dh, a.e, begin, end, /*ready=*/end, a.dh,
               a.scale, [x_next](int64_t r) { return x_next[r]; }, partials + s * (2 + a.dh));
  // The previous kernel was the old state's only reader, so it can be overwritten now.
  if (h == 0) {
    for (int64_t r = begin + threadIdx.x; r < end; r += blockDim.x) a.x[b * a.n + r] = x_next[r];
  }
  merge_slices(sh, partials, a.slices, a.dh, a.arrivals + b * a.heads + h, a.out + b * a.e + h * a.dh);
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

at::Tensor cuda_step(const at::Tensor& u, at::Tensor& x, const CudaStepWeights& w, CudaStepScratch& scratch, bool graph) {
  TORCH_CHECK(u.is_contiguous() && x.is_contiguous(), "reservoir cuda_step: u and x must be contiguous");
  const int64_t batch = u.size(0), e = u.size(1), n = x.size(1), heads = w.heads, dh = e / heads;
  const int64_t in = w.win_input.size(1);
  const c10::cuda::CUDAGuard guard(u.device());
  const attnbench::cuda::Slicing slicing = attnbench::cuda::slicing_for(n);
  if (!scratch.x_next.defined() || !scratch.x_next.sizes().equals(x.sizes()) || scratch.query.scalar_type() != u.scalar_type()) {
    scratch.x_next = at::empty_like(x);
    scratch.query = at::empty({batch, e}, u.options());
    scratch.projected = w.input_proj.defined() ? at::empty({batch, in}, u.options()) : at::Tensor();
    scratch.partials = at::empty({batch, heads, slicing.slices, 2 + dh}, x.options());
    scratch.arrivals = at::zeros({batch, heads}, x.options().dtype(at::kInt));
  }
  at::Tensor out = at::empty({batch, e}, u.options());
  const size_t shared = attnbench::cuda::slice_shared_bytes(slicing.rows_per_slice, slicing.slices);
  TORCH_CHECK(static_cast<int64_t>(shared) <= kMaxSharedBytes, "reservoir: res_size ", n, " is too large for the CUDA step");
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, u.scalar_type(), "reservoir_step", [&] {
    auto ptr = [](const at::Tensor& t) { return t.defined() ? t.data_ptr<scalar_t>() : nullptr; };
    const StepArgs<scalar_t> a{
        u.data_ptr<scalar_t>(), ptr(w.input_proj), ptr(scratch.projected), w.win_bias.data_ptr<scalar_t>(),
        w.win_input.data_ptr<scalar_t>(), w.query.data_ptr<scalar_t>(), w.indptr.data_ptr<int64_t>(),
        w.indices.data_ptr<int64_t>(), w.values.data_ptr<float>(), w.ek.data_ptr<scalar_t>(), w.ev.data_ptr<scalar_t>(),
        x.data_ptr<float>(), scratch.x_next.data_ptr<float>(), scratch.query.data_ptr<scalar_t>(),
        scratch.partials.data_ptr<float>(), reinterpret_cast<unsigned*>(scratch.arrivals.data_ptr<int32_t>()),
        out.data_ptr<scalar_t>(), n, e, in, heads, dh, slicing.rows_per_slice, slicing.slices,
        static_cast<float>(w.leak), 1.f / sqrtf(static_cast<float>(dh))};
    size_t i = 0;
    if (w.input_proj.defined()) scratch.chain.set(i++, input_projection_kernel<scalar_t>, row_grid(in, batch), row_block(), 0, a);
    const size_t staged_state = n <= kMaxStagedState ? static_cast<size_t>(n) * sizeof(float) : 0;
    scratch.chain.set(i++, project_kernel<scalar_t>, row_grid(n + e, batch), row_block(), staged_state, a);
    allow_shared_bytes(reinterpret_cast<const void*>(attend_kernel<scalar_t>), shared);
    scratch.chain.set(i++, attend_kernel<scalar_t>, slice_grid(heads, slicing, batch), slice_block(), shared, a);
  });
  scratch.chain.run(at::cuda::getCurrentCUDAStream(), graph);
  return out;
}

}  // namespace attnbench::reservoir
