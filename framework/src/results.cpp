#include "results.h"

#include "device.h"

#include <attnbench/common.h>

#include <fmt/format.h>
#include <torch/csrc/api/include/torch/version.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace attnbench {

ResultsFile::ResultsFile(const std::string& path) : path_(path) {
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  // Read what is there; keep every complete line, cut a torn last line (the process died mid-write).
  std::ifstream in(path, std::ios::binary);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  size_t good_end = 0, pos = 0;
  while (pos < content.size()) {
    size_t nl = content.find('\n', pos);
    std::string line = content.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    bool complete = nl != std::string::npos;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!complete || j.is_discarded() || !j.is_object()) {
      if (!complete) break;  // torn tail
      pos = nl + 1;          // a damaged line in the middle stays; it just counts as nothing done
      good_end = pos;
      continue;
    }
    if (j.contains("hash") && j["hash"].is_string()) done_[j["hash"]] = j.value("status", "");
    pos = nl + 1;
    good_end = pos;
  }
  if (good_end < content.size()) {
    std::filesystem::resize_file(path, good_end);
    repaired_ = true;
  }
  file_ = std::fopen(path.c_str(), "ab");
  if (file_ == nullptr) throw std::runtime_error(fmt::format("{}: cannot open the results file for writing", path));
}

ResultsFile::~ResultsFile() {
  if (file_) std::fclose(file_);
}

void ResultsFile::append(const nlohmann::json& line) {
  // A plugin's error message may hold any bytes; replace what is not UTF-8 rather than lose the line.
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size() || std::fflush(file_) != 0) {
    throw std::runtime_error(fmt::format("{}: write failed (disk full?)", path_));
  }
  fsync(fileno(file_));
  if (line.contains("hash")) done_[line["hash"]] = line.value("status", "");
}

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

std::string command_output(const std::string& command) {
  std::array<char, 256> buffer{};
  std::string out;
  std::FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return "";
  while (std::fgets(buffer.data(), buffer.size(), pipe)) out += buffer.data();
  pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

nlohmann::json make_context() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  nlohmann::json gpus = nlohmann::json::array();
  for (const GpuFacts& g : gpu_facts()) {
    gpus.push_back({{"name", g.name}, {"driver", g.driver}, {"cuda_runtime", g.cuda_runtime}, {"memory_bytes", g.memory_bytes}});
  }
  std::string commit = command_output("git -C '" ATTNBENCH_SOURCE_DIR "' rev-parse --short HEAD 2>/dev/null");
  if (!commit.empty() && !command_output("git -C '" ATTNBENCH_SOURCE_DIR "' status --porcelain --untracked-files=no 2>/dev/null").empty()) {
    commit += "-dirty";
  }
  return {
      {"host", host},
      {"cpu", cpu_field("model name")},
      {"cpu_count", std::thread::hardware_concurrency()},
      {"cpu_mhz", cpu_field("cpu MHz")},
      {"cpu_scaling_governor", read_first("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")},
      {"gpus", gpus},
      {"torch", TORCH_VERSION},
      {"compiler", ATTNBENCH_COMPILER},
      {"build_type", ATTNBENCH_BUILD_TYPE},
      {"git_commit", commit.empty() ? "unknown" : commit},
      {"attnbench_sdk_abi", fmt::format("{}.{}", ATTNBENCH_SDK_ABI_MAJOR, ATTNBENCH_SDK_ABI_MINOR)},
  };
}

}  // namespace attnbench
