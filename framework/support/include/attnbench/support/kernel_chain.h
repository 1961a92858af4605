// A streamed token's kernels, launched one by one or replayed as one CUDA graph (CUDA builds only).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <vector>

namespace attnbench {

// A fixed sequence of kernel launches on one stream. Each kernel takes one by-value struct argument.
// As a graph, the first run instantiates it; a later run whose launch differs from the graph's (a new
// input or output pointer each token, a grown cache) updates those nodes in place with
// cudaGraphExecKernelNodeSetParams, so a token costs one graph launch and no copies in or out.
//
// Every kernel after the first is a programmatic dependent launch (Hopper and later): it may start
// before the previous one finishes, so it must call wait_for_previous_kernel() (cuda_kernels.cuh)
// before it touches anything the previous kernel writes, and may fetch everything else first.
class KernelChain {
 public:
  KernelChain() = default;
  ~KernelChain();
  KernelChain(const KernelChain&) = delete;
  KernelChain& operator=(const KernelChain&) = delete;

  // Sets launch `index` of the next run; indices run 0..size-1 in launch order. A cooperative launch
  // has all its blocks resident at once (or fails to launch), so they may wait for one another.
  template <typename Args>
  void set(size_t index, void (*kernel)(Args), dim3 grid, dim3 block, size_t shared_bytes, const Args& args,
           bool cooperative = false) {
    set_launch(index, reinterpret_cast<const void*>(kernel), grid, block, shared_bytes, &args, sizeof(Args),
               cooperative);
  }

  // Runs every launch set, in order, on `stream`; as_graph picks graph replay over plain launches.
  void run(cudaStream_t stream, bool as_graph);

 private:
  struct Launch {
    const void* kernel = nullptr;
    dim3 grid, block;
    size_t shared_bytes = 0;
    bool cooperative = false;
    std::vector<unsigned char> args;
    bool operator==(const Launch& other) const;
  };

  void set_launch(size_t index, const void* kernel, dim3 grid, dim3 block, size_t shared_bytes, const void* args,
                  size_t size, bool cooperative);
  void instantiate();
  void destroy();

  std::vector<Launch> next_;      // what the next run launches
  std::vector<Launch> in_graph_;  // what the instantiated graph's nodes hold
  std::vector<cudaGraphNode_t> nodes_;
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace attnbench
