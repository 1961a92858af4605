// The results file: one JSON object per line, appended and synced as each cell ends, so a crash loses at
// most the cell in flight. Results are the user's data: this class never deletes a byte it did not
// write. It refuses a path that is not a regular file and a file that is not attnbench JSON Lines
// (writing nothing); it moves a half-written last line to a sidecar file instead of dropping it.
//
// Several runners may share one file (shards of a job array, the same study started twice): each line
// goes out in one write() under an advisory lock, a runner claims a cell while it runs it, and the cells
// other runners finished since the start count as done. The locks are Linux open-file-description
// locks (fcntl F_OFD_SETLK) on bytes far past the end of the file, so they never cover its content:
// appends hold byte 2^62, a claim holds byte 2^62 + 1 + (hash mod 2^60). docs/results.md says so for
// other programs that append to a results file.
#pragma once

#include <nlohmann/json.hpp>

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace attnbench {

constexpr int kResultsSchemaVersion = 1;

class ResultsFile {
 public:
  // Opens `path`, creating it and its folders when missing, and reads the cells it holds. Throws
  // ConfigError naming the path (and line) when it is not a regular file or not attnbench JSON Lines.
  explicit ResultsFile(const std::string& path);
  ~ResultsFile();
  ResultsFile(const ResultsFile&) = delete;
  ResultsFile& operator=(const ResultsFile&) = delete;

  // hash -> status of the cells in the file: those there on open, those appended here, and those other
  // processes appended up to the last claim() or append().
  const std::map<std::string, std::string>& done() const { return done_; }
  // What opening changed, one sentence each, for the console: a torn last line moved to a sidecar file,
  // a newline given to a complete last line that lacked one, locks the file system does not support.
  const std::vector<std::string>& notes() const { return notes_; }

  // The results lines the file holds now (complete lines only), parsed, in file order.
  std::vector<nlohmann::json> lines() const;

  // Claims cell `hash` for this process until append() writes a line with that hash (or the process
  // ends), and reads what other processes appended meanwhile, so done() is current for it. False when
  // another process holds the claim: it is running that cell now.
  bool claim(const std::string& hash);
  // Gives a claim back without appending (the cell turned out to be done).
  void release(const std::string& hash);
  // Appends `line` (with its newline) in one write under the append lock, synced; a line with a hash
  // releases that hash's claim. Throws std::runtime_error naming the file when the write fails, after
  // taking back the bytes it wrote.
  void append(const nlohmann::json& line);

 private:
  class AppendLock;
  void open();
  void follow_replaced_file();
  void read_new_lines();
  void repair_tail(off_t complete_end, off_t size, int64_t line_number);
  bool lock_byte(off_t offset, short type, bool wait);

  std::string path_;
  int fd_ = -1;
  off_t read_to_ = 0;  // the bytes already read into done_: up to the end of the last complete line
  bool locking_ = true;
  std::map<std::string, std::string> done_;
  std::set<off_t> claims_;  // the claim bytes this process holds
  std::vector<std::string> notes_;
};

}  // namespace attnbench
