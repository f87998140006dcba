#include "runtime/generate.h"

#include <algorithm>
#include <chrono>
#include <vector>

namespace sllm {

namespace {
double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

Result<GenerateStats> generate(Session& session, Sampler& sampler, std::span<const TokenId> prompt,
                               const GenerateOptions& options, TokenId eos,
                               const std::function<void(TokenId)>& on_token,
                               const std::atomic<bool>* interrupt) {
  GenerateStats stats;
  if (prompt.empty()) {
    return Error(ErrorCode::kInvalidInput, "the prompt is empty (not even a BOS token)");
  }
  const auto interrupted = [interrupt] {
    return interrupt != nullptr && interrupt->load(std::memory_order_relaxed);
  };
  auto start = std::chrono::steady_clock::now();
  // In chunks of one forward batch, so that an interrupt stops a long prompt within one batch.
  const size_t n_chunk = std::max<size_t>(1, session.options().max_batch);
  for (size_t done = 0; done < prompt.size();) {
    if (done > 0 && interrupted()) {
      stats.interrupted = true;
      stats.prompt_seconds = seconds_since(start);
      return stats;
    }
    const std::span<const TokenId> chunk =
        prompt.subspan(done, std::min(n_chunk, prompt.size() - done));
    SLLM_RETURN_IF_ERROR(session.feed(chunk));
    for (TokenId t : chunk) sampler.accept(t);
    done += chunk.size();
    stats.n_prompt_tokens = done;
  }
  stats.prompt_seconds = seconds_since(start);

  start = std::chrono::steady_clock::now();
  std::vector<float> logits(session.last_logits().size());
  while (options.n_predict < 0 || stats.n_generated < static_cast<uint64_t>(options.n_predict)) {
    if (interrupted()) {
      stats.interrupted = true;
      break;
    }
    std::copy(session.last_logits().begin(), session.last_logits().end(), logits.begin());
    const TokenId next = sampler.sample(logits);
    sampler.accept(next);
    if (next == eos && options.stop_at_eos) {
      stats.hit_eos = true;
      break;
    }
    on_token(next);
    ++stats.n_generated;
    const TokenId one[1] = {next};
    SLLM_RETURN_IF_ERROR(session.feed(one));
  }
  stats.generate_seconds = seconds_since(start);
  return stats;
}

}  // namespace sllm
