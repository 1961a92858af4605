#include "results/context.h"

#include "results/build_info.h"
#include "measure/device.h"

#include <attnbench/plugin.h>

#include <fmt/format.h>
#include <torch/csrc/api/include/torch/version.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

namespace attnbench {
namespace {

std::string read_first(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string cpu_field(const std::string& key) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "";
}

}  // namespace

nlohmann::json build_facts() {
  std::string commit = build_info::kGitCommit;
  if (build_info::kGitDirty) commit += "-dirty";
  return {
      {"attnbench_version", build_info::kVersion},
      {"git_commit", commit},
      {"git_dirty", build_info::kGitDirty},
      {"build_type", build_info::kBuildType},
      {"compiler", build_info::kCompiler},
      {"cuda_architectures", build_info::kCudaArchitectures},
      {"torch", TORCH_VERSION},
      {"attnbench_sdk_abi", fmt::format("{}.{}", ATTNBENCH_SDK_ABI_MAJOR, ATTNBENCH_SDK_ABI_MINOR)},
  };
}

nlohmann::json make_context() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  nlohmann::json gpus = nlohmann::json::array();
  for (const GpuFacts& g : gpu_facts()) {
    gpus.push_back({{"name", g.name}, {"driver", g.driver}, {"cuda_runtime", g.cuda_runtime}, {"memory_bytes", g.memory_bytes},
                    {"compute_capability", g.compute_capability}});
  }
  nlohmann::json context = {
      {"host", host},
      {"cpu", cpu_field("model name")},
      {"cpu_count", std::thread::hardware_concurrency()},
      {"cpu_mhz", cpu_field("cpu MHz")},
      {"cpu_scaling_governor", read_first("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")},
      {"gpus", gpus},
  };
  context.update(build_facts());
  return context;
}

}  // namespace attnbench
