// Options of the public API: one struct per concern, every field with its default and meaning.
// Standard-library types only.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "streamingllm/error.h"

namespace sllm {

// A token of the model's vocabulary.
using TokenId = int32_t;

// How a stream keeps keys and values (StreamingLLM paper, Figure 1).
enum class CachePolicy {
  kDense,      // every token's K/V; refuses tokens past its context limit
  kWindow,     // the last `window` tokens only
  kStreaming,  // `n_sinks` attention sinks (the first tokens) + the last `window` tokens
  kRecompute,  // for every token, a fresh forward over the last `window` tokens (O(W^2) each)
};

// "dense", "window", "streaming", "recompute".
const char* policy_name(CachePolicy policy);
// The policy of that name; anything else is an error listing the four names.
Result<CachePolicy> parse_policy(std::string_view name);

// Element type of cached keys and values (the values are ggml's type ids, as in GGUF files).
// q8_0 and q4_0 store each token's keys and values as ggml's blocks of 32 (34 and 18 bytes: 53%
// and 28% of f16), quantized once when written; they need a head_dim that is a multiple of 32 or
// a divisor of 32 whose KV heads fill whole blocks (Session and Stream creation say so otherwise).
enum class KvType : uint32_t { kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ8_0 = 8 };

// "f32", "f16", "q8_0", "q4_0"; parse_kv_type is its inverse.
const char* kv_type_name(KvType type);
Result<KvType> parse_kv_type(std::string_view name);

struct CacheOptions {
  CachePolicy policy = CachePolicy::kStreaming;
  // streaming: the first tokens kept forever. Must be 0 for the other policies.
  size_t n_sinks = 4;
  // streaming, window, recompute: the most recent tokens kept (>= 1).
  // dense: the context limit in tokens.
  size_t window = 1020;
  KvType kv_type = KvType::kF32;
  // Tokens per forward pass when feeding many tokens at once (speed only, never the result).
  size_t max_batch = 64;
  // Absolute position of the stream's first token (for tests of very long streams).
  uint64_t start_pos = 0;

  // The one mapping from a policy and a total cache size to sinks and window:
  //   streaming  n_sinks sinks + (cache_tokens - n_sinks) window
  //   window     a window of cache_tokens
  //   recompute  a window of cache_tokens, recomputed for every token
  //   dense      a context limit of cache_tokens
  // Fails when cache_tokens is 0 or, for streaming, not larger than n_sinks.
  static Result<CacheOptions> for_policy(CachePolicy policy, size_t cache_tokens = 1024,
                                         size_t n_sinks = 4);

  // Tokens the cache holds when full: n_sinks + window.
  size_t capacity() const { return n_sinks + window; }
  // Checks ranges and that the sizes do not overflow; the messages name the field.
  Status validate() const;
};

// Token sampling, in llama.cpp's order: repetition penalty, top-k, top-p, min-p, temperature.
struct SamplingOptions {
  // Divides the logits before the draw. 0 = greedy (argmax); < 1 sharpens, > 1 flattens.
  float temperature = 0.8f;
  // Keep only the top_k most likely tokens. 0 = off.
  int32_t top_k = 40;
  // Keep the smallest set of tokens whose probability mass reaches top_p. In (0, 1]; 1 = off.
  float top_p = 0.95f;
  // Keep tokens at least min_p times as likely as the most likely one. In [0, 1]; 0 = off.
  float min_p = 0.05f;
  // Divides positive (multiplies negative) logits of recently seen tokens. > 0; 1 = off.
  float repeat_penalty = 1.0f;
  // How many recent tokens the penalty looks at. >= 0; 0 = off.
  int32_t repeat_last_n = 64;
  // Seed of the random draw: the same seed and logits give the same tokens on every platform.
  uint64_t seed = 42;

  // Rejects out-of-range or non-finite values with a message naming the option and the value.
  Status validate() const;
};

// When a generation ends (whichever comes first).
struct StopOptions {
  // Most tokens to generate; -1 = no limit.
  int64_t max_tokens = -1;
  // End at the model's end-of-generation tokens (EOS, end of turn). false: feed them and go on.
  bool at_end_of_generation = true;
  // End when the generated text contains one of these (not empty); the text stops before it.
  std::vector<std::string> stop_strings;
  // When another thread or a signal handler sets it, the generation ends after the current token,
  // and a long prompt stops between chunks.
  const std::atomic<bool>* interrupt = nullptr;
  // Collect the output in Generation::text and ::tokens. false: the output goes to the callbacks
  // only and memory stays constant however long the generation runs (an endless stream).
  bool keep_output = true;
};

}  // namespace sllm
