#include "runtime/generate.h"

#include "runtime/decode.h"

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
  auto start = std::chrono::steady_clock::now();
  // In chunks of one forward batch, so that an interrupt stops a long prompt within one batch.
  SLLM_ASSIGN_OR_RETURN(stats.n_prompt_tokens,
                        feed_interruptible(session, sampler, prompt, interrupt));
  stats.prompt_seconds = seconds_since(start);
  if (stats.n_prompt_tokens < prompt.size()) {
    stats.interrupted = true;
    return stats;
  }
  start = std::chrono::steady_clock::now();
  StopOptions stop;
  stop.max_tokens = options.n_predict;
  stop.at_end_of_generation = options.stop_at_eos;
  stop.interrupt = interrupt;
  stop.keep_output = false;  // `run -n -1` goes on forever in constant memory
  const TokenId end_tokens[1] = {eos};
  SLLM_ASSIGN_OR_RETURN(const Generation g,
                        decode(session, sampler, /*decoder=*/nullptr, std::span(end_tokens), stop,
                               /*on_text=*/{}, on_token));
  stats.n_generated = g.n_tokens;
  stats.interrupted = g.stop == StopReason::kInterrupted;
  stats.hit_eos = g.stop == StopReason::kEndOfGeneration;
  stats.generate_seconds = seconds_since(start);
  return stats;
}

}  // namespace sllm
