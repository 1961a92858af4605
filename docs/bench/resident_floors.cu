// The floors under a streamed token if one kernel stayed resident for the whole stream, with each
// token's weights already in its blocks' shared memory, and something outside it posting tokens:
//   - stream ops: the step is cuStreamWriteValue32 (post token t) and cuStreamWaitValue32 (until the
//     kernel says t is done) on the timed stream, an event after each, as the runner times a step;
//   - a graph of one small kernel that posts the token and spins until it is done (a constant graph,
//     no node updates), an event after each;
//   - the host posting and polling mapped pinned memory, timed by the host clock.
// Each runs with no work a token, and with the work of RA and MHA at E = 768, batch 1, L = 256 laid out
// as phases: dots of weight rows held in shared memory, a grid barrier, reads of the cached keys and
// values, a barrier for the merge, more dots. Beside them, as gpu_floors.cu, a graph of one empty kernel.
//   nvcc -O2 -arch=sm_90a -o /tmp/resident_floors docs/bench/resident_floors.cu -lcuda && /tmp/resident_floors
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <vector>

#include "check.h"

#define CHECK_CU(x)                                                       \
  do {                                                                    \
    CUresult status_ = (x);                                               \
    if (status_ != CUDA_SUCCESS) {                                        \
      const char* text_ = nullptr;                                        \
      cuGetErrorString(status_, &text_);                                  \
      std::printf("%s: %s\n", #x, text_ ? text_ : "?");                   \
      return 1;                                                           \
    }                                                                     \
  } while (0)

constexpr unsigned kStop = 0xffffffffu;
constexpr int kE = 768, kThreads = 256, kTokens = 256, kRounds = 4;

// A token's work, per block of a grid of one block an SM.
struct Plan {
  const char* name;
  int rows_a;      // weight rows dotted with the token, before the first barrier
  long kv_floats;  // cached keys and values read by the whole grid after it (0: no phase, no barrier)
  int merges;      // grid barriers after the reads
  int rows_c;      // weight rows dotted after those
};

struct Resident {
  const unsigned* doorbell;  // the token posted; kStop ends the kernel
  unsigned* relay;           // where set, block 0 alone polls the doorbell and relays it here to the rest
  unsigned long long* stamps;  // token t: when block 0 saw it, when its last block finished (ns)
  unsigned* done;            // the last token finished
  unsigned* count;           // grid barrier
  unsigned* arrivals;
  const float* weights;  // per block (rows_a + rows_c) x kE
  const float* x;        // kE
  const float* kv;
  float* y;
  Plan plan;
};

__device__ __forceinline__ unsigned load_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void store_release(unsigned* p, unsigned v) {
  asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

__device__ __forceinline__ unsigned long long now_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Spins until *p >= target; past two seconds the kernel traps, so a lost token fails the run instead of
// hanging it.
__device__ unsigned wait_at_least(const unsigned* p, unsigned target) {
  const unsigned long long start = now_ns();
  unsigned v;
  while ((v = load_acquire(p)) < target) {
    if (now_ns() - start > 2000000000ull) __trap();
  }
  return v;
}

__device__ void grid_barrier(unsigned* count, unsigned target) {
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    atomicAdd(count, 1u);
    wait_at_least(count, target);
  }
  __syncthreads();
}

// Rows [0, rows) of w (shared) dotted with xs (shared), a warp a row, into y.
__device__ void dots(const float* w, const float* xs, int rows, float* y) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int r = warp; r < rows; r += kThreads / 32) {
    float acc = 0.f;
    for (int i = lane * 4; i < kE; i += 128) {
      const float4 a = *reinterpret_cast<const float4*>(w + r * kE + i);
      const float4 b = *reinterpret_cast<const float4*>(xs + i);
      acc += a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
    }
    for (int o = 16; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) y[blockIdx.x * 64 + r] = acc;
  }
}

__global__ void resident_kernel(Resident r) {
  extern __shared__ __align__(16) float shared[];
  float* xs = shared;
  float* w = shared + kE;
  const int rows = r.plan.rows_a + r.plan.rows_c;
  for (int i = threadIdx.x; i < rows * kE; i += kThreads) w[i] = r.weights[blockIdx.x * rows * kE + i];
  __shared__ unsigned posted;
  unsigned barriers = 0;
  for (unsigned t = 1;; ++t) {
    if (threadIdx.x == 0) {
      if (!r.relay) {
        posted = wait_at_least(r.doorbell, t);
      } else if (blockIdx.x == 0) {
        posted = wait_at_least(r.doorbell, t);
        store_release(r.relay, posted);
      } else {
        posted = wait_at_least(r.relay, t);
      }
      if (blockIdx.x == 0 && posted != kStop) r.stamps[2 * t] = now_ns();
    }
    __syncthreads();
    if (posted == kStop) return;
    for (int i = threadIdx.x; i < kE; i += kThreads) xs[i] = __ldcg(r.x + i);
    __syncthreads();
    dots(w, xs, r.plan.rows_a, r.y);
    if (r.plan.kv_floats > 0) {
      grid_barrier(r.count, ++barriers * gridDim.x);
      const long per_block = r.plan.kv_floats / gridDim.x / 4;
      const float4* kv = reinterpret_cast<const float4*>(r.kv) + blockIdx.x * per_block;
      float acc = 0.f;
      for (long i = threadIdx.x; i < per_block; i += kThreads) {
        const float4 v = __ldcg(kv + i);
        acc += v.x + v.y + v.z + v.w;
      }
      r.y[blockIdx.x * 64 + 63] = acc;  // every thread writes; what is stored does not matter
      for (int m = 0; m < r.plan.merges; ++m) grid_barrier(r.count, ++barriers * gridDim.x);
    }
    dots(w + r.plan.rows_a * kE, xs, r.plan.rows_c, r.y);
    __syncthreads();
    if (threadIdx.x == 0) {
      __threadfence();
      if (atomicAdd(r.arrivals, 1u) == t * gridDim.x - 1) {
        r.stamps[2 * t + 1] = now_ns();
        store_release(r.done, t);
      }
    }
  }
}

// Posts the next token (a count it keeps in device memory) and waits until it is done. Launched as one
// warp: its lanes read the same count and write the same next value, so the count grows by one.
__global__ void post_kernel(unsigned* next, unsigned* doorbell, const unsigned* done) {
  const unsigned t = ++*next;
  store_release(doorbell, t);
  wait_at_least(done, t);
}

__global__ void empty_kernel() {}

float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median gaps (us) between events recorded after each of kTokens calls of `post`, a round at a time,
// and the host's time to issue a token (post and event, us); the first round is a warm-up.
std::vector<float> issue_us;
template <typename Post>
int event_gaps(cudaStream_t stream, Post post, std::vector<float>& medians) {
  issue_us.clear();
  std::vector<cudaEvent_t> events(kTokens + 1);
  for (auto& e : events) CHECK(cudaEventCreate(&e));
  for (int round = 0; round < kRounds; ++round) {
    CHECK(cudaEventRecord(events[0], stream));
    const auto start = std::chrono::steady_clock::now();
    for (int t = 0; t < kTokens; ++t) {
      if (post()) return 1;
      CHECK(cudaEventRecord(events[t + 1], stream));
    }
    if (round > 0) issue_us.push_back(std::chrono::duration<float, std::micro>(std::chrono::steady_clock::now() - start).count() / kTokens);
    CHECK(cudaEventSynchronize(events[kTokens]));
    std::vector<float> gaps(kTokens);
    for (int t = 0; t < kTokens; ++t) CHECK(cudaEventElapsedTime(&gaps[t], events[t], events[t + 1]));
    if (round > 0) medians.push_back(median(gaps) * 1000);
  }
  for (auto& e : events) cudaEventDestroy(e);
  return 0;
}

int main() {
  std::setvbuf(stdout, nullptr, _IONBF, 0);
  CHECK(cudaFree(nullptr));
  // Loads every kernel now: under lazy loading (CUDA 12.2's default) loading one while the resident
  // kernel spins can wait for that kernel, which never ends.
  for (const void* kernel : {reinterpret_cast<const void*>(resident_kernel), reinterpret_cast<const void*>(post_kernel),
                             reinterpret_cast<const void*>(empty_kernel)}) {
    cudaFuncAttributes attributes;
    CHECK(cudaFuncGetAttributes(&attributes, kernel));
  }
  int sms = 0;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  // RA: 2E reservoir and key rows (4.7 MB) over the grid, attention over L = 256 and its merge. MHA: the
  // in-projection's 3E rows, attention over a cache of 256 x 2E, the merge, the out-projection's E rows
  // (9.4 MB in shared memory in all).
  const int ra_rows = (2 * kE + sms - 1) / sms, in_rows = (3 * kE + sms - 1) / sms, out_rows = (kE + sms - 1) / sms;
  const Plan plans[] = {{"no work", 0, 0, 0, 0},
                        {"RA-like", ra_rows, 256L * kE, 1, 0},
                        {"MHA-like", in_rows, 256L * 2 * kE, 1, out_rows}};
  cudaStream_t stream, side;
  CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  CHECK(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking));
  float *weights, *x, *kv, *y;
  CHECK(cudaMalloc(&weights, sizeof(float) * sms * 64 * kE));
  CHECK(cudaMemset(weights, 0, sizeof(float) * sms * 64 * kE));
  CHECK(cudaMalloc(&x, sizeof(float) * kE));
  CHECK(cudaMemset(x, 0, sizeof(float) * kE));
  CHECK(cudaMalloc(&kv, sizeof(float) * 256 * 2 * kE));
  CHECK(cudaMemset(kv, 0, sizeof(float) * 256 * 2 * kE));
  CHECK(cudaMalloc(&y, sizeof(float) * sms * 64));
  unsigned* flags;  // doorbell, done, count, arrivals, next, relay (device memory)
  CHECK(cudaMalloc(&flags, 6 * 128));
  const int stamp_count = 2 * (kRounds * kTokens + 1);
  unsigned long long* stamps;
  CHECK(cudaMalloc(&stamps, sizeof(unsigned long long) * stamp_count));
  unsigned* host_flags;  // doorbell, done (mapped pinned memory)
  CHECK(cudaHostAlloc(&host_flags, 2 * 128, cudaHostAllocMapped));
  unsigned* host_flags_device;
  CHECK(cudaHostGetDevicePointer(&host_flags_device, host_flags, 0));

  {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    empty_kernel<<<sms, kThreads, 0, stream>>>();
    CHECK(cudaStreamEndCapture(stream, &graph));
    CHECK(cudaGraphInstantiateWithFlags(&exec, graph, 0));
    std::vector<float> m;
    if (event_gaps(stream, [&] { return cudaGraphLaunch(exec, stream) != cudaSuccess; }, m)) return 1;
    std::printf("%-44s %6.2f %6.2f %6.2f us a token; host issues one in %.2f\n", "baseline: graph of one empty kernel", m[0],
                m[1], m[2], issue_us[1]);
  }

  for (const Plan& plan : plans) {
    for (int mechanism = 0; mechanism < 3; ++mechanism) {
      const bool host = mechanism == 2;
      unsigned* doorbell = host ? host_flags_device : flags;
      unsigned* done = host ? host_flags_device + 32 : flags + 32;
      CHECK(cudaMemset(flags, 0, 6 * 128));
      CHECK(cudaDeviceSynchronize());
      host_flags[0] = host_flags[32] = 0;
      Resident r{doorbell, host ? flags + 160 : nullptr, stamps, done, flags + 64, flags + 96, weights, x, kv, y, plan};
      const size_t smem = sizeof(float) * (kE + (plan.rows_a + plan.rows_c) * kE);
      CHECK(cudaFuncSetAttribute(resident_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
      void* args[] = {&r};
      std::printf("%s, mechanism %d: ", plan.name, mechanism);
      CHECK(cudaLaunchCooperativeKernel(reinterpret_cast<void*>(resident_kernel), dim3(sms), dim3(kThreads), args, smem, side));
      std::vector<float> m;
      unsigned t = 0;
      const char* how = nullptr;
      if (mechanism == 0) {
        how = "stream write + wait value";
        auto post = [&] {
          ++t;
          return cuStreamWriteValue32(stream, reinterpret_cast<CUdeviceptr>(doorbell), t, 0) != CUDA_SUCCESS ||
                 cuStreamWaitValue32(stream, reinterpret_cast<CUdeviceptr>(done), t, CU_STREAM_WAIT_VALUE_GEQ) != CUDA_SUCCESS;
        };
        if (event_gaps(stream, post, m)) return 1;
        CHECK_CU(cuStreamWriteValue32(stream, reinterpret_cast<CUdeviceptr>(doorbell), kStop, 0));
      } else if (mechanism == 1) {
        how = "graph of one posting kernel";
        cudaGraph_t graph;
        cudaGraphExec_t exec;
        CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        post_kernel<<<1, 32, 0, stream>>>(flags + 128, doorbell, done);
        CHECK(cudaStreamEndCapture(stream, &graph));
        CHECK(cudaGraphInstantiateWithFlags(&exec, graph, 0));
        if (event_gaps(stream, [&] { return cudaGraphLaunch(exec, stream) != cudaSuccess; }, m)) return 1;
        CHECK_CU(cuStreamWriteValue32(stream, reinterpret_cast<CUdeviceptr>(doorbell), kStop, 0));
      } else {
        how = "host posts and polls mapped memory";
        volatile unsigned* bell = host_flags;
        volatile unsigned* finished = host_flags + 32;
        for (int round = 0; round < kRounds; ++round) {
          std::vector<float> gaps(kTokens);
          auto last = std::chrono::steady_clock::now();
          for (int k = 0; k < kTokens; ++k) {
            ++t;
            std::atomic_thread_fence(std::memory_order_release);
            *bell = t;
            while (*finished < t) {
              __builtin_ia32_pause();
              if (std::chrono::steady_clock::now() - last > std::chrono::seconds(2)) {
                std::printf("token %u was never done\n", t);
                return 1;
              }
            }
            const auto now = std::chrono::steady_clock::now();
            gaps[k] = std::chrono::duration<float, std::micro>(now - last).count();
            last = now;
          }
          if (round > 0) m.push_back(median(gaps));
        }
        *bell = kStop;
      }
      CHECK(cudaStreamSynchronize(stream));
      CHECK(cudaStreamSynchronize(side));
      char label[96];
      std::snprintf(label, sizeof label, "%s, %s", plan.name, how);
      std::vector<unsigned long long> host_stamps(stamp_count);
      CHECK(cudaMemcpy(host_stamps.data(), stamps, sizeof(unsigned long long) * stamp_count, cudaMemcpyDeviceToHost));
      std::vector<float> work;  // the rounds after the warm-up one
      for (int k = kTokens + 1; k <= kRounds * kTokens; ++k) work.push_back((host_stamps[2 * k + 1] - host_stamps[2 * k]) / 1000.f);
      std::printf("%-44s %6.2f %6.2f %6.2f us a token (%zu KB shared a block), %.2f of them in the kernel", label, m[0], m[1],
                  m[2], smem / 1024, median(work));
      if (!host) std::printf("; host issues one in %.2f", issue_us[1]);
      std::printf("\n");
    }
  }
  return 0;
}
