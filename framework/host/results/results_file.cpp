#include "results/results_file.h"

#include <fmt/format.h>
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

}  // namespace attnbench
