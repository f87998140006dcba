// A conversation on an endless stream: chat template, continuous eviction, stops.
//
// A ChatSession renders each user turn with the chat template, feeds it into one Session and
// samples the reply token by token. Nothing is ever fed twice and the history is never
// re-rendered: the cache (sinks + window) evicts while a turn is prefilled and while the reply is
// generated, so a turn longer than the window streams through it like any other text.
//
// Tokens, turn by turn (docs/chat.md has the details):
//   - turn 1 is opening(system) + user_turn(u1, first), with BOS in front when the template does
//     not write it and the vocabulary asks for it;
//   - turn k > 1 is the closing of the previous reply (end_of_reply(), from its end-of-turn token
//     on if the model emitted that token itself) + user_turn(uk);
//   - each turn is encoded by a ChatEncoder: the template's special-token texts become tokens,
//     the user's and system's text stays text (typing "<|im_end|>" cannot end a turn). A
//     SentencePiece tokenizer puts a space (its "dummy prefix") in front of every encoded text,
//     so a turn that starts with a space has that space dropped: it is not doubled.
//
// --keep-system: the opening's tokens become attention sinks (the cache keeps
// max(n_sinks, opening tokens) sinks), so the system message is never evicted.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "chat/chat_template.h"
#include "runtime/chat_encode.h"
#include "runtime/session.h"
#include "sampling/sampler.h"
#include "streamingllm/chat.h"
#include "streamingllm/error.h"
#include "tokenizer/tokenizer.h"

namespace sllm {

// ChatOptions (template, system message, keep_system, cache, sampling), StopOptions and ChatReply
// are the public API's (include/streamingllm/chat.h). Here template_name must name a template:
// the API resolves "" from the model before creating a session.

class ChatSession {
 public:
  // The model, tokenizer and pool must outlive the session.
  static Result<std::unique_ptr<ChatSession>> create(const TransformerModel& model,
                                                     const Tokenizer& tokenizer,
                                                     const ChatOptions& options, ThreadPool& pool);

  // Feeds one user turn and generates the reply. on_text receives the reply's text piece by
  // piece, as soon as a piece cannot be the start of a stop string. A turn that is refused (bad
  // UTF-8, an empty stop string, an empty first turn, a dense context it would overflow) returns
  // its error before anything is fed: the chat is unchanged and can take the next turn. An
  // interrupt during the turn's prefill ends it after the current batch, with an empty reply.
  Result<ChatReply> send(std::string_view user_text, const StopOptions& stop,
                         const TextFn& on_text);

  // A past exchange of the conversation, as a client stored it: feeds the user turn and the reply
  // text as render() writes them, without generating (the reply is closed before the next
  // turn). Returns the tokens fed: all of them, or fewer when `interrupt` stopped the feed (the
  // exchange then counts as fed, as an interrupted send() does). Errors change nothing.
  Result<size_t> add_turn(std::string_view user_text, std::string_view reply_text,
                          const std::atomic<bool>* interrupt);

  // send() and add_turn() in steps, for a caller that does the feeding and the decoding (a batch,
  // api/batch.cc), which must do exactly what send() does between them:
  //   begin_send() checks the turn and returns its tokens, changing nothing; the caller feeds
  //   them (each recorded in sampler()); end_prompt(n_fed) counts the turn (false: interrupted,
  //   the reply is empty and over); the caller decodes with stop_tokens(), a fresh StreamDecoder
  //   and stop.at_end_of_generation; end_reply() takes the token that ended it.
  Result<std::vector<TokenId>> begin_send(std::string_view user_text,
                                          const StopOptions& stop) const;
  bool end_prompt(size_t n_fed, size_t n_tokens);
  void end_reply(TokenId end_token);
  //   begin_add_turn() returns an exchange's tokens, changing nothing; the caller feeds them (each
  //   recorded in sampler()), then end_add_turn().
  Result<std::vector<TokenId>> begin_add_turn(std::string_view user_text,
                                              std::string_view reply_text) const;
  void end_add_turn();
  Session& mutable_session() { return *session_; }
  Sampler& mutable_sampler() { return sampler_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }

  // Samples with these options from the next token on: the random draw restarts from
  // options.seed, the repetition penalty keeps the tokens it has seen (the last repeat_last_n).
  Status set_sampling(const SamplingOptions& sampling);

  // The error send() would return for this text before feeding anything (invalid UTF-8, an
  // empty first turn), without changing the chat: lets a caller skip a bad turn and go on.
  Status check_turn(std::string_view user_text) const;

  const ChatOptions& options() const { return options_; }  // as given to create()
  const ChatTemplate& chat_template() const { return template_; }
  const Session& session() const { return *session_; }
  const Sampler& sampler() const { return sampler_; }
  uint64_t n_turns() const { return n_turns_; }
  // Tokens of the opening pinned as sinks (keep_system), else 0.
  size_t n_pinned() const { return n_pinned_; }
  // Tokens that end a reply when sampled: the vocabulary's end-of-generation set (EOS, <|im_end|>,
  // <|eot_id|> ...), the template's end-of-turn token if the vocabulary has it, and BOS (a model
  // that starts a new document has finished this one).
  std::span<const TokenId> stop_tokens() const { return stop_tokens_; }
  // Text to feed in front of the next user turn: the closing of the last reply.
  const std::string& pending() const { return pending_; }

  // Session files: puts back what a session of the same model and options saved. On error the
  // chat may be half restored and must not be used.
  Status restore(uint64_t n_turns, std::string pending, std::string_view sampler_state,
                 const SessionState& session);

 private:
  ChatSession(const Tokenizer& tokenizer, const ChatOptions& options, ChatTemplate chat_template,
              std::unique_ptr<Session> session, std::vector<TokenId> opening_tokens);
  // The template's special-token texts become tokens; the user's and system's text stays text.
  Result<std::vector<TokenId>> encode_turn(const ChatPieces& pieces, bool at_start) const;
  // The tokens of a user turn; with stored_reply, followed by that reply as render() writes it.
  Result<std::vector<TokenId>> turn_tokens(std::string_view user_text,
                                           const std::string_view* stored_reply = nullptr) const;
  bool is_stop_token(TokenId id) const;

  const Tokenizer* tokenizer_;
  ChatEncoder encoder_;
  ChatOptions options_;
  ChatTemplate template_;
  std::unique_ptr<Session> session_;
  Sampler sampler_;
  std::vector<TokenId> opening_tokens_;  // keep_system: the pinned prefix
  size_t n_pinned_ = 0;
  std::vector<TokenId> stop_tokens_;
  std::string pending_;
  uint64_t n_turns_ = 0;
};

}  // namespace sllm
