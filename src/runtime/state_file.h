// What chat session files (SLLMCHAT, session_file.h) and stream files (SLLMSTRM, stream_file.h)
// share: the header with its checksum, the atomic write, the model fingerprint, the cache and
// sampler options, the session state with its K/V, and the validation of all of these against
// the model. Each kind adds its own fields around them; docs/chat.md lists both layouts.
//
// Header (little-endian):
//   [0, 8)    magic: "SLLMCHAT" or "SLLMSTRM"
//   [8, 12)   u32 format version (chat 2, stream 1)
//   [12, 16)  u32 zero
//   [16, 24)  u64 payload size in bytes (the file is exactly 32 + that long)
//   [24, 32)  u64 FNV-1a 64 of the payload
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "gguf/gguf.h"
#include "model/config.h"
#include "runtime/session.h"
#include "streamingllm/error.h"
#include "streamingllm/options.h"
#include "util/mapped_file.h"

namespace sllm {

enum class StateFileKind { kChat, kStream };

// "session file" or "stream file", as error messages name them.
const char* state_file_noun(StateFileKind kind);

// Identifies a model file: FNV-1a 64 over everything before the tensor data (header, metadata,
// tensor infos), every tensor's name, type and shape, and its data: whole up to 64 KiB, else 64
// runs of 64 bytes spread evenly from its first byte to its last. Another vocabulary,
// quantisation, shape or set of weights gives another fingerprint; hashing all the weights would
// cost seconds per load.
Result<uint64_t> model_fingerprint(const GgufFile& gguf);

std::string hex64(uint64_t x);

class ByteWriter {
 public:
  template <typename T>
  void put(T value) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const uint8_t*>(&value);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
  }
  void put_string(std::string_view s) { put_array(std::span(s.data(), s.size())); }
  // u64 element count, then the elements.
  template <typename T>
  void put_array(std::span<const T> items) {
    put<uint64_t>(items.size());
    const auto* p = reinterpret_cast<const uint8_t*>(items.data());
    bytes_.insert(bytes_.end(), p, p + items.size_bytes());
  }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// Reads what ByteWriter wrote; every read is bounds-checked and names the field for the error.
class ByteReader {
 public:
  ByteReader(std::span<const uint8_t> payload, const std::string& path, StateFileKind kind)
      : bytes_(payload), path_(path), kind_(kind) {}

  template <typename T>
  Status get(T* value, const char* field) {
    SLLM_ASSIGN_OR_RETURN(auto raw, take(sizeof(T), field));
    std::memcpy(value, raw.data(), sizeof(T));
    return {};
  }
  Status get_string(std::string* s, const char* field) {
    SLLM_ASSIGN_OR_RETURN(auto raw, take_array(1, field));
    s->assign(reinterpret_cast<const char*>(raw.data()), raw.size());
    return {};
  }
  template <typename T>
  Status get_vector(std::vector<T>* items, const char* field) {
    SLLM_ASSIGN_OR_RETURN(auto raw, take_array(sizeof(T), field));
    items->resize(raw.size() / sizeof(T));
    if (!raw.empty()) std::memcpy(items->data(), raw.data(), raw.size());
    return {};
  }
  Result<std::span<const uint8_t>> take_array(size_t elem_bytes, const char* field);
  bool at_end() const { return offset_ == bytes_.size(); }

 private:
  Result<std::span<const uint8_t>> take(size_t n_bytes, const char* field);
  Error corrupt(const char* field) const;

  std::span<const uint8_t> bytes_;
  size_t offset_ = 0;
  const std::string& path_;
  StateFileKind kind_;
};

// Header and payload to `path`, atomically (temp file, fsync, rename).
Status write_state_file(const std::string& path, StateFileKind kind,
                        std::span<const uint8_t> payload);
// Maps `path` into *file and checks the header: the magic (a file of the other kind is named as
// such), version, size and checksum. Returns the payload, a view into *file.
Result<std::span<const uint8_t>> read_state_file(const std::string& path, StateFileKind kind,
                                                 MappedFile* file);

// The payload's first fields: the model's fingerprint and path (for messages only).
void put_model(ByteWriter& w, uint64_t fingerprint, const std::string& model_path);
// Fails unless the file was saved with the model of `fingerprint`.
Status check_model(ByteReader& r, const std::string& path, StateFileKind kind,
                   uint64_t fingerprint);

// Cache options as asked, the sinks the session keeps (more with keep_system), then every
// sampler option and the seed.
void put_options(ByteWriter& w, const CacheOptions& cache, size_t effective_sinks,
                 const SamplingOptions& sampling);
// Stream position, last logits, recompute window, cache position, key writes, K, V.
void put_session_state(ByteWriter& w, const SessionState& state);

// The fields both kinds hold, as read; validate() checks them before anything is sized from them.
struct SavedState {
  // What only a chat file has, checked where the chat's own validation always checked it.
  struct ChatFields {
    uint8_t keep_system = 0;
    std::string template_problem;  // why the template name is unknown, or empty
    uint64_t n_turns = 0;
  };

  uint32_t policy = 0;
  uint64_t n_sinks = 0;          // as asked
  uint64_t effective_sinks = 0;  // as the session keeps them
  uint64_t window = 0;
  uint32_t kv_type = 0;
  uint64_t start_pos = 0;
  uint64_t max_batch = 0;
  SamplingOptions sampling;
  std::string sampler_state;
  uint64_t n_seen = 0;
  std::vector<float> last_logits;
  std::vector<TokenId> recent;
  uint64_t cache_n_seen = 0;
  uint64_t n_key_writes = 0;
  std::span<const uint8_t> keys;  // views into the mapped file
  std::span<const uint8_t> values;

  Status read_options(ByteReader& r);
  Status read_session_state(ByteReader& r);
  // Every field against the model and the others; `chat` is null for a stream file. The message
  // names the field and its value.
  Status validate(const std::string& path, StateFileKind kind, const ModelConfig& model,
                  const ChatFields* chat) const;

  // After validate(): the cache options as asked, and the session's state.
  CacheOptions cache_options() const;
  SessionState session_state() const;
};

}  // namespace sllm
