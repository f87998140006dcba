#include "runtime/session_file.h"

#include <bit>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "util/mapped_file.h"

namespace sllm {

namespace {

static_assert(std::endian::native == std::endian::little, "session files are little-endian");

constexpr std::string_view kMagic = "SLLMCHAT";
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 32;
constexpr size_t kTensorSampleBytes = 64;

// FNV-1a 64 (Fowler, Noll, Vo): one multiply per byte, and a single flipped bit always changes
// the hash (each step is a bijection of the state).
class Fnv1a64 {
 public:
  void add(std::span<const uint8_t> bytes) {
    for (uint8_t b : bytes) hash_ = (hash_ ^ b) * 0x100000001b3ull;
  }
  uint64_t value() const { return hash_; }

 private:
  uint64_t hash_ = 0xcbf29ce484222325ull;
};

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
  ByteReader(std::span<const uint8_t> bytes, const std::string& path)
      : bytes_(bytes), path_(path) {}

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
  Result<std::span<const uint8_t>> take_array(size_t elem_bytes, const char* field) {
    uint64_t n = 0;
    SLLM_RETURN_IF_ERROR(get(&n, field));
    if (n > (bytes_.size() - offset_) / elem_bytes) return corrupt(field);
    return take(static_cast<size_t>(n) * elem_bytes, field);
  }
  bool at_end() const { return offset_ == bytes_.size(); }

 private:
  Result<std::span<const uint8_t>> take(size_t n_bytes, const char* field) {
    if (n_bytes > bytes_.size() - offset_) return corrupt(field);
    const auto out = bytes_.subspan(offset_, n_bytes);
    offset_ += n_bytes;
    return out;
  }
  Error corrupt(const char* field) const {
    return Error(ErrorCode::kFormat, path_ + ": corrupt session file: the payload ends inside " +
                                         field + " (byte " +
                                         std::to_string(kHeaderBytes + offset_) + ")");
  }

  std::span<const uint8_t> bytes_;
  size_t offset_ = 0;
  const std::string& path_;
};

std::string hex64(uint64_t x) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, x >>= 4) out[static_cast<size_t>(i)] = kDigits[x & 15];
  return out;
}

Error bad_file(const std::string& path, const std::string& why) {
  return Error(ErrorCode::kFormat, path + ": " + why);
}

}  // namespace

Result<uint64_t> model_fingerprint(const GgufFile& gguf) {
  SLLM_ASSIGN_OR_RETURN(MappedFile file, MappedFile::open(gguf.path()));
  if (file.bytes().size() < gguf.data_offset()) {
    return bad_file(gguf.path(), "the file changed since it was loaded");
  }
  Fnv1a64 hash;
  hash.add(file.bytes().first(static_cast<size_t>(gguf.data_offset())));
  for (const GgufTensorInfo& tensor : gguf.tensors()) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(tensor.n_bytes, kTensorSampleBytes));
    hash.add(std::span(tensor.data, n));
  }
  return hash.value();
}

Status save_session_file(const std::string& path, const ChatSession& chat, uint64_t fingerprint,
                         const std::string& model_path) {
  const ChatOptions& o = chat.options();
  const SessionState state = chat.session().state();
  ByteWriter w;
  w.put<uint64_t>(fingerprint);
  w.put_string(model_path);
  w.put_string(o.template_name);
  w.put_string(o.system);
  w.put<uint8_t>(o.keep_system ? 1 : 0);
  w.put<uint32_t>(static_cast<uint32_t>(o.session.policy));
  w.put<uint64_t>(o.session.n_sinks);
  w.put<uint64_t>(chat.session().options().n_sinks);
  w.put<uint64_t>(o.session.window);
  w.put<uint32_t>(static_cast<uint32_t>(o.session.kv_type));
  w.put<uint64_t>(o.session.start_pos);
  w.put<uint64_t>(o.session.max_batch);
  w.put<float>(o.sampler.temperature);
  w.put<int32_t>(o.sampler.top_k);
  w.put<float>(o.sampler.top_p);
  w.put<float>(o.sampler.min_p);
  w.put<float>(o.sampler.repeat_penalty);
  w.put<int32_t>(o.sampler.repeat_last_n);
  w.put<uint64_t>(o.sampler.seed);
  w.put<uint64_t>(chat.n_turns());
  w.put_string(chat.pending());
  w.put_string(chat.sampler().save_state());
  w.put<uint64_t>(state.n_seen);
  w.put_array(state.last_logits);
  w.put_array(state.recent);
  w.put<uint64_t>(state.cache.n_seen);
  w.put<uint64_t>(state.cache.n_key_writes);
  w.put_array(state.cache.keys);
  w.put_array(state.cache.values);

  const std::vector<uint8_t>& payload = w.bytes();
  Fnv1a64 hash;
  hash.add(payload);
  ByteWriter header;
  for (char c : kMagic) header.put(c);
  header.put<uint32_t>(kVersion);
  header.put<uint32_t>(0);
  header.put<uint64_t>(payload.size());
  header.put<uint64_t>(hash.value());
  std::vector<uint8_t>& file = header.bytes();
  file.insert(file.end(), payload.begin(), payload.end());
  return write_file_atomic(path, file);
}

Result<SessionFile> SessionFile::read(const std::string& path, uint64_t fingerprint) {
  SessionFile f;
  f.path_ = path;
  SLLM_ASSIGN_OR_RETURN(f.file_, MappedFile::open(path));
  const std::span<const uint8_t> bytes = f.file_.bytes();
  if (bytes.size() < kHeaderBytes || std::memcmp(bytes.data(), kMagic.data(), kMagic.size()) != 0) {
    return bad_file(path, "not a streamingllm session file (no SLLMCHAT header)");
  }
  uint32_t version = 0;
  uint32_t reserved = 0;
  uint64_t payload_bytes = 0;
  uint64_t checksum = 0;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&reserved, bytes.data() + 12, 4);
  std::memcpy(&payload_bytes, bytes.data() + 16, 8);
  std::memcpy(&checksum, bytes.data() + 24, 8);
  if (version != kVersion) {
    return bad_file(path, "session file version " + std::to_string(version) +
                              " is not supported (this build reads version " +
                              std::to_string(kVersion) + ")");
  }
  if (reserved != 0) return bad_file(path, "corrupt session file: header bytes 12-15 are not zero");
  if (payload_bytes != bytes.size() - kHeaderBytes) {
    return bad_file(path, "truncated or damaged session file: the header announces " +
                              std::to_string(payload_bytes) + " bytes of payload, the file has " +
                              std::to_string(bytes.size() - kHeaderBytes));
  }
  const std::span<const uint8_t> payload = bytes.subspan(kHeaderBytes);
  Fnv1a64 hash;
  hash.add(payload);
  if (hash.value() != checksum) {
    return bad_file(path, "corrupt session file: checksum " + hex64(hash.value()) +
                              " does not match the stored " + hex64(checksum));
  }

  ByteReader r(payload, path);
  uint64_t saved_fingerprint = 0;
  std::string model_path;
  SLLM_RETURN_IF_ERROR(r.get(&saved_fingerprint, "the model fingerprint"));
  SLLM_RETURN_IF_ERROR(r.get_string(&model_path, "the model path"));
  if (saved_fingerprint != fingerprint) {
    return Error(ErrorCode::kInvalidInput,
                 path + ": the session was saved with another model (" + model_path +
                     ", fingerprint " + hex64(saved_fingerprint) + "; this model's is " +
                     hex64(fingerprint) + "); resume it with that model or start a new session");
  }
  ChatOptions& o = f.options_;
  uint8_t keep_system = 0;
  uint32_t policy = 0;
  uint32_t kv_type = 0;
  uint64_t n_sinks = 0, window = 0, max_batch = 0;
  SLLM_RETURN_IF_ERROR(r.get_string(&o.template_name, "the template name"));
  SLLM_RETURN_IF_ERROR(r.get_string(&o.system, "the system message"));
  SLLM_RETURN_IF_ERROR(r.get(&keep_system, "keep_system"));
  SLLM_RETURN_IF_ERROR(r.get(&policy, "the cache policy"));
  SLLM_RETURN_IF_ERROR(r.get(&n_sinks, "the sink count"));
  SLLM_RETURN_IF_ERROR(r.get(&f.n_sinks_, "the sink count"));
  SLLM_RETURN_IF_ERROR(r.get(&window, "the window"));
  SLLM_RETURN_IF_ERROR(r.get(&kv_type, "the KV type"));
  SLLM_RETURN_IF_ERROR(r.get(&o.session.start_pos, "the start position"));
  SLLM_RETURN_IF_ERROR(r.get(&max_batch, "the batch size"));
  SLLM_RETURN_IF_ERROR(r.get(&o.sampler.temperature, "the temperature"));
  SLLM_RETURN_IF_ERROR(r.get(&o.sampler.top_k, "top-k"));
  SLLM_RETURN_IF_ERROR(r.get(&o.sampler.top_p, "top-p"));
  SLLM_RETURN_IF_ERROR(r.get(&o.sampler.min_p, "min-p"));
  SLLM_RETURN_IF_ERROR(r.get(&o.sampler.repeat_penalty, "the repeat penalty"));
  SLLM_RETURN_IF_ERROR(r.get(&o.sampler.repeat_last_n, "repeat-last-n"));
  SLLM_RETURN_IF_ERROR(r.get(&o.sampler.seed, "the seed"));
  SLLM_RETURN_IF_ERROR(r.get(&f.n_turns_, "the turn count"));
  SLLM_RETURN_IF_ERROR(r.get_string(&f.pending_, "the pending text"));
  SLLM_RETURN_IF_ERROR(r.get_string(&f.sampler_state_, "the sampler state"));
  SLLM_RETURN_IF_ERROR(r.get(&f.n_seen_, "the stream position"));
  SLLM_RETURN_IF_ERROR(r.get_vector(&f.last_logits_, "the last logits"));
  SLLM_RETURN_IF_ERROR(r.get_vector(&f.recent_, "the recompute window"));
  SLLM_RETURN_IF_ERROR(r.get(&f.cache_n_seen_, "the cache position"));
  SLLM_RETURN_IF_ERROR(r.get(&f.n_key_writes_, "the key write count"));
  SLLM_ASSIGN_OR_RETURN(f.keys_, r.take_array(1, "the keys"));
  SLLM_ASSIGN_OR_RETURN(f.values_, r.take_array(1, "the values"));
  if (!r.at_end()) return bad_file(path, "corrupt session file: bytes after the values");
  if (policy > static_cast<uint32_t>(CachePolicy::kRecompute) ||
      (kv_type != static_cast<uint32_t>(TensorType::kF32) &&
       kv_type != static_cast<uint32_t>(TensorType::kF16)) ||
      keep_system > 1) {
    return bad_file(path, "corrupt session file: bad cache options");
  }
  o.keep_system = keep_system == 1;
  o.session.policy = static_cast<CachePolicy>(policy);
  o.session.kv_type = static_cast<TensorType>(kv_type);
  o.session.n_sinks = static_cast<size_t>(n_sinks);
  o.session.window = static_cast<size_t>(window);
  o.session.max_batch = static_cast<size_t>(max_batch);
  return f;
}

Status SessionFile::restore(ChatSession& chat) const {
  const SessionOptions& s = chat.session().options();
  if (chat.options().template_name != options_.template_name ||
      chat.options().system != options_.system || s.policy != options_.session.policy ||
      s.n_sinks != n_sinks_ || s.window != options_.session.window ||
      s.kv_type != options_.session.kv_type || s.start_pos != options_.session.start_pos) {
    return Error(ErrorCode::kInvalidInput,
                 path_ + ": the chat was not created with the session file's options");
  }
  const SessionState state{n_seen_, last_logits_, recent_,
                           KvCacheContents{cache_n_seen_, n_key_writes_, keys_, values_}};
  Status status = chat.restore(n_turns_, pending_, sampler_state_, state);
  if (!status.ok()) return status.error().with_context(path_);
  return {};
}

}  // namespace sllm
