// The conversations the server holds: each is one Chat (an endless streaming cache) under an id.
//
// A request reaches a conversation by its id (the client sends only the new messages), or, with
// no id, by its history: a conversation is indexed by a hash of every message it has fed (system,
// then user and assistant turns, the replies as the server returned them), so that a client that
// resends the whole history gets the conversation whose history is the longest prefix of it, and
// only the messages after that prefix are fed (llama.cpp's prompt cache, at message granularity:
// a reply's text is matched, never re-tokenized, so a reply the tokenizer would split differently
// still matches). A conversation whose fed tokens are not the rendering of its messages (a reply
// cut at a stop string or by a client that left) is not indexed: resending its history starts a
// fresh conversation.
//
// At most max_live conversations hold a cache in memory. With a session directory every
// conversation is written there after each request (<id>.session: the library's session file;
// <id>.json: its history hash), so evicting the least recently used idle one costs no I/O, it
// comes back exactly on its next request, and a restarted server resumes all of them.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <variant>

#include "api_json.h"
#include "streamingllm/chat.h"
#include "streamingllm/model.h"

namespace sllm::server {

// 128 bits of two FNV-1a chains over the messages (role, length, bytes): a client cannot reach
// another's conversation without knowing its whole text.
struct HistoryHash {
  uint64_t a = 0;
  uint64_t b = 0;
  static HistoryHash start(std::string_view system);  // "" = no system message
  HistoryHash add(Role role, std::string_view content) const;
  std::string hex() const;
  static std::optional<HistoryHash> from_hex(std::string_view hex);
  bool operator==(const HistoryHash&) const = default;
};

struct Conversation {
  std::string id;
  std::unique_ptr<Chat> chat;  // null while it is on disk only
  HistoryHash hash;            // of every message fed
  bool reusable = true;        // fed tokens == the rendering of the messages: indexed by hash
  bool busy = false;           // a request holds it
  bool admitted = false;       // counts against max_live (its chat is in memory or on the way)
  bool on_disk = false;        // written to the session directory
  size_t cache_bytes = 0;      // K/V bytes of its chat while in memory
  uint64_t n_seen = 0;         // tokens its chat had fed when last released
  uint64_t last_used = 0;      // store tick of its last release (LRU)
};

using Acquired = std::variant<std::shared_ptr<Conversation>, ApiError>;

// What GET /v1/sessions/{id} tells about a conversation.
struct ConversationInfo {
  uint64_t n_seen = 0;  // as of its last finished request
  bool live = false;    // its cache is in memory
  bool on_disk = false;
  bool busy = false;
};

class ConversationStore {
 public:
  struct Options {
    std::shared_ptr<const Model> model;
    ChatOptions chat;  // template and cache; system and sampling are set per conversation
    size_t max_live = 64;
    std::string max_live_option = "--max-sessions";  // the option that set max_live, for 429s
    std::string dir;                                 // "" = conversations live in memory only
  };
  // Registers the conversations found in options.dir and locks it against a second server.
  static Result<std::unique_ptr<ConversationStore>> open(Options options);
  ~ConversationStore();

  // The conversation of this id, busy, its chat in memory (read back from disk if it was
  // evicted). 404 unknown id, 409 busy, 429 no room.
  Acquired acquire(const std::string& id);
  // The idle conversation whose history is the longest prefix of `messages` that ends with an
  // assistant message; *n_matched is that prefix's length. nullptr when none.
  std::shared_ptr<Conversation> acquire_prefix(std::span<const Message> messages,
                                               size_t* n_matched);
  // A new conversation, busy. 429 when there is no room.
  Acquired create(const std::string& system, const SamplingOptions& sampling);
  // Ends a request on the conversation: written to disk (with a directory), indexed by its
  // hash if reusable, idle again. drop: forgotten instead (a first request that failed).
  Status release(const std::shared_ptr<Conversation>& conversation, bool drop);

  std::optional<ConversationInfo> info(const std::string& id) const;  // nullopt: unknown id
  size_t n_live() const;     // conversations with a cache in memory
  size_t n_on_disk() const;  // conversations written to the directory
  size_t n_total() const;
  size_t cache_bytes() const;  // K/V bytes held by the live conversations
  // Since open(): conversations whose cache was dropped to make room (to disk, or forgotten
  // without a directory), and conversations read back from disk by a request.
  uint64_t n_evicted() const { return n_evicted_.load(); }
  uint64_t n_restored() const { return n_restored_.load(); }
  const std::string& dir() const { return options_.dir; }

 private:
  explicit ConversationStore(Options options);
  // Frees a slot for one more live conversation (evicting the LRU idle one): false if none.
  bool admit_locked();
  std::string session_path(const std::string& id) const;
  std::string new_id();
  void index_locked(const std::shared_ptr<Conversation>& c);
  void unindex_locked(const Conversation& c);

  struct HashKey {
    size_t operator()(const HistoryHash& h) const { return static_cast<size_t>(h.a ^ h.b); }
  };

  Options options_;
  std::optional<SessionLock> dir_lock_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Conversation>> by_id_;
  std::unordered_map<HistoryHash, std::string, HashKey> by_hash_;
  size_t n_admitted_ = 0;
  uint64_t tick_ = 0;
  std::atomic<uint64_t> n_evicted_{0};
  std::atomic<uint64_t> n_restored_{0};
};

}  // namespace sllm::server
