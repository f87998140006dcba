#include "conversations.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

namespace sllm::server {

namespace {

constexpr uint64_t kFnvPrime = 0x100000001b3ull;

uint64_t fnv(uint64_t h, std::string_view bytes) {
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= kFnvPrime;
  }
  return h;
}

std::string u64_bytes(uint64_t v) {
  std::string out(8, '\0');
  for (size_t i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return out;
}

// The sidecar file: what the session file does not hold (the history hash).
Status write_sidecar(const std::string& path, const Conversation& c) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << nlohmann::json{{"hash", c.hash.hex()}, {"reusable", c.reusable}}.dump() << "\n";
    out.flush();
    if (!out) return Error(ErrorCode::kIo, "cannot write '" + tmp + "'");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Error(ErrorCode::kIo, "cannot rename '" + tmp + "': " + ec.message());
  return {};
}

void read_sidecar(const std::string& path, Conversation& c) {
  c.reusable = false;
  std::ifstream in(path);
  if (!in) return;
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    const auto hash = HistoryHash::from_hex(j.at("hash").get<std::string>());
    if (!hash) return;
    c.hash = *hash;
    c.reusable = j.at("reusable").get<bool>();
  } catch (const std::exception&) {
    c.reusable = false;  // a damaged sidecar costs prefix reuse only; the id still resumes
  }
}

}  // namespace

HistoryHash HistoryHash::start(std::string_view system) {
  HistoryHash h{0xcbf29ce484222325ull, 0x6c62272e07bb0142ull};
  return h.add(Role::kSystem, system);
}

HistoryHash HistoryHash::add(Role role, std::string_view content) const {
  const std::string head = std::string(1, static_cast<char>(role)) + u64_bytes(content.size());
  return {fnv(fnv(a, head), content), fnv(fnv(b, content), head)};
}

std::string HistoryHash::hex() const {
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return buf;
}

std::optional<HistoryHash> HistoryHash::from_hex(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  HistoryHash h;
  for (size_t i = 0; i < 32; ++i) {
    const char c = hex[i];
    uint64_t d = 0;
    if (c >= '0' && c <= '9') {
      d = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<uint64_t>(c - 'a' + 10);
    } else {
      return std::nullopt;
    }
    uint64_t& word = i < 16 ? h.a : h.b;
    word = (word << 4) | d;
  }
  return h;
}

ConversationStore::ConversationStore(Options options) : options_(std::move(options)) {}
ConversationStore::~ConversationStore() = default;

Result<std::unique_ptr<ConversationStore>> ConversationStore::open(Options options) {
  if (options.max_live == 0) return Error(ErrorCode::kInvalidInput, "max sessions must be >= 1");
  std::unique_ptr<ConversationStore> store(new ConversationStore(std::move(options)));
  const std::string& dir = store->options_.dir;
  if (dir.empty()) return store;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return Error(ErrorCode::kIo, "session directory '" + dir + "' is not a directory");
  }
  Result<SessionLock> lock = SessionLock::acquire(dir + "/serve");
  if (!lock.ok()) return lock.error().with_context("session directory '" + dir + "'");
  store->dir_lock_.emplace(std::move(*lock));
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::filesystem::path& p = entry.path();
    if (p.extension() != ".session" || !entry.is_regular_file()) continue;
    const std::string id = p.stem().string();
    if (!valid_session_id(id)) continue;
    auto c = std::make_shared<Conversation>();
    c->id = id;
    c->on_disk = true;
    read_sidecar(dir + "/" + id + ".json", *c);
    store->by_id_[id] = c;
    store->index_locked(c);
  }
  if (ec) return Error(ErrorCode::kIo, "cannot list '" + dir + "': " + ec.message());
  return store;
}

std::string ConversationStore::session_path(const std::string& id) const {
  return options_.dir + "/" + id + ".session";
}

std::string ConversationStore::new_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}() ^
                                          (uint64_t{std::random_device{}()} << 32)};
  for (;;) {
    char buf[40];
    std::snprintf(buf, sizeof(buf), "sess-%016llx%08llx", static_cast<unsigned long long>(rng()),
                  static_cast<unsigned long long>(rng() & 0xffffffffu));
    if (by_id_.count(buf) == 0) return buf;
  }
}

void ConversationStore::index_locked(const std::shared_ptr<Conversation>& c) {
  if (c->reusable) by_hash_[c->hash] = c->id;
}

void ConversationStore::unindex_locked(const Conversation& c) {
  const auto it = by_hash_.find(c.hash);
  if (it != by_hash_.end() && it->second == c.id) by_hash_.erase(it);
}

bool ConversationStore::admit_locked() {
  if (n_admitted_ < options_.max_live) {
    ++n_admitted_;
    return true;
  }
  std::shared_ptr<Conversation> victim;
  for (const auto& [id, c] : by_id_) {
    if (c->busy || !c->admitted) continue;
    if (victim == nullptr || c->last_used < victim->last_used) victim = c;
  }
  if (victim == nullptr) return false;
  // With a directory the disk copy is current (written after every request): evicting is
  // dropping the cache. Without one the conversation is gone.
  victim->chat.reset();
  victim->cache_bytes = 0;
  victim->admitted = false;
  ++n_evicted_;
  if (!victim->on_disk) {
    unindex_locked(*victim);
    by_id_.erase(victim->id);
  }
  return true;  // the victim's slot is the new one's
}

namespace {
ApiError no_room(size_t max_live, const std::string& option) {
  return ApiError{429,
                  "all " + std::to_string(max_live) + " sessions are busy (" + option +
                      "); retry after the Retry-After seconds",
                  "rate_limit_error", "server_busy"};
}
}  // namespace

Acquired ConversationStore::acquire(const std::string& id) {
  std::shared_ptr<Conversation> c;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = by_id_.find(id);
    if (it == by_id_.end()) {
      return ApiError{404, "unknown session id '" + id + "'", "invalid_request_error",
                      "session_not_found"};
    }
    c = it->second;
    if (c->busy) {
      return ApiError{
          409,
          "session '" + id + "' is busy with another request; send the next one when it is done",
          "invalid_request_error", "session_busy"};
    }
    if (!c->admitted) {
      if (!admit_locked()) return no_room(options_.max_live, options_.max_live_option);
      c->admitted = true;
    }
    c->busy = true;
    unindex_locked(*c);
  }
  if (c->chat == nullptr) {
    auto chat = Chat::load(options_.model, session_path(id), options_.chat.cache.max_batch);
    if (!chat.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      c->busy = false;
      c->admitted = false;
      --n_admitted_;
      index_locked(c);
      return ApiError{500, "cannot resume session '" + id + "': " + chat.error().message(),
                      "server_error", "session_unreadable"};
    }
    c->chat = std::move(*chat);
    ++n_restored_;
    std::lock_guard<std::mutex> lock(mu_);
    c->cache_bytes = c->chat->cache_bytes();
  }
  return c;
}

std::shared_ptr<Conversation> ConversationStore::acquire_prefix(std::span<const Message> messages,
                                                                size_t* n_matched) {
  // The hashes of every prefix that ends with an assistant message, longest first.
  const bool has_system = !messages.empty() && messages[0].role == Role::kSystem;
  HistoryHash h = HistoryHash::start(has_system ? messages[0].content : "");
  std::vector<std::pair<HistoryHash, size_t>> prefixes;
  for (size_t i = has_system ? 1 : 0; i < messages.size(); ++i) {
    h = h.add(messages[i].role, messages[i].content);
    if (messages[i].role == Role::kAssistant) prefixes.push_back({h, i + 1});
  }
  std::shared_ptr<Conversation> c;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto p = prefixes.rbegin(); p != prefixes.rend() && c == nullptr; ++p) {
      const auto it = by_hash_.find(p->first);
      if (it == by_hash_.end()) continue;
      const std::shared_ptr<Conversation>& found = by_id_.at(it->second);
      if (found->busy) continue;
      if (!found->admitted) {
        if (!admit_locked()) return nullptr;
        found->admitted = true;
      }
      c = found;
      *n_matched = p->second;
    }
    if (c == nullptr) return nullptr;
    c->busy = true;
    unindex_locked(*c);
  }
  if (c->chat == nullptr) {
    auto chat = Chat::load(options_.model, session_path(c->id), options_.chat.cache.max_batch);
    if (!chat.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      c->busy = false;
      c->admitted = false;
      c->reusable = false;  // not offered again
      --n_admitted_;
      return nullptr;
    }
    c->chat = std::move(*chat);
    ++n_restored_;
    std::lock_guard<std::mutex> lock(mu_);
    c->cache_bytes = c->chat->cache_bytes();
  }
  return c;
}

Acquired ConversationStore::create(const std::string& system, const SamplingOptions& sampling) {
  auto c = std::make_shared<Conversation>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!admit_locked()) return no_room(options_.max_live, options_.max_live_option);
    c->id = new_id();
    c->admitted = true;
    c->busy = true;
    c->hash = HistoryHash::start(system);
    by_id_[c->id] = c;
  }
  ChatOptions options = options_.chat;
  options.system = system;
  options.sampling = sampling;
  auto chat = Chat::create(options_.model, options);
  if (!chat.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    by_id_.erase(c->id);
    --n_admitted_;
    return ApiError{chat.error().code() == ErrorCode::kInvalidInput ? 400 : 500,
                    chat.error().message(), "invalid_request_error", "invalid_value"};
  }
  c->chat = std::move(*chat);
  std::lock_guard<std::mutex> lock(mu_);
  c->cache_bytes = c->chat->cache_bytes();
  return c;
}

Status ConversationStore::release(const std::shared_ptr<Conversation>& c, bool drop) {
  // The files are written outside the lock (the conversation is busy: no other request
  // touches its chat), but every field that info() and n_on_disk() read is set under it.
  Status written;
  const bool write = !drop && !options_.dir.empty();
  if (write) {
    written = c->chat->save(session_path(c->id));
    if (written.ok()) written = write_sidecar(options_.dir + "/" + c->id + ".json", *c);
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (write && written.ok()) c->on_disk = true;
  c->busy = false;
  c->last_used = ++tick_;
  if (c->chat != nullptr) c->n_seen = c->chat->n_seen();
  if (drop) {
    c->chat.reset();
    c->cache_bytes = 0;
    if (c->admitted) --n_admitted_;
    c->admitted = false;
    if (c->on_disk) {
      c->reusable = false;
    } else {
      by_id_.erase(c->id);
    }
    return written;
  }
  index_locked(c);
  return written;
}

std::optional<ConversationInfo> ConversationStore::info(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  const Conversation& c = *it->second;
  return ConversationInfo{c.n_seen, c.admitted, c.on_disk, c.busy};
}

size_t ConversationStore::n_live() const {
  std::lock_guard<std::mutex> lock(mu_);
  return n_admitted_;
}

size_t ConversationStore::n_on_disk() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [id, c] : by_id_) n += c->on_disk ? 1 : 0;
  return n;
}

size_t ConversationStore::n_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return by_id_.size();
}

size_t ConversationStore::cache_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [id, c] : by_id_) n += c->cache_bytes;
  return n;
}

}  // namespace sllm::server
