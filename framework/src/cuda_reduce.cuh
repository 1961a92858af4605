// Warp and block reductions shared by the built-in plugins' CUDA kernels.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

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

// In place over s[0, n): s <- exp(s - max) / sum. Call with the whole block.
__device__ inline void block_softmax(float* s, long long n, float* scratch) {
  float m = -INFINITY;
  for (long long i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, s[i]);
  m = block_reduce<true>(m, scratch);
  float total = 0.f;
  for (long long i = threadIdx.x; i < n; i += blockDim.x) {
    s[i] = expf(s[i] - m);
    total += s[i];
  }
  total = block_reduce<false>(total, scratch);
  const float inv = 1.f / total;
  for (long long i = threadIdx.x; i < n; i += blockDim.x) s[i] *= inv;
  __syncthreads();
}

// out[d] = sum_r weight[r] * rows[r * row_stride + d] for d < dh, with the whole block: warps split the
// rows, each lane holds up to kCols columns in registers so a row's loads are all in flight at once,
// and the warps' partial sums (warps x dh floats of `partial`) meet in shared memory.
template <typename T>
__device__ void weighted_rows(const float* weight, const T* rows, int64_t n, int64_t row_stride, int64_t dh,
                              float* partial, T* out) {
  constexpr int kCols = 8;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  for (int64_t d0 = 0; d0 < dh; d0 += 32 * kCols) {
    float acc[kCols] = {};
    for (int64_t r = warp; r < n; r += warps) {
      const float w = weight[r];
      const T* row = rows + r * row_stride + d0 + lane;
#pragma unroll
      for (int c = 0; c < kCols; ++c) {
        if (d0 + lane + 32 * c < dh) acc[c] += w * static_cast<float>(row[32 * c]);
      }
    }
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      if (d0 + lane + 32 * c < dh) partial[warp * dh + d0 + lane + 32 * c] = acc[c];
    }
  }
  __syncthreads();
  for (int64_t d = threadIdx.x; d < dh; d += blockDim.x) {
    float acc = 0.f;
    for (int w = 0; w < warps; ++w) acc += partial[w * dh + d];
    out[d] = static_cast<T>(acc);
  }
}

// Dot product of two dh-long vectors by one warp; every lane gets the result.
template <typename A, typename B>
__device__ __forceinline__ float warp_dot(const A* a, const B* b, int64_t dh) {
  const int lane = threadIdx.x % 32;
  float acc = 0.f;
#pragma unroll 4
  for (int64_t d = lane; d < dh; d += 32) acc += static_cast<float>(a[d]) * static_cast<float>(b[d]);
  return warp_sum(acc);
}

}  // namespace attnbench::cuda
