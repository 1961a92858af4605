// The results file: one JSON object per line, each flushed and synced when written, so a crash loses
// at most the cell in flight; reopening repairs a half-written last line and lists the cells done.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdio>
#include <map>
#include <string>

namespace attnbench {

constexpr int kResultsSchemaVersion = 1;

class ResultsFile {
 public:
  explicit ResultsFile(const std::string& path);  // creates the file and its folders when missing
  ~ResultsFile();
  ResultsFile(const ResultsFile&) = delete;
  ResultsFile& operator=(const ResultsFile&) = delete;

  // hash -> status of the cells already in the file.
  const std::map<std::string, std::string>& done() const { return done_; }
  bool repaired() const { return repaired_; }  // a half-written last line was cut off on open
  void append(const nlohmann::json& line);

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  std::map<std::string, std::string> done_;
  bool repaired_ = false;
};

}  // namespace attnbench
