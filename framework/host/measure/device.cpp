#include "measure/device.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
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

ThreadSettings set_threads(int threads) {
  using SetThreads = void (*)(int);
  static auto openblas_set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  ThreadSettings out;
  out.requested = threads;
  if (openblas_set != nullptr) {
    at::set_num_threads(1);
    openblas_set(threads);
    out.torch_intra_op = 1;
    out.blas = threads;
    out.blas_library = "openblas";
  } else {
    at::set_num_threads(threads);
    out.torch_intra_op = threads;
    out.blas = threads;
    out.blas_library = at::hasMKL() ? "mkl" : "unknown";
  }
  return out;
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

double read_bandwidth_gbps(c10::Device device, int64_t bytes) {
  const int64_t megabyte = int64_t{1} << 20;
  const int64_t size = std::max<int64_t>(1, (bytes + megabyte - 1) / megabyte) * megabyte;
  static std::map<std::pair<std::string, int64_t>, double> measured;
  const auto key = std::make_pair(device.str(), size);
  if (auto it = measured.find(key); it != measured.end()) return it->second;
  const at::Tensor buffer = at::ones({size / static_cast<int64_t>(sizeof(float))}, at::TensorOptions().device(device));
  auto timer = make_timer(device);
  double best_ms = INFINITY;
  volatile uint64_t sink = 0;  // the reads must happen
  const int64_t repeats = device.is_cpu() ? 1 : std::max<int64_t>(1, (int64_t{1} << 30) / size);
  for (int round = 0; round < 20; ++round) {
    timer->mark();
    if (device.is_cpu()) {
      const auto* words = static_cast<const uint64_t*>(buffer.data_ptr());
      const int64_t n = size / 8;
      uint64_t a = 0, b = 0, c = 0, d = 0;  // four chains, so the loop is not one dependent sequence
      for (int64_t i = 0; i < n; i += 4) {
        a |= words[i];
        b |= words[i + 1];
        c |= words[i + 2];
        d |= words[i + 3];
      }
      sink = sink | a | b | c | d;
    } else {
      // One kernel over the buffer `repeats` times (a broadcast view, no copy): a single pass of a few
      // megabytes would time the launch, not the memory.
      at::Tensor total = buffer.expand({repeats, buffer.size(0)}).sum();
    }
    timer->mark();
    const double ms = timer->elapsed_ms().at(0);
    if (round >= 2) best_ms = std::min(best_ms, ms);  // the first passes bring the buffer into cache
  }
  return measured[key] = static_cast<double>(size) * static_cast<double>(repeats) / (best_ms * 1e6);
}

std::vector<GpuFacts> gpu_facts() {
#ifdef ATTNBENCH_WITH_CUDA
  if (at::hasCUDA()) return cuda_detail::facts();
#endif
  return {};
}

}  // namespace attnbench
