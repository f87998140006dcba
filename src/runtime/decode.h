// The decode loop: sample a token, record it, stop or feed it, pass its text on; repeat. The one
// loop behind Stream::generate (and so `run` and `bench`), Chat::send and the batched generations
// of runtime/batch.h, which advance a DecodeStep one token per forward pass.
#pragma once

#include <chrono>
#include <optional>
#include <span>
#include <string>

#include "runtime/session.h"
#include "sampling/sampler.h"
#include "streamingllm/error.h"
#include "streamingllm/stream.h"
#include "tokenizer/tokenizer.h"

namespace sllm {

// One generation, token by token, with the forward pass left to the caller:
//   DecodeStep d(...);  (check() first)
//   while (auto t = d.next(logits)) { feed *t; if (!d.fed(*t)) break; }
//   Generation g = d.finish();
// Text goes through `decoder`, so a character split across the last prompt token and the first
// generated one comes out whole; stop strings are searched in the generated text only, and text
// that may be the start of one is held back until it is not. Without a decoder there is no text
// (and no stop strings). The objects given must outlive the step.
class DecodeStep {
 public:
  DecodeStep(Sampler& sampler, StreamDecoder* decoder, std::span<const TokenId> end_tokens,
             const StopOptions& stop, TextFn on_text, TokenFn on_token);

  // The error the options are (an empty stop string, stop strings without a decoder).
  Status check() const;

  // Samples the next token from the logits after the last token fed and records it in the
  // sampler; nullopt when the generation ends instead (max_tokens, the interrupt, an end token,
  // which is sampled and recorded but not to be fed).
  std::optional<TokenId> next(std::span<const float> logits);
  // After `token` (from next()) was fed: counts it, passes its text on. False when a stop string
  // ended the generation.
  bool fed(TokenId token);
  // Flushes the text and returns the generation (everything but the prompt fields).
  Generation finish();

  bool stopped() const { return stopped_; }

 private:
  void show(size_t end);
  void forget_shown();

  Sampler* sampler_;
  StreamDecoder* decoder_;
  std::span<const TokenId> end_tokens_;
  StopOptions stop_;
  TextFn on_text_;
  TokenFn on_token_;
  std::chrono::steady_clock::time_point start_;
  Generation g_;
  std::vector<float> logits_;  // a copy: the sampler modifies it
  size_t n_shown_ = 0;         // bytes of g_.text passed to on_text
  bool stopped_ = false;
};

// Generates from the session's current logits until one of `stop` holds, feeding each token
// alone: DecodeStep's loop. `end_tokens` are the tokens that end a generation when
// stop.at_end_of_generation. Fills everything of the Generation but the prompt fields.
Result<Generation> decode(Session& session, Sampler& sampler, StreamDecoder* decoder,
                          std::span<const TokenId> end_tokens, const StopOptions& stop,
                          const TextFn& on_text, const TokenFn& on_token);

// Feeds tokens in chunks of the session's max_batch, recording each in the sampler's history,
// and stops between chunks when `interrupt` is set (the first chunk always goes in). Returns how
// many were fed.
Result<size_t> feed_interruptible(Session& session, Sampler& sampler,
                                  std::span<const TokenId> tokens,
                                  const std::atomic<bool>* interrupt);

}  // namespace sllm
