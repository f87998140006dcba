// A Chat: one conversation on an endless stream. Each user turn is rendered with the model's chat
// template and fed once; the history is never re-rendered or re-read, so a chat of any length
// costs the same per turn and the same memory. Old turns leave the window and are forgotten.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "streamingllm/error.h"
#include "streamingllm/model.h"
#include "streamingllm/options.h"
#include "streamingllm/stream.h"

namespace sllm {

struct ChatOptions {
  // A template name (chat_template_names()); "" = recognised from the model's
  // tokenizer.chat_template: plain when it has none, chatml when it is not recognised.
  std::string template_name;
  std::string system;        // the system message; "" for none
  bool keep_system = false;  // pin the opening (system message) as attention sinks: never evicted
  CacheOptions cache;
  SamplingOptions sampling;
};

// The templates chats can use: plain, llama2, llama3, chatml, mistral, zephyr, phi3, gemma, ...
std::vector<std::string> chat_template_names();

// The template a model's tokenizer.chat_template (Jinja source, "" for none) is recognised as:
// what ChatOptions::template_name = "" picks.
struct ChatTemplateChoice {
  std::string name;  // one of chat_template_names()
  std::string note;  // for the user when the choice is a guess (not recognised); else ""
};
ChatTemplateChoice choose_chat_template(std::string_view jinja);

// The user turns of an MT-Bench style JSONL file ({"turns": [...]} per line), in order; errors
// name the file and the line.
Result<std::vector<std::string>> read_chat_prompts(const std::string& path);

// A chat's session file, held for the life of this object: the path is checked to take an output
// file, and an advisory lock on "<file>.lock" (beside where symbolic links lead) makes a second
// holder fail at once instead of racing. Errors name the path (and no option of any program).
class SessionLock {
 public:
  static Result<SessionLock> acquire(const std::string& path);
  SessionLock(SessionLock&& other) noexcept;
  SessionLock& operator=(SessionLock&& other) noexcept;
  ~SessionLock();  // releases the lock and removes the lock file

  // Whether a regular file was there when the lock was taken (a session to resume with
  // Chat::load).
  bool exists() const;

  struct Impl;

 private:
  explicit SessionLock(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The reply (its text holds no stop string; stop says why it ended) and the turn's prompt.
struct ChatReply : Generation {
  std::vector<TokenId> prompt_tokens;  // fed for the turn (with the previous reply's closing)
};

class Chat {
 public:
  static Result<std::unique_ptr<Chat>> create(std::shared_ptr<const Model> model,
                                              const ChatOptions& options = {});
  // A chat saved by save(), on the same model; its options are the saved ones, except max_batch
  // (speed only, not state): 0 keeps the saved one.
  static Result<std::unique_ptr<Chat>> load(std::shared_ptr<const Model> model,
                                            const std::string& path, size_t max_batch = 0);
  ~Chat();
  Chat(const Chat&) = delete;
  Chat& operator=(const Chat&) = delete;

  // Feeds one user turn and generates the reply, passing its text to on_text as it comes.
  // stop.at_end_of_generation is implied (the reply ends at the model's end of turn). A turn
  // that fails (invalid UTF-8, an empty first turn) changes nothing.
  Result<ChatReply> send(std::string_view user_text, const StopOptions& stop = {},
                         const TextFn& on_text = {});

  // A past exchange as a client stored it (an OpenAI-style history): feeds the user turn and the
  // reply text as the chat template writes them, without generating. Returns the tokens fed:
  // all, or fewer when `interrupt` was set (the exchange then counts as fed). Errors change
  // nothing.
  Result<size_t> add_turn(std::string_view user_text, std::string_view reply_text,
                          const std::atomic<bool>* interrupt = nullptr);

  // Samples with these options from the next reply on: the random draw restarts from
  // sampling.seed; the repetition penalty keeps the tokens it has seen. save() stores them.
  Status set_sampling(const SamplingOptions& sampling);

  // Whether send() would take this turn (valid UTF-8, not an empty first turn, ...), without
  // changing anything.
  Status check_turn(std::string_view user_text) const;

  // Atomically writes the conversation's whole state; load() continues it exactly.
  Status save(const std::string& path) const;

  const ChatOptions& options() const;  // with the template name resolved
  uint64_t n_turns() const;
  size_t n_pinned() const;     // tokens pinned as sinks by keep_system, else 0
  uint64_t n_seen() const;     // tokens fed since the chat began
  size_t cache_bytes() const;  // bytes of K/V storage, fixed at creation
  // Every byte the chat holds at its largest, fixed at creation (Stream::memory_bytes); its
  // text (the pending reply, a stop string's lookahead) is not counted.
  size_t memory_bytes() const;
  size_t cache_tokens() const;  // tokens the cache holds when full
  // The cache as created: n_sinks is raised to the pinned opening with keep_system.
  const CacheOptions& cache_options() const;

  struct Impl;

 private:
  friend class Batch;
  explicit Chat(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sllm
