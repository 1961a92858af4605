#include "measure/device.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>

namespace attnbench {

namespace cpu_detail {  // memory.cpp
int64_t allocated();
void reset_peak();
int64_t peak();
}  // namespace cpu_detail

#ifdef ATTNBENCH_WITH_CUDA
namespace cuda_detail {  // device_cuda.cpp
std::unique_ptr<Timer> make_timer();
void reset_peak(int index);
int64_t allocated(int index);
int64_t peak_allocated(int index);
void empty_cache();
std::vector<GpuFacts> facts();
}  // namespace cuda_detail
#endif

namespace {

class CpuTimer final : public Timer {
 public:
  void mark() override { marks_.push_back(std::chrono::steady_clock::now()); }
  std::vector<double> elapsed_ms() override {
    std::vector<double> out;
    for (size_t i = 1; i < marks_.size(); ++i) {
      out.push_back(std::chrono::duration<double, std::milli>(marks_[i] - marks_[i - 1]).count());
    }
    marks_.clear();
    return out;
  }

 private:
  std::vector<std::chrono::steady_clock::time_point> marks_;
};

}  // namespace

std::unique_ptr<Timer> make_timer(c10::Device device) {
#ifdef ATTNBENCH_WITH_CUDA
  if (device.is_cuda()) return cuda_detail::make_timer();
#endif
  (void)device;
  return std::make_unique<CpuTimer>();
}

void set_threads(int threads) {
  at::set_num_threads(threads);
  using SetThreads = void (*)(int);
  static auto openblas_set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (openblas_set != nullptr) openblas_set(threads);
}

bool cuda_available() { return at::hasCUDA() && cuda_unavailable_reason().empty(); }

std::string cuda_unavailable_reason() {
#ifndef ATTNBENCH_WITH_CUDA
  return "this attnbench was built without CUDA (its libtorch is CPU-only); rebuild against a CUDA libtorch";
#else
  if (!at::hasCUDA()) return "CUDA was requested but torch finds no CUDA device on this machine";
  return "";
#endif
}

namespace {
int cuda_index(c10::Device device) { return device.index() < 0 ? 0 : device.index(); }

// A mode's probe resets the allocator's peak; the cell's peak is what the probes saw before, folded here.
int64_t cell_peak_before_probes = 0;

int64_t raw_peak(c10::Device device) {
#ifdef ATTNBENCH_WITH_CUDA
  if (device.is_cuda()) return cuda_detail::peak_allocated(cuda_index(device));
#endif
  (void)device;
  return cpu_detail::peak();
}
}  // namespace

void reset_peak_memory(c10::Device device) {
  // What an earlier cell freed goes back to the system first, or this cell's peak would include it.
  malloc_trim(0);
  // Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so each cell reports its own peak.
  std::ofstream("/proc/self/clear_refs") << "5";
  reset_peak_allocated(device);
  cell_peak_before_probes = 0;
}

int64_t cell_peak_allocated_bytes(c10::Device device) { return std::max(cell_peak_before_probes, raw_peak(device)); }

int64_t allocated_bytes(c10::Device device) {
#ifdef ATTNBENCH_WITH_CUDA
  if (device.is_cuda()) return cuda_detail::allocated(cuda_index(device));
#endif
  (void)device;
  return cpu_detail::allocated();
}

void reset_peak_allocated(c10::Device device) {
  cell_peak_before_probes = std::max(cell_peak_before_probes, raw_peak(device));
#ifdef ATTNBENCH_WITH_CUDA
  if (device.is_cuda()) return cuda_detail::reset_peak(cuda_index(device));
#endif
  (void)device;
  cpu_detail::reset_peak();
}

int64_t peak_allocated_bytes(c10::Device device) { return raw_peak(device); }

int64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return 0;
}

int64_t peak_device_bytes(c10::Device device) { return device.is_cuda() ? cell_peak_allocated_bytes(device) : 0; }

void release_cached_memory(c10::Device device) {
#ifdef ATTNBENCH_WITH_CUDA
  if (device.is_cuda()) cuda_detail::empty_cache();
#endif
  (void)device;
}

std::vector<GpuFacts> gpu_facts() {
#ifdef ATTNBENCH_WITH_CUDA
  if (at::hasCUDA()) return cuda_detail::facts();
#endif
  return {};
}

}  // namespace attnbench
