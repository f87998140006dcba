// Tokenizers built from a plain Vocab (read from GGUF `tokenizer.ggml.*` metadata).
//
// SentencePiece (`tokenizer.ggml.model = llama`), byte-level BPE (`gpt2`, with the pre-tokenizer
// of `tokenizer.ggml.pre`) and Gemma 4's BPE (`gemma4`), each as llama.cpp tokenizes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "streamingllm/error.h"
#include "util/token.h"

namespace sllm {

class GgufFile;

// Token types as in GGUF `tokenizer.ggml.token_type` (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct Vocab {
  std::string model;                // "llama" (SentencePiece), "gpt2" (byte-level BPE), ...
  std::string pre;                  // `tokenizer.ggml.pre`, BPE pre-tokenizer name, may be empty
  std::vector<std::string> tokens;  // token text as stored (SentencePiece uses U+2581 for space)
  std::vector<float> scores;        // empty, or one per token
  std::vector<TokenType> types;     // empty, or one per token
  std::vector<std::string> merges;  // BPE only
  TokenId bos = -1, eos = -1, unk = -1, pad = -1;  // -1: none
  bool add_bos = true;
  bool add_eos = false;
  bool add_space_prefix = true;  // SentencePiece's dummy prefix
  // End of turn / end of message (from their GGUF keys, else found by text as llama.cpp does),
  // the fill-in-the-middle ids that llama.cpp also stops on, and the resulting end-of-generation
  // set, ascending (special_ids.cc). vocab_from_gguf fills them; a Vocab built by hand has eog
  // empty, and end_of_generation_ids() falls back to EOS.
  TokenId eot = -1, eom = -1, fim_pad = -1, fim_rep = -1, fim_sep = -1;
  std::vector<TokenId> eog;

  size_t n_tokens() const { return tokens.size(); }
};

// Reads `tokenizer.ggml.*` from a GGUF file. Validates lengths and special ids.
Result<Vocab> vocab_from_gguf(const GgufFile& gguf);

// Reads the eot/eom/fim special ids of `tokenizer.ggml.*` into `vocab` (an id out of range is an
// error naming the key), then finds those still absent by their text and computes vocab->eog,
// as llama.cpp's llama_vocab::load does. `vocab` must already hold its tokens and bos/eos.
Status read_end_of_generation(const GgufFile& gguf, Vocab* vocab);

// The same computation without a file (the keys' ids as they are in `vocab`).
void compute_end_of_generation(Vocab* vocab);

// vocab.eog, or {eos} (or nothing) for a Vocab whose eog was never computed.
std::vector<TokenId> end_of_generation_ids(const Vocab& vocab);

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  const Vocab& vocab() const { return vocab_; }

  // Encodes UTF-8 text. Fails with kInvalidInput (naming the byte offset) on invalid UTF-8.
  // add_bos prepends the BOS token. parse_special: text matching a control/user-defined token's
  // text (e.g. "<s>", "<|im_end|>") becomes that token instead of being tokenized as text.
  // As in llama.cpp (and HF tokenizers), user-defined tokens are matched even without
  // parse_special; control and unknown tokens only with it. Longer token texts match first.
  virtual Result<std::vector<TokenId>> encode(std::string_view text, bool add_bos,
                                              bool parse_special) const = 0;

  // The bytes a token stands for: "▁" becomes a space (SentencePiece, gemma4), GPT-2's
  // byte-level characters become their bytes (gpt2), byte tokens <0xAB> become that byte,
  // control tokens are empty. May be part of a UTF-8 character.
  virtual std::string token_bytes(TokenId id) const = 0;

  // Decodes a whole sequence (as the StreamDecoder would print it).
  std::string decode(const std::vector<TokenId>& ids) const;

  bool is_control(TokenId id) const;

 protected:
  explicit Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {}
  // What every encode() does first: checks that `text` is valid UTF-8 and returns the ids it starts
  // with (BOS if add_bos; an error if the vocab has none).
  Result<std::vector<TokenId>> start_encoding(std::string_view text, bool add_bos) const;
  Vocab vocab_;
};

// The bytes a token that is not kNormal stands for, the same in every tokenizer: a byte token's
// byte (`text` spelled <0xXX>, as validate_vocab checks), a user-defined or unknown token's text,
// nothing for control, unused and undefined tokens.
std::string non_normal_piece(TokenType type, const std::string& text);

// Checks what the tokenizers rely on: a non-empty token list, scores and types empty or one per
// token, special ids -1 or in range, byte tokens spelled <0xXX>. Errors name the GGUF key.
Status validate_vocab(const Vocab& vocab);

// Validates the vocab and picks the tokenizer for `vocab.model`: "llama" -> SentencePiece,
// "gpt2" and "gemma4" -> BPE. Other models, and unknown pre-tokenizers, fail with kUnsupported.
Result<std::unique_ptr<Tokenizer>> make_tokenizer(Vocab vocab);

// The BPE tokenizer on its own ("gpt2" or "gemma4"); `vocab` must pass validate_vocab. Checks
// the merges (kFormat naming tokenizer.ggml.merges[i]) and the pre-tokenizer.
Result<std::unique_ptr<Tokenizer>> make_bpe_tokenizer(Vocab vocab);

// The SentencePiece tokenizer on its own (make_tokenizer's choice for "llama"); `vocab` must pass
// validate_vocab.
std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab);

// The same with merges run in segments of about `segment_bytes` (0: each text fragment whole),
// for tests that check segmenting changes nothing. make_spm_tokenizer uses 1 MiB segments.
std::unique_ptr<Tokenizer> make_spm_tokenizer_for_test(Vocab vocab, size_t segment_bytes);

// Turns a stream of token ids into printable text: a UTF-8 character split across tokens is
// returned whole, once, when its last byte arrives; the dummy-prefix space of the first piece
// after BOS (or at the very start) is dropped, as SentencePiece does.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(&tokenizer) {}

  // Returns the complete UTF-8 text that became available with this token (maybe empty).
  std::string push(TokenId id);
  // Returns whatever is still buffered (an incomplete character is returned as U+FFFD).
  std::string flush();

  // What a saved stream keeps so that its text goes on exactly: the bytes of a character not yet
  // complete, and whether the next piece is the first of a sequence (its dummy space dropped).
  struct State {
    std::string pending;
    bool at_start = true;
  };
  State state() const { return {pending_, at_start_}; }
  void restore(State state) {
    pending_ = std::move(state.pending);
    at_start_ = state.at_start;
  }

 private:
  const Tokenizer* tokenizer_;
  std::string pending_;
  bool at_start_ = true;
};

}  // namespace sllm
