// The reservoir recurrence on CUDA. The sequential part of ReservoirAttention is a chain of tiny sparse
// matrix-vector products; launched per token it costs a launch each (~20 ms for 256 tokens through torch
// ops). Here one block per sequence keeps the state in shared memory and runs the time loop inside the
// kernel, one launch for the whole sequence.
#include "reservoir_cuda.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

namespace attnbench::reservoir {
namespace {

constexpr int64_t kMaxSharedBytes = 200 * 1024;  // under the H100's 227 KB opt-in limit

__global__ void esn_sequence_kernel(const float* __restrict__ pre, float* __restrict__ x, float* __restrict__ states,
                                    const int64_t* __restrict__ indptr, const int64_t* __restrict__ indices,
                                    const float* __restrict__ values, int64_t length, int64_t batch, int64_t n,
                                    float leak) {
  extern __shared__ float shared[];
  float* cur = shared;
  float* next = shared + n;
  const int64_t b = blockIdx.x;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) cur[i] = x[b * n + i];
  __syncthreads();
  for (int64_t t = 0; t < length; ++t) {
    const float* pre_t = pre + (t * batch + b) * n;
    float* out_t = states + (t * batch + b) * n;
    for (int64_t r = threadIdx.x; r < n; r += blockDim.x) {
      float acc = 0.f;
      for (int64_t k = indptr[r]; k < indptr[r + 1]; ++k) acc += values[k] * cur[indices[k]];
      const float v = (1.f - leak) * cur[r] + leak * tanhf(pre_t[r] + acc);
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

}  // namespace

bool cuda_recurrence_fits(int64_t size) { return 2 * size * static_cast<int64_t>(sizeof(float)) <= kMaxSharedBytes; }

void cuda_recurrence(const at::Tensor& pre, at::Tensor& x, at::Tensor& states, const at::Tensor& indptr,
                     const at::Tensor& indices, const at::Tensor& values, double leak) {
  TORCH_CHECK(pre.is_cuda() && pre.scalar_type() == at::kFloat && pre.is_contiguous(), "cuda_recurrence: pre must be contiguous float32 CUDA");
  TORCH_CHECK(x.is_contiguous() && states.is_contiguous(), "cuda_recurrence: x and states must be contiguous");
  const int64_t length = pre.size(0), batch = pre.size(1), n = pre.size(2);
  TORCH_CHECK(cuda_recurrence_fits(n), "cuda_recurrence: N=", n, " exceeds the shared-memory state");
  if (length == 0) return;
  const c10::cuda::CUDAGuard guard(pre.device());
  const size_t shared = static_cast<size_t>(2 * n) * sizeof(float);
  if (shared > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(esn_sequence_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(shared)));
  }
  const int threads = static_cast<int>(std::min<int64_t>(1024, (n + 31) / 32 * 32));
  esn_sequence_kernel<<<static_cast<unsigned>(batch), threads, shared, at::cuda::getCurrentCUDAStream()>>>(
      pre.data_ptr<float>(), x.data_ptr<float>(), states.data_ptr<float>(), indptr.data_ptr<int64_t>(),
      indices.data_ptr<int64_t>(), values.data_ptr<float>(), length, batch, n, static_cast<float>(leak));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace attnbench::reservoir
