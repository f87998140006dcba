// Splitting the input at special tokens (control, user-defined, unknown) before a tokenizer
// model sees it, shared by every model: llama.cpp's tokenizer_st_partition.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace sllm {

// A run of the input that is either plain text or one special token: 16 bytes, as a text made
// only of special tokens has one fragment per few bytes.
struct Fragment {
  static constexpr size_t kSpecial = ~size_t{0};  // n_bytes of a special token; offset is its id
  static Fragment text(size_t offset, size_t n_bytes) { return {offset, n_bytes}; }
  static Fragment special(TokenId id) { return {static_cast<size_t>(id), kSpecial}; }
  TokenId token() const { return n_bytes == kSpecial ? static_cast<TokenId>(offset) : -1; }

  size_t offset;
  size_t n_bytes;
};

// The tokens the input is split at, in the order llama.cpp tries them: control, user-defined
// and unknown tokens with non-empty text, longest text first, then lowest id.
std::vector<TokenId> special_tokens_of(const Vocab& vocab);

// Each special token, in `specials` order, cuts every text fragment it occurs in. User-defined
// tokens always match; control and unknown tokens only with parse_special (as llama.cpp and HF
// tokenizers do).
std::vector<Fragment> split_special(std::string_view text, const Vocab& vocab,
                                    const std::vector<TokenId>& specials, bool parse_special);

}  // namespace sllm
