#include "results/results_file.h"

#include "study/study.h"

#include <attnbench/support/files.h>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <stdexcept>

namespace attnbench {
namespace {

constexpr off_t kAppendLockByte = off_t{1} << 62;
constexpr uint64_t kClaimBytes = uint64_t{1} << 60;
// A last line longer than this is no line of ours (a results line is a few megabytes at most).
constexpr off_t kLongestTail = off_t{1} << 28;

std::string errno_text() { return std::strerror(errno); }

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// Why `j` (a line parsed without exceptions) is not a results line, or "" when it is one: a JSON object
// with a string "hash" and "status", which every line the runner writes has. `cell` receives the line's
// hash and status.
std::string not_a_result(const nlohmann::json& j, std::pair<std::string, std::string>& cell) {
  if (j.is_discarded()) return "not JSON";
  if (!j.is_object()) return "not a JSON object";
  if (!j.contains("hash") || !j["hash"].is_string()) return "no string \"hash\"";
  if (!j.contains("status") || !j["status"].is_string()) return "no string \"status\"";
  cell = {j["hash"].get<std::string>(), j["status"].get<std::string>()};
  return "";
}

std::string not_a_result(const std::string& text, std::pair<std::string, std::string>& cell) {
  return not_a_result(nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false), cell);
}

bool blank(const std::string& text) { return text.find_first_not_of(" \t\r") == std::string::npos; }

// Calls `on_line(text, number)` for each complete line from byte `from` to `size`, in chunks so memory
// stays bounded by the longest line; returns the offset just past the last newline.
off_t for_each_line(int fd, off_t from, off_t size, const std::string& path,
                    const std::function<void(const std::string&, int64_t)>& on_line) {
  std::string pending;
  off_t pos = from, complete_end = from;
  int64_t number = 0;
  std::vector<char> chunk(1 << 20);
  while (pos < size) {
    const ssize_t got = ::pread(fd, chunk.data(), std::min<off_t>(static_cast<off_t>(chunk.size()), size - pos), pos);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw std::runtime_error(fmt::format("{}: cannot read the results file: {}", path, errno_text()));
    if (got == 0) break;  // shorter than it was a moment ago: another writer's business, read it next time
    size_t start = 0;
    for (size_t i = 0; i < static_cast<size_t>(got); ++i) {
      if (chunk[i] != '\n') continue;
      pending.append(chunk.data() + start, i - start);
      on_line(pending, ++number);
      pending.clear();
      start = i + 1;
      complete_end = pos + static_cast<off_t>(i) + 1;
    }
    pending.append(chunk.data() + start, static_cast<size_t>(got) - start);
    if (static_cast<off_t>(pending.size()) > kLongestTail) {
      throw ConfigError(fmt::format("{}: line {} is longer than {} bytes: not a results line, so this is not attnbench "
                                    "JSON Lines; nothing was written to it (give another --results or output.results)",
                                    path, number + 1, kLongestTail));
    }
    pos += got;
  }
  return complete_end;
}

std::string read_range(int fd, off_t from, off_t to, const std::string& path) {
  std::string out(static_cast<size_t>(to - from), '\0');
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t got = ::pread(fd, out.data() + done, out.size() - done, from + static_cast<off_t>(done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) throw std::runtime_error(fmt::format("{}: cannot read the results file: {}", path, errno_text()));
    done += static_cast<size_t>(got);
  }
  return out;
}

// The claim byte of a cell: its 16 hex digits, or for any other text an FNV-1a of it.
off_t claim_byte(const std::string& hash) {
  uint64_t h = 0;
  const bool hex = hash.size() == 16 && hash.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (hex) {
    h = std::stoull(hash, nullptr, 16);
  } else {
    h = 14695981039346656037ull;
    for (unsigned char c : hash) h = (h ^ c) * 1099511628211ull;
  }
  return kAppendLockByte + 1 + static_cast<off_t>(h % kClaimBytes);
}

}  // namespace

// Holds the append lock for a scope: waits for it, follows the path to a file that replaced the one
// open, and reads the lines appended since.
class ResultsFile::AppendLock {
 public:
  explicit AppendLock(ResultsFile& file) : file_(file) {
    file_.lock_byte(kAppendLockByte, F_WRLCK, /*wait=*/true);
    file_.follow_replaced_file();
    file_.read_new_lines();
  }
  ~AppendLock() { file_.lock_byte(kAppendLockByte, F_UNLCK, false); }
  AppendLock(const AppendLock&) = delete;
  AppendLock& operator=(const AppendLock&) = delete;

 private:
  ResultsFile& file_;
};

ResultsFile::ResultsFile(const std::string& path) : path_(path) { open(); }

ResultsFile::~ResultsFile() {
  if (fd_ >= 0) ::close(fd_);  // releases the claims and the lock with the open file description
}

bool ResultsFile::lock_byte(off_t offset, short type, bool wait) {
  if (!locking_) return true;
  struct flock lock {};
  lock.l_type = type;
  lock.l_whence = SEEK_SET;
  lock.l_start = offset;
  lock.l_len = 1;
  while (::fcntl(fd_, wait ? F_OFD_SETLKW : F_OFD_SETLK, &lock) != 0) {
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EACCES) return false;
    // A file system without locks (or a kernel without OFD locks): go on, but say what that means.
    locking_ = false;
    notes_.push_back(fmt::format("{}: the file system does not lock files ({}); do not let two runners write this "
                                 "results file at once", path_, errno_text()));
    return true;
  }
  return true;
}

void ResultsFile::open() {
  const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  std::error_code ec;
  if (!parent.empty() && !std::filesystem::is_directory(parent, ec)) {
    std::filesystem::create_directories(parent, ec);
    if (ec) throw ConfigError(fmt::format("{}: cannot create the results file's folder: {}", path_, ec.message()));
  }
  // O_NONBLOCK: a FIFO must not hang the runner before it is refused below.
  auto not_regular = [&](mode_t mode) {
    return ConfigError(fmt::format("{}: the results file is {}, not a regular file; nothing was read or written (give "
                                   "a file path with --results or output.results)", path_, file_kind(mode)));
  };
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK, 0644);
  if (fd_ < 0) {
    const std::string why = errno_text();
    struct stat st {};
    if (::stat(path_.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) throw not_regular(st.st_mode);
    throw ConfigError(fmt::format("{}: cannot open the results file: {}", path_, why));
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd_);
    fd_ = -1;
    throw not_regular(st.st_mode);
  }
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
  for (off_t claim : claims_) lock_byte(claim, F_WRLCK, false);  // reopened: keep what this process holds

  // Under the append lock: a line another runner is writing now is not a torn one.
  lock_byte(kAppendLockByte, F_WRLCK, /*wait=*/true);
  try {
    if (::fstat(fd_, &st) != 0) throw std::runtime_error(fmt::format("{}: cannot read the results file: {}", path_, errno_text()));
    done_.clear();
    int64_t lines = 0;
    const off_t complete_end = for_each_line(fd_, 0, st.st_size, path_, [&](const std::string& text, int64_t number) {
      lines = number;
      if (blank(text)) return;
      std::pair<std::string, std::string> cell;
      const std::string why = not_a_result(text, cell);
      if (!why.empty()) {
        throw ConfigError(fmt::format("{}:{}: not an attnbench results line ({}), so this is not attnbench JSON Lines; "
                                      "nothing was written to it (repair that line, or give another --results or "
                                      "output.results)", path_, number, why));
      }
      done_[cell.first] = cell.second;
    });
    read_to_ = complete_end;
    if (complete_end < st.st_size) repair_tail(complete_end, st.st_size, lines + 1);
  } catch (...) {
    lock_byte(kAppendLockByte, F_UNLCK, false);
    ::close(fd_);
    fd_ = -1;
    throw;
  }
  lock_byte(kAppendLockByte, F_UNLCK, false);
}

// The bytes after the last newline: a complete line that lacks its newline gets one; the start of a
// line a runner was writing when it was stopped goes to a sidecar file; anything else is not ours.
void ResultsFile::repair_tail(off_t complete_end, off_t size, int64_t line_number) {
  const std::string tail = read_range(fd_, complete_end, size, path_);
  std::pair<std::string, std::string> cell;
  if (not_a_result(tail, cell).empty()) {
    if (int err = write_all(fd_, "\n", 1)) {
      throw std::runtime_error(fmt::format("{}: cannot end its last line: {}", path_, std::strerror(err)));
    }
    ::fsync(fd_);
    done_[cell.first] = cell.second;
    read_to_ = size + 1;
    notes_.push_back(fmt::format("{}: its last line was complete but had no newline; added one", path_));
    return;
  }
  const bool ours = tail.rfind("{\"", 0) == 0 && tail.find('\0') == std::string::npos;
  if (!ours) {
    throw ConfigError(fmt::format("{}:{}: not an attnbench results line (the last {} bytes, with no newline), so this "
                                  "is not attnbench JSON Lines; nothing was written to it (give another --results or "
                                  "output.results)", path_, line_number, tail.size()));
  }
  std::string sidecar = path_ + ".torn";
  for (int n = 2; std::filesystem::exists(sidecar); ++n) sidecar = fmt::format("{}.torn.{}", path_, n);
  try {
    AtomicFile out(sidecar);
    out.write(tail);
    out.commit();
  } catch (const FileError& e) {
    throw std::runtime_error(fmt::format("{}: its last line is half-written and could not be moved aside, so the file "
                                         "was left as it is: {}", path_, e.what()));
  }
  if (::ftruncate(fd_, complete_end) != 0 || ::fsync(fd_) != 0) {
    throw std::runtime_error(fmt::format("{}: cannot take back its half-written last line (kept in {}): {}", path_,
                                         sidecar, errno_text()));
  }
  notes_.push_back(fmt::format("{}: moved a half-written last line ({} bytes, from a runner stopped while writing) to {}",
                               path_, tail.size(), sidecar));
}

// Another program may have replaced the file (a merge writes a new one and renames it over the old):
// appending to the old one would put results where nobody looks.
void ResultsFile::follow_replaced_file() {
  struct stat open_file {}, named {};
  if (::fstat(fd_, &open_file) == 0 && ::stat(path_.c_str(), &named) == 0 && open_file.st_dev == named.st_dev &&
      open_file.st_ino == named.st_ino) {
    return;
  }
  lock_byte(kAppendLockByte, F_UNLCK, false);
  ::close(fd_);
  fd_ = -1;
  open();
  lock_byte(kAppendLockByte, F_WRLCK, /*wait=*/true);
}

void ResultsFile::read_new_lines() {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return;
  if (st.st_size < read_to_) {  // cut short by someone else: what it holds now is what counts
    read_to_ = 0;
    done_.clear();
  }
  read_to_ = for_each_line(fd_, read_to_, st.st_size, path_, [&](const std::string& text, int64_t) {
    std::pair<std::string, std::string> cell;
    if (!blank(text) && not_a_result(text, cell).empty()) done_[cell.first] = cell.second;
  });
}

std::vector<nlohmann::json> ResultsFile::lines() const {
  std::vector<nlohmann::json> out;
  struct stat st {};
  if (::fstat(fd_, &st) != 0) throw std::runtime_error(fmt::format("{}: cannot read the results file: {}", path_, errno_text()));
  for_each_line(fd_, 0, st.st_size, path_, [&](const std::string& text, int64_t) {
    if (blank(text)) return;
    nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    std::pair<std::string, std::string> cell;
    if (not_a_result(j, cell).empty()) out.push_back(std::move(j));
  });
  return out;
}

bool ResultsFile::claim(const std::string& hash) {
  const off_t byte = claim_byte(hash);
  if (claims_.count(byte) == 0) {
    if (!lock_byte(byte, F_WRLCK, /*wait=*/false)) return false;
    claims_.insert(byte);
  }
  AppendLock lock(*this);  // what others finished before our claim is in the file now
  return true;
}

void ResultsFile::append(const nlohmann::json& line) {
  // A plugin's error message may hold any bytes; replace what is not UTF-8 rather than lose the line.
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  {
    AppendLock lock(*this);
    struct stat st {};
    if (::fstat(fd_, &st) != 0) throw std::runtime_error(fmt::format("{}: cannot write: {}", path_, errno_text()));
    // A writer that takes no lock may have left its line unfinished: keep ours whole on a line of its own.
    if (st.st_size > 0 && read_range(fd_, st.st_size - 1, st.st_size, path_) != "\n") text.insert(0, "\n");
    if (int err = write_all(fd_, text.data(), text.size())) {
      const bool restored = ::ftruncate(fd_, st.st_size) == 0;
      throw std::runtime_error(fmt::format("{}: write failed ({}){}", path_, std::strerror(err),
                                           restored ? "; the file is as it was before this line" : ""));
    }
    if (::fsync(fd_) != 0) throw std::runtime_error(fmt::format("{}: write failed: {}", path_, errno_text()));
    read_to_ = st.st_size + static_cast<off_t>(text.size());
  }
  if (line.contains("hash") && line["hash"].is_string()) {
    const std::string& hash = line["hash"].get_ref<const std::string&>();
    done_[hash] = line.value("status", "");
    release(hash);
  }
}

void ResultsFile::release(const std::string& hash) {
  const off_t byte = claim_byte(hash);
  if (claims_.erase(byte) > 0) lock_byte(byte, F_UNLCK, false);
}

}  // namespace attnbench
