// An advisory lock (flock) on a lock file beside a file that one process at a time may own,
// such as a chat's session file: a second process is refused at once instead of racing.
#pragma once

#include <string>

#include "streamingllm/error.h"

namespace sllm {

class FileLock {
 public:
  // Creates `lock_path` if needed, locks it and writes this process's id into it. When another
  // process holds it, fails at once with "<what> is in use by another streamingllm process
  // (pid N)". The lock file must not be the guarded file itself: that one is replaced by rename.
  static Result<FileLock> acquire(const std::string& lock_path, const std::string& what);

  FileLock() = default;
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();  // removes the lock file and releases the lock

  const std::string& path() const { return path_; }

 private:
  void release();

  int fd_ = -1;
  std::string path_;
};

}  // namespace sllm
