// A model file, loaded: its facts, its tokenizer, and the weights every stream of it shares.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "streamingllm/error.h"
#include "streamingllm/options.h"

namespace sllm {

// A special token of the vocabulary: its id and its stored text.
struct SpecialToken {
  TokenId id = -1;
  std::string text;
  bool operator==(const SpecialToken&) const = default;
};

// What `streamingllm info` prints of a model file's vocabulary (all of a tokenizer-only file).
struct VocabularyInfo {
  std::string path;
  uint32_t gguf_version = 0;
  size_t n_tensors = 0;  // 0: a tokenizer-only file, no weights
  size_t n_metadata = 0;
  std::string tokenizer_model;  // tokenizer.ggml.model: llama (SentencePiece), gpt2 (BPE), ...
  std::string pre_tokenizer;    // tokenizer.ggml.pre; "default" when the file has none
  size_t n_tokens = 0;
  TokenId bos = -1;  // -1: none
  TokenId eos = -1;
  // The tokens that end a generation, ascending: EOS, end of turn (<|im_end|>, <|eot_id|> ...)
  // and the others llama.cpp stops on. Generation and chat stop at each of them.
  std::vector<SpecialToken> end_of_generation;
  std::string chat_template;  // tokenizer.chat_template (Jinja source); "" if none
};

// What `streamingllm info` prints.
struct ModelInfo {
  std::string path;
  uint32_t gguf_version = 0;
  size_t n_tensors = 0;
  size_t n_metadata = 0;
  std::string architecture;  // general.architecture: llama, mistral, qwen2, qwen3, phi3
  std::string name;          // general.name; may be empty
  std::string family;        // the model family: "Llama", "Qwen3", "Phi-3", ...
  std::string blocks;        // its blocks in words: "RMSNorm, separate Q/K/V, SwiGLU"
  uint64_t n_params = 0;
  std::vector<std::pair<std::string, size_t>> tensor_types;  // (type name, tensor count), by name
  size_t n_vocab = 0;
  size_t dim = 0;
  size_t n_layers = 0;
  size_t n_heads = 0;
  size_t n_kv_heads = 0;
  size_t head_dim = 0;
  size_t ffn_dim = 0;
  size_t n_ctx_train = 0;  // the training length the file states; 0 if absent
  size_t rope_dims = 0;
  double rope_freq_base = 0;
  std::string rope_layout;   // "adjacent pairs" or "half split (neox)"
  std::string rope_scaling;  // "" or e.g. "rope_freqs factors", "yarn x4", "linear x2"
  // Hyper-parameters of this family only, (name, value): "sliding window" "4096", ...
  std::vector<std::pair<std::string, std::string>> family_params;
  std::string tokenizer_model;  // tokenizer.ggml.model: llama (SentencePiece), ...
  std::string pre_tokenizer;    // as VocabularyInfo
  size_t n_tokens = 0;          // tokens in the vocabulary
  TokenId bos = -1;             // -1: none
  TokenId eos = -1;
  std::vector<SpecialToken> end_of_generation;  // as VocabularyInfo
  std::string chat_template;  // tokenizer.chat_template (Jinja source); "" if none
  // K/V bytes of one token held by every layer. q8_0 (34 bytes per 32 values, 53% of f16) and
  // q4_0 (18 per 32, 28%) are 0 when the model's head_dim does not allow them (KvType).
  size_t kv_bytes_per_token_f32 = 0;
  size_t kv_bytes_per_token_f16 = 0;
  size_t kv_bytes_per_token_q8_0 = 0;
  size_t kv_bytes_per_token_q4_0 = 0;
  // Sliding-window layers (Gemma): n_local_layers of the n_layers keep at most sliding_window
  // tokens, whatever the cache size (0: none).
  size_t n_local_layers = 0;
  size_t sliding_window = 0;
  std::string simd_target;  // the SIMD target the kernels run on here (AVX2, AVX3, ...)

  size_t kv_bytes_per_token(KvType type) const {
    switch (type) {
      case KvType::kF16:
        return kv_bytes_per_token_f16;
      case KvType::kQ8_0:
        return kv_bytes_per_token_q8_0;
      case KvType::kQ4_0:
        return kv_bytes_per_token_q4_0;
      case KvType::kF32:
        break;
    }
    return kv_bytes_per_token_f32;
  }
  // K/V bytes of a cache of n_cache_tokens (sinks + window): the global layers hold that many
  // tokens, the sliding-window layers at most sliding_window.
  size_t kv_cache_bytes(KvType type, size_t n_cache_tokens) const {
    const size_t per_layer = kv_bytes_per_token(type) / (n_layers > 0 ? n_layers : 1);
    const size_t local =
        n_local_layers * (n_cache_tokens < sliding_window ? n_cache_tokens : sliding_window);
    return per_layer * ((n_layers - n_local_layers) * n_cache_tokens + local);
  }
};

class Model {
 public:
  struct LoadOptions {
    // Worker threads of the pool every stream of this model computes on; 0 = every hardware
    // thread. Streams of one model take turns on it: calls on two streams of one model from two
    // threads are safe and run one after the other.
    size_t n_threads = 0;
  };

  // Maps a GGUF file and checks it. The file must stay unchanged while the model is loaded.
  static Result<std::shared_ptr<Model>> load(const std::string& path, const LoadOptions& options);
  static Result<std::shared_ptr<Model>> load(const std::string& path) { return load(path, {}); }

  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelInfo& info() const;
  size_t n_threads() const;

  // UTF-8 text to tokens. add_bos: prepend BOS when the vocabulary has one. parse_special: text
  // such as "<s>" or "<|im_end|>" becomes that control token, else it is plain text. Invalid
  // UTF-8 is an error naming the byte offset.
  Result<std::vector<TokenId>> tokenize(std::string_view text, bool add_bos = true,
                                        bool parse_special = false) const;
  // Text files as one stream, the way the StreamingLLM paper concatenates PG19 books: BOS once
  // (when the vocabulary has one), then each file's tokens in order. max_tokens > 0 truncates the
  // stream to that many tokens, BOS included; files after the one that fills it are not read.
  // An unreadable or empty file is an error naming it.
  Result<std::vector<TokenId>> tokenize_files(std::span<const std::string> paths,
                                              size_t max_tokens = 0) const;
  // Tokens to the bytes they stand for (control tokens are empty; an id outside the vocabulary
  // is an error). A sequence cut mid-character ends in the bytes it has.
  Result<std::string> detokenize(std::span<const TokenId> tokens) const;
  // The stored text of a token ("▁Once", "<0x0A>", "</s>"); empty outside the vocabulary.
  std::string token_text(TokenId token) const;

  struct Impl;  // the library's side: weights, tokenizer, thread pool
  const Impl& impl() const { return *impl_; }

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A model file's vocabulary alone: tokenizes without loading (or needing) the weights, so a
// tokenizer-only GGUF works too.
class Vocabulary {
 public:
  static Result<std::unique_ptr<Vocabulary>> load(const std::string& path);
  // The file's vocabulary facts, without building its tokenizer: works for every tokenizer model
  // the file may name, and for files with or without weights.
  static Result<VocabularyInfo> describe(const std::string& path);
  ~Vocabulary();
  Vocabulary(const Vocabulary&) = delete;
  Vocabulary& operator=(const Vocabulary&) = delete;

  // As Model::tokenize.
  Result<std::vector<TokenId>> tokenize(std::string_view text, bool add_bos = true,
                                        bool parse_special = false) const;
  size_t n_tokens() const;  // tokens in the vocabulary
  const VocabularyInfo& info() const;

  struct Impl;

 private:
  explicit Vocabulary(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sllm
