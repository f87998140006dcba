// Reading and writing whole files without ever blocking on, or replacing, something that is not a
// regular file: a FIFO would block open() forever, and renaming over /dev/full would replace the
// device node with a plain file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "streamingllm/error.h"

namespace sllm {

class MappedFile {
 public:
  // Maps `path` read-only. An empty file maps to an empty span. Anything but a regular file (a
  // FIFO, a device, a directory) is refused without blocking.
  static Result<MappedFile> open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const uint8_t> bytes() const { return {data_, n_bytes_}; }
  const std::string& path() const { return path_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t n_bytes_ = 0;
  std::string path_;
};

// The most bytes read_file() takes from a stream (a FIFO or a character device such as
// /dev/stdin), which has no size to check in advance.
inline constexpr uint64_t kMaxStreamBytes = uint64_t{256} << 20;

// Reads a whole file into a string (for text inputs such as prompts and corpora): a regular file,
// or a FIFO or character device read to its end (at most kMaxStreamBytes). Never blocks in open().
Result<std::string> read_file(const std::string& path);

// What a path names once symbolic links are followed.
enum class FileKind {
  kMissing,
  kRegular,
  kDirectory,
  kCharDevice,
  kBlockDevice,
  kFifo,
  kSocket,
  kOther
};
const char* file_kind_name(FileKind kind);  // "regular file", "character device", "FIFO", ...

// The kind of `path`; a name too long, a symbolic link loop, a path through a non-directory or a
// permission problem is an error with a message, never an exception.
Result<FileKind> file_kind(const std::string& path);

// `path` with every symbolic link of its last component followed (a dangling link gives the
// path it points to). Loops and overlong chains are errors.
Result<std::string> resolve_symlinks(const std::string& path);

// Checks that write_file_atomic(path, ...) could create or replace `path`: once symbolic links
// are followed it is a regular file or does not exist, and its directory exists and is writable.
Status check_output_path(const std::string& path);

// Writes `bytes` to `path` atomically: a uniquely named temp file in the target's directory,
// write, fsync, rename, fsync of the directory. Only a regular file (or nothing) is replaced; a
// symbolic link is followed and stays a link. On any error the temp file is removed and the
// original is untouched.
Status write_file_atomic(const std::string& path, std::span<const uint8_t> bytes);

}  // namespace sllm
