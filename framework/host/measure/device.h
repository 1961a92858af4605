// Everything that differs between CPU and CUDA on the host side (timing, memory, device facts), behind
// one interface; the CUDA half lives in device_cuda.cpp and is compiled only in CUDA builds.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace attnbench {

// Marks points in a timed region; on CUDA as events on the current stream, synchronized once in
// elapsed_ms(), so marking never stalls the device.
class Timer {
 public:
  virtual ~Timer() = default;
  virtual void mark() = 0;                       // the first mark starts the region
  virtual std::vector<double> elapsed_ms() = 0;  // gaps between consecutive marks; clears the marks
};

std::unique_ptr<Timer> make_timer(c10::Device device);

// What run.threads set: torch's intra-op pool and the BLAS library's, and which library that is.
struct ThreadSettings {
  int requested = 1;
  int torch_intra_op = 1;
  int blas = 1;
  std::string blas_library;  // "openblas", "mkl" or "unknown"
};

// Gives the cell `threads` cores without two thread pools fighting over them. Where torch runs on
// OpenBLAS (Debian's build), OpenBLAS keeps its own pthreads, which at::set_num_threads leaves alone:
// with torch's OpenMP pool and OpenBLAS's both at N on N cores, each spins while the other works (on
// the 2-core development machine, MHA's forward took 3-10x longer at 2 + 2 than at 1 + 1). These layers'
// work is GEMMs, so there torch keeps one thread and OpenBLAS gets N. Where torch runs on MKL (pip
// wheels), MKL shares torch's OpenMP pool, and at::set_num_threads(N) sets both.
ThreadSettings set_threads(int threads);

bool cuda_available();
std::string cuda_unavailable_reason();  // why a cuda cell cannot run here
void reset_peak_memory(c10::Device device);   // the cell's peaks below start from what is held now
int64_t peak_rss_bytes();                      // since the last reset_peak_memory
int64_t peak_device_bytes(c10::Device device);  // CUDA peak allocated; 0 on CPU
void release_cached_memory(c10::Device device);  // after an out-of-memory error

// Tensor memory as the allocator sees it: on CUDA the caching allocator's statistics, on the CPU
// attnbench's accounting allocator (memory.cpp), which every CPU tensor goes through once
// install_cpu_accounting() has run. Peaks count from the last reset_peak_allocated().
int64_t allocated_bytes(c10::Device device);
void reset_peak_allocated(c10::Device device);
int64_t peak_allocated_bytes(c10::Device device);
// The most allocated at once since reset_peak_memory(), through any reset_peak_allocated() in between.
int64_t cell_peak_allocated_bytes(c10::Device device);

// Routes torch's CPU allocations through the accounting allocator; idempotent. The runner calls it at
// start, so that every cell is counted and bounded.
void install_cpu_accounting();
// A bound on the CPU tensor bytes in use (0: none): an allocation past it throws c10::OutOfMemoryError
// naming what was asked and what is left, before the machine runs out and the kernel kills the runner.
void set_cpu_memory_limit(int64_t bytes);
int64_t cpu_memory_limit();
// Physical memory of this machine (or of its cgroup, when that is less), and this process's RSS now.
int64_t physical_memory_bytes();
int64_t current_rss_bytes();

// The rate at which `device` reads a buffer of `bytes` (rounded up to whole megabytes), in GB/s: the
// best of repeated passes, so a buffer that fits in cache reads at the cache's rate, as a step's weights
// do. On the CPU one thread ORs the buffer's 64-bit words (a loop the compiler vectorises: what one
// core reads); on CUDA, torch's sum over it, repeated within one kernel to a gigabyte (one pass of a few
// megabytes would time the launch). Measured once per size and device per process.
double read_bandwidth_gbps(c10::Device device, int64_t bytes);

// Facts for the results' context block: GPU name, driver and CUDA versions; empty on CPU builds.
struct GpuFacts {
  std::string name, driver, cuda_runtime, compute_capability;
  int64_t memory_bytes = 0;
};
std::vector<GpuFacts> gpu_facts();

}  // namespace attnbench
