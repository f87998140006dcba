// Import of karpathy/llama2.c models: a legacy checkpoint (.bin) plus its tokenizer (tok*.bin)
// become a GGUF that llama.cpp and streamingllm load like any other Llama model.
//
// The output has the tensor names, shapes, order and metadata keys of the file llama.cpp's
// convert-llama2c-to-ggml writes (the shared stories260K.gguf is one), with one deliberate
// difference: llama.context_length is the checkpoint's seq_len (the length the model was trained
// on), not llama.cpp's default of 2048.
#pragma once

#include <string>

#include "streamingllm/error.h"

namespace sllm {

// Reads `checkpoint_path` and `tokenizer_path` and writes `out_gguf` (atomically). Fails, naming
// the file and the numbers involved, on a missing file, an impossible header, or a size that
// does not match what the header implies.
Status convert_llama2c(const std::string& checkpoint_path, const std::string& tokenizer_path,
                       const std::string& out_gguf);

}  // namespace sllm
