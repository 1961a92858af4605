// ReservoirAttention on CUDA.
//
// The sequential part is a chain of tiny sparse matrix-vector products; launched per token through torch
// it costs ~20 ms for 256 tokens. esn_sequence_kernel runs a whole sequence in one launch: one block
// per sequence, the state in shared memory, a warp per row of W, the time loop inside the kernel.
// The streamed step is three kernels (projections, one recurrence step, readout) that a CUDA graph
// replays, instead of about a dozen torch operators.
#include "reservoir_cuda.h"

#include "cuda_reduce.cuh"

#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

namespace attnbench::reservoir {
namespace {

using attnbench::cuda::block_softmax;
using attnbench::cuda::warp_dot;
using attnbench::cuda::warp_sum;
using attnbench::cuda::weighted_rows;

constexpr int64_t kMaxSharedBytes = 200 * 1024;  // under the H100's 227 KB opt-in limit
constexpr int kThreads = 1024;
constexpr int kReadoutThreads = 1024;  // 32 warps: few rows each, so the latency of each is hidden

// kStage: the CSR arrays are copied into shared memory first (small W), so the time loop reads no
// global memory but `pre`. kWarpPerRow: lanes split a row's nonzeros (long rows, large N); otherwise a
// thread per row, which wastes nothing when rows hold a handful of nonzeros.
template <bool kStage, bool kWarpPerRow>
__global__ void esn_sequence_kernel(const float* __restrict__ pre, float* __restrict__ x, float* __restrict__ states,
                                    const int64_t* __restrict__ indptr, const int64_t* __restrict__ indices,
                                    const float* __restrict__ values, int64_t length, int64_t batch, int64_t n,
                                    int64_t nnz, float leak) {
  extern __shared__ float shared[];
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
  const int lane = kWarpPerRow ? threadIdx.x % 32 : 0;
  const int64_t first = kWarpPerRow ? threadIdx.x / 32 : threadIdx.x;
  const int64_t stride = kWarpPerRow ? blockDim.x / 32 : blockDim.x;
  const int64_t k_step = kWarpPerRow ? 32 : 1;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) cur[i] = x[b * n + i];
  __syncthreads();
  for (int64_t t = 0; t < length; ++t) {
    const float* pre_t = pre + (t * batch + b) * n;
    float* out_t = states + (t * batch + b) * n;
    for (int64_t r = first; r < n; r += stride) {
      float acc = 0.f;
      for (int64_t k = ptr[r] + lane; k < ptr[r + 1]; k += k_step) acc += val[k] * cur[idx[k]];
      if (kWarpPerRow) acc = warp_sum(acc);
      if (lane == 0) {
        const float v = (1.f - leak) * cur[r] + leak * tanhf(pre_t[r] + acc);
        next[r] = v;
        out_t[r] = v;
      }
    }
    __syncthreads();  // every row of step t is written before any thread reads it in step t + 1
    float* swap = cur;
    cur = next;
    next = swap;
  }
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) x[b * n + i] = cur[i];
}

// Rows [0, N) of the grid's warps: pre = Win_bias + Win_input u; rows [N, N + E): q = Wq u. One sequence
// per grid row.
template <typename T>
__global__ void project_kernel(const T* __restrict__ u, const T* __restrict__ win_bias, const T* __restrict__ win_input,
                               const T* __restrict__ query, float* __restrict__ pre, float* __restrict__ q, int64_t n,
                               int64_t e) {
  const int64_t b = blockIdx.y;
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= n + e) return;
  const T* w = row < n ? win_input + row * e : query + (row - n) * e;
  const T* ub = u + b * e;
  float acc = 0.f;
  for (int64_t i = lane; i < e; i += 32) acc += static_cast<float>(w[i]) * static_cast<float>(ub[i]);
  acc = warp_sum(acc);
  if (lane != 0) return;
  if (row < n) pre[b * n + row] = acc + static_cast<float>(win_bias[row]);
  else q[b * e + row - n] = acc;
}

// One block per (head, sequence): scores over the N static keys, softmax, then the values weighted by
// probability times state.
template <typename T>
__global__ void readout_kernel(const float* __restrict__ q, const float* __restrict__ x, const T* __restrict__ ek,
                               const T* __restrict__ ev, T* __restrict__ out, int64_t n, int64_t e, int64_t dh,
                               float scale) {
  extern __shared__ float shared[];
  float* scratch = shared;  // 32 floats for reductions
  float* s = shared + 32;   // n scores
  const int64_t h = blockIdx.x, b = blockIdx.y;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const float* qh = q + b * e + h * dh;
  for (int64_t r = warp; r < n; r += warps) {
    const float acc = warp_dot(qh, ek + r * e + h * dh, dh);
    if (lane == 0) s[r] = acc * scale;
  }
  __syncthreads();
  block_softmax(s, n, scratch);
  for (int64_t r = threadIdx.x; r < n; r += blockDim.x) s[r] *= x[b * n + r];
  __syncthreads();
  weighted_rows(s, ev + h * dh, n, e, dh, s + n, out + b * e + h * dh);
}

void set_shared_limit(const void* kernel, size_t bytes) {
  if (bytes > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  }
}

}  // namespace

bool cuda_recurrence_fits(int64_t size) { return 2 * size * static_cast<int64_t>(sizeof(float)) <= kMaxSharedBytes; }

bool cuda_step_fits(int64_t size, int64_t head_dim) {
  return cuda_recurrence_fits(size) &&
         (32 + size + kReadoutThreads / 32 * head_dim) * static_cast<int64_t>(sizeof(float)) <= kMaxSharedBytes;
}

void cuda_recurrence(const at::Tensor& pre, at::Tensor& x, at::Tensor& states, const at::Tensor& indptr,
                     const at::Tensor& indices, const at::Tensor& values, double leak) {
  TORCH_CHECK(pre.is_cuda() && pre.scalar_type() == at::kFloat && pre.is_contiguous(), "cuda_recurrence: pre must be contiguous float32 CUDA");
  TORCH_CHECK(x.is_contiguous() && states.is_contiguous(), "cuda_recurrence: x and states must be contiguous");
  const int64_t length = pre.size(0), batch = pre.size(1), n = pre.size(2);
  TORCH_CHECK(cuda_recurrence_fits(n), "cuda_recurrence: N=", n, " exceeds the shared-memory state");
  if (length == 0) return;
  const c10::cuda::CUDAGuard guard(pre.device());
  const int64_t nnz = values.numel();
  const size_t state_bytes = static_cast<size_t>(2 * n) * sizeof(float);
  const size_t staged_bytes = state_bytes + static_cast<size_t>(n + 1 + nnz) * sizeof(int64_t) + nnz * sizeof(float);
  const bool stage = static_cast<int64_t>(staged_bytes) <= kMaxSharedBytes;
  const bool warp_per_row = nnz >= 8 * n;  // rows of 8+ nonzeros on average
  const size_t shared = stage ? staged_bytes : state_bytes;
  auto launch = [&](auto kernel) {
    set_shared_limit(reinterpret_cast<const void*>(kernel), shared);
    kernel<<<static_cast<unsigned>(batch), kThreads, shared, at::cuda::getCurrentCUDAStream()>>>(
        pre.data_ptr<float>(), x.data_ptr<float>(), states.data_ptr<float>(), indptr.data_ptr<int64_t>(),
        indices.data_ptr<int64_t>(), values.data_ptr<float>(), length, batch, n, nnz, static_cast<float>(leak));
  };
  if (stage && warp_per_row) launch(esn_sequence_kernel<true, true>);
  else if (stage) launch(esn_sequence_kernel<true, false>);
  else if (warp_per_row) launch(esn_sequence_kernel<false, true>);
  else launch(esn_sequence_kernel<false, false>);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

at::Tensor cuda_fused_step(const at::Tensor& u, at::Tensor& x, const CudaStepWeights& w) {
  const int64_t batch = u.size(0), e = u.size(1), n = x.size(1), dh = e / w.heads;
  TORCH_CHECK(u.is_contiguous() && w.win_input.size(1) == e, "cuda_fused_step: needs contiguous u and in_size == E");
  const c10::cuda::CUDAGuard guard(u.device());
  auto stream = at::cuda::getCurrentCUDAStream();
  auto f32 = u.options().dtype(at::kFloat);
  at::Tensor pre = at::empty({1, batch, n}, f32);
  at::Tensor q = at::empty({batch, e}, f32);
  at::Tensor out = at::empty({batch, e}, u.options());
  at::Tensor states = at::empty({1, batch, n}, f32);
  const int warps_per_block = 8;
  const dim3 project_grid(static_cast<unsigned>((n + e + warps_per_block - 1) / warps_per_block), static_cast<unsigned>(batch));
  const size_t readout_shared = static_cast<size_t>(32 + n + kReadoutThreads / 32 * dh) * sizeof(float);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, u.scalar_type(), "reservoir_fused_step", [&] {
    project_kernel<scalar_t><<<project_grid, warps_per_block * 32, 0, stream>>>(
        u.data_ptr<scalar_t>(), w.win_bias.data_ptr<scalar_t>(), w.win_input.data_ptr<scalar_t>(),
        w.query.data_ptr<scalar_t>(), pre.data_ptr<float>(), q.data_ptr<float>(), n, e);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    cuda_recurrence(pre, x, states, w.indptr, w.indices, w.values, w.leak);
    set_shared_limit(reinterpret_cast<const void*>(readout_kernel<scalar_t>), readout_shared);
    readout_kernel<scalar_t><<<dim3(static_cast<unsigned>(w.heads), static_cast<unsigned>(batch)), kReadoutThreads, readout_shared, stream>>>(
        q.data_ptr<float>(), x.data_ptr<float>(), w.ek.data_ptr<scalar_t>(), w.ev.data_ptr<scalar_t>(),
        out.data_ptr<scalar_t>(), n, e, dh, 1.f / sqrtf(static_cast<float>(dh)));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace attnbench::reservoir
