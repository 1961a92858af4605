// Writing a file whole or not at all: whatever reads it later (a cache, saved weights, saved outputs)
// finds either the old content or the new, never half of the new one after a crash or a full disk.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

namespace attnbench {

class FileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Writes into a temporary file beside `path` (same folder, so the rename cannot cross file systems);
// commit() syncs it and renames it over `path`. Destroyed without commit() (an exception on the way),
// the temporary file is removed and `path` is untouched. Errors throw FileError naming `path` and why.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);  // creates the folders above `path` when missing
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  void write(const std::string& text) { write(text.data(), text.size()); }
  void commit();

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string temporary_;
  int fd_ = -1;
};

// Writes all of `size` bytes to `fd`, retrying short writes and EINTR; returns 0 or the errno.
int write_all(int fd, const void* data, size_t size);

}  // namespace attnbench
