// Pre-tokenizers of byte-level BPE vocabularies: the regular expressions that cut a text into the
// words BPE merges within, chosen by GGUF `tokenizer.ggml.pre`, as llama.cpp's llm_tokenizer_bpe
// and unicode_regex_split have them. Matching is PCRE2 (UTF, Unicode properties, JIT).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "streamingllm/error.h"

namespace sllm {

struct PreTokenizerSpec {
  std::string_view name;                  // llama.cpp's pre-tokenizer type this is
  std::vector<std::string_view> regexes;  // applied in turn, each splitting the previous pieces
  bool ignore_merges = false;             // a whole word that is a token is that token
  bool add_bos = false;                   // llama.cpp's default when add_bos_token is absent
  bool byte_encode = true;                // GPT-2 bytes-to-unicode (false: raw UTF-8, gemma4)
  bool escape_whitespace = false;         // spaces become U+2581 first (gemma4)
};

// The spec for a `tokenizer.ggml.pre` value (llama.cpp's aliases included; "" and "default" are
// the default), or nullptr if unknown.
const PreTokenizerSpec* find_pre_tokenizer(std::string_view pre);

// The spec of `tokenizer.ggml.model = gemma4` (its own pre-tokenizer whatever `pre` says).
const PreTokenizerSpec& gemma4_pre_tokenizer();

// The accepted `tokenizer.ggml.pre` values, comma-separated, for error messages.
std::string supported_pre_tokenizers();

// The compiled regexes of one spec. Thread-safe: match state is per call.
class PreTokenizer {
 public:
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  static Result<std::unique_ptr<PreTokenizer>> create(const PreTokenizerSpec& spec);

  // Cuts valid UTF-8 `text` into words: returns the end offset of each (bytes, increasing, the
  // last one text.size(); empty for an empty text).
  Result<std::vector<uint32_t>> split(std::string_view text) const;

 private:
  PreTokenizer() = default;
  struct Compiled;
  std::vector<Compiled> regexes_;
};

}  // namespace sllm
