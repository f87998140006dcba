#include "util/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace sllm {

namespace {

Error io_error(const std::string& what, const std::string& path, int err) {
  return Error(ErrorCode::kIo, what + " '" + path + "': " + std::strerror(err));
}

// The process id the holder wrote, or "unknown" while it has not written it yet.
std::string holder_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  std::string pid;
  for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) pid += buf[i];
  return pid.empty() ? "unknown" : pid;
}

}  // namespace

Result<FileLock> FileLock::acquire(const std::string& lock_path, const std::string& what) {
  // A holder removes the lock file when it is done, so a lock taken on a file that is no longer
  // the one at lock_path protects nothing: try again with the new one.
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = ::open(lock_path.c_str(),
                          O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0644);
    if (fd < 0) return io_error("cannot create the lock file", lock_path, errno);
    struct stat held {};
    if (::fstat(fd, &held) != 0 || !S_ISREG(held.st_mode)) {
      ::close(fd);
      return Error(ErrorCode::kIo, "the lock file '" + lock_path + "' is not a regular file");
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      if (err == EWOULDBLOCK) {
        const std::string pid = holder_pid(fd);
        ::close(fd);
        return Error(ErrorCode::kIo,
                     what + " is in use by another streamingllm process (pid " + pid + ")");
      }
      ::close(fd);
      return io_error("cannot lock", lock_path, err);
    }
    struct stat now {};
    if (::stat(lock_path.c_str(), &now) != 0 || now.st_ino != held.st_ino ||
        now.st_dev != held.st_dev) {
      ::close(fd);
      continue;
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 ||
        ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      const int err = errno;
      ::unlink(lock_path.c_str());
      ::close(fd);
      return io_error("cannot write the lock file", lock_path, err);
    }
    FileLock lock;
    lock.fd_ = fd;
    lock.path_ = lock_path;
    return lock;
  }
  return Error(ErrorCode::kIo, "cannot lock '" + lock_path + "': it keeps being replaced");
}

FileLock::FileLock(FileLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

FileLock::~FileLock() { release(); }

void FileLock::release() {
  if (fd_ < 0) return;
  // Unlinked while still locked, so that no one locks the old file after us and believes it holds
  // the lock (acquire() checks that the file it locked is still the one at the path).
  ::unlink(path_.c_str());
  ::close(fd_);
  fd_ = -1;
}

}  // namespace sllm
