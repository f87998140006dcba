#include "util/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "util/limits.h"

namespace sllm {

namespace {

// Symbolic links followed before giving up, as the kernel does (MAXSYMLINKS).
constexpr int kMaxSymlinks = 40;
// The temp file's name keeps this much of the target's, so that ".name.XXXXXX" still fits in
// NAME_MAX (255) when the target's name is at the limit.
constexpr size_t kTempStemChars = 200;

Error io_error(const std::string& what, const std::string& path, int err) {
  return Error(ErrorCode::kIo, what + " '" + path + "': " + std::strerror(err));
}

FileKind kind_of(mode_t mode) {
  if (S_ISREG(mode)) return FileKind::kRegular;
  if (S_ISDIR(mode)) return FileKind::kDirectory;
  if (S_ISCHR(mode)) return FileKind::kCharDevice;
  if (S_ISBLK(mode)) return FileKind::kBlockDevice;
  if (S_ISFIFO(mode)) return FileKind::kFifo;
  if (S_ISSOCK(mode)) return FileKind::kSocket;
  return FileKind::kOther;
}

Error not_regular(const std::string& path, FileKind kind, const char* consequence) {
  return Error(ErrorCode::kIo,
               "'" + path + "' is not a regular file (" + file_kind_name(kind) + ")" + consequence);
}

// The directory part of `path` ("." when it has none) and its last component.
std::string dir_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}
std::string base_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Opens `path` for reading without blocking (a FIFO with no writer would block open() forever)
// and refuses anything but a regular file, or with `allow_streams` also a FIFO or a character
// device (`-f /dev/stdin`, `-f <(cmd)`); the descriptor is blocking again on return. (Reading a
// FIFO that no process has open for writing returns end-of-file at once: it cannot hang.)
Result<int> open_for_reading(const std::string& path, struct stat* st, bool allow_streams) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return io_error("cannot open", path, errno);
  if (::fstat(fd, st) != 0) {
    const int err = errno;
    ::close(fd);
    return io_error("cannot stat", path, err);
  }
  const bool stream = S_ISFIFO(st->st_mode) || S_ISCHR(st->st_mode);
  if (!S_ISREG(st->st_mode) && !(allow_streams && stream)) {
    ::close(fd);
    return not_regular(path, kind_of(st->st_mode), "; expected a regular file");
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    const int err = errno;
    ::close(fd);
    return io_error("cannot read", path, err);
  }
  return fd;
}

// Where write_file_atomic puts the bytes: the path with links followed, and the mode to keep.
struct Target {
  std::string path;
  bool exists = false;
  mode_t mode = 0;
};

Result<Target> prepare_target(const std::string& path) {
  if (path.empty()) return Error(ErrorCode::kIo, "an empty string is not a file name");
  Target t;
  SLLM_ASSIGN_OR_RETURN(t.path, resolve_symlinks(path));
  if (base_of(t.path).empty() || base_of(t.path) == "." || base_of(t.path) == "..") {
    return Error(ErrorCode::kIo, "'" + path + "' names a directory, not a file");
  }
  struct stat st {};
  if (::stat(t.path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode)) {
      return not_regular(path, kind_of(st.st_mode), "; refusing to replace it");
    }
    t.exists = true;
    t.mode = st.st_mode & 07777;
  } else if (errno != ENOENT) {
    return io_error("cannot use", path, errno);
  }
  const std::string dir = dir_of(t.path);
  struct stat dir_st {};
  if (::stat(dir.c_str(), &dir_st) != 0) {
    return Error(ErrorCode::kIo, "cannot write '" + path + "': its directory '" + dir +
                                     "': " + std::strerror(errno));
  }
  if (!S_ISDIR(dir_st.st_mode)) {
    return Error(ErrorCode::kIo, "cannot write '" + path + "': '" + dir + "' is not a directory");
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return Error(ErrorCode::kIo, "cannot write '" + path + "': cannot create files in '" + dir +
                                     "': " + std::strerror(errno));
  }
  return t;
}

// Six characters for a temp name that no other writer (thread or process) picks at once.
std::string random_suffix() {
  static std::atomic<uint64_t> counter{0};
  uint64_t x = 0;
  if (::getrandom(&x, sizeof x, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof x)) {
    x = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  x ^= (static_cast<uint64_t>(::getpid()) << 32) ^ counter.fetch_add(1) * 0x9e3779b97f4a7c15ull;
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string out(6, 'x');
  for (char& c : out) {
    c = kChars[x % 62];
    x /= 62;
  }
  return out;
}

Status write_all(int fd, std::span<const uint8_t> bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot write", path, errno);
    }
    if (n == 0) return io_error("cannot write", path, EIO);
    done += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace

const char* file_kind_name(FileKind kind) {
  switch (kind) {
    case FileKind::kMissing:
      return "missing";
    case FileKind::kRegular:
      return "regular file";
    case FileKind::kDirectory:
      return "directory";
    case FileKind::kCharDevice:
      return "character device";
    case FileKind::kBlockDevice:
      return "block device";
    case FileKind::kFifo:
      return "FIFO";
    case FileKind::kSocket:
      return "socket";
    case FileKind::kOther:
      break;
  }
  return "special file";
}

Result<FileKind> file_kind(const std::string& path) {
  if (path.empty()) return Error(ErrorCode::kIo, "an empty string is not a file name");
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return kind_of(st.st_mode);
  if (errno == ENOENT) return FileKind::kMissing;
  return io_error("cannot use", path, errno);
}

Result<std::string> resolve_symlinks(const std::string& path) {
  std::string p = path;
  for (int i = 0; i <= kMaxSymlinks; ++i) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) {
      if (errno == ENOENT) return p;
      return io_error("cannot use", path, errno);
    }
    if (!S_ISLNK(st.st_mode)) return p;
    std::string target(4096, '\0');
    const ssize_t n = ::readlink(p.c_str(), target.data(), target.size());
    if (n < 0) return io_error("cannot read the symbolic link", p, errno);
    if (static_cast<size_t>(n) >= target.size()) return io_error("cannot use", path, ENAMETOOLONG);
    target.resize(static_cast<size_t>(n));
    p = !target.empty() && target[0] == '/' ? target : dir_of(p) + "/" + target;
  }
  return io_error("cannot use", path, ELOOP);
}

Status check_output_path(const std::string& path) {
  SLLM_RETURN_IF_ERROR(prepare_target(path));
  return {};
}

Result<MappedFile> MappedFile::open(const std::string& path) {
  struct stat st {};
  SLLM_ASSIGN_OR_RETURN(const int fd, open_for_reading(path, &st, /*allow_streams=*/false));
  MappedFile file;
  file.path_ = path;
  file.n_bytes_ = static_cast<size_t>(st.st_size);
  if (file.n_bytes_ > 0) {
    void* p = ::mmap(nullptr, file.n_bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return io_error("cannot mmap", path, err);
    }
    file.data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return file;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      n_bytes_(std::exchange(other.n_bytes_, 0)),
      path_(std::move(other.path_)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), n_bytes_);
    data_ = std::exchange(other.data_, nullptr);
    n_bytes_ = std::exchange(other.n_bytes_, 0);
    path_ = std::move(other.path_);
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), n_bytes_);
}

Result<std::string> read_file(const std::string& path) {
  struct stat st {};
  SLLM_ASSIGN_OR_RETURN(const int fd, open_for_reading(path, &st, /*allow_streams=*/true));
  // A stream (a pipe, /dev/zero) has no size: it is read up to kMaxStreamBytes.
  const uint64_t max_bytes = S_ISREG(st.st_mode) ? ~uint64_t{0} : kMaxStreamBytes;
  const Status fits = check_allocation("reading '" + path + "'", static_cast<uint64_t>(st.st_size));
  if (!fits.ok()) {
    ::close(fd);
    return fits.error();
  }
  // st_size is a hint only: files in /proc say 0, and a file may grow or shrink while it is read.
  std::string text;
  text.reserve(static_cast<size_t>(st.st_size));
  constexpr size_t kChunkBytes = 64 * 1024;
  for (;;) {
    const size_t at = text.size();
    if (at >= max_bytes) {
      ::close(fd);
      return Error(ErrorCode::kLimit, "'" + path + "' gave more than " + std::to_string(max_bytes) +
                                          " bytes; a stream is read up to that many");
    }
    if (Status grow = check_allocation("reading '" + path + "'", at + kChunkBytes); !grow.ok()) {
      ::close(fd);
      return grow.error();
    }
    text.resize(at + kChunkBytes);
    const ssize_t n = ::read(fd, text.data() + at, kChunkBytes);
    if (n < 0) {
      const int err = errno;
      text.resize(at);
      if (err == EINTR) continue;
      ::close(fd);
      return io_error("cannot read", path, err);
    }
    text.resize(at + static_cast<size_t>(n));
    if (n == 0) break;
  }
  ::close(fd);
  return text;
}

Status write_file_atomic(const std::string& path, std::span<const uint8_t> bytes) {
  SLLM_ASSIGN_OR_RETURN(const Target target, prepare_target(path));
  const std::string dir = dir_of(target.path);
  const std::string stem = dir + "/." + base_of(target.path).substr(0, kTempStemChars) + ".";
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    tmp = stem + random_suffix();
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0 && errno != EEXIST) {
      return Error(ErrorCode::kIo, "cannot write '" + path + "': cannot create a temp file in '" +
                                       dir + "': " + std::strerror(errno));
    }
  }
  if (fd < 0) return io_error("cannot create a temp file for", path, EEXIST);
  auto fail = [&](const Error& e) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    return e;
  };
  if (Status s = write_all(fd, bytes, path); !s.ok()) return fail(s.error());
  if (target.exists && ::fchmod(fd, target.mode) != 0) {
    return fail(io_error("cannot set the mode of", path, errno));
  }
  if (::fsync(fd) != 0) return fail(io_error("cannot fsync", path, errno));
  const int close_result = ::close(fd);
  fd = -1;
  if (close_result != 0) return fail(io_error("cannot write", path, errno));
  if (::rename(tmp.c_str(), target.path.c_str()) != 0) {
    return fail(io_error("cannot rename a temp file to", path, errno));
  }
  // The rename is durable only once the directory is.
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    const int result = ::fsync(dir_fd);
    const int err = errno;
    ::close(dir_fd);
    if (result != 0 && err != EINVAL && err != EROFS) {
      return io_error("cannot fsync the directory of", path, err);
    }
  }
  return {};
}

}  // namespace sllm
