#include "runtime/state_file.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <optional>

#include "cache/kv_cache.h"
#include "cache/kv_quant.h"
#include "util/limits.h"

namespace sllm {

namespace {

static_assert(std::endian::native == std::endian::little, "saved-state files are little-endian");

struct Format {
  std::string_view magic;
  uint32_t version;
  const char* noun;
  const char* loader;  // what reads this kind, for the message when the other kind is given
};
// Chat 2: the fingerprint samples every tensor across all of its data (version 1 read its first
// 64 bytes only).
constexpr Format kChatFormat{"SLLMCHAT", 2, "session file", "Chat::load, chat --session"};
constexpr Format kStreamFormat{"SLLMSTRM", 1, "stream file", "Stream::load"};
const Format& format(StateFileKind kind) {
  return kind == StateFileKind::kChat ? kChatFormat : kStreamFormat;
}

constexpr size_t kHeaderBytes = 32;
// The fingerprint hashes a tensor of up to kWholeTensorBytes whole, a larger one as kSamples
// runs of kSampleBytes spread evenly from its first byte to its last.
constexpr uint64_t kWholeTensorBytes = 64 * 1024;
constexpr uint64_t kSamples = 64;
constexpr uint64_t kSampleBytes = 64;
// Positions are kept exact in doubles (RoPE angles); a stream will not reach 2^53 tokens.
constexpr uint64_t kMaxPosition = uint64_t{1} << 53;
// Bounds on what a saved file may ask to allocate besides the K/V it holds itself.
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

Error bad_file(const std::string& path, const std::string& why) {
  return Error(ErrorCode::kFormat, path + ": " + why);
}

}  // namespace

const char* state_file_noun(StateFileKind kind) { return format(kind).noun; }

std::string hex64(uint64_t x) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, x >>= 4) out[static_cast<size_t>(i)] = kDigits[x & 15];
  return out;
}

Result<std::span<const uint8_t>> ByteReader::take_array(size_t elem_bytes, const char* field) {
  uint64_t n = 0;
  SLLM_RETURN_IF_ERROR(get(&n, field));
  if (n > (bytes_.size() - offset_) / elem_bytes) return corrupt(field);
  return take(static_cast<size_t>(n) * elem_bytes, field);
}

Error ByteReader::corrupt(const char* field) const {
  return Error(ErrorCode::kFormat, path_ + ": corrupt " + state_file_noun(kind_) +
                                       ": the payload ends inside " + field + " (byte " +
                                       std::to_string(kHeaderBytes + offset_) + ")");
}

Result<std::span<const uint8_t>> ByteReader::take(size_t n_bytes, const char* field) {
  if (n_bytes > bytes_.size() - offset_) return corrupt(field);
  const auto out = bytes_.subspan(offset_, n_bytes);
  offset_ += n_bytes;
  return out;
}

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

Status write_state_file(const std::string& path, StateFileKind kind,
                        std::span<const uint8_t> payload) {
  const Format& f = format(kind);
  Fnv1a64 hash;
  hash.add(payload);
  ByteWriter header;
  for (char c : f.magic) header.put(c);
  header.put<uint32_t>(f.version);
  header.put<uint32_t>(0);
  header.put<uint64_t>(payload.size());
  header.put<uint64_t>(hash.value());
  std::vector<uint8_t>& file = header.bytes();
  file.insert(file.end(), payload.begin(), payload.end());
  return write_file_atomic(path, file);
}

Result<std::span<const uint8_t>> read_state_file(const std::string& path, StateFileKind kind,
                                                 MappedFile* file) {
  const Format& f = format(kind);
  const Format& other =
      format(kind == StateFileKind::kChat ? StateFileKind::kStream : StateFileKind::kChat);
  SLLM_ASSIGN_OR_RETURN(*file, MappedFile::open(path));
  const std::span<const uint8_t> bytes = file->bytes();
  const auto has_magic = [&](std::string_view magic) {
    return bytes.size() >= kHeaderBytes && std::memcmp(bytes.data(), magic.data(), 8) == 0;
  };
  if (has_magic(other.magic)) {
    return bad_file(
        path, std::string("this is a ") +
                  (kind == StateFileKind::kChat ? "stream file, not a chat session file"
                                                : "chat session file, not a stream file") +
                  " (" + std::string(other.magic) + " header; load it with " + other.loader + ")");
  }
  if (!has_magic(f.magic)) {
    return bad_file(path, std::string("not a streamingllm ") + f.noun + " (no " +
                              std::string(f.magic) + " header)");
  }
  uint32_t version = 0;
  uint32_t reserved = 0;
  uint64_t payload_bytes = 0;
  uint64_t checksum = 0;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&reserved, bytes.data() + 12, 4);
  std::memcpy(&payload_bytes, bytes.data() + 16, 8);
  std::memcpy(&checksum, bytes.data() + 24, 8);
  const std::string noun = f.noun;
  if (version != f.version) {
    return bad_file(path, noun + " version " + std::to_string(version) +
                              " is not supported (this build reads version " +
                              std::to_string(f.version) + ")");
  }
  if (reserved != 0) return bad_file(path, "corrupt " + noun + ": header bytes 12-15 are not zero");
  if (payload_bytes != bytes.size() - kHeaderBytes) {
    return bad_file(path, "truncated or damaged " + noun + ": the header announces " +
                              std::to_string(payload_bytes) + " bytes of payload, the file has " +
                              std::to_string(bytes.size() - kHeaderBytes));
  }
  const std::span<const uint8_t> payload = bytes.subspan(kHeaderBytes);
  Fnv1a64 hash;
  hash.add(payload);
  if (hash.value() != checksum) {
    return bad_file(path, "corrupt " + noun + ": checksum " + hex64(hash.value()) +
                              " does not match the stored " + hex64(checksum));
  }
  return payload;
}

void put_model(ByteWriter& w, uint64_t fingerprint, const std::string& model_path) {
  w.put<uint64_t>(fingerprint);
  w.put_string(model_path);
}

Status check_model(ByteReader& r, const std::string& path, StateFileKind kind,
                   uint64_t fingerprint) {
  uint64_t saved_fingerprint = 0;
  std::string model_path;
  SLLM_RETURN_IF_ERROR(r.get(&saved_fingerprint, "the model fingerprint"));
  SLLM_RETURN_IF_ERROR(r.get_string(&model_path, "the model path"));
  if (saved_fingerprint != fingerprint) {
    const bool chat = kind == StateFileKind::kChat;
    return Error(ErrorCode::kInvalidInput,
                 path + ": the " + (chat ? "session" : "stream") +
                     " was saved with another model (" + model_path + ", fingerprint " +
                     hex64(saved_fingerprint) + "; this model's is " + hex64(fingerprint) +
                     "); resume it with that model or " +
                     (chat ? "start a new session" : "create a new stream"));
  }
  return {};
}

void put_options(ByteWriter& w, const CacheOptions& cache, size_t effective_sinks,
                 const SamplingOptions& sampling) {
  w.put<uint32_t>(static_cast<uint32_t>(cache.policy));
  w.put<uint64_t>(cache.n_sinks);
  w.put<uint64_t>(effective_sinks);
  w.put<uint64_t>(cache.window);
  w.put<uint32_t>(static_cast<uint32_t>(cache.kv_type));
  w.put<uint64_t>(cache.start_pos);
  w.put<uint64_t>(cache.max_batch);
  w.put<float>(sampling.temperature);
  w.put<int32_t>(sampling.top_k);
  w.put<float>(sampling.top_p);
  w.put<float>(sampling.min_p);
  w.put<float>(sampling.repeat_penalty);
  w.put<int32_t>(sampling.repeat_last_n);
  w.put<uint64_t>(sampling.seed);
}

void put_session_state(ByteWriter& w, const SessionState& state) {
  w.put<uint64_t>(state.n_seen);
  w.put_array(state.last_logits);
  w.put_array(state.recent);
  w.put<uint64_t>(state.cache.n_seen);
  w.put<uint64_t>(state.cache.n_key_writes);
  w.put_array(state.cache.keys);
  w.put_array(state.cache.values);
}

Status SavedState::read_options(ByteReader& r) {
  SLLM_RETURN_IF_ERROR(r.get(&policy, "the cache policy"));
  SLLM_RETURN_IF_ERROR(r.get(&n_sinks, "the sink count"));
  SLLM_RETURN_IF_ERROR(r.get(&effective_sinks, "the sink count"));
  SLLM_RETURN_IF_ERROR(r.get(&window, "the window"));
  SLLM_RETURN_IF_ERROR(r.get(&kv_type, "the KV type"));
  SLLM_RETURN_IF_ERROR(r.get(&start_pos, "the start position"));
  SLLM_RETURN_IF_ERROR(r.get(&max_batch, "the batch size"));
  SLLM_RETURN_IF_ERROR(r.get(&sampling.temperature, "the temperature"));
  SLLM_RETURN_IF_ERROR(r.get(&sampling.top_k, "top-k"));
  SLLM_RETURN_IF_ERROR(r.get(&sampling.top_p, "top-p"));
  SLLM_RETURN_IF_ERROR(r.get(&sampling.min_p, "min-p"));
  SLLM_RETURN_IF_ERROR(r.get(&sampling.repeat_penalty, "the repeat penalty"));
  SLLM_RETURN_IF_ERROR(r.get(&sampling.repeat_last_n, "repeat-last-n"));
  SLLM_RETURN_IF_ERROR(r.get(&sampling.seed, "the seed"));
  return {};
}

Status SavedState::read_session_state(ByteReader& r) {
  SLLM_RETURN_IF_ERROR(r.get(&n_seen, "the stream position"));
  SLLM_RETURN_IF_ERROR(r.get_vector(&last_logits, "the last logits"));
  SLLM_RETURN_IF_ERROR(r.get_vector(&recent, "the recompute window"));
  SLLM_RETURN_IF_ERROR(r.get(&cache_n_seen, "the cache position"));
  SLLM_RETURN_IF_ERROR(r.get(&n_key_writes, "the key write count"));
  SLLM_ASSIGN_OR_RETURN(keys, r.take_array(1, "the keys"));
  SLLM_ASSIGN_OR_RETURN(values, r.take_array(1, "the values"));
  return {};
}

// Every field is checked against the model and against the others before anything is sized
// from it: the cache a session creates from these options must be exactly the one whose keys
// and values the file holds, so a crafted window or sink count cannot allocate more than the
// file itself brought.
Status SavedState::validate(const std::string& path, StateFileKind kind, const ModelConfig& model,
                            const ChatFields* chat) const {
  auto invalid = [&](const std::string& why) {
    return Error(ErrorCode::kFormat,
                 path + ": invalid " + std::string(state_file_noun(kind)) + ": " + why);
  };
  auto str = [](auto x) { return std::to_string(x); };
  if (policy > static_cast<uint32_t>(CachePolicy::kRecompute)) {
    return invalid("the cache policy " + str(policy) +
                   " is not one of 0-3 (dense, window, streaming, recompute)");
  }
  const auto cache_policy = static_cast<CachePolicy>(policy);
  const auto cache_type = static_cast<TensorType>(kv_type);
  if (cache_type != TensorType::kF32 && cache_type != TensorType::kF16 &&
      !is_block_kv(cache_type)) {
    return invalid("the KV type " + str(kv_type) + " is not f32 (" +
                   str(static_cast<uint32_t>(TensorType::kF32)) + "), f16 (" +
                   str(static_cast<uint32_t>(TensorType::kF16)) + "), q4_0 (" +
                   str(static_cast<uint32_t>(TensorType::kQ4_0)) + ") or q8_0 (" +
                   str(static_cast<uint32_t>(TensorType::kQ8_0)) + ")");
  }
  if (Status s = check_kv_type(cache_type, model.head_dim, model.n_kv_heads); !s.ok()) {
    return invalid(s.error().message());
  }
  const uint8_t keep_system = chat != nullptr ? chat->keep_system : 0;
  if (keep_system > 1) return invalid("keep_system " + str(keep_system) + " is not 0 or 1");
  if (keep_system == 1 && cache_policy != CachePolicy::kStreaming) {
    return invalid("keep_system is set with the " + std::string(policy_name(cache_policy)) +
                   " policy; it needs the streaming policy");
  }
  if (chat != nullptr && !chat->template_problem.empty()) return invalid(chat->template_problem);
  if (window == 0) return invalid("the window 0 must be at least 1");
  if (!checked_add(n_sinks, window) || !checked_add(effective_sinks, window)) {
    return invalid("the sink count " + str(std::max(n_sinks, effective_sinks)) + " + the window " +
                   str(window) + " overflows");
  }
  if (effective_sinks < n_sinks || (keep_system == 0 && effective_sinks != n_sinks)) {
    return invalid("the effective sink count " + str(effective_sinks) +
                   " does not follow from the sink " + "count " + str(n_sinks) +
                   (keep_system ? " (it can only be larger)" : ""));
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
  if (Status s = sampling.validate(); !s.ok()) {
    return invalid("sampler options: " + s.error().message());
  }
  if (sampling.repeat_last_n > kMaxRepeatLastN) {
    return invalid("repeat-last-n " + str(sampling.repeat_last_n) + " is larger than " +
                   str(kMaxRepeatLastN));
  }

  // K/V: exactly what a cache of these options holds, checked first: every buffer a ChatSession
  // creates from options() is then no larger than what the file itself brought.
  const uint64_t cache_sinks = cache_policy == CachePolicy::kStreaming ? effective_sinks : 0;
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
  if (expected) expected = checked_mul(*expected, kv_bytes(cache_type, model.kv_dim()));
  if (!expected || keys.size() != *expected || values.size() != *expected) {
    return invalid("the keys and values hold " + str(keys.size()) + " and " + str(values.size()) +
                   " bytes; a cache of " + str(cache_sinks) + " sinks + " + str(window) +
                   " window on this model holds " +
                   (expected ? str(*expected) : std::string("more than 2^64")) + " bytes each");
  }
  // Positions.
  if (n_seen > kMaxPosition) {
    return invalid("the stream position " + str(n_seen) + " is larger than 2^53");
  }
  if (start_pos > kMaxPosition || n_seen + start_pos > kMaxPosition) {  // both <= 2^53: no wrap
    return invalid("the start position " + str(start_pos) + " + the stream position " +
                   str(n_seen) + " is larger than 2^53");
  }
  if (cache_policy == CachePolicy::kDense && n_seen > window) {
    return invalid("the stream position " + str(n_seen) + " is past the dense context of " +
                   str(window) + " tokens");
  }
  if (chat != nullptr && chat->n_turns > n_seen) {
    return invalid("the turn count " + str(chat->n_turns) + " is larger than the stream position " +
                   str(n_seen) + " (every turn adds tokens)");
  }

  // The recompute window and the cache's counts, as Session and KvCache maintain them.
  const uint64_t n_layers = model.n_layers;
  const bool recompute = cache_policy == CachePolicy::kRecompute;
  const uint64_t n_recent = recompute ? std::min(n_seen, window) : 0;
  if (recent.size() != n_recent) {
    return invalid("the recompute window holds " + str(recent.size()) + " tokens, " +
                   str(n_recent) + " expected");
  }
  for (size_t i = 0; i < recent.size(); ++i) {
    if (recent[i] < 0 || static_cast<uint64_t>(recent[i]) >= model.n_vocab) {
      return invalid("the recompute window's token " + str(i) + " is " + str(recent[i]) +
                     ", outside the vocabulary of " + str(model.n_vocab));
    }
  }
  const uint64_t expected_cache_n_seen = recompute ? n_recent : n_seen;
  if (cache_n_seen != expected_cache_n_seen) {
    return invalid("the cache position " + str(cache_n_seen) + " does not match the stream " +
                   "position " + str(n_seen) + " (" + str(expected_cache_n_seen) + " expected)");
  }
  // Each token writes its key row once per layer, or not at all when a later token of its batch
  // already displaces it; under recompute token t (1-based) rewrites the min(t, W) tokens of the
  // window. Whatever the batches were, the tokens the cache holds now were written, and layers of
  // the same slots wrote the same rows.
  std::optional<uint64_t> most_writes;
  if (!recompute) {
    most_writes = checked_mul(n_seen, n_layers);
  } else {
    const uint64_t ramp = std::min(n_seen, window);
    const std::optional<uint64_t> ramp_writes = checked_mul(ramp, ramp + 1);
    const std::optional<uint64_t> full = checked_mul(n_seen - ramp, window);
    if (ramp_writes && full) most_writes = checked_add(*ramp_writes / 2, *full);
    if (most_writes) most_writes = checked_mul(*most_writes, n_layers);
  }
  std::optional<uint64_t> least_writes = 0;
  for (const uint64_t slots : layer_slots) {
    if (least_writes) least_writes = checked_add(*least_writes, std::min(cache_n_seen, slots));
  }
  const bool uniform =
      std::all_of(layer_slots.begin(), layer_slots.end(), [&](uint64_t x) { return x == n_slots; });
  if (!most_writes || !least_writes || n_key_writes < *least_writes ||
      n_key_writes > *most_writes || (uniform && n_layers > 0 && n_key_writes % n_layers != 0)) {
    return invalid("the key write count " + str(n_key_writes) + " does not fit " + str(n_seen) +
                   " tokens through " + str(n_layers) + " layers" +
                   (most_writes && least_writes
                        ? " (" + (uniform ? "a multiple of " + str(n_layers) + " " : "") + "in [" +
                              str(*least_writes) + ", " + str(*most_writes) + "] expected)"
                        : std::string()));
  }

  // Logits.
  if (last_logits.size() != model.n_vocab) {
    return invalid("the last logits have " + str(last_logits.size()) +
                   " entries, the model's vocabulary " + str(model.n_vocab));
  }
  for (size_t i = 0; i < last_logits.size(); ++i) {
    if (!std::isfinite(last_logits[i])) {
      return invalid("the last logits are not finite (" + std::to_string(last_logits[i]) +
                     " for token " + str(i) + ")");
    }
  }

  // An f32 or f16 value, or a block whose f16 scale comes first (q8_0, q4_0: every code of
  // theirs is a valid value).
  const bool blocks = is_block_kv(cache_type);
  const size_t unit = static_cast<size_t>(kv_bytes(cache_type, blocks ? 32 : 1));
  for (const auto& [name, bytes] : {std::pair{"keys", keys}, std::pair{"values", values}}) {
    for (size_t at = 0; at < bytes.size(); at += unit) {
      bool finite = true;
      if (unit != 4) {
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

  return {};
}

CacheOptions SavedState::cache_options() const {
  CacheOptions o;
  o.policy = static_cast<CachePolicy>(policy);
  o.kv_type = static_cast<KvType>(kv_type);
  o.n_sinks = static_cast<size_t>(n_sinks);
  o.window = static_cast<size_t>(window);
  o.max_batch = static_cast<size_t>(max_batch);
  o.start_pos = start_pos;
  return o;
}

SessionState SavedState::session_state() const {
  return SessionState{n_seen, last_logits, recent,
                      KvCacheContents{cache_n_seen, n_key_writes, keys, values}};
}

}  // namespace sllm
