#include "output.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <span>

#include "streamingllm/tools.h"

namespace sllm::cli {

namespace {

// Writes all of `bytes` to `fd`; the errno of the failure, or 0.
int write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;  // chat's SIGINT handler runs without SA_RESTART
      return errno;
    }
    if (n == 0) return EIO;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return 0;
}

Error io_error(std::string message) { return Error(ErrorCode::kIo, std::move(message)); }

}  // namespace

void write_stdout(std::string_view text) {
  // Whatever stdio still holds goes first (a library may have printed with it).
  if (std::fflush(stdout) != 0) {
    throw OutputError(fmt::format("cannot write to standard output: {}", std::strerror(errno)));
  }
  if (const int err = write_all(STDOUT_FILENO, text); err != 0) {
    throw OutputError(fmt::format("cannot write to standard output: {}", std::strerror(err)));
  }
}

Status check_output_path(std::string_view flag, const std::string& path) {
  const std::string what = fmt::format("{} '{}'", flag, path);
  if (path.empty()) return Error(ErrorCode::kInvalidInput, fmt::format("{}: empty path", flag));
  struct stat st = {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return io_error(fmt::format("{} is a directory", what));
    if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode)) {
      return io_error(fmt::format("{} is not a regular file, a FIFO or a character device", what));
    }
    if (::access(path.c_str(), W_OK) != 0) {
      return io_error(fmt::format("{}: cannot write: {}", what, std::strerror(errno)));
    }
    if (!S_ISREG(st.st_mode)) return {};
  } else if (errno != ENOENT) {
    return io_error(fmt::format("{}: {}", what, std::strerror(errno)));
  }
  // A regular file is replaced by a temp file beside it: its directory must take new files.
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::string dir = parent.empty() ? std::string(".") : parent.string();
  if (::stat(dir.c_str(), &st) != 0) {
    return io_error(fmt::format("{}: directory '{}': {}", what, dir, std::strerror(errno)));
  }
  if (!S_ISDIR(st.st_mode)) return io_error(fmt::format("{}: '{}' is not a directory", what, dir));
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return io_error(
        fmt::format("{}: cannot create files in '{}': {}", what, dir, std::strerror(errno)));
  }
  return {};
}

Status write_output_file(const std::string& path, std::string_view bytes) {
  struct stat st = {};
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) return io_error(fmt::format("'{}' is a directory", path));
  if (!exists || S_ISREG(st.st_mode)) {
    return write_file_atomic(
        path,
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  }
  if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode)) {
    return io_error(fmt::format("'{}' is not a regular file, a FIFO or a character device", path));
  }
  // O_NONBLOCK: open() on a FIFO without a reader fails (ENXIO) instead of waiting forever.
  const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    return io_error(fmt::format("cannot open '{}' for writing: {}", path,
                                errno == ENXIO ? "no process reads it" : std::strerror(errno)));
  }
  // Writes wait for a slow reader as usual.
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  int err = write_all(fd, bytes);
  if (::close(fd) != 0 && err == 0 && errno != EINTR) err = errno;
  if (err != 0) return io_error(fmt::format("cannot write '{}': {}", path, std::strerror(err)));
  return {};
}

}  // namespace sllm::cli
