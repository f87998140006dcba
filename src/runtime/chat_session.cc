#include "runtime/chat_session.h"

#include <algorithm>
#include <chrono>

namespace sllm {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string token_text(const Vocab& vocab, TokenId id) {
  return id >= 0 && static_cast<size_t>(id) < vocab.n_tokens() ? vocab.tokens[id] : "";
}

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

}  // namespace

const char* stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::kEndOfTurn:
      return "end of turn";
    case StopReason::kStopString:
      return "stop string";
    case StopReason::kMaxTokens:
      return "max reply length";
    case StopReason::kInterrupted:
      return "interrupted";
  }
  return "?";
}

Result<std::unique_ptr<ChatSession>> ChatSession::create(const LlamaModel& model,
                                                         const Tokenizer& tokenizer,
                                                         const ChatOptions& options,
                                                         ThreadPool& pool) {
  const Vocab& vocab = tokenizer.vocab();
  if (vocab.n_tokens() != model.config().n_vocab) {
    return Error(ErrorCode::kInvalidInput, "the tokenizer has " + std::to_string(vocab.n_tokens()) +
                                               " tokens, the model " +
                                               std::to_string(model.config().n_vocab));
  }
  SLLM_RETURN_IF_ERROR(options.sampler.validate());
  SLLM_ASSIGN_OR_RETURN(
      ChatTemplate chat_template,
      ChatTemplate::from_name(options.template_name,
                              {token_text(vocab, vocab.bos), token_text(vocab, vocab.eos)}));
  SessionOptions session_options = options.session;
  std::vector<TokenId> opening;
  if (options.keep_system) {
    if (session_options.policy != CachePolicy::kStreaming) {
      return Error(ErrorCode::kInvalidInput, "--keep-system needs the streaming policy");
    }
    // Encoded as the start of turn 1 is, so that it is a prefix of turn 1's tokens.
    const bool add_bos = !chat_template.writes_bos() && vocab.add_bos && vocab.bos >= 0;
    SLLM_ASSIGN_OR_RETURN(opening,
                          tokenizer.encode(chat_template.opening(options.system), add_bos, true));
    session_options.n_sinks = std::max(session_options.n_sinks, opening.size());
  }
  SLLM_ASSIGN_OR_RETURN(std::unique_ptr<Session> session,
                        Session::create(model, session_options, pool));
  return std::unique_ptr<ChatSession>(new ChatSession(tokenizer, options, std::move(chat_template),
                                                      std::move(session), std::move(opening)));
}

ChatSession::ChatSession(const Tokenizer& tokenizer, const ChatOptions& options,
                         ChatTemplate chat_template, std::unique_ptr<Session> session,
                         std::vector<TokenId> opening_tokens)
    : tokenizer_(&tokenizer),
      options_(options),
      template_(std::move(chat_template)),
      session_(std::move(session)),
      sampler_(options.sampler, tokenizer.vocab().n_tokens()),
      opening_tokens_(std::move(opening_tokens)),
      n_pinned_(opening_tokens_.size()),
      logits_(tokenizer.vocab().n_tokens()) {
  const Vocab& vocab = tokenizer.vocab();
  auto add_stop = [&](TokenId id) {
    if (id >= 0 && std::find(stop_tokens_.begin(), stop_tokens_.end(), id) == stop_tokens_.end()) {
      stop_tokens_.push_back(id);
    }
  };
  add_stop(vocab.eos);
  // The end-of-turn text is a stop token only if the vocabulary has it as one special token
  // (--template chatml on a vocabulary without <|im_end|> stops at EOS only).
  if (!template_.end_of_turn().empty()) {
    auto ids = tokenizer.encode(template_.end_of_turn(), false, true);
    if (ids.ok() && ids->size() == 1 && (*ids)[0] != vocab.unk) add_stop((*ids)[0]);
  }
  add_stop(vocab.bos);
}

bool ChatSession::is_stop_token(TokenId id) const {
  return std::find(stop_tokens_.begin(), stop_tokens_.end(), id) != stop_tokens_.end();
}

Result<std::vector<TokenId>> ChatSession::encode_turn(std::string_view text, bool at_start) const {
  const Vocab& vocab = tokenizer_->vocab();
  // SentencePiece's dummy prefix stands for a leading space (see the header).
  if (vocab.add_space_prefix && !text.empty() && text.front() == ' ') text.remove_prefix(1);
  const bool add_bos = at_start && !template_.writes_bos() && vocab.add_bos && vocab.bos >= 0;
  return tokenizer_->encode(text, add_bos, /*parse_special=*/true);
}

Result<std::vector<TokenId>> ChatSession::turn_tokens(std::string_view user_text) const {
  if (n_turns_ > 0) return encode_turn(pending_ + template_.user_turn(user_text, false), false);
  const std::string turn = template_.user_turn(user_text, true);
  SLLM_ASSIGN_OR_RETURN(std::vector<TokenId> ids,
                        encode_turn(template_.opening(options_.system) + turn, true));
  if (opening_tokens_.empty() ||
      (ids.size() >= opening_tokens_.size() &&
       std::equal(opening_tokens_.begin(), opening_tokens_.end(), ids.begin()))) {
    return ids;
  }
  // The text across the boundary merged into other tokens: feed the pinned opening as it was
  // counted, then the rest on its own.
  SLLM_ASSIGN_OR_RETURN(std::vector<TokenId> rest, encode_turn(turn, false));
  ids = opening_tokens_;
  ids.insert(ids.end(), rest.begin(), rest.end());
  return ids;
}

Status ChatSession::check_turn(std::string_view user_text) const {
  SLLM_ASSIGN_OR_RETURN(std::vector<TokenId> ids, turn_tokens(user_text));
  if (ids.empty() && session_->n_seen() == 0) {
    return Error(ErrorCode::kInvalidInput,
                 "the first turn is empty: there is nothing for the reply to follow");
  }
  return {};
}

Result<Reply> ChatSession::send(std::string_view user_text, const ReplyOptions& options,
                                const std::function<void(std::string_view)>& on_text) {
  for (const std::string& stop : options.stop_strings) {
    if (stop.empty()) return Error(ErrorCode::kInvalidInput, "a stop string must not be empty");
  }
  Reply reply;
  auto start = std::chrono::steady_clock::now();
  SLLM_ASSIGN_OR_RETURN(reply.prompt_tokens, turn_tokens(user_text));
  if (reply.prompt_tokens.empty() && session_->n_seen() == 0) {
    return Error(ErrorCode::kInvalidInput,
                 "the first turn is empty: there is nothing for the reply to follow");
  }
  const SessionOptions& session_options = session_->options();
  if (session_options.policy == CachePolicy::kDense &&
      session_->n_seen() + reply.prompt_tokens.size() > session_options.window) {
    // Checked for the whole turn here, as feed() would per chunk: a turn that cannot fit
    // changes nothing.
    return Error(ErrorCode::kLimit, "dense attention would exceed its context limit of " +
                                        std::to_string(session_options.window) + " tokens (" +
                                        std::to_string(session_->n_seen()) + " fed, a turn of " +
                                        std::to_string(reply.prompt_tokens.size()) + " more)");
  }
  // Everything above leaves the chat as it was on error. The turn goes in by chunks of one
  // forward batch, so that an interrupt stops a long turn's prefill within one batch.
  const auto interrupted = [&options] {
    return options.interrupt != nullptr && options.interrupt->load(std::memory_order_relaxed);
  };
  const std::span<const TokenId> prompt(reply.prompt_tokens);
  const size_t n_chunk = std::max<size_t>(1, session_options.max_batch);
  for (size_t done = 0; done < prompt.size();) {
    if (done > 0 && interrupted()) {
      // Part of the turn is in the stream: it counts as a turn with an empty reply, closed as
      // any reply is before the next turn.
      reply.prompt_tokens.resize(done);
      reply.prompt_seconds = seconds_since(start);
      reply.stop = StopReason::kInterrupted;
      ++n_turns_;
      pending_ = template_.end_of_reply();
      return reply;
    }
    const std::span<const TokenId> chunk =
        prompt.subspan(done, std::min(n_chunk, prompt.size() - done));
    SLLM_RETURN_IF_ERROR(session_->feed(chunk));
    for (TokenId t : chunk) sampler_.accept(t);
    done += chunk.size();
  }
  reply.prompt_seconds = seconds_since(start);
  pending_.clear();
  ++n_turns_;

  start = std::chrono::steady_clock::now();
  StreamDecoder decoder(*tokenizer_);
  size_t n_shown = 0;  // bytes of reply.text passed to on_text
  TokenId ended_by = -1;
  for (;;) {
    if (options.max_tokens >= 0 &&
        reply.tokens.size() >= static_cast<uint64_t>(options.max_tokens)) {
      reply.stop = StopReason::kMaxTokens;
      break;
    }
    if (options.interrupt != nullptr && options.interrupt->load(std::memory_order_relaxed)) {
      reply.stop = StopReason::kInterrupted;
      break;
    }
    std::copy(session_->last_logits().begin(), session_->last_logits().end(), logits_.begin());
    const TokenId next = sampler_.sample(logits_);
    sampler_.accept(next);
    if (is_stop_token(next)) {
      reply.stop = StopReason::kEndOfTurn;
      ended_by = next;
      break;
    }
    const TokenId one[1] = {next};
    SLLM_RETURN_IF_ERROR(session_->feed(one));
    reply.tokens.push_back(next);
    reply.text += decoder.push(next);
    // A stop string can only start in the text not yet shown (the rest was checked).
    size_t stop_at = std::string::npos;
    for (const std::string& stop : options.stop_strings) {
      stop_at = std::min(stop_at, reply.text.find(stop, n_shown));
    }
    if (stop_at != std::string::npos) {
      reply.text.resize(stop_at);
      reply.stop = StopReason::kStopString;
      break;
    }
    const size_t n_safe = reply.text.size() - held_back(reply.text, options.stop_strings);
    if (n_safe > n_shown) {
      on_text(std::string_view(reply.text).substr(n_shown, n_safe - n_shown));
      n_shown = n_safe;
    }
  }
  if (reply.stop != StopReason::kStopString) reply.text += decoder.flush();
  if (reply.text.size() > n_shown) on_text(std::string_view(reply.text).substr(n_shown));
  reply.reply_seconds = seconds_since(start);

  // The closing is fed with the next turn. If the model ended the reply with the token the
  // closing starts with, that token was sampled but not fed: the closing from it on goes in.
  const std::string& closing = template_.end_of_reply();
  const std::string ended_text = token_text(tokenizer_->vocab(), ended_by);
  const size_t at = ended_text.empty() ? std::string::npos : closing.find(ended_text);
  pending_ = at == std::string::npos ? closing : closing.substr(at);
  return reply;
}

Status ChatSession::restore(uint64_t n_turns, std::string pending, std::string_view sampler_state,
                            const SessionState& session) {
  SLLM_RETURN_IF_ERROR(sampler_.load_state(sampler_state));
  SLLM_RETURN_IF_ERROR(session_->restore(session));
  n_turns_ = n_turns;
  pending_ = std::move(pending);
  return {};
}

}  // namespace sllm
