// The checks shared by the tokenizer fuzz targets (tokenizer_spm, tokenizer_bpe, tokenizer_gemma4).
// Each target loads its vocabularies once (LLVMFuzzerInitialize) and hands every input to
// check_tokenizer_input with the tokenizer the input's first byte picks.
//
// An input is a mode byte and a payload. Bit 0x80 of the mode byte: the payload is a sequence of
// token ids (4 bytes each, little endian; in range and out of range), else it is text.
//
// Text: encoded four ways (with and without BOS, with and without special-token parsing).
//   - Invalid UTF-8 (an independent check) must fail with kInvalidInput naming the byte offset of
//     the first bad character; valid UTF-8 must encode.
//   - Every id is in the vocabulary; with BOS the ids are BOS followed by the ids without it.
//   - Without special tokens, decode(encode(text)) == text (every vocabulary here has a token or
//     byte fallback for every byte, and SentencePiece's dummy prefix is dropped by the decoder:
//     what tests/vocab_golden_test.cc asserts for the llama.cpp cases), except that a literal
//     U+2581 comes back as a space where it is the vocabulary's space marker (round_trip_of), and
//     a text with a byte that no token stands for alone (falcon has none for some control bytes)
//     is left out: bpe.cc drops such bytes, as llama.cpp does.
//   - With special-token parsing, a text that contains no control or unknown token's text encodes
//     exactly as without it.
// Ids: decode() of any sequence is valid UTF-8; an out-of-range id stands for nothing (token_bytes
//   is empty, as Tokenizer documents; Model::detokenize is where it becomes an error); decode is
//   the concatenation of the pieces whenever that is valid UTF-8; the decoded text encodes and
//   decodes back to itself.
// Both: a StreamDecoder fed token by token gives only whole UTF-8 characters per push, and
//   together with flush() the same text as decode(); a decoder restored from another's state()
//   half way through goes on to the same text.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace sllm::fuzz {

struct FuzzVocab {
  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<std::string> special_texts;  // texts of control and unknown tokens (non-empty)
  // The bytes no token stands for alone: encode drops them where no merge covers them (as
  // llama.cpp does; bpe.cc documents it), so a text holding one need not come back.
  std::array<bool, 256> lost_byte{};
};

// Whether decode(encode(text)) must give `text` back: none of its bytes lacks a token.
inline bool representable(const FuzzVocab& v, std::string_view text) {
  for (const char c : text) {
    if (v.lost_byte[static_cast<uint8_t>(c)]) return false;
  }
  return true;
}

// Loads ggml-vocab-NAME.gguf from the shared data; aborts (the fuzzer cannot run) on failure.
inline FuzzVocab load_vocab(const std::string& name) {
  const std::string path = shared_dir() + "/data/vocab/ggml-vocab-" + name + ".gguf";
  Result<GgufFile> gguf = GgufFile::open(path);
  if (!gguf.ok()) {
    std::fprintf(stderr, "%s: %s\n", path.c_str(), gguf.error().message().c_str());
    std::abort();
  }
  Result<Vocab> vocab = vocab_from_gguf(gguf.value());
  if (!vocab.ok()) {
    std::fprintf(stderr, "%s: %s\n", path.c_str(), vocab.error().message().c_str());
    std::abort();
  }
  Result<std::unique_ptr<Tokenizer>> tokenizer = make_tokenizer(std::move(vocab).value());
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "%s: %s\n", path.c_str(), tokenizer.error().message().c_str());
    std::abort();
  }
  FuzzVocab out;
  out.tokenizer = std::move(tokenizer).value();
  const Vocab& v = out.tokenizer->vocab();
  for (size_t id = 0; id < v.n_tokens(); ++id) {
    const TokenType t = v.types.empty() ? TokenType::kNormal : v.types[id];
    if ((t == TokenType::kControl || t == TokenType::kUnknown) && !v.tokens[id].empty()) {
      out.special_texts.push_back(v.tokens[id]);
    }
  }
  std::array<bool, 256> has_byte{};
  for (size_t id = 0; id < v.n_tokens(); ++id) {
    const std::string piece = out.tokenizer->token_bytes(static_cast<TokenId>(id));
    if (piece.size() == 1) has_byte[static_cast<uint8_t>(piece[0])] = true;
  }
  std::string lost;
  for (int b = 0; b < 256; ++b) {
    out.lost_byte[b] = !has_byte[b];
    if (out.lost_byte[b]) lost += " " + std::to_string(b);
  }
  if (!lost.empty())
    std::fprintf(stderr, "%s: no token for the bytes%s\n", name.c_str(), lost.c_str());
  return out;
}

// decode() through a StreamDecoder, checking each push and a save/restore half way.
inline std::string stream_decode(const Tokenizer& tokenizer, const std::vector<TokenId>& ids) {
  StreamDecoder decoder(tokenizer);
  std::string text;
  const size_t half = ids.size() / 2;
  for (size_t i = 0; i < half; ++i) {
    const std::string piece = decoder.push(ids[i]);
    SLLM_FUZZ_CHECK(valid_utf8(piece));
    text += piece;
  }
  StreamDecoder restored(tokenizer);
  restored.restore(decoder.state());
  std::string text_restored = text;
  for (size_t i = half; i < ids.size(); ++i) {
    const std::string piece = decoder.push(ids[i]);
    SLLM_FUZZ_CHECK(valid_utf8(piece));
    text += piece;
    text_restored += restored.push(ids[i]);
  }
  text += decoder.flush();
  text_restored += restored.flush();
  SLLM_FUZZ_CHECK(text == text_restored);
  SLLM_FUZZ_CHECK(decoder.flush().empty());
  return text;
}

// decode(), checked against the stream decoder and the pieces.
inline std::string checked_decode(const Tokenizer& tokenizer, const std::vector<TokenId>& ids) {
  const Vocab& vocab = tokenizer.vocab();
  const std::string text = tokenizer.decode(ids);
  SLLM_FUZZ_CHECK(valid_utf8(text));
  SLLM_FUZZ_CHECK(stream_decode(tokenizer, ids) == text);
  // The pieces one after the other, the dummy-prefix space of the first piece of a sequence (at the
  // start or after BOS) dropped, as StreamDecoder documents.
  std::string pieces;
  bool at_start = true;
  for (const TokenId id : ids) {
    if (id >= 0 && id == vocab.bos) {
      at_start = true;
      continue;
    }
    std::string piece = tokenizer.token_bytes(id);
    if (id < 0 || static_cast<size_t>(id) >= vocab.n_tokens()) SLLM_FUZZ_CHECK(piece.empty());
    if (piece.empty()) continue;
    if (at_start && vocab.add_space_prefix && piece.front() == ' ') piece.erase(0, 1);
    at_start = false;
    pieces += piece;
  }
  if (valid_utf8(pieces)) SLLM_FUZZ_CHECK(text == pieces);
  return text;
}

// What decode(encode(text)) gives back: the text itself, except that where U+2581 ("▁") stands
// for a space in the vocabulary (SentencePiece, gemma4), a literal U+2581 in the text comes back
// as a space (Tokenizer::token_bytes documents the mapping; llama.cpp decodes it the same way).
inline std::string round_trip_of(const Vocab& vocab, std::string_view text) {
  std::string out(text);
  if (vocab.model != "llama" && vocab.model != "gemma4") return out;
  constexpr std::string_view kMarker = "\xE2\x96\x81";
  for (size_t at = out.find(kMarker); at != std::string::npos; at = out.find(kMarker, at + 1)) {
    out.replace(at, kMarker.size(), " ");
  }
  return out;
}

inline bool contains_special_text(const FuzzVocab& v, std::string_view text) {
  for (const std::string& s : v.special_texts) {
    if (text.find(s) != std::string_view::npos) return true;
  }
  return false;
}

// Encodes `text` the four ways and checks them (the header's list).
inline void check_text(const FuzzVocab& v, std::string_view text) {
  const Tokenizer& tokenizer = *v.tokenizer;
  const Vocab& vocab = tokenizer.vocab();
  const std::optional<size_t> bad = first_invalid_utf8(text);
  std::vector<TokenId> plain;  // without BOS, without special tokens
  for (const bool parse_special : {false, true}) {
    std::vector<TokenId> no_bos;
    for (const bool add_bos : {false, true}) {
      Result<std::vector<TokenId>> ids = tokenizer.encode(text, add_bos, parse_special);
      if (bad) {
        SLLM_FUZZ_CHECK(!ids.ok());
        SLLM_FUZZ_CHECK(ids.error().code() == ErrorCode::kInvalidInput);
        const std::string expected = "invalid UTF-8 at byte " + std::to_string(*bad) + ": ";
        SLLM_FUZZ_CHECK(ids.error().message().rfind(expected, 0) == 0);
        continue;
      }
      if (add_bos && vocab.bos < 0) {
        SLLM_FUZZ_CHECK(!ids.ok() && ids.error().code() == ErrorCode::kInvalidInput);
        continue;
      }
      SLLM_FUZZ_CHECK(ids.ok());
      for (const TokenId id : ids.value()) {
        SLLM_FUZZ_CHECK(id >= 0 && static_cast<size_t>(id) < vocab.n_tokens());
      }
      if (!add_bos) {
        no_bos = ids.value();
      } else {
        SLLM_FUZZ_CHECK(!ids->empty() && ids->front() == vocab.bos);
        SLLM_FUZZ_CHECK(std::vector<TokenId>(ids->begin() + 1, ids->end()) == no_bos);
      }
    }
    if (bad) continue;
    if (!parse_special) {
      plain = no_bos;
      const std::string decoded = checked_decode(tokenizer, plain);
      if (representable(v, text)) SLLM_FUZZ_CHECK(decoded == round_trip_of(vocab, text));
    } else {
      if (!contains_special_text(v, text)) SLLM_FUZZ_CHECK(no_bos == plain);
      (void)checked_decode(tokenizer, no_bos);
    }
  }
}

// Decodes ids read from `payload` (the header's list).
inline void check_ids(const FuzzVocab& v, const uint8_t* data, size_t size) {
  const Tokenizer& tokenizer = *v.tokenizer;
  const auto n = static_cast<int64_t>(tokenizer.vocab().n_tokens());
  std::vector<TokenId> ids;
  for (size_t i = 0; i + 4 <= size; i += 4) {
    uint32_t raw = 0;
    std::memcpy(&raw, data + i, 4);
    // Mostly ids in range (the top byte's bit 0x80 clear: taken modulo a little more than the
    // vocabulary, so that the last ids and a few past it come up), else the raw value as is.
    if ((raw & 0x80000000u) == 0) {
      ids.push_back(static_cast<TokenId>(static_cast<int64_t>(raw % static_cast<uint32_t>(n + 4))));
    } else {
      ids.push_back(static_cast<TokenId>(static_cast<int32_t>(raw)));
    }
  }
  const std::string text = checked_decode(tokenizer, ids);
  // Out-of-range ids stand for nothing.
  std::vector<TokenId> in_range;
  for (const TokenId id : ids) {
    if (id >= 0 && id < n) in_range.push_back(id);
  }
  SLLM_FUZZ_CHECK(tokenizer.decode(in_range) == text);
  // The decoded text (valid UTF-8) comes back through encode and decode.
  Result<std::vector<TokenId>> again = tokenizer.encode(text, false, false);
  SLLM_FUZZ_CHECK(again.ok());
  if (representable(v, text)) {
    SLLM_FUZZ_CHECK(tokenizer.decode(again.value()) == round_trip_of(tokenizer.vocab(), text));
  }
}

inline void check_tokenizer_input(const FuzzVocab& v, uint8_t mode, const uint8_t* data,
                                  size_t size) {
  if ((mode & 0x80) != 0) {
    check_ids(v, data, size);
  } else {
    check_text(v, std::string_view(reinterpret_cast<const char*>(data), size));
  }
}

}  // namespace sllm::fuzz
