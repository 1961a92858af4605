#include <attnbench/support/kernel_chain.h>

#include <c10/cuda/CUDAException.h>

namespace attnbench {
namespace {

cudaKernelNodeParams node_params(const void* kernel, dim3 grid, dim3 block, size_t shared_bytes, void** args) {
  cudaKernelNodeParams p{};
  p.func = const_cast<void*>(kernel);
  p.gridDim = grid;
  p.blockDim = block;
  p.sharedMemBytes = static_cast<unsigned>(shared_bytes);
  p.kernelParams = args;
  return p;
}

bool same_dim(dim3 a, dim3 b) { return a.x == b.x && a.y == b.y && a.z == b.z; }

// `to` may start once every block of `from` has started it (griddepcontrol.launch_dependents) or
// exited; `to` then waits for `from`'s results itself. The edge API changed name in CUDA 13; before
// 12.3 there are no programmatic edges and `to` waits for `from` to end.
void add_programmatic_edge(cudaGraph_t graph, cudaGraphNode_t from, cudaGraphNode_t to) {
#if CUDART_VERSION >= 12030
  cudaGraphEdgeData edge{};
  edge.from_port = cudaGraphKernelNodePortProgrammatic;
  edge.type = cudaGraphDependencyTypeProgrammatic;
#if CUDART_VERSION >= 13000
  C10_CUDA_CHECK(cudaGraphAddDependencies(graph, &from, &to, &edge, 1));
#else
  C10_CUDA_CHECK(cudaGraphAddDependencies_v2(graph, &from, &to, &edge, 1));
#endif
#else
  C10_CUDA_CHECK(cudaGraphAddDependencies(graph, &from, &to, 1));
#endif
}

}  // namespace

bool KernelChain::Launch::operator==(const Launch& other) const {
  return kernel == other.kernel && same_dim(grid, other.grid) && same_dim(block, other.block) &&
         shared_bytes == other.shared_bytes && cooperative == other.cooperative && args == other.args;
}

KernelChain::~KernelChain() { destroy(); }

void KernelChain::destroy() {
  // Never throws: a destructor calls it, and a failed free leaves nothing to recover.
  if (exec_) cudaGraphExecDestroy(exec_);
  if (graph_) cudaGraphDestroy(graph_);
  exec_ = nullptr;
  graph_ = nullptr;
  nodes_.clear();
  in_graph_.clear();
}

void KernelChain::set_launch(size_t index, const void* kernel, dim3 grid, dim3 block, size_t shared_bytes,
                             const void* args, size_t size, bool cooperative) {
  if (next_.size() <= index) next_.resize(index + 1);
  Launch& launch = next_[index];
  launch.kernel = kernel;
  launch.grid = grid;
  launch.block = block;
  launch.shared_bytes = shared_bytes;
  launch.cooperative = cooperative;
  launch.args.assign(static_cast<const unsigned char*>(args), static_cast<const unsigned char*>(args) + size);
}

void KernelChain::instantiate() {
  destroy();
  C10_CUDA_CHECK(cudaGraphCreate(&graph_, 0));
  nodes_.resize(next_.size());
  for (size_t i = 0; i < next_.size(); ++i) {
    void* args[] = {next_[i].args.data()};
    const cudaKernelNodeParams p = node_params(next_[i].kernel, next_[i].grid, next_[i].block, next_[i].shared_bytes, args);
    C10_CUDA_CHECK(cudaGraphAddKernelNode(&nodes_[i], graph_, nullptr, 0, &p));
    if (next_[i].cooperative) {
      cudaKernelNodeAttrValue value{};
      value.cooperative = 1;
      C10_CUDA_CHECK(cudaGraphKernelNodeSetAttribute(nodes_[i], cudaLaunchAttributeCooperative, &value));
    }
    if (i > 0) add_programmatic_edge(graph_, nodes_[i - 1], nodes_[i]);
  }
  C10_CUDA_CHECK(cudaGraphInstantiateWithFlags(&exec_, graph_, 0));
  in_graph_ = next_;
}

void KernelChain::run(cudaStream_t stream, bool as_graph) {
  if (!as_graph) {
    for (size_t i = 0; i < next_.size(); ++i) {
      Launch& launch = next_[i];
      cudaLaunchAttribute attrs[2]{};
      unsigned count = 0;
      if (i > 0) {
        attrs[count].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attrs[count++].val.programmaticStreamSerializationAllowed = 1;
      }
      if (launch.cooperative) {
        attrs[count].id = cudaLaunchAttributeCooperative;
        attrs[count++].val.cooperative = 1;
      }
      cudaLaunchConfig_t config{};
      config.gridDim = launch.grid;
      config.blockDim = launch.block;
      config.dynamicSmemBytes = launch.shared_bytes;
      config.stream = stream;
      config.attrs = attrs;
      config.numAttrs = count;
      void* args[] = {launch.args.data()};
      C10_CUDA_CHECK(cudaLaunchKernelExC(&config, launch.kernel, args));
    }
    return;
  }
  if (!exec_ || in_graph_.size() != next_.size()) {
    instantiate();
  } else {
    for (size_t i = 0; i < next_.size(); ++i) {
      if (next_[i] == in_graph_[i]) continue;
      if (next_[i].cooperative != in_graph_[i].cooperative) {  // an attribute, not a parameter: a new graph
        instantiate();
        break;
      }
      void* args[] = {next_[i].args.data()};
      const cudaKernelNodeParams p = node_params(next_[i].kernel, next_[i].grid, next_[i].block, next_[i].shared_bytes, args);
      C10_CUDA_CHECK(cudaGraphExecKernelNodeSetParams(exec_, nodes_[i], &p));
      in_graph_[i] = next_[i];
    }
  }
  C10_CUDA_CHECK(cudaGraphLaunch(exec_, stream));
}

}  // namespace attnbench
