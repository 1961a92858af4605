#include <attnbench/support/files.h>

#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace attnbench {

int write_all(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return 0;
}

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) throw FileError(fmt::format("{}: cannot create its folder {}: {}", path, parent.string(), ec.message()));
  }
  // Unique per process and per file, so two writers of one path never share a temporary file.
  static std::atomic<unsigned> counter{0};
  temporary_ = fmt::format("{}.tmp.{}.{}", path, ::getpid(), counter++);
  fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) throw FileError(fmt::format("{}: cannot write: {}", path, std::strerror(errno)));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!temporary_.empty()) ::unlink(temporary_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
  if (fd_ < 0) throw FileError(fmt::format("{}: written after commit", path_));
  if (int err = write_all(fd_, data, size)) {
    throw FileError(fmt::format("{}: write failed: {}; the file was left as it was", path_, std::strerror(err)));
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) throw FileError(fmt::format("{}: committed twice", path_));
  const int fd = fd_;
  fd_ = -1;
  // Synced before the rename: otherwise a crash could leave the new name on empty blocks.
  const bool synced = ::fsync(fd) == 0;
  const int sync_errno = errno;
  if (::close(fd) != 0 || !synced) {
    throw FileError(fmt::format("{}: write failed: {}; the file was left as it was", path_,
                                std::strerror(synced ? errno : sync_errno)));
  }
  if (::rename(temporary_.c_str(), path_.c_str()) != 0) {
    throw FileError(fmt::format("{}: cannot replace it: {}", path_, std::strerror(errno)));
  }
  temporary_.clear();
  // The rename itself is durable once the folder is synced; failing that is no reason to fail the write.
  const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  const int dir = ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

}  // namespace attnbench
