#include "runtime/session_file.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <optional>
#include <string_view>
#include <type_traits>

#include "util/limits.h"
#include "util/mapped_file.h"

namespace sllm {

namespace {

static_assert(std::endian::native == std::endian::little, "session files are little-endian");

constexpr std::string_view kMagic = "SLLMCHAT";
// 2: the fingerprint samples every tensor across all of its data (version 1 read its first 64
// bytes only).
constexpr uint32_t kVersion = 2;
constexpr size_t kHeaderBytes = 32;
// The fingerprint hashes a tensor of up to kWholeTensorBytes whole, a larger one as kSamples
// runs of kSampleBytes spread evenly from its first byte to its last.
constexpr uint64_t kWholeTensorBytes = 64 * 1024;
constexpr uint64_t kSamples = 64;
constexpr uint64_t kSampleBytes = 64;
// Positions are kept exact in doubles (RoPE angles); a stream will not reach 2^53 tokens.
constexpr uint64_t kMaxPosition = uint64_t{1} << 53;
// Bounds on what a session file may ask to allocate besides the K/V it holds itself.
constexpr uint64_t kMaxBatch = 65536;
constexpr int32_t kMaxRepeatLastN = 1 << 24;

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
  ByteWriter info;  // name, type and shape again, so that no layout of the header hides them
  for (const GgufTensorInfo& tensor : gguf.tensors()) {
    info.put_string(tensor.name);
    info.put<uint32_t>(static_cast<uint32_t>(tensor.type));
    info.put_array(std::span<const uint64_t>(tensor.dims));
    info.put<uint64_t>(tensor.n_bytes);
  }
  hash.add(info.bytes());
  for (const GgufTensorInfo& tensor : gguf.tensors()) {
    const uint64_t n_bytes = tensor.n_bytes;
    if (n_bytes <= kWholeTensorBytes) {
      hash.add(std::span(tensor.data, static_cast<size_t>(n_bytes)));
      continue;
    }
    // Run i starts i / (kSamples - 1) of the way to the last run, so the first and the last
    // bytes are always among them; split in quotient and remainder so that nothing overflows.
    for (uint64_t i = 0; i < kSamples; ++i) {
      const uint64_t at = (n_bytes - kSampleBytes) / (kSamples - 1) * i +
                          (n_bytes - kSampleBytes) % (kSamples - 1) * i / (kSamples - 1);
      hash.add(std::span(tensor.data + at, static_cast<size_t>(kSampleBytes)));
    }
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
  w.put<uint32_t>(static_cast<uint32_t>(o.cache.policy));
  w.put<uint64_t>(o.cache.n_sinks);
  w.put<uint64_t>(chat.session().options().n_sinks);
  w.put<uint64_t>(o.cache.window);
  w.put<uint32_t>(static_cast<uint32_t>(o.cache.kv_type));
  w.put<uint64_t>(o.cache.start_pos);
  w.put<uint64_t>(o.cache.max_batch);
  w.put<float>(o.sampling.temperature);
  w.put<int32_t>(o.sampling.top_k);
  w.put<float>(o.sampling.top_p);
  w.put<float>(o.sampling.min_p);
  w.put<float>(o.sampling.repeat_penalty);
  w.put<int32_t>(o.sampling.repeat_last_n);
  w.put<uint64_t>(o.sampling.seed);
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

Result<SessionFile> SessionFile::read(const std::string& path, uint64_t fingerprint,
                                      const ModelConfig& model) {
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
  SLLM_RETURN_IF_ERROR(r.get(&o.cache.start_pos, "the start position"));
  SLLM_RETURN_IF_ERROR(r.get(&max_batch, "the batch size"));
  SLLM_RETURN_IF_ERROR(r.get(&o.sampling.temperature, "the temperature"));
  SLLM_RETURN_IF_ERROR(r.get(&o.sampling.top_k, "top-k"));
  SLLM_RETURN_IF_ERROR(r.get(&o.sampling.top_p, "top-p"));
  SLLM_RETURN_IF_ERROR(r.get(&o.sampling.min_p, "min-p"));
  SLLM_RETURN_IF_ERROR(r.get(&o.sampling.repeat_penalty, "the repeat penalty"));
  SLLM_RETURN_IF_ERROR(r.get(&o.sampling.repeat_last_n, "repeat-last-n"));
  SLLM_RETURN_IF_ERROR(r.get(&o.sampling.seed, "the seed"));
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
  SLLM_RETURN_IF_ERROR(f.validate(keep_system, policy, kv_type, n_sinks, window, max_batch, model));
  return f;
}

// Every field is checked against the model and against the others before anything is sized
// from it: the cache a ChatSession creates from options() must be exactly the one whose keys and
// values the file holds, so a crafted window or sink count cannot allocate more than the file
// itself brought.
Status SessionFile::validate(uint8_t keep_system, uint32_t policy, uint32_t kv_type,
                             uint64_t n_sinks, uint64_t window, uint64_t max_batch,
                             const ModelConfig& model) {
  auto invalid = [&](const std::string& why) {
    return Error(ErrorCode::kFormat, path_ + ": invalid session file: " + why);
  };
  auto str = [](auto x) { return std::to_string(x); };
  if (policy > static_cast<uint32_t>(CachePolicy::kRecompute)) {
    return invalid("the cache policy " + str(policy) +
                   " is not one of 0-3 (dense, window, streaming, recompute)");
  }
  const auto cache_policy = static_cast<CachePolicy>(policy);
  if (kv_type != static_cast<uint32_t>(TensorType::kF32) &&
      kv_type != static_cast<uint32_t>(TensorType::kF16)) {
    return invalid("the KV type " + str(kv_type) + " is neither f32 (" +
                   str(static_cast<uint32_t>(TensorType::kF32)) + ") nor f16 (" +
                   str(static_cast<uint32_t>(TensorType::kF16)) + ")");
  }
  if (keep_system > 1) return invalid("keep_system " + str(keep_system) + " is not 0 or 1");
  if (keep_system == 1 && cache_policy != CachePolicy::kStreaming) {
    return invalid("keep_system is set with the " + std::string(policy_name(cache_policy)) +
                   " policy; it needs the streaming policy");
  }
  const auto& names = ChatTemplate::names();
  if (std::find(names.begin(), names.end(), options_.template_name) == names.end()) {
    return invalid("the template name '" + options_.template_name + "' is not a known template");
  }
  if (window == 0) return invalid("the window 0 must be at least 1");
  if (!checked_add(n_sinks, window) || !checked_add(n_sinks_, window)) {
    return invalid("the sink count " + str(std::max(n_sinks, n_sinks_)) + " + the window " +
                   str(window) + " overflows");
  }
  if (n_sinks_ < n_sinks || (keep_system == 0 && n_sinks_ != n_sinks)) {
    return invalid("the effective sink count " + str(n_sinks_) + " does not follow from the sink " +
                   "count " + str(n_sinks) + (keep_system ? " (it can only be larger)" : ""));
  }
  if (max_batch == 0 || max_batch > kMaxBatch) {
    return invalid("the batch size " + str(max_batch) + " is not in [1, " + str(kMaxBatch) + "]");
  }
  // Session buffers: max_batch rows of logits.
  if (Result<uint64_t> batch_bytes =
          checked_bytes("the batch logits of a session of batch size " + str(max_batch),
                        {max_batch, model.n_vocab, sizeof(float)});
      !batch_bytes.ok()) {
    return invalid(batch_bytes.error().message());
  }
  if (Status s = options_.sampling.validate(); !s.ok()) {
    return invalid("sampler options: " + s.error().message());
  }
  if (options_.sampling.repeat_last_n > kMaxRepeatLastN) {
    return invalid("repeat-last-n " + str(options_.sampling.repeat_last_n) + " is larger than " +
                   str(kMaxRepeatLastN));
  }

  // K/V: exactly what a cache of these options holds, checked first: every buffer a ChatSession
  // creates from options() is then no larger than what the file itself brought.
  const uint64_t cache_sinks = cache_policy == CachePolicy::kStreaming ? n_sinks_ : 0;
  const uint64_t elem_bytes = kv_type == static_cast<uint32_t>(TensorType::kF16) ? 2 : 4;
  const uint64_t n_slots = cache_sinks + window;  // checked above
  // Each layer's slots: n_slots, or a sliding-window layer's native window (at most n_slots).
  const KvCacheShape shape = cache_shape(model, static_cast<size_t>(n_slots));
  KvCacheOptions cache_options;
  cache_options.n_sinks = static_cast<size_t>(cache_sinks);
  cache_options.window = static_cast<size_t>(window);
  std::vector<uint64_t> layer_slots(model.n_layers);
  std::optional<uint64_t> expected = 0;
  for (size_t l = 0; l < model.n_layers; ++l) {
    layer_slots[l] = KvCache::layer_slots(shape, cache_options, l);
    if (expected) expected = checked_add(*expected, layer_slots[l]);
  }
  if (expected) expected = checked_mul(*expected, model.kv_dim());
  if (expected) expected = checked_mul(*expected, elem_bytes);
  if (!expected || keys_.size() != *expected || values_.size() != *expected) {
    return invalid("the keys and values hold " + str(keys_.size()) + " and " + str(values_.size()) +
                   " bytes; a cache of " + str(cache_sinks) + " sinks + " + str(window) +
                   " window on this model holds " +
                   (expected ? str(*expected) : std::string("more than 2^64")) + " bytes each");
  }
  // Positions.
  if (n_seen_ > kMaxPosition) {
    return invalid("the stream position " + str(n_seen_) + " is larger than 2^53");
  }
  if (options_.cache.start_pos > kMaxPosition ||
      n_seen_ + options_.cache.start_pos > kMaxPosition) {  // both <= 2^53: no wrap
    return invalid("the start position " + str(options_.cache.start_pos) +
                   " + the stream position " + str(n_seen_) + " is larger than 2^53");
  }
  if (cache_policy == CachePolicy::kDense && n_seen_ > window) {
    return invalid("the stream position " + str(n_seen_) + " is past the dense context of " +
                   str(window) + " tokens");
  }
  if (n_turns_ > n_seen_) {
    return invalid("the turn count " + str(n_turns_) + " is larger than the stream position " +
                   str(n_seen_) + " (every turn adds tokens)");
  }

  // The recompute window and the cache's counts, as Session and KvCache maintain them.
  const uint64_t n_layers = model.n_layers;
  const bool recompute = cache_policy == CachePolicy::kRecompute;
  const uint64_t n_recent = recompute ? std::min(n_seen_, window) : 0;
  if (recent_.size() != n_recent) {
    return invalid("the recompute window holds " + str(recent_.size()) + " tokens, " +
                   str(n_recent) + " expected");
  }
  for (size_t i = 0; i < recent_.size(); ++i) {
    if (recent_[i] < 0 || static_cast<uint64_t>(recent_[i]) >= model.n_vocab) {
      return invalid("the recompute window's token " + str(i) + " is " + str(recent_[i]) +
                     ", outside the vocabulary of " + str(model.n_vocab));
    }
  }
  const uint64_t expected_cache_n_seen = recompute ? n_recent : n_seen_;
  if (cache_n_seen_ != expected_cache_n_seen) {
    return invalid("the cache position " + str(cache_n_seen_) + " does not match the stream " +
                   "position " + str(n_seen_) + " (" + str(expected_cache_n_seen) + " expected)");
  }
  // Each token writes its key row once per layer, or not at all when a later token of its batch
  // already displaces it; under recompute token t (1-based) rewrites the min(t, W) tokens of the
  // window. Whatever the batches were, the tokens the cache holds now were written, and layers of
  // the same slots wrote the same rows.
  std::optional<uint64_t> most_writes;
  if (!recompute) {
    most_writes = checked_mul(n_seen_, n_layers);
  } else {
    const uint64_t ramp = std::min(n_seen_, window);
    const std::optional<uint64_t> ramp_writes = checked_mul(ramp, ramp + 1);
    const std::optional<uint64_t> full = checked_mul(n_seen_ - ramp, window);
    if (ramp_writes && full) most_writes = checked_add(*ramp_writes / 2, *full);
    if (most_writes) most_writes = checked_mul(*most_writes, n_layers);
  }
  std::optional<uint64_t> least_writes = 0;
  for (const uint64_t slots : layer_slots) {
    if (least_writes) least_writes = checked_add(*least_writes, std::min(cache_n_seen_, slots));
  }
  const bool uniform =
      std::all_of(layer_slots.begin(), layer_slots.end(), [&](uint64_t x) { return x == n_slots; });
  if (!most_writes || !least_writes || n_key_writes_ < *least_writes ||
      n_key_writes_ > *most_writes || (uniform && n_layers > 0 && n_key_writes_ % n_layers != 0)) {
    return invalid("the key write count " + str(n_key_writes_) + " does not fit " + str(n_seen_) +
                   " tokens through " + str(n_layers) + " layers" +
                   (most_writes && least_writes
                        ? " (" + (uniform ? "a multiple of " + str(n_layers) + " " : "") + "in [" +
                              str(*least_writes) + ", " + str(*most_writes) + "] expected)"
                        : std::string()));
  }

  // Logits.
  if (last_logits_.size() != model.n_vocab) {
    return invalid("the last logits have " + str(last_logits_.size()) +
                   " entries, the model's vocabulary " + str(model.n_vocab));
  }
  for (size_t i = 0; i < last_logits_.size(); ++i) {
    if (!std::isfinite(last_logits_[i])) {
      return invalid("the last logits are not finite (" + std::to_string(last_logits_[i]) +
                     " for token " + str(i) + ")");
    }
  }

  for (const auto& [name, bytes] : {std::pair{"keys", keys_}, std::pair{"values", values_}}) {
    for (size_t at = 0; at < bytes.size(); at += elem_bytes) {
      bool finite = true;
      if (elem_bytes == 2) {
        const uint16_t h = static_cast<uint16_t>(bytes[at] | (bytes[at + 1] << 8));
        finite = (h & 0x7c00) != 0x7c00;
      } else {
        float x = 0;
        std::memcpy(&x, bytes.data() + at, sizeof x);
        finite = std::isfinite(x);
      }
      if (!finite) {
        return invalid(std::string("the ") + name + " hold a non-finite value at byte " + str(at));
      }
    }
  }

  ChatOptions& o = options_;
  o.keep_system = keep_system == 1;
  o.cache.policy = cache_policy;
  o.cache.kv_type = static_cast<KvType>(kv_type);
  o.cache.n_sinks = static_cast<size_t>(n_sinks);
  o.cache.window = static_cast<size_t>(window);
  o.cache.max_batch = static_cast<size_t>(max_batch);
  return {};
}

Status SessionFile::restore(ChatSession& chat) const {
  const SessionOptions& s = chat.session().options();
  if (chat.options().template_name != options_.template_name ||
      chat.options().system != options_.system || s.policy != options_.cache.policy ||
      s.n_sinks != n_sinks_ || s.window != options_.cache.window ||
      s.kv_type != options_.cache.kv_type || s.start_pos != options_.cache.start_pos) {
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
