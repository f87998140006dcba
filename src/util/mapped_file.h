// Read-only memory mapping of a whole file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "streamingllm/error.h"

namespace sllm {

class MappedFile {
 public:
  // Maps `path` read-only. An empty file maps to an empty span.
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

// Reads a whole file into a string (for text inputs such as prompts and corpora).
Result<std::string> read_file(const std::string& path);

// Writes `bytes` to `path` atomically: a temp file beside it, fsync, then rename.
Status write_file_atomic(const std::string& path, std::span<const uint8_t> bytes);

}  // namespace sllm
