// What the test files share: a scratch folder per test process, reading a results file, and a small
// study for the loader's tests to extend.
#pragma once

#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace attnbench::testing {

// A path in this process's scratch folder (ctest runs each test in its own process).
inline std::string temp_path(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("attnbench_tests_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

// The JSON objects of a results file, one per line.
inline std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

// Two small layers (mha, reservoir) on synthetic tokens; tests append sections to it. Error messages
// point into it by line and column, so its text is part of their expectations.
inline constexpr const char* kTwoLayerStudy = R"(
name: t
data: {embedder: synthetic, seq_len: 32}
attention:
  - {name: a, plugin: mha, params: {heads: 2}}
  - {name: b, plugin: reservoir, params: {res_size: 16}}
)";

}  // namespace attnbench::testing
