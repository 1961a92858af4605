// The CUDA half of device.h; compiled only when the libtorch found has CUDA.
#include "measure/device.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace attnbench::cuda_detail {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

class CudaTimer final : public Timer {
 public:
  ~CudaTimer() override {
    for (cudaEvent_t e : pool_) cudaEventDestroy(e);
  }
  void mark() override {
    if (used_ == pool_.size()) {
      cudaEvent_t e;
      check(cudaEventCreate(&e), "cudaEventCreate");
      pool_.push_back(e);
    }
    check(cudaEventRecord(pool_[used_++], c10::cuda::getCurrentCUDAStream().stream()), "cudaEventRecord");
  }
  std::vector<double> elapsed_ms() override {
    std::vector<double> out;
    if (used_ > 0) check(cudaEventSynchronize(pool_[used_ - 1]), "cudaEventSynchronize");
    for (size_t i = 1; i < used_; ++i) {
      float ms = 0;
      check(cudaEventElapsedTime(&ms, pool_[i - 1], pool_[i]), "cudaEventElapsedTime");
      out.push_back(ms);
    }
    used_ = 0;
    return out;
  }

 private:
  std::vector<cudaEvent_t> pool_;
  size_t used_ = 0;
};

}  // namespace

std::unique_ptr<Timer> make_timer() { return std::make_unique<CudaTimer>(); }

// The caching allocator rejects stats calls for a device it has not allocated on yet ("invalid device
// argument"): allocate once on it first.
auto stats_of(int index) {
  static std::vector<bool> touched;
  if (static_cast<int>(touched.size()) <= index) touched.resize(static_cast<size_t>(index) + 1, false);
  if (!touched[static_cast<size_t>(index)]) {
    at::empty({1}, at::TensorOptions().device(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index))));
    touched[static_cast<size_t>(index)] = true;
  }
  return c10::cuda::CUDACachingAllocator::getDeviceStats(index);
}

void reset_peak(int index) {
  stats_of(index);
  c10::cuda::CUDACachingAllocator::resetPeakStats(index);
}

int64_t allocated(int index) { return stats_of(index).allocated_bytes[0].current; }

int64_t peak_allocated(int index) {
  auto stats = stats_of(index);
  // Index 0 is StatType::AGGREGATE; the enum moved namespaces across torch 2.x releases, the layout did not.
  return stats.allocated_bytes[0].peak;
}

void empty_cache() { c10::cuda::CUDACachingAllocator::emptyCache(); }

std::vector<GpuFacts> facts() {
  std::vector<GpuFacts> out;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return out;
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    GpuFacts f;
    f.name = prop.name;
    f.driver = std::to_string(driver / 1000) + "." + std::to_string(driver % 1000 / 10);
    f.cuda_runtime = std::to_string(runtime / 1000) + "." + std::to_string(runtime % 1000 / 10);
    f.memory_bytes = static_cast<int64_t>(prop.totalGlobalMem);
    f.compute_capability = std::to_string(prop.major) + "." + std::to_string(prop.minor);
    out.push_back(f);
  }
  return out;
}

}  // namespace attnbench::cuda_detail
