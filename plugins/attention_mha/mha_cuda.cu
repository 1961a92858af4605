// One kernel for the attention of a streamed token: append its key and value to the cache, score the
// cached keys, softmax, weight the values. Through torch this is a dozen launches per token, which is
// what a CUDA graph of the step would replay; here it is one.
#include "mha_cuda.h"

#include "cuda_reduce.cuh"

#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

namespace attnbench::mha {
namespace {

using attnbench::cuda::block_softmax;
using attnbench::cuda::warp_dot;
using attnbench::cuda::weighted_rows;

constexpr int64_t kMaxSharedBytes = 200 * 1024;
constexpr int kThreads = 1024;  // 32 warps: few cached tokens each, so the latency of each is hidden

// One block per (head, sequence).
template <typename T>
__global__ void decode_kernel(const T* __restrict__ qkv, T* __restrict__ k_cache, T* __restrict__ v_cache,
                              int64_t* __restrict__ position, unsigned* __restrict__ done, T* __restrict__ out,
                              int64_t capacity, int64_t e, int64_t dh, float scale) {
  extern __shared__ float shared[];
  float* scratch = shared;
  float* s = shared + 32;
  const int64_t h = blockIdx.x, b = blockIdx.y;
  const int64_t pos = *position;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const T* token = qkv + b * 3 * e;
  T* k_rows = k_cache + b * capacity * e + h * dh;
  T* v_rows = v_cache + b * capacity * e + h * dh;
  for (int64_t d = threadIdx.x; d < dh; d += blockDim.x) {
    k_rows[pos * e + d] = token[e + h * dh + d];
    v_rows[pos * e + d] = token[2 * e + h * dh + d];
  }
  __syncthreads();
  const T* q = token + h * dh;
  for (int64_t j = warp; j <= pos; j += warps) {
    const float acc = warp_dot(q, k_rows + j * e, dh);
    if (lane == 0) s[j] = acc * scale;
  }
  __syncthreads();
  block_softmax(s, pos + 1, scratch);
  weighted_rows(s, v_rows, pos + 1, e, dh, s + capacity, out + b * e + h * dh);
  // The last block to finish advances the position: every block has read it by then.
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    if (atomicAdd(done, 1u) == gridDim.x * gridDim.y - 1) {
      *position = pos + 1;
      *done = 0;
    }
  }
}

}  // namespace

bool cuda_decode_fits(int64_t capacity, int64_t head_dim) {
  return (32 + capacity + kThreads / 32 * head_dim) * static_cast<int64_t>(sizeof(float)) <= kMaxSharedBytes;
}

at::Tensor cuda_decode_attention(const at::Tensor& qkv, at::Tensor& k_cache, at::Tensor& v_cache, at::Tensor& position,
                                 at::Tensor& done, int64_t heads) {
  const int64_t batch = qkv.size(0), e = qkv.size(1) / 3, capacity = k_cache.size(1), dh = e / heads;
  TORCH_CHECK(qkv.is_contiguous() && k_cache.is_contiguous() && v_cache.is_contiguous(), "cuda_decode_attention: contiguous inputs");
  TORCH_CHECK(cuda_decode_fits(capacity, dh), "cuda_decode_attention: capacity ", capacity, " exceeds shared memory");
  const c10::cuda::CUDAGuard guard(qkv.device());
  at::Tensor out = at::empty({batch, e}, qkv.options());
  const size_t shared = static_cast<size_t>(32 + capacity + kThreads / 32 * dh) * sizeof(float);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, qkv.scalar_type(), "mha_decode", [&] {
    if (shared > 48 * 1024) {
      C10_CUDA_CHECK(cudaFuncSetAttribute(decode_kernel<scalar_t>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(shared)));
    }
    decode_kernel<scalar_t><<<dim3(static_cast<unsigned>(heads), static_cast<unsigned>(batch)), kThreads, shared,
                              at::cuda::getCurrentCUDAStream()>>>(
        qkv.data_ptr<scalar_t>(), k_cache.data_ptr<scalar_t>(), v_cache.data_ptr<scalar_t>(),
        position.data_ptr<int64_t>(), reinterpret_cast<unsigned*>(done.data_ptr<int32_t>()), out.data_ptr<scalar_t>(),
        capacity, e, dh, 1.f / sqrtf(static_cast<float>(dh)));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace attnbench::mha
