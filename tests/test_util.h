// What the test files share: a scratch folder per test process and reading a results file.
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

}  // namespace attnbench::testing
