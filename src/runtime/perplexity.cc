#include "runtime/perplexity.h"

#include <algorithm>
#include <cmath>

#include "util/mapped_file.h"

namespace sllm {

double PerplexityResult::ppl() const { return ppl(0, nll.size()); }

double PerplexityResult::ppl(size_t begin, size_t end) const {
  end = std::min(end, nll.size());
  if (begin >= end) return std::nan("");
  double sum = 0;
  for (size_t i = begin; i < end; ++i) sum += nll[i];
  return std::exp(sum / static_cast<double>(end - begin));
}

double token_nll(std::span<const float> logits, TokenId target) {
  double max = logits[0];
  for (float l : logits) max = std::max(max, static_cast<double>(l));
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - max);
  return -(static_cast<double>(logits[static_cast<size_t>(target)]) - max - std::log(sum));
}

Result<std::vector<TokenId>> tokenize_stream(const Tokenizer& tokenizer,
                                             std::span<const std::string> files,
                                             size_t max_tokens) {
  std::vector<TokenId> stream;
  if (tokenizer.vocab().bos >= 0) stream.push_back(tokenizer.vocab().bos);
  for (const std::string& file : files) {
    if (max_tokens > 0 && stream.size() >= max_tokens) break;
    SLLM_ASSIGN_OR_RETURN(std::string text, read_file(file));
    if (text.empty()) return Error(ErrorCode::kInvalidInput, "'" + file + "' is empty");
    auto ids = tokenizer.encode(text, /*add_bos=*/false, /*parse_special=*/false);
    if (!ids.ok()) return ids.error().with_context(file);
    stream.insert(stream.end(), ids->begin(), ids->end());
  }
  if (max_tokens > 0 && stream.size() > max_tokens) stream.resize(max_tokens);
  return stream;
}

Result<PerplexityResult> stream_perplexity(Session& session, std::span<const TokenId> tokens,
                                           const PerplexityProgressFn& progress) {
  if (tokens.size() < 2) {
    return Error(ErrorCode::kInvalidInput, "perplexity needs at least 2 tokens, the text has " +
                                               std::to_string(tokens.size()));
  }
  const size_t n_vocab = session.model().config().n_vocab;
  // Recompute re-runs W tokens per token: report progress more often.
  const size_t chunk = session.options().policy == CachePolicy::kRecompute
                           ? 16
                           : std::max<size_t>(session.options().max_batch, 256);
  PerplexityResult result;
  result.nll.reserve(tokens.size() - 1);
  std::vector<float> logits;
  const size_t n_inputs = tokens.size() - 1;  // the last token is only a target
  for (size_t done = 0; done < n_inputs;) {
    const size_t n = std::min(chunk, n_inputs - done);
    SLLM_RETURN_IF_ERROR(session.feed(tokens.subspan(done, n), &logits));
    for (size_t i = 0; i < n; ++i) {
      result.nll.push_back(token_nll(std::span<const float>(logits).subspan(i * n_vocab, n_vocab),
                                     tokens[done + i + 1]));
    }
    done += n;
    if (progress) progress(done, result);
  }
  return result;
}

}  // namespace sllm
