// Everything the CLI writes, checked: standard output and the files named by flags such as --csv.
#pragma once

#include <fmt/core.h>

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "streamingllm/error.h"

namespace sllm::cli {

// Standard output cannot be written (EPIPE, ENOSPC, ...). Thrown by write_stdout(), so that no
// command goes on producing output nobody receives; main() reports it and exits with 1.
class OutputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Writes all of `text` to standard output at once (no buffering), or throws OutputError
// ("cannot write to standard output: Broken pipe").
void write_stdout(std::string_view text);

// fmt::print for standard output, checked.
template <typename... Args>
void out(fmt::format_string<Args...> format, Args&&... args) {
  write_stdout(fmt::format(format, std::forward<Args>(args)...));
}

// Whether `path`, given with `flag`, can take an output file, checked before any work starts:
// an existing directory, a missing parent directory or a location this process cannot write is
// an error that names the flag and the path.
Status check_output_path(std::string_view flag, const std::string& path);

// Writes an output file: a regular or new file is replaced atomically (write_file_atomic); a FIFO
// or character device (/dev/stdout, /dev/full) is written directly, opened without blocking on a
// FIFO nobody reads; a directory is an error. Every byte is checked.
Status write_output_file(const std::string& path, std::string_view bytes);

}  // namespace sllm::cli
