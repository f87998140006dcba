// The one definition of a token id, shared by the tokenizer (which makes them) and the model (which
// consumes them), neither of which depends on the other.
#pragma once

#include <cstdint>

namespace sllm {

// An index into the vocabulary, signed as llama.cpp's llama_token.
using TokenId = int32_t;

}  // namespace sllm
