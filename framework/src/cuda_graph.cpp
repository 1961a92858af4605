#include "cuda_graph.h"

#ifdef ATTNBENCH_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
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
  if (graph_ && graph_->input.sizes() == input.sizes() && graph_->input.dtype() == input.dtype()) {
    graph_->input.copy_(input);
    graph_->graph.replay();
    return graph_->output.clone();
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
