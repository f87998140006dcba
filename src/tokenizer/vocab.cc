// Vocab from GGUF `tokenizer.ggml.*` metadata, its validation, and the choice of tokenizer.
#include <cmath>
#include <cstdint>
#include <string>

#include "gguf/gguf.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"

namespace sllm {
namespace {

constexpr std::string_view kModelKey = "tokenizer.ggml.model";
constexpr std::string_view kPreKey = "tokenizer.ggml.pre";
constexpr std::string_view kTokensKey = "tokenizer.ggml.tokens";
constexpr std::string_view kScoresKey = "tokenizer.ggml.scores";
constexpr std::string_view kTypesKey = "tokenizer.ggml.token_type";
constexpr std::string_view kMergesKey = "tokenizer.ggml.merges";
constexpr std::string_view kBosKey = "tokenizer.ggml.bos_token_id";
constexpr std::string_view kEosKey = "tokenizer.ggml.eos_token_id";
constexpr std::string_view kUnkKey = "tokenizer.ggml.unknown_token_id";
constexpr std::string_view kPadKey = "tokenizer.ggml.padding_token_id";
constexpr std::string_view kAddBosKey = "tokenizer.ggml.add_bos_token";
constexpr std::string_view kAddEosKey = "tokenizer.ggml.add_eos_token";
constexpr std::string_view kAddSpacePrefixKey = "tokenizer.ggml.add_space_prefix";

std::string key_str(std::string_view key) { return std::string(key); }

// Reads an optional special token id. Converters write "none" as -1, which often arrives as
// uint32 0xFFFFFFFF (stories260K's padding id), so both spellings mean none.
Status read_special_id(const GgufFile& gguf, std::string_view key, TokenId* id) {
  if (gguf.find(key) == nullptr) return {};
  SLLM_ASSIGN_OR_RETURN(const int64_t value, gguf.get_i64(key));
  if (value == -1 || value == int64_t{UINT32_MAX}) {
    *id = -1;
  } else if (value < 0 || value > int64_t{INT32_MAX}) {
    return Error(ErrorCode::kFormat,
                 key_str(key) + " = " + std::to_string(value) + " is not a token id");
  } else {
    *id = static_cast<TokenId>(value);
  }
  return {};
}

Status read_optional_bool(const GgufFile& gguf, std::string_view key, bool* value) {
  if (gguf.find(key) == nullptr) return {};
  SLLM_ASSIGN_OR_RETURN(*value, gguf.get_bool(key));
  return {};
}

Status check_special_id(TokenId id, std::string_view key, size_t n_tokens) {
  if (id < -1 || (id >= 0 && static_cast<size_t>(id) >= n_tokens)) {
    return Error(ErrorCode::kFormat, key_str(key) + " = " + std::to_string(id) +
                                         " is out of range (the vocab has " +
                                         std::to_string(n_tokens) + " tokens)");
  }
  return {};
}

bool is_hex_digit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

}  // namespace

Status validate_vocab(const Vocab& vocab) {
  const size_t n_tokens = vocab.n_tokens();
  if (n_tokens == 0) return Error(ErrorCode::kFormat, key_str(kTokensKey) + " is empty");
  if (n_tokens > size_t{INT32_MAX}) {
    return Error(ErrorCode::kFormat, key_str(kTokensKey) + " has " + std::to_string(n_tokens) +
                                         " tokens, more than a TokenId can index");
  }
  auto check_length = [n_tokens](size_t n, std::string_view key) -> Status {
    if (n != 0 && n != n_tokens) {
      return Error(ErrorCode::kFormat, key_str(key) + " has " + std::to_string(n) +
                                           " entries, expected " + std::to_string(n_tokens) +
                                           " (one per token)");
    }
    return {};
  };
  SLLM_RETURN_IF_ERROR(check_length(vocab.scores.size(), kScoresKey));
  SLLM_RETURN_IF_ERROR(check_length(vocab.types.size(), kTypesKey));
  // The tokenizer orders merges by score: a NaN has no order (and would break the heap's).
  for (size_t i = 0; i < vocab.scores.size(); ++i) {
    if (std::isnan(vocab.scores[i])) {
      return Error(ErrorCode::kFormat,
                   key_str(kScoresKey) + "[" + std::to_string(i) + "] is NaN, not a number");
    }
  }
  for (size_t i = 0; i < vocab.types.size(); ++i) {
    const auto type = static_cast<int32_t>(vocab.types[i]);
    if (type < 0 || type > static_cast<int32_t>(TokenType::kByte)) {
      return Error(ErrorCode::kFormat, key_str(kTypesKey) + "[" + std::to_string(i) +
                                           "] = " + std::to_string(type) + " is not a token type");
    }
    // token_bytes turns byte tokens back into their byte by parsing this spelling.
    const std::string& text = vocab.tokens[i];
    if (vocab.types[i] == TokenType::kByte &&
        !(text.size() == 6 && text.starts_with("<0x") && is_hex_digit(text[3]) &&
          is_hex_digit(text[4]) && text[5] == '>')) {
      return Error(ErrorCode::kFormat, key_str(kTokensKey) + "[" + std::to_string(i) + "] = '" +
                                           text + "' is a byte token but not spelled <0xXX>");
    }
  }
  SLLM_RETURN_IF_ERROR(check_special_id(vocab.bos, kBosKey, n_tokens));
  SLLM_RETURN_IF_ERROR(check_special_id(vocab.eos, kEosKey, n_tokens));
  SLLM_RETURN_IF_ERROR(check_special_id(vocab.unk, kUnkKey, n_tokens));
  SLLM_RETURN_IF_ERROR(check_special_id(vocab.pad, kPadKey, n_tokens));
  return {};
}

Result<Vocab> vocab_from_gguf(const GgufFile& gguf) {
  Vocab vocab;
  SLLM_ASSIGN_OR_RETURN(vocab.model, gguf.get_string(kModelKey));
  if (gguf.find(kPreKey) != nullptr) {
    SLLM_ASSIGN_OR_RETURN(vocab.pre, gguf.get_string(kPreKey));
  }
  SLLM_ASSIGN_OR_RETURN(vocab.tokens, gguf.get_string_array(kTokensKey));
  if (gguf.find(kScoresKey) != nullptr) {
    SLLM_ASSIGN_OR_RETURN(vocab.scores, gguf.get_f32_array(kScoresKey));
  }
  if (gguf.find(kTypesKey) != nullptr) {
    SLLM_ASSIGN_OR_RETURN(const std::vector<int32_t> types, gguf.get_i32_array(kTypesKey));
    vocab.types.reserve(types.size());
    for (const int32_t type : types) vocab.types.push_back(static_cast<TokenType>(type));
  }
  if (gguf.find(kMergesKey) != nullptr) {
    SLLM_ASSIGN_OR_RETURN(vocab.merges, gguf.get_string_array(kMergesKey));
  }

  // Defaults where a key is absent, as llama.cpp's llama_vocab::load has them: SentencePiece
  // files predate the add_* keys and assume <unk>=0, <s>=1, </s>=2, a BOS and the dummy prefix.
  if (vocab.model == "llama") {
    vocab.add_bos = true;
    vocab.add_space_prefix = true;
    if (vocab.n_tokens() > 2) {
      vocab.unk = 0;
      vocab.bos = 1;
      vocab.eos = 2;
    }
  } else {
    vocab.add_bos = false;
    vocab.add_space_prefix = false;
    // llama.cpp's defaults for BPE: GPT-2's <|endoftext|> (11 in its test vocab) as BOS and
    // EOS, and a BOS for the pre-tokenizers that want one (llama3, tekken).
    if (vocab.model == "gpt2") {
      if (vocab.n_tokens() > 11) vocab.bos = vocab.eos = 11;
      if (const PreTokenizerSpec* spec = find_pre_tokenizer(vocab.pre)) {
        vocab.add_bos = spec->add_bos;
      }
    }
  }
  vocab.add_eos = false;

  SLLM_RETURN_IF_ERROR(read_special_id(gguf, kBosKey, &vocab.bos));
  SLLM_RETURN_IF_ERROR(read_special_id(gguf, kEosKey, &vocab.eos));
  SLLM_RETURN_IF_ERROR(read_special_id(gguf, kUnkKey, &vocab.unk));
  SLLM_RETURN_IF_ERROR(read_special_id(gguf, kPadKey, &vocab.pad));
  SLLM_RETURN_IF_ERROR(read_optional_bool(gguf, kAddBosKey, &vocab.add_bos));
  SLLM_RETURN_IF_ERROR(read_optional_bool(gguf, kAddEosKey, &vocab.add_eos));
  SLLM_RETURN_IF_ERROR(read_optional_bool(gguf, kAddSpacePrefixKey, &vocab.add_space_prefix));
  // As llama.cpp (PR 21500): Gemma 4 files that say add_bos_token = false still get a BOS.
  if (vocab.model == "gemma4" ||
      (vocab.model == "gpt2" && find_pre_tokenizer(vocab.pre) == &gemma4_pre_tokenizer())) {
    vocab.add_bos = true;
  }

  SLLM_RETURN_IF_ERROR(validate_vocab(vocab));
  SLLM_RETURN_IF_ERROR(read_end_of_generation(gguf, &vocab));
  return vocab;
}

Result<std::unique_ptr<Tokenizer>> make_tokenizer(Vocab vocab) {
  SLLM_RETURN_IF_ERROR(validate_vocab(vocab));
  // SentencePiece has no pre-tokenizer: llama.cpp ignores tokenizer.ggml.pre there, and so do we.
  if (vocab.model == "llama") return make_spm_tokenizer(std::move(vocab));
  if (vocab.model == "gpt2" || vocab.model == "gemma4") return make_bpe_tokenizer(std::move(vocab));
  return Error(ErrorCode::kUnsupported, key_str(kModelKey) + " = '" + vocab.model +
                                            "' is not supported (supported: llama, gpt2, gemma4)");
}

}  // namespace sllm
