// Crafted session files: every size and position field set to 0, to the maximum and to a wrapped
// value, non-finite floats, out-of-range enums and tokens, with the checksum recomputed so that
// only the field validation can catch them. Each must be refused with a message that names the
// field, without a crash and without sizing anything from the bad value. Also: the model
// fingerprint sees a change late in a tensor, and `chat --session` with such a file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "engine_fixture.h"
#include "gguf/gguf.h"
#include "runtime/chat_session.h"
#include "runtime/session_file.h"

namespace sllm {
namespace {

using test::stories;

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

std::string temp_path(const std::string& name) { return test::temp_dir() + "/" + name; }

using test::read_bytes;
using test::write_bytes;

uint64_t fingerprint() { return test::stories_fingerprint(); }

ChatOptions options_for(CachePolicy policy, size_t window, KvType kv_type = KvType::kF32) {
  ChatOptions o;
  o.template_name = "plain";
  o.cache.policy = policy;
  o.cache.n_sinks = policy == CachePolicy::kStreaming ? 4 : 0;
  o.cache.window = window;
  o.cache.kv_type = kv_type;
  o.sampling.temperature = 0.8f;
  o.sampling.seed = 9;
  return o;
}

// A file saved after two turns with `options`.
std::vector<uint8_t> saved(const ChatOptions& options, const std::string& name) {
  ThreadPool pool(1);
  auto chat = ChatSession::create(stories().model, *stories().tokenizer, options, pool);
  if (!chat.ok()) throw std::runtime_error(chat.error().message());
  StopOptions reply;
  reply.max_tokens = 12;
  for (const char* turn : {"Once upon a time", "The cat sat"}) {
    auto r = (*chat)->send(turn, reply, [](std::string_view) {});
    if (!r.ok()) throw std::runtime_error(r.error().message());
  }
  const std::string path = temp_path(name);
  if (!save_session_file(path, **chat, fingerprint(), "stories260K.gguf").ok()) {
    throw std::runtime_error("save failed");
  }
  return read_bytes(path);
}

const std::vector<uint8_t>& streaming_file() {
  static const std::vector<uint8_t> b =
      saved(options_for(CachePolicy::kStreaming, 16), "s.session");
  return b;
}

// Where each field of the payload is (docs/chat.md has the layout); arrays by their u64 count.
struct Layout {
  std::map<std::string, size_t> at;
};

Layout layout_of(const std::vector<uint8_t>& b) {
  Layout l;
  size_t pos = 32;
  auto u64_at = [&](size_t p) {
    uint64_t x = 0;
    std::memcpy(&x, b.data() + p, 8);
    return x;
  };
  auto field = [&](const std::string& name, size_t n_bytes) {
    l.at[name] = pos;
    pos += n_bytes;
  };
  auto array = [&](const std::string& name, size_t elem_bytes) {
    l.at[name] = pos;
    pos += 8 + static_cast<size_t>(u64_at(pos)) * elem_bytes;
  };
  field("fingerprint", 8);
  array("model_path", 1);
  array("template", 1);
  array("system", 1);
  field("keep_system", 1);
  field("policy", 4);
  field("n_sinks", 8);
  field("effective_sinks", 8);
  field("window", 8);
  field("kv_type", 4);
  field("start_pos", 8);
  field("max_batch", 8);
  field("temperature", 4);
  field("top_k", 4);
  field("top_p", 4);
  field("min_p", 4);
  field("repeat_penalty", 4);
  field("repeat_last_n", 4);
  field("seed", 8);
  field("n_turns", 8);
  array("pending", 1);
  array("sampler_state", 1);
  field("n_seen", 8);
  array("last_logits", 4);
  array("recent", 4);
  field("cache_n_seen", 8);
  field("n_key_writes", 8);
  array("keys", 1);
  array("values", 1);
  if (pos != b.size()) throw std::runtime_error("the test's layout does not match the file");
  return l;
}

// The header's size and FNV-1a checksum made right again.
void reseal(std::vector<uint8_t>& b) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (size_t i = 32; i < b.size(); ++i) hash = (hash ^ b[i]) * 0x100000001b3ull;
  const uint64_t n = b.size() - 32;
  std::memcpy(b.data() + 16, &n, 8);
  std::memcpy(b.data() + 24, &hash, 8);
}

template <typename T>
std::vector<uint8_t> with(const std::vector<uint8_t>& good, const std::string& field, T value,
                          size_t extra_offset = 0) {
  std::vector<uint8_t> b = good;
  const size_t at = layout_of(good).at.at(field) + extra_offset;
  std::memcpy(b.data() + at, &value, sizeof(T));
  reseal(b);
  return b;
}

template <typename T>
T get(const std::vector<uint8_t>& b, const std::string& field, size_t extra_offset = 0) {
  T x{};
  std::memcpy(&x, b.data() + layout_of(b).at.at(field) + extra_offset, sizeof(T));
  return x;
}

// `good` with the string or array `field` replaced by `bytes` (its count too), resealed.
std::vector<uint8_t> with_bytes(const std::vector<uint8_t>& good, const std::string& field,
                                const std::string& bytes) {
  const size_t at = layout_of(good).at.at(field);
  uint64_t n_old = 0;
  std::memcpy(&n_old, good.data() + at, 8);
  std::vector<uint8_t> b(good.begin(), good.begin() + static_cast<ptrdiff_t>(at));
  const uint64_t n = bytes.size();
  b.insert(b.end(), reinterpret_cast<const uint8_t*>(&n), reinterpret_cast<const uint8_t*>(&n) + 8);
  b.insert(b.end(), bytes.begin(), bytes.end());
  b.insert(b.end(), good.begin() + static_cast<ptrdiff_t>(at + 8 + n_old), good.end());
  reseal(b);
  return b;
}

// The error after the path, or "" when the file is accepted.
std::string read_error(const std::vector<uint8_t>& bytes) {
  const std::string path = temp_path("crafted.session");
  write_bytes(path, bytes);
  auto file = SessionFile::read(path, fingerprint(), stories().model.config());
  if (file.ok()) return "";
  const std::string& message = file.error().message();
  EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;
  return message.substr(path.size() + 2);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(SessionFileHostileTest, SavedFilesOfEveryPolicyAndTypeAreAccepted) {
  EXPECT_EQ(read_error(streaming_file()), "");
  for (CachePolicy policy : {CachePolicy::kWindow, CachePolicy::kDense, CachePolicy::kRecompute}) {
    EXPECT_EQ(read_error(saved(options_for(policy, 64), "p.session")), "") << policy_name(policy);
  }
  EXPECT_EQ(read_error(saved(options_for(CachePolicy::kStreaming, 16, KvType::kF16), "h")), "");
  // Under recompute the window wraps too (n_seen > W).
  EXPECT_EQ(read_error(saved(options_for(CachePolicy::kRecompute, 8), "r.session")), "");
}

struct Case {
  const char* field;
  uint64_t value;
  const char* expected;  // a part of the message; it names the field
};

TEST(SessionFileHostileTest, SizeAndPositionFieldsAtZeroMaxAndWrapped) {
  const std::vector<uint8_t>& good = streaming_file();
  const uint64_t n_seen = get<uint64_t>(good, "n_seen");
  ASSERT_GT(n_seen, 20u) << "the window must have wrapped";
  const Case cases[] = {
      {"n_sinks", 0, "the effective sink count 4 does not follow from the sink count 0"},
      {"n_sinks", kU64Max, "the sink count 18446744073709551615 + the window 16 overflows"},
      {"n_sinks", kU64Max - 3, "the sink count 18446744073709551612 + the window 16 overflows"},
      {"effective_sinks", 0, "the effective sink count 0 does not follow"},
      {"effective_sinks", kU64Max, "the sink count 18446744073709551615 + the window 16"},
      {"effective_sinks", uint64_t{1} << 40, "the effective sink count 1099511627776"},
      {"window", 0, "the window 0 must be at least 1"},
      {"window", kU64Max, "the sink count 4 + the window 18446744073709551615 overflows"},
      {"window", kU64Max - 3, "the sink count 4 + the window 18446744073709551612 overflows"},
      {"window", uint64_t{1} << 40, "a cache of 4 sinks + 1099511627776 window on this model"},
      {"window", 15, "the keys and values hold 12800 and 12800 bytes; a cache of 4 sinks + 15"},
      {"max_batch", 0, "the batch size 0 is not in [1, 65536]"},
      {"max_batch", kU64Max, "the batch size 18446744073709551615 is not in [1, 65536]"},
      {"max_batch", uint64_t{1} << 32, "the batch size 4294967296 is not in [1, 65536]"},
      {"start_pos", kU64Max, "the start position 18446744073709551615 + the stream position"},
      {"start_pos", uint64_t{1} << 63, "the start position 9223372036854775808"},
      {"start_pos", (uint64_t{1} << 53) - 5, "is larger than 2^53"},
      {"n_seen", uint64_t{1} << 63, "the stream position 9223372036854775808 is larger than 2^53"},
      {"n_seen", kU64Max, "the stream position 18446744073709551615 is larger than 2^53"},
      {"n_seen", 0, "the turn count 2 is larger than the stream position 0"},
      {"n_seen", n_seen + 1, "the cache position"},
      {"n_turns", kU64Max, "the turn count 18446744073709551615 is larger than the stream"},
      {"n_turns", n_seen + 1, "the turn count"},
      {"cache_n_seen", 0, "the cache position 0 does not match the stream position"},
      {"cache_n_seen", kU64Max, "the cache position 18446744073709551615 does not match"},
      {"cache_n_seen", n_seen - 1, "the cache position"},
      {"n_key_writes", 0, "the key write count 0 does not fit"},
      {"n_key_writes", kU64Max, "the key write count 18446744073709551615 does not fit"},
      {"n_key_writes", get<uint64_t>(good, "n_key_writes") + 1, "a multiple of 5"},
  };
  for (const Case& c : cases) {
    const std::string error = read_error(with(good, c.field, c.value));
    EXPECT_TRUE(contains(error, c.expected))
        << c.field << " = " << c.value << ": got '" << error << "'";
    EXPECT_TRUE(contains(error, "invalid session file: ")) << error;
  }
}

// The u64 counts in front of strings and arrays: zero, huge and wrapped are each a clear error
// (the payload ends inside the field, or the field's size is checked), never an allocation.
TEST(SessionFileHostileTest, ArrayCountsAtZeroMaxAndWrapped) {
  const std::vector<uint8_t>& good = streaming_file();
  for (const char* field : {"model_path", "template", "system", "pending", "sampler_state",
                            "last_logits", "recent", "keys", "values"}) {
    const uint64_t n = get<uint64_t>(good, field);
    for (uint64_t value : {uint64_t{0}, kU64Max, kU64Max / 4 + 1, uint64_t{1} << 40, n + 1,
                           n == 0 ? kU64Max : n - 1}) {
      if (value == n) continue;
      const std::string error = read_error(with(good, field, value));
      EXPECT_NE(error, "") << field << " = " << value << " went unnoticed";
    }
  }
  // The keys one row short, with the values in step: a cache of these options holds more.
  EXPECT_TRUE(contains(read_error(with(good, "n_sinks", uint64_t{5})), "effective sink count"));
}

TEST(SessionFileHostileTest, EnumsAndFlagsOutOfRange) {
  const std::vector<uint8_t>& good = streaming_file();
  EXPECT_TRUE(contains(read_error(with(good, "policy", uint32_t{4})),
                       "the cache policy 4 is not one of 0-3"));
  EXPECT_TRUE(contains(read_error(with(good, "policy", ~uint32_t{0})),
                       "the cache policy 4294967295 is not one of 0-3"));
  // q8_0 (8) and q4_0 (2) are cache types now; q4_1 (3) is not.
  EXPECT_TRUE(contains(read_error(with(good, "kv_type", uint32_t{3})),
                       "the KV type 3 is not f32 (0), f16 (1), q4_0 (2) or q8_0 (8)"));
  EXPECT_TRUE(
      contains(read_error(with(good, "keep_system", uint8_t{2})), "keep_system 2 is not 0 or 1"));
  // Another policy with the same sizes: the file's counts do not fit it.
  EXPECT_NE(read_error(with(good, "policy", static_cast<uint32_t>(CachePolicy::kDense))), "");
  // f16 instead of f32: the keys are twice what an f16 cache holds.
  EXPECT_TRUE(contains(read_error(with(good, "kv_type", static_cast<uint32_t>(TensorType::kF16))),
                       "the keys and values hold"));
  EXPECT_TRUE(contains(read_error(with(good, "kv_type", static_cast<uint32_t>(TensorType::kQ8_0))),
                       "the keys and values hold"));
}

TEST(SessionFileHostileTest, NonFiniteAndOutOfRangeValues) {
  const std::vector<uint8_t>& good = streaming_file();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(contains(read_error(with(good, "last_logits", nan, 8 + 4 * 7)),
                       "the last logits are not finite (nan for token 7)"));
  EXPECT_TRUE(contains(read_error(with(good, "last_logits", -inf, 8)),
                       "the last logits are not finite (-inf for token 0)"));
  EXPECT_TRUE(contains(read_error(with(good, "keys", nan, 8 + 400)),
                       "the keys hold a non-finite value at byte 400"));
  EXPECT_TRUE(contains(read_error(with(good, "values", inf, 8)),
                       "the values hold a non-finite value at byte 0"));
  for (const auto& [field, value] :
       std::vector<std::pair<const char*, float>>{{"temperature", nan},
                                                  {"temperature", inf},
                                                  {"temperature", -1.0f},
                                                  {"top_p", 0.0f},
                                                  {"top_p", nan},
                                                  {"min_p", 2.0f},
                                                  {"repeat_penalty", 0.0f},
                                                  {"repeat_penalty", inf}}) {
    const std::string error = read_error(with(good, field, value));
    EXPECT_TRUE(contains(error, "invalid session file: sampler options: ")) << field << error;
  }
  EXPECT_TRUE(contains(read_error(with(good, "top_k", int32_t{-1})), "top_k must be >= 0"));
  EXPECT_TRUE(contains(read_error(with(good, "repeat_last_n", int32_t{-1})), "repeat_last_n"));
  EXPECT_TRUE(contains(read_error(with(good, "repeat_last_n", std::numeric_limits<int32_t>::max())),
                       "repeat-last-n 2147483647 is larger than 16777216"));
  EXPECT_TRUE(contains(read_error(with(good, "template", uint8_t{'X'}, 8)),
                       "the template name 'Xlain' is not a known template"));
}

TEST(SessionFileHostileTest, RecomputeWindowTokensAndCounts) {
  const std::vector<uint8_t> good = saved(options_for(CachePolicy::kRecompute, 8), "rc.session");
  ASSERT_EQ(read_error(good), "");
  ASSERT_EQ(get<uint64_t>(good, "recent"), 8u);
  EXPECT_TRUE(contains(read_error(with(good, "recent", int32_t{-1}, 8)),
                       "the recompute window's token 0 is -1, outside the vocabulary of 512"));
  EXPECT_TRUE(contains(read_error(with(good, "recent", int32_t{512}, 8 + 4 * 7)),
                       "the recompute window's token 7 is 512"));
  EXPECT_TRUE(contains(read_error(with(good, "cache_n_seen", uint64_t{7})),
                       "the cache position 7 does not match"));
  EXPECT_TRUE(contains(read_error(with(good, "n_key_writes", kU64Max - 4)),
                       "the key write count 18446744073709551611 does not fit"));
  // Dense: the stream cannot be past the context.
  const std::vector<uint8_t> dense = saved(options_for(CachePolicy::kDense, 64), "d.session");
  EXPECT_TRUE(contains(read_error(with(dense, "n_seen", uint64_t{65})),
                       "the stream position 65 is past the dense context of 64 tokens"));
}

TEST(SessionFileHostileTest, OldVersionIsRefusedByNumber) {
  std::vector<uint8_t> b = streaming_file();
  const uint32_t v1 = 1;
  std::memcpy(b.data() + 8, &v1, 4);
  EXPECT_EQ(read_error(b), "session file version 1 is not supported (this build reads version 2)");
}

// A copy of stories260K with one byte of one tensor changed.
std::string model_with_byte_changed(const std::string& name, const std::string& tensor_name,
                                    size_t offset_from_end) {
  GgufWriter w;
  for (const auto& [k, v] : stories().gguf.metadata()) w.set(k, v);
  for (const GgufTensorInfo& t : stories().gguf.tensors()) {
    std::vector<uint8_t> data(t.data, t.data + t.n_bytes);
    if (t.name == tensor_name) data[data.size() - 1 - offset_from_end] ^= 0x01;
    if (!w.add_tensor(t.name, t.type, t.dims, data).ok()) throw std::runtime_error("add_tensor");
  }
  const std::string path = temp_path(name);
  if (!w.write(path).ok()) throw std::runtime_error("write failed");
  return path;
}

TEST(SessionFileHostileTest, FingerprintSeesAChangeLateInATensor) {
  // The largest tensor (sampled, not hashed whole) and a small one (hashed whole).
  const GgufTensorInfo* largest = &stories().gguf.tensors()[0];
  const GgufTensorInfo* smallest = largest;
  for (const GgufTensorInfo& t : stories().gguf.tensors()) {
    if (t.n_bytes > largest->n_bytes) largest = &t;
    if (t.n_bytes < smallest->n_bytes) smallest = &t;
  }
  ASSERT_GT(largest->n_bytes, 64u * 1024) << "the test needs a sampled tensor";
  const std::string unchanged = model_with_byte_changed("same.gguf", "", 0);
  const std::string late = model_with_byte_changed("late.gguf", largest->name, 0);
  const std::string middle = model_with_byte_changed("mid.gguf", smallest->name,
                                                     static_cast<size_t>(smallest->n_bytes / 2));
  for (const auto& [path, same] : std::vector<std::pair<std::string, bool>>{
           {unchanged, true}, {late, false}, {middle, false}}) {
    auto gguf = GgufFile::open(path);
    ASSERT_TRUE(gguf.ok()) << gguf.error().message();
    auto f = model_fingerprint(*gguf);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(*f == fingerprint(), same) << path;
  }
}

// Through the command: a crafted file (the window wrapped to 2^64 - 1) is a clear error.
TEST(SessionFileHostileTest, ChatRefusesACraftedSessionFile) {
  const std::string path = temp_path("crafted_cli.session");
  write_bytes(path, with(streaming_file(), "window", kU64Max));
  const auto r = test::run_cli("chat -m " + test::stories_gguf() + " --max-reply 4 --session " +
                               path + " < /dev/null");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err, "error: " + path +
                       ": invalid session file: the sink count 4 + the window "
                       "18446744073709551615 overflows\n");
}

}  // namespace
}  // namespace sllm

namespace sllm {
namespace {

// Found with fuzz/session_file_fuzz.cc (its check that a loaded chat answers): a pending text (or
// system message) that is not valid UTF-8 was accepted, and the chat then refused every turn
// ("invalid UTF-8 at byte 0"). The reader now refuses the file and names the field; valid text in
// the same fields is still accepted.
TEST(SessionFileHostileTest, TextFieldsMustBeValidUtf8) {
  const std::vector<uint8_t>& good = streaming_file();
  EXPECT_EQ(read_error(with_bytes(good, "pending", "\xff")),
            "invalid session file: the pending text is not valid UTF-8 (invalid UTF-8 at byte 0: "
            "invalid byte)");
  EXPECT_TRUE(contains(read_error(with_bytes(good, "system", "Be kind \xc3")),
                       "invalid session file: the system message is not valid UTF-8 (invalid "
                       "UTF-8 at byte 8: "))
      << read_error(with_bytes(good, "system", "Be kind \xc3"));
  EXPECT_EQ(read_error(with_bytes(good, "pending", "\n\xc3\xa9")), "");
}

}  // namespace
}  // namespace sllm
