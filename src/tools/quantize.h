// Offline re-encoding of a GGUF's weight matrices (f32 -> f16 / bf16 / q8_0 / q4_0), like
// llama.cpp's llama-quantize for the types streamingllm supports.
#pragma once

#include <functional>
#include <string>

#include "streamingllm/error.h"
#include "util/tensor_type.h"

namespace sllm {

// Receives one line per decision the user should know about (a matrix kept in a wider type,
// a requantization). Tools print it to stderr; tests collect it.
using QuantizeLog = std::function<void(const std::string& line)>;

// Writes `out` (atomically): `in`'s metadata with general.file_type set to llama.cpp's LLAMA_FTYPE
// for `type`, and its tensors with every 2-D "*.weight" matrix encoded as `type`. Other tensors
// (1-D norms, ...) are copied unchanged. A matrix whose row length is not a multiple of the
// type's block size is written as f16 instead, and `log` says so. Matrices stored in another
// type are decoded to f32 first; an empty `log` prints to stderr.
Status quantize_gguf(const std::string& in, const std::string& out, TensorType type,
                     const QuantizeLog& log = {});

}  // namespace sllm
