// A Batch: many generations on streams and chats of one model advanced together, one forward
// pass per step. Each step feeds every generating member its next token and every member still
// reading its prompt a chunk of it, so the weights are read once per step for all of them while
// each member attends over its own cache. Every member ends exactly as it would alone: the same
// tokens, the same text, the same logits and cache, bit for bit (the model's rows are computed
// independently of each other; tests/batch_test.cc checks it).
//
//   auto batch = sllm::Batch::create(model);
//   auto a = (*batch)->add(*stream_a, prompt_a, stop, on_text_a);  // Stream::feed + generate
//   auto b = (*batch)->add(*chat_b, "Hello!", stop, on_text_b);    // Chat::send
//   while (!(*batch)->empty()) {
//     for (sllm::BatchResult& r : (*batch)->step()) { ... r.id, r.status, r.reply ... }
//   }
//
// Members join (add) and leave (when they finish, or their StopOptions::interrupt is set) between
// steps. While a stream or chat is in a batch it must not be used otherwise; it may be in one
// batch once at a time. step() holds the model's compute lock: streams of the same model wait.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "streamingllm/chat.h"
#include "streamingllm/error.h"
#include "streamingllm/model.h"
#include "streamingllm/options.h"
#include "streamingllm/stream.h"

namespace sllm {

struct BatchOptions {
  // The most rows (tokens) of one forward pass: every generating member's next token, then
  // prompt chunks while rows are left. Sizes the batch's activations ([max_rows, model dims]).
  size_t max_rows = 256;
  // The most prompt tokens one member feeds per step (at most its CacheOptions::max_batch), and
  // all members together: a long prompt goes in between decode steps, each step costing at most
  // the generating members' rows plus max_prompt_rows, instead of stalling the others. Members
  // still reading their prompts take the rows in the order they joined.
  size_t prompt_chunk = 64;
  size_t max_prompt_rows = 64;
  Status validate() const;
};

// An exchange of a conversation as a client stored it (Chat::add_turn).
struct ChatExchange {
  std::string user;
  std::string reply;
};

// A member that finished, in the step it finished.
struct BatchResult {
  uint64_t id = 0;  // as add() returned it
  Status status;    // an error ends its member alone (the others go on)
  // The generation. For a stream: prompt_tokens and n_prompt_tokens are the prompt fed. For a
  // chat: as Chat::send returns it; prompt_tokens are the user turn's (the exchanges' are
  // counted in n_history_tokens).
  ChatReply reply;
  uint64_t n_history_tokens = 0;  // chat: tokens of the exchanges fed before the turn
};

class Batch {
 public:
  static Result<std::unique_ptr<Batch>> create(std::shared_ptr<const Model> model,
                                               const BatchOptions& options = {});
  ~Batch();
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  // Stream::feed(prompt) then Stream::generate(stop, on_text, on_token), step by step: the
  // prompt's text goes through the stream's decoder (not to on_text); an interrupt during the
  // prompt stops it between chunks (the first chunk always goes in) and ends the member with
  // StopReason::kInterrupted. Returns the member's id.
  Result<uint64_t> add(Stream& stream, std::vector<TokenId> prompt, const StopOptions& stop,
                       TextFn on_text = {}, TokenFn on_token = {});
  // Chat::add_turn for each of `history`, then Chat::send(user_text, stop, on_text), step by
  // step. The turn is checked here (as Chat::send would, before anything is fed); an exchange
  // that turns out bad ends the member with its error (those before it stay fed).
  Result<uint64_t> add(Chat& chat, std::string_view user_text, const StopOptions& stop,
                       TextFn on_text = {}, std::vector<ChatExchange> history = {});

  // One forward pass for every member, then sampling, text and stops for each. Returns the
  // members that finished in it (they have left the batch).
  std::vector<BatchResult> step();

  size_t size() const;  // members not finished
  bool empty() const { return size() == 0; }
  // Rows of the last step: generating members and prompt tokens.
  size_t last_rows() const;

  struct Impl;

 private:
  explicit Batch(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sllm
