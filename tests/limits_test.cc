// Sizes from options checked before anything is allocated: the KV cache, the session's buffers,
// the thread pool and the sampler's history. Each refusal is an error that says what was asked
// for, in milliseconds; a large but allowed cache costs memory only for the tokens it holds.
#include <gtest/gtest.h>
#include <malloc.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "cache/kv_cache.h"
#include "engine_fixture.h"
#include "runtime/session.h"
#include "sampling/sampler.h"
#include "util/limits.h"
#include "util/thread_pool.h"

namespace sllm::test {
namespace {

// stories260K's attention: 5 layers, 8 query heads over 4 KV heads of 8 dims, RoPE on 8 dims.
KvCacheShape stories_shape() {
  const ModelConfig& c = stories().model.config();
  return {c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.rope};
}

KvCacheOptions window_options(uint64_t n_sinks, uint64_t window) {
  KvCacheOptions o;
  o.n_sinks = n_sinks;
  o.window = window;
  return o;
}

// The error of KvCache::create, checked to come back in well under a second.
Error cache_error(const KvCacheOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  auto cache = KvCache::create(stories_shape(), options);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 0.5);
  EXPECT_FALSE(cache.ok());
  return cache.ok() ? Error(ErrorCode::kInternal, "created") : cache.error();
}

// Issue 8: `--window 100000000` aborted with bad_alloc; it asks for 128 GB of K/V.
TEST(CacheLimits, WindowLargerThanMemoryIsALimitErrorWithTheByteCount) {
  const uint64_t kv_bytes = uint64_t{2} * 5 * (100000000 + 4) * 4 * 8 * sizeof(float);
  if (kv_bytes <= memory_limit_bytes()) GTEST_SKIP() << "this machine has more than 128 GB";
  const Error e = cache_error(window_options(4, 100000000));
  EXPECT_EQ(e.code(), ErrorCode::kLimit);
  const std::string prefix =
      "the KV cache (4 sink tokens + a window of 100000000 tokens) would need ";
  ASSERT_EQ(e.message().rfind(prefix, 0), 0u) << e.message();
  const uint64_t asked = std::stoull(e.message().substr(prefix.size()));
  EXPECT_GE(asked, kv_bytes);            // K/V, and the slot map, the scores and the batch
  EXPECT_LT(asked, kv_bytes / 10 * 13);  // but not much more
  EXPECT_NE(e.message().find(" bytes, more than the " + std::to_string(memory_limit_bytes()) +
                             " bytes of memory here"),
            std::string::npos)
      << e.message();
}

// Issue 8: `--sinks -4 --window 4` wrapped to 2^64 - 4 sinks, and n_sinks + window overflowed.
TEST(CacheLimits, SinksPlusWindowOverflowIsALimitError) {
  const Error e = cache_error(window_options(~uint64_t{0} - 3, 4));
  EXPECT_EQ(e.code(), ErrorCode::kLimit);
  EXPECT_EQ(e.message(),
            "a KV cache of 18446744073709551612 sink tokens + a window of 4 tokens holds more "
            "than 2^64 tokens");
  // `--window -1`: 2^64 - 1 window tokens, no overflow in the sum but in the bytes.
  const Error w = cache_error(window_options(0, ~uint64_t{0}));
  EXPECT_EQ(w.code(), ErrorCode::kLimit);
  EXPECT_EQ(
      w.message(),
      "the KV cache (0 sink tokens + a window of 18446744073709551615 tokens) would need more "
      "than 2^64 bytes (its size overflows)");
}

TEST(CacheLimits, HugeBatchIsALimitError) {
  KvCacheOptions o = window_options(4, 16);
  o.max_batch = uint64_t{1} << 40;
  const Error e = cache_error(o);
  EXPECT_EQ(e.code(), ErrorCode::kLimit);
  EXPECT_NE(e.message().find("the KV cache (4 sink tokens + a window of 16 tokens) would need "),
            std::string::npos)
      << e.message();
  EXPECT_EQ(cache_error(window_options(4, 0)).message(), "the window must hold at least 1 token");
}

Error session_error(const SessionOptions& options) {
  ThreadPool pool(1);
  const auto start = std::chrono::steady_clock::now();
  auto session = Session::create(stories().model, options, pool);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 0.5);
  EXPECT_FALSE(session.ok());
  return session.ok() ? Error(ErrorCode::kInternal, "created") : session.error();
}

// Issue 8: `--policy dense -c 1099511627776` aborted with bad_alloc.
TEST(SessionLimits, DenseContextLargerThanMemoryIsALimitError) {
  SessionOptions o;
  o.policy = CachePolicy::kDense;
  o.window = uint64_t{1} << 40;
  const Error e = session_error(o);
  EXPECT_EQ(e.code(), ErrorCode::kLimit);
  const std::string prefix =
      "the KV cache (0 sink tokens + a window of 1099511627776 tokens) would need ";
  ASSERT_EQ(e.message().rfind(prefix, 0), 0u) << e.message();
  EXPECT_GE(std::stoull(e.message().substr(prefix.size())),
            uint64_t{2} * 5 * (uint64_t{1} << 40) * 32 * sizeof(float));
}

TEST(SessionLimits, BatchActivationsLargerThanMemoryIsALimitError) {
  SessionOptions o;
  o.window = 16;
  o.max_batch = uint64_t{1} << 36;
  const Error e = session_error(o);
  EXPECT_EQ(e.code(), ErrorCode::kLimit);
  EXPECT_NE(e.message().find(" would need "), std::string::npos) << e.message();
  EXPECT_NE(e.message().find(" bytes, more than the "), std::string::npos) << e.message();
}

uint64_t rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

// A 2-million-token window (256 MB of K/V for stories260K) is allowed; memory follows the
// tokens held, and the logits are bit-identical to those of a small window's session.
TEST(SessionLimits, LargeAllowedWindowCostsOnlyTheTokensHeld) {
  ThreadPool pool(1);
  SessionOptions big;
  big.window = 2000000;
  SessionOptions small;
  small.window = 64;
  const uint64_t rss_before = rss_bytes();
  auto big_session = make_session(big, pool);
  EXPECT_EQ(big_session->cache_bytes(), uint64_t{2} * 5 * (2000000 + 4) * 32 * sizeof(float));
  auto small_session = make_session(small, pool);
  const std::vector<TokenId> tokens = story_tokens(48);
  std::vector<float> big_logits, small_logits;
  ASSERT_TRUE(big_session->feed(tokens, &big_logits).ok());
  ASSERT_TRUE(small_session->feed(tokens, &small_logits).ok());
  EXPECT_TRUE(big_logits == small_logits);
  if (!kSanitized) {
    EXPECT_LT(rss_bytes() - rss_before, uint64_t{64} << 20)
        << "a 256 MB cache holding 48 tokens should not be resident";
  }
}

// Issue 8: `-t -1` and `-t 1099511627776` aborted with std::system_error.
TEST(ThreadPoolLimits, CreateRefusesCountsOutsideTheRange) {
  for (uint64_t n : {uint64_t{0}, uint64_t{1025}, uint64_t{1} << 40, ~uint64_t{0}}) {
    auto pool = ThreadPool::create(n);
    ASSERT_FALSE(pool.ok()) << n;
    EXPECT_EQ(pool.error().code(), ErrorCode::kInvalidInput);
    EXPECT_EQ(pool.error().message(),
              "a thread pool needs between 1 and 1024 threads, not " + std::to_string(n));
  }
  auto pool = ThreadPool::create(3);
  ASSERT_TRUE(pool.ok()) << pool.error().message();
  EXPECT_EQ((*pool)->n_threads(), 3u);
  std::atomic<size_t> sum{0};
  (*pool)->run(100, [&](size_t task) { sum += task; });
  EXPECT_EQ(sum.load(), 4950u);
}

std::string validate_message(void (*set)(SamplerOptions&)) {
  SamplerOptions o;
  set(o);
  const Status s = o.validate();
  return s.ok() ? "" : s.error().message();
}

TEST(SamplerLimits, ValidateRejectsEveryNonFiniteOrOutOfRangeOption) {
  struct Case {
    void (*set)(SamplerOptions&);
    const char* expected;
  };
  constexpr float kInf = std::numeric_limits<float>::infinity();
  constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
  const Case cases[] = {
      {[](SamplerOptions& o) { o.temperature = kNan; }, "temperature must be >= 0 (0 = greedy)"},
      {[](SamplerOptions& o) { o.temperature = kInf; }, "temperature must be >= 0 (0 = greedy)"},
      {[](SamplerOptions& o) { o.temperature = -1; }, "temperature must be >= 0 (0 = greedy)"},
      {[](SamplerOptions& o) { o.top_k = -1; }, "top_k must be >= 0 (0 = off), got -1"},
      {[](SamplerOptions& o) { o.top_p = 0; }, "top_p must be in (0, 1] (1 = off), got 0"},
      {[](SamplerOptions& o) { o.top_p = kNan; }, "top_p must be in (0, 1] (1 = off)"},
      {[](SamplerOptions& o) { o.top_p = 1.5f; }, "top_p must be in (0, 1] (1 = off), got 1.5"},
      {[](SamplerOptions& o) { o.min_p = -0.5f; }, "min_p must be in [0, 1] (0 = off), got -0.5"},
      {[](SamplerOptions& o) { o.min_p = kNan; }, "min_p must be in [0, 1] (0 = off)"},
      {[](SamplerOptions& o) { o.min_p = kInf; }, "min_p must be in [0, 1] (0 = off)"},
      {[](SamplerOptions& o) { o.repeat_penalty = 0; }, "repeat_penalty must be > 0 (1 = off)"},
      {[](SamplerOptions& o) { o.repeat_penalty = kInf; }, "repeat_penalty must be > 0 (1 = off)"},
      {[](SamplerOptions& o) { o.repeat_penalty = kNan; }, "repeat_penalty must be > 0 (1 = off)"},
      {[](SamplerOptions& o) { o.repeat_last_n = -1; }, "repeat_last_n must be >= 0 (0 = off)"},
  };
  for (const Case& c : cases) {
    const std::string message = validate_message(c.set);
    EXPECT_EQ(message.rfind("sampler options: ", 0), 0u) << message;
    EXPECT_NE(message.find(c.expected), std::string::npos) << message;
  }
  EXPECT_EQ(validate_message([](SamplerOptions& o) { o.repeat_last_n = 200000000; }), "");
}

// Issue 8: `--repeat-last-n 200000000` allocated 1.6 GB up front; the history now grows with
// the tokens accepted, and its saved form is what it was.
TEST(SamplerLimits, HugeRepeatLastNAllocatesOnlyForTokensSeen) {
  SamplerOptions o;
  o.repeat_last_n = 200000000;
  const size_t before = mallinfo2().uordblks;
  Sampler sampler(o, 512);
  for (int32_t t = 0; t < 1000; ++t) sampler.accept(t % 512);
  const size_t after = mallinfo2().uordblks;
  EXPECT_LT(after - before, size_t{1} << 20) << "the history should hold 1000 tokens, not 2e8";
  const std::string state = sampler.save_state();
  EXPECT_NE(state.find("\nhistory 1000 0 1 2 "), std::string::npos);
  Sampler restored(o, 512);
  ASSERT_TRUE(restored.load_state(state).ok());
  EXPECT_EQ(restored.save_state(), state);
}

TEST(SamplerLimits, FullHistoryRingKeepsTheLastTokensOldestFirst) {
  SamplerOptions o;
  o.repeat_last_n = 3;
  Sampler sampler(o, 16);
  for (int32_t t : {1, 2, 3, 4, 5}) sampler.accept(t);
  const std::string state = sampler.save_state();
  EXPECT_NE(state.find("\nhistory 3 3 4 5\n"), std::string::npos) << state;
  Sampler restored(o, 16);
  ASSERT_TRUE(restored.load_state(state).ok());
  restored.accept(6);
  sampler.accept(6);
  EXPECT_EQ(restored.save_state(), sampler.save_state());
  EXPECT_NE(sampler.save_state().find("\nhistory 3 4 5 6\n"), std::string::npos);
}

// An extreme penalty must not turn a logit into an infinity (whose softmax is NaN).
TEST(SamplerLimits, ExtremePenaltyKeepsLogitsFinite) {
  SamplerOptions o;
  o.repeat_penalty = 1e-30f;
  o.top_k = 0;
  o.top_p = 1.0f;
  o.min_p = 0.0f;
  Sampler sampler(o, 4);
  sampler.accept(2);
  std::vector<float> logits = {1.0f, 2.0f, 3e10f, -1.0f};
  const int32_t token = sampler.sample(logits);
  EXPECT_TRUE(std::isfinite(logits[2])) << logits[2];
  EXPECT_EQ(token, 2);
}

}  // namespace
}  // namespace sllm::test
