// The decode loop: sample a token, record it, stop or feed it, pass its text on; repeat. The one
// loop behind Stream::generate (and so `run` and `bench`) and Chat::send.
#pragma once

#include <span>

#include "runtime/session.h"
#include "sampling/sampler.h"
#include "streamingllm/error.h"
#include "streamingllm/stream.h"
#include "tokenizer/tokenizer.h"

namespace sllm {

// Generates from the session's current logits until one of `stop` holds. `end_tokens` are the
// tokens that end a generation when stop.at_end_of_generation (they are sampled, recorded by the
// sampler, and not fed). Text goes through `decoder`, so a character split across the last
// prompt token and the first generated one comes out whole; stop strings are searched in the
// generated text only, and text that may be the start of one is held back until it is not.
// Without a decoder there is no text (and no stop strings). Fills everything of the Generation
// but the prompt fields.
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
