// Stream::save and Stream::load: a stream saved after N tokens and loaded back continues exactly
// as the stream that never stopped (logits bit for bit, seeded sampling, text, counters) under
// every cache policy and KV type; damaged, foreign and other-kind files are refused with the
// reason; saving to a path that cannot take the file is an error that leaves nothing behind.
#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "streamingllm/streamingllm.h"
#include "test_util.h"

namespace sllm {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<Model> stories() {
  static const std::shared_ptr<Model> model = [] {
    Model::LoadOptions o;
    o.n_threads = 1;
    auto m = Model::load(test::stories_gguf(), o);
    if (!m.ok()) throw std::runtime_error(m.error().message());
    return *m;
  }();
  return model;
}

// A fresh folder per test, so that leftovers of a failed write would show.
class StreamSaveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "_" + info->name();
    for (char& c : name) {
      if (c == '/') c = '_';
    }
    dir_ = ::testing::TempDir() + "sllm_stream_save_" + std::to_string(::getpid()) + "_" + name;
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }
  std::string dir_;
};

// The message without the "PATH: " in front.
std::string why(const Error& e) {
  const std::string& m = e.message();
  return m.substr(m.find(": ") + 2);
}

SamplingOptions seeded() {
  SamplingOptions s;
  s.temperature = 0.9f;
  s.top_k = 0;
  s.top_p = 1.0f;
  s.min_p = 0.0f;
  s.repeat_penalty = 1.1f;  // the penalty history must survive too
  s.repeat_last_n = 16;
  s.seed = 1234;
  return s;
}

struct Continuation {
  std::vector<TokenId> tokens;
  std::string text;
  std::vector<float> logits;  // after the last token
};

// Generates, then feeds a sentence, then generates again: what follows a save.
Continuation go_on(Stream& s) {
  Continuation c;
  StopOptions stop;
  stop.max_tokens = 20;
  auto text = [&](std::string_view piece) { c.text += piece; };
  auto g = s.generate(stop, text, [&](TokenId t) { c.tokens.push_back(t); });
  EXPECT_TRUE(g.ok()) << g.error().message();
  auto fed = s.feed_text(" The dog ran to the park.", /*add_bos=*/false, false, nullptr, text);
  EXPECT_TRUE(fed.ok()) << fed.error().message();
  g = s.generate(stop, text, [&](TokenId t) { c.tokens.push_back(t); });
  EXPECT_TRUE(g.ok()) << g.error().message();
  c.logits.assign(s.logits().begin(), s.logits().end());
  return c;
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

struct Case {
  CachePolicy policy;
  KvType kv_type;
};

class StreamRoundTripTest : public StreamSaveTest, public ::testing::WithParamInterface<Case> {};

TEST_P(StreamRoundTripTest, LoadedStreamContinuesExactly) {
  const auto [policy, kv_type] = GetParam();
  CacheOptions cache;
  cache.policy = policy;
  cache.n_sinks = policy == CachePolicy::kStreaming ? 4 : 0;
  // Small windows that the first part overflows (dense: a context the whole test fits in).
  cache.window = policy == CachePolicy::kDense ? 160 : 12;
  cache.kv_type = kv_type;
  cache.max_batch = 5;  // batches split across the window's edge
  auto original = Stream::create(stories(), cache, seeded());
  ASSERT_TRUE(original.ok()) << original.error().message();
  Stream& a = **original;
  ASSERT_TRUE(a.feed_text("Once upon a time, there was a little girl", true).ok());
  StopOptions stop;
  stop.max_tokens = 14;
  ASSERT_TRUE(a.generate(stop).ok());
  ASSERT_GT(a.n_seen(), 16u) << "the window must have wrapped before the save";

  const std::string file = path("a.stream");
  const Status saved = a.save(file);
  ASSERT_TRUE(saved.ok()) << saved.error().message();
  auto loaded = Stream::load(stories(), file);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  Stream& b = **loaded;
  EXPECT_EQ(b.n_seen(), a.n_seen());
  EXPECT_EQ(b.cache_bytes(), a.cache_bytes());
  EXPECT_EQ(b.cache_tokens(), a.cache_tokens());
  EXPECT_TRUE(same_bits(b.logits(), a.logits()));
  const CacheOptions& ca = a.cache_options();
  const CacheOptions& cb = b.cache_options();
  EXPECT_EQ(cb.policy, ca.policy);
  EXPECT_EQ(cb.n_sinks, ca.n_sinks);
  EXPECT_EQ(cb.window, ca.window);
  EXPECT_EQ(cb.kv_type, ca.kv_type);
  EXPECT_EQ(cb.max_batch, ca.max_batch);
  EXPECT_EQ(cb.start_pos, ca.start_pos);
  const SamplingOptions& sa = a.sampling_options();
  const SamplingOptions& sb = b.sampling_options();
  EXPECT_EQ(sb.temperature, sa.temperature);
  EXPECT_EQ(sb.top_k, sa.top_k);
  EXPECT_EQ(sb.top_p, sa.top_p);
  EXPECT_EQ(sb.min_p, sa.min_p);
  EXPECT_EQ(sb.repeat_penalty, sa.repeat_penalty);
  EXPECT_EQ(sb.repeat_last_n, sa.repeat_last_n);
  EXPECT_EQ(sb.seed, sa.seed);

  const Continuation expected = go_on(a);
  const Continuation got = go_on(b);
  EXPECT_EQ(got.tokens, expected.tokens);
  EXPECT_EQ(got.text, expected.text);
  EXPECT_TRUE(same_bits(got.logits, expected.logits)) << "the logits differ after the save";
  EXPECT_EQ(b.n_seen(), a.n_seen());
  EXPECT_EQ(b.cache_bytes(), a.cache_bytes());
  ASSERT_GE(expected.tokens.size(), 30u);  // the sampler went on, it did not stop at once

  // Saving the loaded stream writes the very same bytes as saving the original.
  ASSERT_TRUE(a.save(path("a2.stream")).ok());
  ASSERT_TRUE(b.save(path("b2.stream")).ok());
  EXPECT_EQ(test::read_bytes(path("a2.stream")), test::read_bytes(path("b2.stream")));
}

INSTANTIATE_TEST_SUITE_P(
    PoliciesAndKvTypes, StreamRoundTripTest,
    ::testing::Values(
        Case{CachePolicy::kDense, KvType::kF32}, Case{CachePolicy::kDense, KvType::kF16},
        Case{CachePolicy::kWindow, KvType::kF32}, Case{CachePolicy::kWindow, KvType::kF16},
        Case{CachePolicy::kStreaming, KvType::kF32}, Case{CachePolicy::kStreaming, KvType::kF16},
        Case{CachePolicy::kRecompute, KvType::kF32}, Case{CachePolicy::kRecompute, KvType::kF16},
        Case{CachePolicy::kDense, KvType::kQ8_0}, Case{CachePolicy::kWindow, KvType::kQ8_0},
        Case{CachePolicy::kStreaming, KvType::kQ8_0}, Case{CachePolicy::kRecompute, KvType::kQ8_0},
        Case{CachePolicy::kStreaming, KvType::kQ4_0}),
    [](const ::testing::TestParamInfo<Case>& p) {
      std::string kv = kv_type_name(p.param.kv_type);
      for (char& c : kv) c = c == '_' ? 'x' : static_cast<char>(std::toupper(c));
      return std::string(policy_name(p.param.policy)) + kv;
    });

// The byte token <0xXX> of stories260K's vocabulary.
TokenId byte_token(const Model& model, uint8_t byte) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  const std::string text = std::string("<0x") + kHex[byte >> 4] + kHex[byte & 15] + ">";
  const TokenId id = 3 + byte;  // SentencePiece puts the 256 byte tokens after <unk>, <s>, </s>
  EXPECT_EQ(model.token_text(id), text);
  return id;
}

// Text the stream decodes from these tokens.
std::string fed_text(Stream& s, std::vector<TokenId> tokens) {
  std::string text;
  auto r = s.feed(tokens, nullptr, [&](std::string_view piece) { text += piece; });
  EXPECT_TRUE(r.ok()) << r.error().message();
  return text;
}

TEST_F(StreamSaveTest, HalfACharacterAndTheStartOfTextSurvive) {
  const auto model = stories();
  auto made = Stream::create(model, {}, seeded());
  ASSERT_TRUE(made.ok());
  Stream& s = **made;
  // "€" is E2 82 AC: two of its bytes before the save, the last after.
  EXPECT_EQ(
      fed_text(s, {model->info().bos, 403, byte_token(*model, 0xE2), byte_token(*model, 0x82)}),
      "Once");
  ASSERT_TRUE(s.save(path("half.stream")).ok());
  auto loaded = Stream::load(model, path("half.stream"));
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  EXPECT_EQ(fed_text(**loaded, {byte_token(*model, 0xAC), 403}), "\xE2\x82\xAC Once");
  EXPECT_EQ(fed_text(s, {byte_token(*model, 0xAC), 403}), "\xE2\x82\xAC Once");

  // Saved right after BOS: the first piece loses its dummy-prefix space, as it would have.
  auto fresh = Stream::create(model);
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fed_text(**fresh, {model->info().bos}), "");
  ASSERT_TRUE((*fresh)->save(path("start.stream")).ok());
  auto at_start = Stream::load(model, path("start.stream"));
  ASSERT_TRUE(at_start.ok()) << at_start.error().message();
  EXPECT_EQ(fed_text(**at_start, {403}), "Once");
}

// A stream saved in a fixed state, for the damage tests.
std::vector<uint8_t> good_bytes(const std::string& file) {
  auto s = Stream::create(stories(), *CacheOptions::for_policy(CachePolicy::kStreaming, 20, 4),
                          seeded());
  if (!s.ok() || !(*s)->feed_text("Once upon a time", true).ok()) {
    throw std::runtime_error("feed failed");
  }
  StopOptions stop;
  stop.max_tokens = 24;
  if (!(*s)->generate(stop).ok() || !(*s)->save(file).ok()) throw std::runtime_error("save");
  return test::read_bytes(file);
}

TEST_F(StreamSaveTest, DamagedFilesAreRefused) {
  const std::vector<uint8_t> good = good_bytes(path("good.stream"));
  const std::string file = path("damaged.stream");
  auto error_of = [&](const std::vector<uint8_t>& bytes) -> std::string {
    test::write_bytes(file, bytes);
    auto s = Stream::load(stories(), file);
    if (s.ok()) return "";
    EXPECT_EQ(s.error().message().rfind(file + ": ", 0), 0u) << "the message names the file";
    return why(s.error());
  };
  ASSERT_EQ(error_of(good), "");
  for (size_t n : {size_t{0}, size_t{7}, size_t{31}}) {
    EXPECT_EQ(error_of({good.begin(), good.begin() + static_cast<ptrdiff_t>(n)}),
              "not a streamingllm stream file (no SLLMSTRM header)")
        << n;
  }
  const size_t payload = good.size() - 32;
  for (size_t n : {size_t{32}, size_t{100}, good.size() / 2, good.size() - 1, good.size() + 1}) {
    std::vector<uint8_t> cut(good.begin(),
                             good.begin() + static_cast<ptrdiff_t>(std::min(n, good.size())));
    cut.resize(n, 0);
    EXPECT_EQ(error_of(cut), "truncated or damaged stream file: the header announces " +
                                 std::to_string(payload) + " bytes of payload, the file has " +
                                 std::to_string(n - 32))
        << n;
  }
  std::vector<uint8_t> version = good;
  version[8] = 9;
  EXPECT_EQ(error_of(version),
            "stream file version 9 is not supported (this build reads version 1)");
  // Every bit of the fingerprint, then one bit in every 193 bytes (each load writes a file:
  // kept few for the sanitizer builds).
  for (size_t byte = 32; byte < good.size(); byte += byte < 40 ? 1 : 193) {
    for (size_t bit = 0; bit < 8; ++bit) {
      if (byte >= 40 && bit != byte % 8) continue;
      std::vector<uint8_t> flipped = good;
      flipped[byte] ^= static_cast<uint8_t>(1u << bit);
      const std::string e = error_of(flipped);
      EXPECT_EQ(e.rfind("corrupt stream file: checksum ", 0), 0u)
          << byte << "." << bit << ": " << e;
      EXPECT_NE(e.find(" does not match the stored "), std::string::npos);
    }
  }
  EXPECT_EQ(names(), (std::vector<std::string>{"damaged.stream", "good.stream"}));
}

// FNV-1a 64 of the payload, written into the header: a crafted file that passes the checksum.
void reseal(std::vector<uint8_t>& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 32; i < bytes.size(); ++i) h = (h ^ bytes[i]) * 0x100000001b3ull;
  std::memcpy(bytes.data() + 24, &h, 8);
}

TEST_F(StreamSaveTest, CraftedFieldsAreRefused) {
  const std::vector<uint8_t> good = good_bytes(path("good.stream"));
  // After the header: fingerprint (u64), model path (u64 + n), policy (u32), sinks asked and
  // kept, window (u64 each), KV type (u32), start position, batch (u64 each), six 4-byte sampler
  // options and the seed (u64); then the decoder's start flag and its pending bytes.
  uint64_t path_len = 0;
  std::memcpy(&path_len, good.data() + 40, 8);
  const size_t at_start = 32 + 8 + 8 + path_len + 4 + 8 * 3 + 4 + 8 * 2 + 4 * 6 + 8;
  ASSERT_LE(good[at_start], 1u);
  uint64_t n_pending = 99;
  std::memcpy(&n_pending, good.data() + at_start + 1, 8);
  ASSERT_EQ(n_pending, 0u) << "the layout is not what docs/chat.md says";

  const std::string file = path("crafted.stream");
  auto error_of = [&](std::vector<uint8_t> bytes) -> std::string {
    reseal(bytes);
    test::write_bytes(file, bytes);
    auto s = Stream::load(stories(), file);
    return s.ok() ? std::string() : why(s.error());
  };
  EXPECT_EQ(error_of(good), "");
  // The checks shared with session files, worded for a stream file: a window of 2^40 is refused
  // before anything is sized from it, and a stream keeps exactly the sinks it asked for.
  const size_t sinks_at = 32 + 8 + 8 + path_len + 4;
  std::vector<uint8_t> wide = good;
  const uint64_t huge = uint64_t{1} << 40;
  std::memcpy(wide.data() + sinks_at + 16, &huge, 8);
  EXPECT_EQ(error_of(wide).rfind("invalid stream file: the keys and values hold ", 0), 0u)
      << error_of(wide);
  std::vector<uint8_t> sinks = good;
  sinks[sinks_at + 8] = 5;
  EXPECT_EQ(error_of(sinks),
            "invalid stream file: the effective sink count 5 does not follow "
            "from the sink count 4");

  std::vector<uint8_t> flag = good;
  flag[at_start] = 2;
  EXPECT_EQ(error_of(flag), "invalid stream file: the decoder's start flag 2 is not 0 or 1");

  // Pending bytes: a whole character, a stray continuation byte, two truncated starts.
  for (const std::string& pending :
       {std::string("a"), std::string("\x82"), std::string("\xE2\xE2"), std::string("\xF0\x9F")}) {
    std::vector<uint8_t> crafted(good.begin(), good.begin() + static_cast<ptrdiff_t>(at_start + 1));
    const uint64_t n = pending.size();
    crafted.insert(crafted.end(), reinterpret_cast<const uint8_t*>(&n),
                   reinterpret_cast<const uint8_t*>(&n) + 8);
    crafted.insert(crafted.end(), pending.begin(), pending.end());
    crafted.insert(crafted.end(), good.begin() + static_cast<ptrdiff_t>(at_start + 9), good.end());
    const uint64_t payload = crafted.size() - 32;
    std::memcpy(crafted.data() + 16, &payload, 8);
    const std::string e = error_of(crafted);
    if (pending == "\xF0\x9F") {
      EXPECT_EQ(e, "") << "the start of a 4-byte character is a state a decoder can be in";
    } else {
      EXPECT_EQ(e, "invalid stream file: the decoder's " + std::to_string(n) +
                       " pending bytes are not the start of one UTF-8 character");
    }
  }
}

TEST_F(StreamSaveTest, ChatAndStreamFilesAreNotMixedUp) {
  const auto model = stories();
  const std::string stream_file = path("x.stream");
  good_bytes(stream_file);
  ChatOptions o;
  o.cache = *CacheOptions::for_policy(CachePolicy::kStreaming, 20, 4);
  auto chat = Chat::create(model, o);
  ASSERT_TRUE(chat.ok());
  StopOptions stop;
  stop.max_tokens = 4;
  ASSERT_TRUE((*chat)->send("Hello", stop).ok());
  const std::string chat_file = path("x.session");
  ASSERT_TRUE((*chat)->save(chat_file).ok());

  auto as_stream = Stream::load(model, chat_file);
  ASSERT_FALSE(as_stream.ok());
  EXPECT_EQ(as_stream.error().message(),
            chat_file + ": this is a chat session file, not a stream file (SLLMCHAT header; " +
                "load it with Chat::load, chat --session)");
  auto as_chat = Chat::load(model, stream_file);
  ASSERT_FALSE(as_chat.ok());
  EXPECT_EQ(as_chat.error().message(),
            stream_file + ": this is a stream file, not a chat session file (SLLMSTRM header; " +
                "load it with Stream::load)");
  EXPECT_TRUE(Chat::load(model, chat_file).ok());
  EXPECT_TRUE(Stream::load(model, stream_file).ok());
}

// A copy of stories260K with another general.name: the same weights, another fingerprint.
std::string other_model(const std::string& path) {
  auto gguf = GgufFile::open(test::stories_gguf());
  if (!gguf.ok()) throw std::runtime_error(gguf.error().message());
  GgufWriter w;
  for (const auto& [k, v] : gguf->metadata()) w.set(k, v);
  w.set("general.name", GgufValue::str("not stories260K"));
  for (const GgufTensorInfo& t : gguf->tensors()) {
    if (!w.add_tensor(t.name, t.type, t.dims, std::span(t.data, t.n_bytes)).ok()) {
      throw std::runtime_error("add_tensor failed");
    }
  }
  if (!w.write(path).ok()) throw std::runtime_error("write failed");
  return path;
}

TEST_F(StreamSaveTest, AnotherModelIsRefused) {
  const std::string file = path("s.stream");
  good_bytes(file);
  auto other = Model::load(other_model(path("other.gguf")));
  ASSERT_TRUE(other.ok()) << other.error().message();
  auto s = Stream::load(*other, file);
  ASSERT_FALSE(s.ok());
  const std::string& m = s.error().message();
  EXPECT_EQ(m.rfind(file + ": the stream was saved with another model (" + test::stories_gguf() +
                        ", fingerprint ",
                    0),
            0u)
      << m;
  EXPECT_NE(m.find("; resume it with that model or create a new stream"), std::string::npos) << m;
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidInput);
}

TEST_F(StreamSaveTest, UnwritablePathsAreErrorsAndLeaveNothing) {
  auto s = Stream::create(stories());
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*s)->feed_text("Once upon a time", true).ok());
  const std::string sub = path("sub");
  fs::create_directory(sub);
  const Status to_dir = (*s)->save(sub);
  ASSERT_FALSE(to_dir.ok());
  EXPECT_EQ(to_dir.error().message(),
            "'" + sub + "' is not a regular file (directory); refusing to replace it");
  const Status no_dir = (*s)->save(path("missing/x.stream"));
  ASSERT_FALSE(no_dir.ok());
  EXPECT_EQ(no_dir.error().message(), "cannot write '" + path("missing/x.stream") +
                                          "': its directory '" + path("missing") +
                                          "': No such file or directory");
  EXPECT_EQ(names(), std::vector<std::string>{"sub"});
  EXPECT_TRUE(fs::is_empty(sub));

  // A save over an older one replaces it whole.
  const std::string file = path("s.stream");
  ASSERT_TRUE((*s)->save(file).ok());
  ASSERT_TRUE((*s)->feed_text(" there was a cat", false).ok());
  ASSERT_TRUE((*s)->save(file).ok());
  auto loaded = Stream::load(stories(), file);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  EXPECT_EQ((*loaded)->n_seen(), (*s)->n_seen());
  EXPECT_EQ(names(), (std::vector<std::string>{"s.stream", "sub"}));

  auto missing = Stream::load(stories(), path("none.stream"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find(path("none.stream")), std::string::npos);
}

}  // namespace
}  // namespace sllm
