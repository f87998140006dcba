#include "tokenizer/utf8.h"

#include <string>

namespace sllm {
namespace {

bool is_continuation(uint8_t byte) { return (byte & 0xC0) == 0x80; }

// What a lead byte allows: the sequence length and the range of the second byte. The narrowed
// second-byte ranges are what exclude overlong forms, surrogates and code points past U+10FFFF.
struct LeadRule {
  size_t n_bytes;
  uint8_t second_lo, second_hi;
  const char* second_problem;  // a continuation byte outside [second_lo, second_hi]
};

LeadRule lead_rule(uint8_t lead) {
  if (lead == 0xE0) return {3, 0xA0, 0xBF, "overlong encoding"};
  if (lead == 0xED) return {3, 0x80, 0x9F, "UTF-16 surrogate"};
  if (lead == 0xF0) return {4, 0x90, 0xBF, "overlong encoding"};
  if (lead == 0xF4) return {4, 0x80, 0x8F, "code point above U+10FFFF"};
  if (lead >= 0xC2 && lead <= 0xDF) return {2, 0x80, 0xBF, ""};
  if (lead >= 0xE1 && lead <= 0xEF) return {3, 0x80, 0xBF, ""};
  return {4, 0x80, 0xBF, ""};  // 0xF1..0xF3
}

}  // namespace

Utf8Char next_utf8_char(std::string_view text, size_t offset) {
  const auto lead = static_cast<uint8_t>(text[offset]);
  if (lead < 0x80) return {Utf8Status::kValid, 1, ""};
  if (is_continuation(lead)) return {Utf8Status::kInvalid, 1, "unexpected continuation byte"};
  if (lead == 0xC0 || lead == 0xC1) return {Utf8Status::kInvalid, 1, "overlong encoding"};
  if (lead >= 0xF5 && lead <= 0xF7) {
    return {Utf8Status::kInvalid, 1, "code point above U+10FFFF"};
  }
  if (lead >= 0xF8) return {Utf8Status::kInvalid, 1, "invalid byte"};

  const LeadRule rule = lead_rule(lead);
  for (size_t i = 1; i < rule.n_bytes; ++i) {
    if (offset + i >= text.size()) return {Utf8Status::kTruncated, i, "truncated sequence"};
    const auto byte = static_cast<uint8_t>(text[offset + i]);
    if (!is_continuation(byte)) return {Utf8Status::kInvalid, i, "missing continuation byte"};
    if (i == 1 && (byte < rule.second_lo || byte > rule.second_hi)) {
      return {Utf8Status::kInvalid, 1, rule.second_problem};
    }
  }
  return {Utf8Status::kValid, rule.n_bytes, ""};
}

size_t utf8_char_length(uint8_t lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

Status validate_utf8(std::string_view text) {
  size_t offset = 0;
  while (offset < text.size()) {
    const Utf8Char c = next_utf8_char(text, offset);
    if (c.status != Utf8Status::kValid) {
      return Error(ErrorCode::kInvalidInput,
                   "invalid UTF-8 at byte " + std::to_string(offset) + ": " + c.problem);
    }
    offset += c.n_bytes;
  }
  return {};
}

}  // namespace sllm
