#include "runtime/chat_session.h"

#include "runtime/decode.h"

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

}  // namespace

Result<std::unique_ptr<ChatSession>> ChatSession::create(const TransformerModel& model,
                                                         const Tokenizer& tokenizer,
                                                         const ChatOptions& options,
                                                         ThreadPool& pool) {
  const Vocab& vocab = tokenizer.vocab();
  if (vocab.n_tokens() != model.config().n_vocab) {
    return Error(ErrorCode::kInvalidInput, "the tokenizer has " + std::to_string(vocab.n_tokens()) +
                                               " tokens, the model " +
                                               std::to_string(model.config().n_vocab));
  }
  SLLM_RETURN_IF_ERROR(options.sampling.validate());
  SLLM_ASSIGN_OR_RETURN(
      ChatTemplate chat_template,
      ChatTemplate::from_name(options.template_name,
                              {token_text(vocab, vocab.bos), token_text(vocab, vocab.eos)}));
  SessionOptions session_options = options.cache;
  std::vector<TokenId> opening;
  if (options.keep_system) {
    if (session_options.policy != CachePolicy::kStreaming) {
      return Error(ErrorCode::kInvalidInput, "keep_system needs the streaming policy");
    }
    // Encoded as the start of turn 1 is, so that it is a prefix of turn 1's tokens.
    const bool add_bos = !chat_template.writes_bos() && vocab.add_bos && vocab.bos >= 0;
    SLLM_ASSIGN_OR_RETURN(
        opening, ChatEncoder(tokenizer).encode(chat_template.opening_pieces(options.system),
                                               add_bos, vocab.add_space_prefix));
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
      encoder_(tokenizer),
      options_(options),
      template_(std::move(chat_template)),
      session_(std::move(session)),
      sampler_(options.sampling, tokenizer.vocab().n_tokens()),
      opening_tokens_(std::move(opening_tokens)),
      n_pinned_(opening_tokens_.size()) {
  const Vocab& vocab = tokenizer.vocab();
  auto add_stop = [&](TokenId id) {
    if (id >= 0 && std::find(stop_tokens_.begin(), stop_tokens_.end(), id) == stop_tokens_.end()) {
      stop_tokens_.push_back(id);
    }
  };
  // Every end-of-generation token of the vocabulary ends a reply (EOS, <|im_end|>, <|eot_id|>,
  // ...), whichever template renders the chat.
  for (const TokenId id : end_of_generation_ids(vocab)) add_stop(id);
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

Result<std::vector<TokenId>> ChatSession::encode_turn(const ChatPieces& pieces,
                                                      bool at_start) const {
  const Vocab& vocab = tokenizer_->vocab();
  const bool add_bos = at_start && !template_.writes_bos() && vocab.add_bos && vocab.bos >= 0;
  // SentencePiece's dummy prefix stands for a leading space (see the header).
  return encoder_.encode(pieces, add_bos, /*drop_leading_space=*/vocab.add_space_prefix);
}

Result<std::vector<TokenId>> ChatSession::turn_tokens(std::string_view user_text,
                                                      const std::string_view* stored_reply) const {
  ChatPieces turn = template_.user_turn_pieces(user_text, n_turns_ == 0);
  if (stored_reply != nullptr) {
    // As render(): a stored reply's header has no generation suffix, and the reply is content.
    std::string& header = turn.back().text;
    header.resize(header.size() - template_.generation_suffix().size());
    turn.push_back({template_.reply_lead(), false});
    turn.push_back({std::string(*stored_reply), true});
  }
  if (n_turns_ > 0) {
    ChatPieces pieces = {{pending_, false}};
    for (ChatPiece& p : turn) pieces.push_back(std::move(p));
    return encode_turn(pieces, false);
  }
  ChatPieces whole = template_.opening_pieces(options_.system);
  whole.insert(whole.end(), turn.begin(), turn.end());
  SLLM_ASSIGN_OR_RETURN(std::vector<TokenId> ids, encode_turn(whole, true));
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

Result<std::vector<TokenId>> ChatSession::begin_send(std::string_view user_text,
                                                     const StopOptions& stop) const {
  for (const std::string& s : stop.stop_strings) {
    if (s.empty()) return Error(ErrorCode::kInvalidInput, "a stop string must not be empty");
  }
  SLLM_ASSIGN_OR_RETURN(std::vector<TokenId> tokens, turn_tokens(user_text));
  if (tokens.empty() && session_->n_seen() == 0) {
    return Error(ErrorCode::kInvalidInput,
                 "the first turn is empty: there is nothing for the reply to follow");
  }
  const SessionOptions& session_options = session_->options();
  if (session_options.policy == CachePolicy::kDense &&
      session_->n_seen() + tokens.size() > session_options.window) {
    // Checked for the whole turn here, as feed() would per chunk: a turn that cannot fit
    // changes nothing.
    return Error(ErrorCode::kLimit, "dense attention would exceed its context limit of " +
                                        std::to_string(session_options.window) + " tokens (" +
                                        std::to_string(session_->n_seen()) + " fed, a turn of " +
                                        std::to_string(tokens.size()) + " more)");
  }
  return tokens;
}

bool ChatSession::end_prompt(size_t n_fed, size_t n_tokens) {
  ++n_turns_;
  if (n_fed < n_tokens) {
    // Part of the turn is in the stream: it counts as a turn with an empty reply, closed as any
    // reply is before the next turn.
    pending_ = template_.end_of_reply();
    return false;
  }
  pending_.clear();
  return true;
}

void ChatSession::end_reply(TokenId end_token) {
  // The closing is fed with the next turn. If the model ended the reply with the token the
  // closing starts with, that token was sampled but not fed: the closing from it on goes in.
  const std::string& closing = template_.end_of_reply();
  const std::string ended_text = token_text(tokenizer_->vocab(), end_token);
  const size_t at = ended_text.empty() ? std::string::npos : closing.find(ended_text);
  pending_ = at == std::string::npos ? closing : closing.substr(at);
}

Result<ChatReply> ChatSession::send(std::string_view user_text, const StopOptions& stop,
                                    const TextFn& on_text) {
  ChatReply reply;
  const auto start = std::chrono::steady_clock::now();
  SLLM_ASSIGN_OR_RETURN(reply.prompt_tokens, begin_send(user_text, stop));
  // Everything above leaves the chat as it was on error. The turn goes in by chunks of one
  // forward batch, so that an interrupt stops a long turn's prefill within one batch.
  SLLM_ASSIGN_OR_RETURN(
      const size_t n_fed,
      feed_interruptible(*session_, sampler_, reply.prompt_tokens, stop.interrupt));
  reply.n_prompt_tokens = n_fed;
  reply.prompt_seconds = seconds_since(start);
  if (!end_prompt(n_fed, reply.prompt_tokens.size())) {
    reply.prompt_tokens.resize(n_fed);
    reply.stop = StopReason::kInterrupted;
    return reply;
  }

  StreamDecoder decoder(*tokenizer_);  // a reply's text starts afresh
  StopOptions reply_stop = stop;
  reply_stop.at_end_of_generation = true;
  SLLM_ASSIGN_OR_RETURN(Generation g, decode(*session_, sampler_, &decoder, stop_tokens_,
                                             reply_stop, on_text, /*on_token=*/{}));
  const std::vector<TokenId> prompt_tokens = std::move(reply.prompt_tokens);
  const double prompt_seconds = reply.prompt_seconds;
  static_cast<Generation&>(reply) = std::move(g);
  reply.prompt_tokens = prompt_tokens;
  reply.n_prompt_tokens = prompt_tokens.size();
  reply.prompt_seconds = prompt_seconds;
  end_reply(reply.end_token);
  return reply;
}

Result<std::vector<TokenId>> ChatSession::begin_add_turn(std::string_view user_text,
                                                         std::string_view reply_text) const {
  SLLM_ASSIGN_OR_RETURN(std::vector<TokenId> ids, turn_tokens(user_text, &reply_text));
  const SessionOptions& session_options = session_->options();
  if (session_options.policy == CachePolicy::kDense &&
      session_->n_seen() + ids.size() > session_options.window) {
    return Error(ErrorCode::kLimit, "dense attention would exceed its context limit of " +
                                        std::to_string(session_options.window) + " tokens (" +
                                        std::to_string(session_->n_seen()) +
                                        " fed, an exchange of " + std::to_string(ids.size()) +
                                        " more)");
  }
  return ids;
}

void ChatSession::end_add_turn() {
  ++n_turns_;
  pending_ = template_.end_of_reply();
}

Result<size_t> ChatSession::add_turn(std::string_view user_text, std::string_view reply_text,
                                     const std::atomic<bool>* interrupt) {
  SLLM_ASSIGN_OR_RETURN(const std::vector<TokenId> ids, begin_add_turn(user_text, reply_text));
  SLLM_ASSIGN_OR_RETURN(const size_t n_fed,
                        feed_interruptible(*session_, sampler_, ids, interrupt));
  end_add_turn();
  return n_fed;
}

Status ChatSession::set_sampling(const SamplingOptions& sampling) {
  SLLM_RETURN_IF_ERROR(sampling.validate());
  Sampler next(sampling, sampler_.n_vocab());
  for (const int32_t token : sampler_.history()) next.accept(token);
  sampler_ = std::move(next);
  options_.sampling = sampling;
  return {};
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
