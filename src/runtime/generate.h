// The generation loop: feed the prompt, then sample, print and feed one token at a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include "runtime/session.h"
#include "sampling/sampler.h"
#include "streamingllm/error.h"
#include "tokenizer/tokenizer.h"

namespace sllm {

struct GenerateOptions {
  int64_t n_predict = 256;  // tokens to generate; -1: until stopped or interrupted
  bool stop_at_eos = true;  // stop when the model emits EOS (else feed it and go on)
};

struct GenerateStats {
  uint64_t n_prompt_tokens = 0;
  uint64_t n_generated = 0;
  double prompt_seconds = 0;
  double generate_seconds = 0;
  bool interrupted = false;
  bool hit_eos = false;
};

// Calls on_token(id) for every generated token, in order. `interrupt`, when set by another
// thread or a signal handler, stops generation after the current token, or the prompt's prefill
// after the current batch of max_batch tokens (stats.n_prompt_tokens says how many went in).
Result<GenerateStats> generate(Session& session, Sampler& sampler, std::span<const TokenId> prompt,
                               const GenerateOptions& options, TokenId eos,
                               const std::function<void(TokenId)>& on_token,
                               const std::atomic<bool>* interrupt = nullptr);

}  // namespace sllm
