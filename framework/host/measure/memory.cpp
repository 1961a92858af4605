// Tensor memory on the CPU, counted and bounded: an allocator that torch's CPU allocations go through
// (LibTorch lets a program install its own), so that a mode's memory is what the layer allocated, and a
// cell that would exhaust the machine fails alone with a clear message instead of the kernel killing
// the runner. Allocations outside torch (Eigen, BLAS workspaces, the runner's own) are not seen.
#include "measure/device.h"

#include <attnbench/support/torch_compat.h>

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <string>

namespace attnbench {
namespace {

std::string mb(int64_t bytes) { return fmt::format("{:.1f} MB", static_cast<double>(bytes) / (1 << 20)); }

class AccountingCpuAllocator final : public compat::CpuAllocatorBase {
 public:
  // The size sits in a header before the data: the data pointer stays the context (raw_allocate needs
  // that) and 64-byte aligned, as c10's own allocator gives it.
  static constexpr size_t kHeader = 64;

  c10::DataPtr allocate_bytes(size_t bytes) const override {
    const int64_t n = static_cast<int64_t>(bytes);
    const int64_t limit = limit_.load(std::memory_order_relaxed);
    const int64_t in_use = current_.load(std::memory_order_relaxed);
    TORCH_CHECK_WITH(OutOfMemoryError, limit == 0 || in_use + n <= limit, "CPU out of memory: a tensor of ", mb(n),
                     " would take this cell's tensors past run.max_memory (", mb(limit), "; ", mb(in_use), " in use)");
    void* base = nullptr;
    try {
      base = c10::alloc_cpu(bytes + kHeader);
    } catch (const c10::Error&) {
      TORCH_CHECK_WITH(OutOfMemoryError, false, "CPU out of memory: the system refused ", mb(n), " (", mb(in_use),
                       " of tensors in use)");
    }
    *static_cast<int64_t*>(base) = n;
    add(n);
    void* data = static_cast<char*>(base) + kHeader;
    return {data, data, &release, c10::Device(c10::kCPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  static void release(void* data) {
    if (data == nullptr) return;
    char* base = static_cast<char*>(data) - kHeader;
    current_.fetch_sub(*reinterpret_cast<int64_t*>(base), std::memory_order_relaxed);
    c10::free_cpu(base);
  }

  static void add(int64_t n) {
    const int64_t now = current_.fetch_add(n, std::memory_order_relaxed) + n;
    int64_t peak = peak_.load(std::memory_order_relaxed);
    while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
  }

  static std::atomic<int64_t> current_, peak_, limit_;
};

std::atomic<int64_t> AccountingCpuAllocator::current_{0};
std::atomic<int64_t> AccountingCpuAllocator::peak_{0};
std::atomic<int64_t> AccountingCpuAllocator::limit_{0};

int64_t read_number(const std::string& path) {
  std::ifstream in(path);
  int64_t value = 0;
  return in >> value ? value : 0;
}

}  // namespace

void install_cpu_accounting() {
  static std::once_flag once;
  // Never freed: tensors it allocated may outlive any scope, and their deleter is its own.
  std::call_once(once, [] { c10::SetCPUAllocator(new AccountingCpuAllocator(), /*priority=*/100); });
}

void set_cpu_memory_limit(int64_t bytes) { AccountingCpuAllocator::limit_ = bytes; }
int64_t cpu_memory_limit() { return AccountingCpuAllocator::limit_; }

namespace cpu_detail {  // device.cpp dispatches to these for CPU devices
int64_t allocated() { return AccountingCpuAllocator::current_; }
void reset_peak() { AccountingCpuAllocator::peak_ = AccountingCpuAllocator::current_.load(); }
int64_t peak() { return AccountingCpuAllocator::peak_; }
}  // namespace cpu_detail

int64_t physical_memory_bytes() {
  int64_t bytes = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  const int64_t cgroup = read_number("/sys/fs/cgroup/memory.max");  // "max" reads as 0
  return cgroup > 0 && cgroup < bytes ? cgroup : bytes;
}

int64_t current_rss_bytes() {
  std::ifstream in("/proc/self/statm");
  int64_t pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

}  // namespace attnbench
