// The floors under a streamed token on one GPU, measured as the runner measures a step: CUDA graphs
// replayed back to back with an event between, per-token time the median gap between events.
//   nvcc -O2 -arch=sm_90a -o /tmp/gpu_floors docs/bench/gpu_floors.cu && /tmp/gpu_floors
// Prints: a graph of 1-3 empty kernels (with and without programmatic dependent launch); a kernel of
// 128 blocks reading 0-20 MB in 4-byte or 16-byte loads; a software grid barrier.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "check.h"

__global__ void empty_kernel(int* p) {
  if (p && threadIdx.x == 0 && blockIdx.x == 0) atomicAdd(p, 1);
}

__global__ void dependent_kernel(int* p) {
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
  if (p && threadIdx.x == 0 && blockIdx.x == 0) atomicAdd(p, 1);
}

// Each block sums its `per_block` floats: kWide, 16-byte loads; else 4-byte ones; 8 words in flight.
template <bool kWide>
__global__ void read_kernel(const float* buffer, long per_block, float* out) {
  const float* p = buffer + blockIdx.x * per_block;
  float acc = 0.f;
  if (kWide) {
    const float4* q = reinterpret_cast<const float4*>(p);
    for (long base = threadIdx.x; base < per_block / 4; base += blockDim.x * 8) {
      float4 v[8];
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const long i = base + k * blockDim.x;
        v[k] = i < per_block / 4 ? q[i] : make_float4(0, 0, 0, 0);
      }
#pragma unroll
      for (int k = 0; k < 8; ++k) acc += v[k].x + v[k].y + v[k].z + v[k].w;
    }
  } else {
    for (long base = threadIdx.x; base < per_block; base += blockDim.x * 32) {
      float v[32];
#pragma unroll
      for (int k = 0; k < 32; ++k) {
        const long i = base + k * blockDim.x;
        v[k] = i < per_block ? p[i] : 0.f;
      }
#pragma unroll
      for (int k = 0; k < 32; ++k) acc += v[k];
    }
  }
  if (acc == 12345.f) out[0] = acc;  // keeps the loads
}

__global__ void barrier_kernel(unsigned* count, int rounds) {
  for (int r = 1; r <= rounds; ++r) {
    __syncthreads();
    if (threadIdx.x == 0) {
      __threadfence();
      atomicAdd(count, 1u);
      while (atomicAdd(count, 0u) < r * gridDim.x) {
      }
    }
    __syncthreads();
  }
}

constexpr int kTokens = 256;

// Adds a node launching `func` (grid blocks of `block` threads) with `args` to `graph`.
int add_kernel(cudaGraph_t graph, void* func, unsigned grid, unsigned block, void** args, cudaGraphNode_t* node) {
  cudaKernelNodeParams p{};
  p.func = func;
  p.gridDim = dim3(grid);
  p.blockDim = dim3(block);
  p.kernelParams = args;
  CHECK(cudaGraphAddKernelNode(node, graph, nullptr, 0, &p));
  return 0;
}

// Median per-token time (us) of replaying `graph` kTokens times, over three rounds after a warm-up one;
// destroys the graph.
int per_token_us(cudaGraph_t graph, cudaStream_t stream, std::vector<float>& medians) {
  cudaGraphExec_t exec;
  CHECK(cudaGraphInstantiateWithFlags(&exec, graph, 0));
  std::vector<cudaEvent_t> events(kTokens + 1);
  for (auto& e : events) CHECK(cudaEventCreate(&e));
  for (int round = 0; round < 4; ++round) {
    CHECK(cudaEventRecord(events[0], stream));
    for (int t = 0; t < kTokens; ++t) {
      CHECK(cudaGraphLaunch(exec, stream));
      CHECK(cudaEventRecord(events[t + 1], stream));
    }
    CHECK(cudaEventSynchronize(events[kTokens]));
    std::vector<float> gaps(kTokens);
    for (int t = 0; t < kTokens; ++t) CHECK(cudaEventElapsedTime(&gaps[t], events[t], events[t + 1]));
    std::sort(gaps.begin(), gaps.end());
    if (round > 0) medians.push_back(gaps[kTokens / 2] * 1000);
  }
  for (auto& e : events) cudaEventDestroy(e);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  return 0;
}

int main() {
  cudaStream_t stream;
  CHECK(cudaStreamCreate(&stream));
  int* counter;
  CHECK(cudaMalloc(&counter, 64));
  for (int kernels = 1; kernels <= 3; ++kernels) {
    for (int dependent = 0; dependent <= 1; ++dependent) {
      cudaGraph_t graph;
      CHECK(cudaGraphCreate(&graph, 0));
      std::vector<cudaGraphNode_t> nodes(kernels);
      for (int k = 0; k < kernels; ++k) {
        void* args[] = {&counter};
        void* func = dependent ? reinterpret_cast<void*>(dependent_kernel) : reinterpret_cast<void*>(empty_kernel);
        if (add_kernel(graph, func, 132, 256, args, &nodes[k])) return 1;
        if (k == 0) continue;
        cudaGraphEdgeData edge{};
        if (dependent) {
          edge.from_port = cudaGraphKernelNodePortProgrammatic;
          edge.type = cudaGraphDependencyTypeProgrammatic;
        }
        CHECK(cudaGraphAddDependencies(graph, &nodes[k - 1], &nodes[k], &edge, 1));
      }
      std::vector<float> m;
      if (per_token_us(graph, stream, m)) return 1;
      std::printf("graph of %d empty kernel(s), 132 blocks, %s: %.2f %.2f %.2f us a token\n", kernels,
                  dependent ? "programmatic" : "plain", m[0], m[1], m[2]);
    }
  }
  float* buffer;
  float* out;
  CHECK(cudaMalloc(&buffer, 64 << 20));
  CHECK(cudaMemset(buffer, 0, 64 << 20));
  CHECK(cudaMalloc(&out, 4));
  for (bool wide : {false, true}) {
    for (long kb : {0L, 1200L, 4700L, 9400L, 20000L}) {
      long per_block = kb * 1024 / 4 / 128;
      cudaGraph_t graph;
      CHECK(cudaGraphCreate(&graph, 0));
      cudaGraphNode_t node;
      void* args[] = {&buffer, &per_block, &out};
      void* func = wide ? reinterpret_cast<void*>(read_kernel<true>) : reinterpret_cast<void*>(read_kernel<false>);
      if (add_kernel(graph, func, 128, 512, args, &node)) return 1;
      std::vector<float> m;
      if (per_token_us(graph, stream, m)) return 1;
      std::printf("read %5ld KB, 128 blocks x 512 threads, %s loads: %.2f %.2f %.2f us a token\n", kb,
                  wide ? "16-byte" : "4-byte", m[0], m[1], m[2]);
    }
  }
  unsigned* count;
  CHECK(cudaMalloc(&count, 4));
  CHECK(cudaMemset(count, 0, 4));
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  const int rounds = 1000;
  CHECK(cudaEventRecord(start, stream));
  barrier_kernel<<<132, 256, 0, stream>>>(count, rounds);
  CHECK(cudaEventRecord(stop, stream));
  CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  CHECK(cudaEventElapsedTime(&ms, start, stop));
  std::printf("software grid barrier, 132 blocks: %.2f us each\n", ms * 1000 / rounds);
  return 0;
}
