#include "cuda_graph.h"

#ifdef ATTNBENCH_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#endif

namespace attnbench {

#ifdef ATTNBENCH_WITH_CUDA
struct GraphedStep::Graph {
  at::cuda::CUDAGraph graph;
  at::Tensor input, output;
};
#else
struct GraphedStep::Graph {};
#endif

GraphedStep::GraphedStep() = default;
GraphedStep::~GraphedStep() = default;

void GraphedStep::reset() {
  graph_.reset();
  calls_ = 0;
}

at::Tensor GraphedStep::operator()(const at::Tensor& input, const std::function<at::Tensor(const at::Tensor&)>& fn) {
#ifdef ATTNBENCH_WITH_CUDA
  if (!input.is_cuda()) return fn(input);
  if (graph_ && graph_->input.sizes() == input.sizes() && graph_->input.dtype() == input.dtype() &&
      input.is_contiguous()) {
    // Raw copies: a streamed token is a few microseconds of GPU work, and torch's copy_/clone would
    // each cost more host time than that.
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
    C10_CUDA_CHECK(cudaMemcpyAsync(graph_->input.data_ptr(), input.data_ptr(), input.nbytes(), cudaMemcpyDeviceToDevice, stream));
    graph_->graph.replay();
    at::Tensor out = at::empty_like(graph_->output);
    C10_CUDA_CHECK(cudaMemcpyAsync(out.data_ptr(), graph_->output.data_ptr(), out.nbytes(), cudaMemcpyDeviceToDevice, stream));
    return out;
  }
  if (calls_++ == 0) return fn(input);  // eager: warms up libraries whose first call cannot be captured
  auto graph = std::make_unique<Graph>();
  graph->input = input.clone();
  {
    // Capture must run on a side stream; the current stream waits for it before and after.
    const c10::cuda::CUDAGuard device(input.device());
    c10::cuda::CUDAStream capture_stream = c10::cuda::getStreamFromPool();
    c10::cuda::CUDAStream caller = c10::cuda::getCurrentCUDAStream();
    capture_stream.synchronize();
    caller.synchronize();
    const c10::cuda::CUDAStreamGuard on_side(capture_stream);
    graph->graph.capture_begin();
    graph->output = fn(graph->input);
    graph->graph.capture_end();
  }
  graph_ = std::move(graph);
  graph_->graph.replay();  // capture recorded the step; this runs it
  return graph_->output.clone();
#else
  return fn(input);
#endif
}

}  // namespace attnbench
