// Offline tools and file helpers: re-encoding a model's weights, importing llama2.c checkpoints,
// reading and writing whole files safely.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "streamingllm/error.h"

namespace sllm {

// Receives one line per decision worth telling (a matrix kept in a wider type, ...).
using LogFn = std::function<void(const std::string& line)>;

// Writes `out` (atomically) with `in`'s metadata and every 2-D weight matrix encoded as `type`
// ("q8_0", "q4_0", "f16", "bf16", "f32"); other tensors are copied. Refuses to replace anything
// that is not a regular file. An empty `log` prints to stderr.
Status quantize(const std::string& in, const std::string& out, std::string_view type,
                const LogFn& log = {});

// A llama2.c checkpoint (.bin) and its tokenizer (tok*.bin) as a GGUF file (written atomically).
Status convert_llama2c(const std::string& checkpoint_path, const std::string& tokenizer_path,
                       const std::string& out_gguf);

// A whole file's bytes. Never blocks on a FIFO and refuses what is not a regular file.
Result<std::string> read_file(const std::string& path);

// Replaces `path` with `bytes` atomically (a unique temp file beside it, fsync, rename): readers
// see the old file or the new one, never a torn one. Only regular files are replaced (a symlink
// is followed and stays a link); a device, FIFO or directory is refused before anything is
// written.
Status write_file_atomic(const std::string& path, std::span<const uint8_t> bytes);

}  // namespace sllm
