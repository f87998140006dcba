// Helpers shared by the text fuzz targets: an independent UTF-8 check (RFC 3629, written apart from
// the engine's so that the targets compare against it) and the shared data directory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

// Stops the run (libFuzzer reports it as a crash, with the input) when `cond` is false, naming the
// invariant that broke.
#define SLLM_FUZZ_CHECK(cond)                                                             \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond); \
      __builtin_trap();                                                                   \
    }                                                                                     \
  } while (0)

namespace sllm::fuzz {

// Where the first byte that is not UTF-8 sits, or nullopt when `text` is valid UTF-8.
inline std::optional<size_t> first_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned c = s[i];
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || (cp >= 0xD800 && cp <= 0xDFFF) ||
        cp > 0x10FFFF) {
      return i;
    }
    i += len;
  }
  return std::nullopt;
}

inline bool valid_utf8(std::string_view text) { return !first_invalid_utf8(text).has_value(); }

// ../shared of the project root: $SLLM_SHARED_DIR if set, else the path compiled in.
inline std::string shared_dir() {
  if (const char* env = std::getenv("SLLM_SHARED_DIR"); env != nullptr && *env != '\0') return env;
  return SLLM_SHARED_DIR;
}

}  // namespace sllm::fuzz
