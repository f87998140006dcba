#include "runtime/decode.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

namespace sllm {

namespace {

// Bytes at the end of `text` that could be the start of one of `stops`: they are held back until
// the next token shows whether a stop string is coming.
size_t held_back(std::string_view text, const std::vector<std::string>& stops) {
  size_t n_held = 0;
  for (const std::string& stop : stops) {
    for (size_t n = std::min(text.size(), stop.size() - 1); n > n_held; --n) {
      if (text.substr(text.size() - n) == std::string_view(stop).substr(0, n)) {
        n_held = n;
        break;
      }
    }
  }
  return n_held;
}

bool interrupted(const std::atomic<bool>* flag) {
  return flag != nullptr && flag->load(std::memory_order_relaxed);
}

}  // namespace

const char* stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::kEndOfGeneration:
      return "end of generation";
    case StopReason::kStopString:
      return "stop string";
    case StopReason::kMaxTokens:
      return "max tokens";
    case StopReason::kInterrupted:
      return "interrupted";
  }
  return "?";
}

Result<size_t> feed_interruptible(Session& session, Sampler& sampler,
                                  std::span<const TokenId> tokens,
                                  const std::atomic<bool>* interrupt) {
  const size_t chunk = std::max<size_t>(1, session.options().max_batch);
  size_t done = 0;
  // The first chunk always goes in: an interrupt stops what follows it.
  while (done < tokens.size() && (done == 0 || !interrupted(interrupt))) {
    const auto part = tokens.subspan(done, std::min(chunk, tokens.size() - done));
    SLLM_RETURN_IF_ERROR(session.feed(part));
    for (TokenId t : part) sampler.accept(t);
    done += part.size();
  }
  return done;
}

Result<Generation> decode(Session& session, Sampler& sampler, StreamDecoder* decoder,
                          std::span<const TokenId> end_tokens, const StopOptions& stop,
                          const TextFn& on_text, const TokenFn& on_token) {
  for (const std::string& s : stop.stop_strings) {
    if (s.empty()) return Error(ErrorCode::kInvalidInput, "a stop string must not be empty");
  }
  if (decoder == nullptr && !stop.stop_strings.empty()) {
    return Error(ErrorCode::kInternal, "stop strings need the generated text");
  }
  if (session.n_seen() == 0) {
    return Error(ErrorCode::kInvalidInput,
                 "nothing has been fed yet: generation needs at least one token to follow");
  }
  const auto start = std::chrono::steady_clock::now();
  Generation g;
  std::vector<float> logits(session.last_logits().size());
  size_t n_shown = 0;  // bytes of g.text passed to on_text
  const auto show = [&](size_t end) {
    if (end > n_shown && on_text) on_text(std::string_view(g.text).substr(n_shown, end - n_shown));
    n_shown = std::max(n_shown, end);
  };
  // Without keep_output only the text not yet shown (a possible stop string's start) is kept.
  const auto forget_shown = [&] {
    if (stop.keep_output) return;
    g.text.erase(0, n_shown);
    n_shown = 0;
  };
  for (;;) {
    if (stop.max_tokens >= 0 && g.n_tokens >= static_cast<uint64_t>(stop.max_tokens)) {
      g.stop = StopReason::kMaxTokens;
      break;
    }
    if (interrupted(stop.interrupt)) {
      g.stop = StopReason::kInterrupted;
      break;
    }
    std::copy(session.last_logits().begin(), session.last_logits().end(), logits.begin());
    const TokenId next = sampler.sample(logits);
    sampler.accept(next);
    if (stop.at_end_of_generation &&
        std::find(end_tokens.begin(), end_tokens.end(), next) != end_tokens.end()) {
      g.stop = StopReason::kEndOfGeneration;
      g.end_token = next;
      break;
    }
    const TokenId one[1] = {next};
    SLLM_RETURN_IF_ERROR(session.feed(one));
    ++g.n_tokens;
    if (stop.keep_output) g.tokens.push_back(next);
    if (on_token) on_token(next);
    if (decoder == nullptr) continue;
    const size_t searched_from = n_shown;
    g.text += decoder->push(next);
    if (stop.stop_strings.empty()) {
      show(g.text.size());
      forget_shown();
      continue;
    }
    // A stop string can only start in the text not yet shown (the rest was checked).
    size_t stop_at = std::string::npos;
    for (const std::string& s : stop.stop_strings) {
      stop_at = std::min(stop_at, g.text.find(s, searched_from));
    }
    if (stop_at != std::string::npos) {
      g.text.resize(stop_at);
      g.stop = StopReason::kStopString;
      break;
    }
    show(g.text.size() - held_back(g.text, stop.stop_strings));
    forget_shown();
  }
  if (decoder != nullptr && g.stop != StopReason::kStopString) g.text += decoder->flush();
  show(g.text.size());
  forget_shown();
  g.generate_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return g;
}

}  // namespace sllm
