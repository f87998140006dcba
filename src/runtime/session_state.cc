// Saving and restoring a Session (for session files).
#include <algorithm>
#include <cmath>
#include <string>

#include "runtime/session.h"

namespace sllm {

SessionState Session::state() const { return {n_seen_, last_logits_, recent_, cache_.contents()}; }

Status Session::restore(const SessionState& state) {
  auto invalid = [](const std::string& msg) { return Error(ErrorCode::kInvalidInput, msg); };
  if (state.last_logits.size() != last_logits_.size()) {
    return invalid("saved logits have " + std::to_string(state.last_logits.size()) +
                   " entries, the model's vocabulary " + std::to_string(last_logits_.size()));
  }
  // A session never holds non-finite logits (feed() stops first), so a saved one cannot either.
  for (size_t i = 0; i < state.last_logits.size(); ++i) {
    if (!std::isfinite(state.last_logits[i])) {
      return invalid("saved logit " + std::to_string(i) + " is not a finite number");
    }
  }
  if (options_.policy == CachePolicy::kDense && state.n_seen > options_.window) {
    return invalid("saved session has seen " + std::to_string(state.n_seen) +
                   " tokens, more than the dense context limit of " +
                   std::to_string(options_.window));
  }
  const size_t max_recent = options_.policy == CachePolicy::kRecompute ? options_.window : 0;
  if (state.recent.size() > max_recent) {
    return invalid("saved recompute window holds " + std::to_string(state.recent.size()) +
                   " tokens, at most " + std::to_string(max_recent) + " expected");
  }
  // The cache's own count runs with the stream, except under recompute (rebuilt every token).
  if (options_.policy != CachePolicy::kRecompute && state.cache.n_seen != state.n_seen) {
    return invalid("saved cache has seen " + std::to_string(state.cache.n_seen) +
                   " tokens but the session " + std::to_string(state.n_seen));
  }
  SLLM_RETURN_IF_ERROR(cache_.restore(state.cache));
  n_seen_ = state.n_seen;
  std::copy(state.last_logits.begin(), state.last_logits.end(), last_logits_.begin());
  recent_.assign(state.recent.begin(), state.recent.end());
  return {};
}

}  // namespace sllm
