// Replaying a streaming step as a CUDA graph: one launch per token instead of one per operator.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <memory>

namespace attnbench {

// Wraps a step function `fn(input) -> output` whose device work is shape-static and which keeps its
// state in place (no reallocation between calls). On CUDA: the first call runs eagerly (it also warms
// up cuBLAS), the second captures `fn` on static buffers and replays it, later calls copy the input in
// and replay; the output is a fresh copy. Anywhere else, and in CPU builds, it just calls `fn`.
// reset() drops the graph, e.g. after the state's buffers were reallocated.
class GraphedStep {
 public:
  GraphedStep();
  ~GraphedStep();
  GraphedStep(const GraphedStep&) = delete;
  GraphedStep& operator=(const GraphedStep&) = delete;

  at::Tensor operator()(const at::Tensor& input, const std::function<at::Tensor(const at::Tensor&)>& fn);
  void reset();

 private:
  struct Graph;
  std::unique_ptr<Graph> graph_;
  int calls_ = 0;
};

}  // namespace attnbench
