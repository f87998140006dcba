#include "runtime/decode.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>
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

DecodeStep::DecodeStep(Sampler& sampler, StreamDecoder* decoder,
                       std::span<const TokenId> end_tokens, const StopOptions& stop, TextFn on_text,
                       TokenFn on_token)
    : sampler_(&sampler),
      decoder_(decoder),
      end_tokens_(end_tokens),
      stop_(stop),
      on_text_(std::move(on_text)),
      on_token_(std::move(on_token)),
      start_(std::chrono::steady_clock::now()) {}

Status DecodeStep::check() const {
  for (const std::string& s : stop_.stop_strings) {
    if (s.empty()) return Error(ErrorCode::kInvalidInput, "a stop string must not be empty");
  }
  if (decoder_ == nullptr && !stop_.stop_strings.empty()) {
    return Error(ErrorCode::kInternal, "stop strings need the generated text");
  }
  return {};
}

void DecodeStep::show(size_t end) {
  if (end > n_shown_ && on_text_) {
    on_text_(std::string_view(g_.text).substr(n_shown_, end - n_shown_));
  }
  n_shown_ = std::max(n_shown_, end);
}

// Without keep_output only the text not yet shown (a possible stop string's start) is kept.
void DecodeStep::forget_shown() {
  if (stop_.keep_output) return;
  g_.text.erase(0, n_shown_);
  n_shown_ = 0;
}

std::optional<TokenId> DecodeStep::next(std::span<const float> logits) {
  if (stopped_) return std::nullopt;
  if (stop_.max_tokens >= 0 && g_.n_tokens >= static_cast<uint64_t>(stop_.max_tokens)) {
    g_.stop = StopReason::kMaxTokens;
    stopped_ = true;
    return std::nullopt;
  }
  if (interrupted(stop_.interrupt)) {
    g_.stop = StopReason::kInterrupted;
    stopped_ = true;
    return std::nullopt;
  }
  logits_.assign(logits.begin(), logits.end());
  const TokenId next = sampler_->sample(logits_);
  sampler_->accept(next);
  if (stop_.at_end_of_generation &&
      std::find(end_tokens_.begin(), end_tokens_.end(), next) != end_tokens_.end()) {
    g_.stop = StopReason::kEndOfGeneration;
    g_.end_token = next;
    stopped_ = true;
    return std::nullopt;
  }
  return next;
}

bool DecodeStep::fed(TokenId token) {
  ++g_.n_tokens;
  if (stop_.keep_output) g_.tokens.push_back(token);
  if (on_token_) on_token_(token);
  if (decoder_ == nullptr) return true;
  const size_t searched_from = n_shown_;
  g_.text += decoder_->push(token);
  if (stop_.stop_strings.empty()) {
    show(g_.text.size());
    forget_shown();
    return true;
  }
  // A stop string can only start in the text not yet shown (the rest was checked).
  size_t stop_at = std::string::npos;
  for (const std::string& s : stop_.stop_strings) {
    stop_at = std::min(stop_at, g_.text.find(s, searched_from));
  }
  if (stop_at != std::string::npos) {
    g_.text.resize(stop_at);
    g_.stop = StopReason::kStopString;
    stopped_ = true;
    return false;
  }
  show(g_.text.size() - held_back(g_.text, stop_.stop_strings));
  forget_shown();
  return true;
}

Generation DecodeStep::finish() {
  if (decoder_ != nullptr && g_.stop != StopReason::kStopString) g_.text += decoder_->flush();
  show(g_.text.size());
  forget_shown();
  g_.generate_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  stopped_ = true;
  return std::move(g_);
}

Result<Generation> decode(Session& session, Sampler& sampler, StreamDecoder* decoder,
                          std::span<const TokenId> end_tokens, const StopOptions& stop,
                          const TextFn& on_text, const TokenFn& on_token) {
  DecodeStep step(sampler, decoder, end_tokens, stop, on_text, on_token);
  SLLM_RETURN_IF_ERROR(step.check());
  if (session.n_seen() == 0) {
    return Error(ErrorCode::kInvalidInput,
                 "nothing has been fed yet: generation needs at least one token to follow");
  }
  while (const std::optional<TokenId> next = step.next(session.last_logits())) {
    const TokenId one[1] = {*next};
    SLLM_RETURN_IF_ERROR(session.feed(one));
    if (!step.fed(*next)) break;
  }
  return step.finish();
}

}  // namespace sllm
