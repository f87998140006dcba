// UTF-8 validation and character splitting for the tokenizers.
//
// Well-formed means Unicode's Table 3-7: no overlong forms, no surrogates (U+D800..U+DFFF), nothing
// above U+10FFFF. An ill-formed sequence is measured as its "maximal subpart" (Unicode 3.9,
// U+FFFD substitution), so that a decoder replaces each broken sequence with exactly one U+FFFD,
// as browsers and Python do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "streamingllm/error.h"

namespace sllm {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

enum class Utf8Status {
  kValid,      // a whole, well-formed character
  kTruncated,  // a well-formed start that runs past the end of the text
  kInvalid,    // ill-formed
};

struct Utf8Char {
  Utf8Status status = Utf8Status::kValid;
  // kValid: the character's length. kTruncated: the bytes present. kInvalid: the maximal subpart
  // (at least 1), i.e. how many bytes one U+FFFD stands for.
  size_t n_bytes = 0;
  const char* problem = "";  // why it is not kValid, for error messages
};

// Classifies the character that starts at `offset` (< text.size()).
Utf8Char next_utf8_char(std::string_view text, size_t offset);

// Length of a character from its lead byte alone: 1 for ASCII and for a stray continuation byte,
// else 2, 3 or 4. Only meaningful on text that passed validate_utf8.
size_t utf8_char_length(uint8_t lead);

// kInvalidInput "invalid UTF-8 at byte N: <problem>" at the first ill-formed or truncated
// character, N being the offset of its first byte.
Status validate_utf8(std::string_view text);

}  // namespace sllm
