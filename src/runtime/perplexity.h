// Streaming perplexity: feed a token stream and score every next token as the model sees it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "runtime/session.h"
#include "streamingllm/error.h"
#include "tokenizer/tokenizer.h"

namespace sllm {

struct PerplexityResult {
  std::vector<double> nll;  // [n_tokens - 1]: nll[i] = -log p(tokens[i+1] | tokens[0..i])
  double ppl() const;       // exp(mean nll)
  double ppl(size_t begin, size_t end) const;  // over nll[begin, end)
};

// Called after each chunk with the number of tokens scored so far.
using PerplexityProgressFn = std::function<void(size_t n_done, const PerplexityResult& so_far)>;

// Feeds tokens[0..n-1) in chunks of the session's max_batch (chunked prefill is exact, so this
// equals feeding one token at a time) and scores tokens[1..n). The session should be fresh.
Result<PerplexityResult> stream_perplexity(Session& session, std::span<const TokenId> tokens,
                                           const PerplexityProgressFn& progress = nullptr);

// The texts as one stream, the way the paper concatenates PG19 books: BOS once (if the vocabulary
// has one), then each file's tokens in order. max_tokens > 0 truncates the stream to that many
// tokens, BOS included; files after the one that fills it are not read. Fails on an unreadable or
// empty file.
Result<std::vector<TokenId>> tokenize_stream(const Tokenizer& tokenizer,
                                             std::span<const std::string> files,
                                             size_t max_tokens = 0);

// -log softmax(logits)[target], computed in double.
double token_nll(std::span<const float> logits, TokenId target);

}  // namespace sllm
