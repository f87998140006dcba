// The StreamingLLM cache (issue 3): policies, exact positions without rewriting keys, chunked
// prefill, large positions. Model-free tests first, then the real model.
#include "cache/kv_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "engine_fixture.h"
#include "kernels/ops.h"
#include "reference/reference_llama.h"

namespace sllm::test {
namespace {
using reference::NaiveStreamingReference;
using reference::recompute_step;
using reference::ReferenceLlama;

// ---------------------------------------------------------------------------------------------
// Without a model: random q/k/v through one layer, against a re-rotating double-precision
// reference of the paper's method (unrotated keys, re-rotated at in-cache positions each step).

struct NaiveCache {
  size_t n_sinks, window, n_heads, n_kv_heads, head_dim;
  double base = 10000.0;
  std::vector<std::vector<double>> k = {}, v = {};  // unrotated, in cache order

  void rotate(std::vector<double>& x, size_t n, uint64_t pos) const {
    for (size_t h = 0; h < n; ++h) {
      for (size_t i = 0; i < head_dim / 2; ++i) {
        const double a =
            static_cast<double>(pos) *
            std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
        double& x0 = x[h * head_dim + 2 * i];
        double& x1 = x[h * head_dim + 2 * i + 1];
        const double y0 = x0 * std::cos(a) - x1 * std::sin(a);
        const double y1 = x0 * std::sin(a) + x1 * std::cos(a);
        x0 = y0;
        x1 = y1;
      }
    }
  }

  std::vector<double> step(std::vector<double> q, std::vector<double> key,
                           std::vector<double> val) {
    k.push_back(std::move(key));
    v.push_back(std::move(val));
    if (k.size() > n_sinks + window) {
      k.erase(k.begin() + static_cast<std::ptrdiff_t>(n_sinks));
      v.erase(v.begin() + static_cast<std::ptrdiff_t>(n_sinks));
    }
    const size_t n = k.size();
    rotate(q, n_heads, n - 1);
    std::vector<double> out(n_heads * head_dim, 0.0);
    for (size_t h = 0; h < n_heads; ++h) {
      const size_t g = h / (n_heads / n_kv_heads);
      std::vector<double> s(n);
      double mx = -1e300;
      for (size_t j = 0; j < n; ++j) {
        std::vector<double> kj = k[j];
        rotate(kj, n_kv_heads, j);
        double d = 0;
        for (size_t c = 0; c < head_dim; ++c) d += q[h * head_dim + c] * kj[g * head_dim + c];
        s[j] = d / std::sqrt(static_cast<double>(head_dim));
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (size_t j = 0; j < n; ++j) {
        for (size_t c = 0; c < head_dim; ++c) {
          out[h * head_dim + c] += s[j] / sum * v[j][g * head_dim + c];
        }
      }
    }
    return out;
  }
};

KvCacheShape shape_for_test() {
  KvCacheShape s;
  s.n_layers = 1;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.head_dim = 16;
  s.rope = RopeSpec{16, 16, 10000.0, RopeLayout::kAdjacentPairs};
  return s;
}

std::vector<float> random_vec(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& e : x) e = d(rng);
  return x;
}

// The position identity the cache rests on, at the unit level: sinks survive eviction, the ring
// wraps, and sink/window scores use the right query offsets. Also for a large start position.
TEST(KvCacheTest, MatchesReRotatingReferenceWithoutAModel) {
  for (uint64_t start : {uint64_t{0}, uint64_t{1} << 32}) {
    const KvCacheShape shape = shape_for_test();
    KvCacheOptions o;
    o.n_sinks = 3;
    o.window = 7;
    o.start_pos = start;
    o.max_batch = 1;
    auto cache = KvCache::create(shape, o);
    ASSERT_TRUE(cache.ok());
    NaiveCache ref{3, 7, shape.n_heads, shape.n_kv_heads, shape.head_dim};
    ThreadPool pool(1);
    std::mt19937 rng(7);
    double worst = 0;
    for (int t = 0; t < 40; ++t) {
      auto q = random_vec(rng, 64), k = random_vec(rng, 32), v = random_vec(rng, 32);
      const auto expected =
          ref.step(std::vector<double>(q.begin(), q.end()), std::vector<double>(k.begin(), k.end()),
                   std::vector<double>(v.begin(), v.end()));
      std::vector<float> out(64);
      cache->begin_batch(1);
      cache->attend(0, q.data(), k.data(), v.data(), out.data(), pool);
      cache->end_batch();
      worst = std::max(worst, max_abs_diff(out, expected));
    }
    EXPECT_LT(worst, 2e-5) << "start position " << start;
    EXPECT_EQ(cache->n_cached(), 10u);
  }
}

TEST(KvCacheTest, RejectsBadOptions) {
  KvCacheOptions o;
  o.window = 0;
  auto c = KvCache::create(shape_for_test(), o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "the window must hold at least 1 token");
  o.window = 4;
  o.kv_type = TensorType::kQ4_1;  // q8_0 and q4_0 are cache types now (kv_quant_test.cc)
  c = KvCache::create(shape_for_test(), o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "the KV cache type must be f32, f16, q8_0 or q4_0");
}

TEST(KvCacheTest, SizeIsSlotsTimesLayersTimesKv) {
  KvCacheOptions o;
  o.n_sinks = 4;
  o.window = 60;
  o.kv_type = TensorType::kF16;
  auto c = KvCache::create(shape_for_test(), o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->n_bytes(), (4u + 60u) * 1u * 2u * 2u * 16u * 2u);
}

// The cache keeps a plane per KV head (f32, f16), session files a slot's heads side by side:
// contents() lays each layer's slots out as [slots, kv_dim] rows, the K/V each layer was given
// (position 0 and no rope: stored as given), and restore() of those rows gives back a cache
// whose contents and attention are the same, to the bit.
TEST(KvCacheTest, ContentsAreRowsOfAllKvHeads) {
  KvCacheShape shape;
  shape.n_layers = 2;
  shape.n_heads = 4;
  shape.n_kv_heads = 2;
  shape.head_dim = 4;
  shape.rope = RopeSpec{4, 0};
  KvCacheOptions o;
  o.n_sinks = 1;
  o.window = 2;
  const size_t kv_dim = 8, q_dim = 16, n_tokens = 3;
  for (TensorType type : {TensorType::kF32, TensorType::kF16}) {
    o.kv_type = type;
    auto cache = KvCache::create(shape, o);
    ASSERT_TRUE(cache.ok());
    ThreadPool pool(1);
    std::vector<float> k(shape.n_layers * n_tokens * kv_dim), v(k.size());
    for (size_t i = 0; i < k.size(); ++i) {
      k[i] = static_cast<float>(i) * 0.25f;  // exact in f16 too
      v[i] = -static_cast<float>(i) * 0.5f;
    }
    const auto kin = k, vin = v;
    std::vector<float> q(n_tokens * q_dim, 0.5f), out(n_tokens * q_dim);
    cache->begin_batch(n_tokens);
    for (size_t l = 0; l < shape.n_layers; ++l) {
      cache->attend(l, q.data(), &k[l * n_tokens * kv_dim], &v[l * n_tokens * kv_dim], out.data(),
                    pool);
    }
    cache->end_batch();
    const size_t elem = type == TensorType::kF32 ? 4 : 2;
    const auto row_bytes = [&](const std::vector<float>& x, size_t l, size_t t) {
      std::vector<uint8_t> row(kv_dim * elem);
      ops::store_kv(&x[(l * n_tokens + t) * kv_dim], row.data(), type, kv_dim);
      return row;
    };
    const KvCacheContents saved = cache->contents();
    std::vector<uint8_t> want_k, want_v;
    for (size_t l = 0; l < shape.n_layers; ++l) {
      for (size_t t = 0; t < n_tokens; ++t) {  // slot t holds token t (sink, then the window)
        const auto kr = row_bytes(kin, l, t), vr = row_bytes(vin, l, t);
        EXPECT_EQ(cache->key_row(l, t), kr);
        EXPECT_EQ(cache->value_row(l, t), vr);
        want_k.insert(want_k.end(), kr.begin(), kr.end());
        want_v.insert(want_v.end(), vr.begin(), vr.end());
      }
    }
    ASSERT_EQ(std::vector<uint8_t>(saved.keys.begin(), saved.keys.end()), want_k);
    ASSERT_EQ(std::vector<uint8_t>(saved.values.begin(), saved.values.end()), want_v);

    auto copy = KvCache::create(shape, o);
    ASSERT_TRUE(copy.ok());
    ASSERT_TRUE(copy->restore(saved).ok());
    const KvCacheContents again = copy->contents();
    EXPECT_TRUE(std::equal(again.keys.begin(), again.keys.end(), want_k.begin(), want_k.end()));
    EXPECT_TRUE(std::equal(again.values.begin(), again.values.end(), want_v.begin(), want_v.end()));
    // The next token attends alike in both (it evicts token 1 from the window).
    std::vector<float> outs[2];
    KvCache* caches[2] = {&*cache, &*copy};
    for (size_t c = 0; c < 2; ++c) {
      std::vector<float> qn(q_dim), kn(kv_dim), vn(kv_dim);
      for (size_t i = 0; i < q_dim; ++i) qn[i] = 0.1f * static_cast<float>(i);
      for (size_t i = 0; i < kv_dim; ++i) kn[i] = vn[i] = 1.0f + static_cast<float>(i);
      outs[c].resize(q_dim);
      caches[c]->begin_batch(1);
      caches[c]->attend(0, qn.data(), kn.data(), vn.data(), outs[c].data(), pool);
      caches[c]->end_batch();
    }
    EXPECT_EQ(outs[0], outs[1]);
  }
}

// Sliding-window layers (Gemma): in a cache of one local and one global layer, the local layer
// is exactly a sinkless cache of its window with its own rope, the global layer exactly the
// sinks + window cache, bit for bit, batched or not, with the attention scale and soft-cap; each
// layer has its own slots, in the byte count and in a saved and restored cache.
TEST(KvCacheTest, LocalLayersAreSinklessWindowsOfTheirOwn) {
  KvCacheShape mixed = shape_for_test();
  mixed.n_layers = 2;
  mixed.attn_scale = 0.3f;
  mixed.attn_softcap = 2.0f;
  mixed.local_layers = {true, false};
  mixed.local_window = 5;
  mixed.local_rope = RopeSpec{16, 16, 500.0, RopeLayout::kHalfSplit};
  KvCacheShape local = mixed, global = mixed;
  local.n_layers = global.n_layers = 1;
  local.local_layers.clear();
  global.local_layers.clear();
  local.rope = mixed.local_rope;
  for (size_t batch : {size_t{1}, size_t{4}}) {
    KvCacheOptions o;
    o.n_sinks = 3;
    o.window = 7;
    o.max_batch = batch;
    KvCacheOptions lo = o;
    lo.n_sinks = 0;
    lo.window = 5;
    auto cache = KvCache::create(mixed, o);
    auto want_local = KvCache::create(local, lo);
    auto want_global = KvCache::create(global, o);
    ASSERT_TRUE(cache.ok() && want_local.ok() && want_global.ok());
    const size_t row = 2 * 16 * 4;  // kv_dim f32
    EXPECT_EQ(cache->n_bytes(), 2 * (5 + 10) * row);
    EXPECT_EQ(cache->layer_slots(0), 5u);
    EXPECT_EQ(cache->layer_slots(1), 10u);
    ThreadPool pool(1);
    std::mt19937 rng(3);
    const auto run = [&](KvCache& c, size_t layer, std::vector<float> q, std::vector<float> k,
                         const std::vector<float>& v) {
      std::vector<float> out(q.size());
      c.attend(layer, q.data(), k.data(), v.data(), out.data(), pool);
      return out;
    };
    for (int step = 0; step < 12; ++step) {
      const auto q = random_vec(rng, 64 * batch), k = random_vec(rng, 32 * batch),
                 v = random_vec(rng, 32 * batch);
      for (KvCache* c : {&*cache, &*want_local, &*want_global}) c->begin_batch(batch);
      EXPECT_EQ(run(*cache, 0, q, k, v), run(*want_local, 0, q, k, v)) << "step " << step;
      EXPECT_EQ(run(*cache, 1, q, k, v), run(*want_global, 0, q, k, v)) << "step " << step;
      for (KvCache* c : {&*cache, &*want_local, &*want_global}) c->end_batch();
    }
    for (size_t slot = 0; slot < 5; ++slot) {
      EXPECT_EQ(cache->slot_token(0, slot), want_local->slot_token(0, slot));
    }
    // Saved and restored: the same slots, the same next step.
    auto copy = KvCache::create(mixed, o);
    ASSERT_TRUE(copy.ok());
    ASSERT_TRUE(copy->restore(cache->contents()).ok());
    for (size_t slot = 0; slot < 10; ++slot) {
      if (slot < 5) {
        EXPECT_EQ(copy->slot_token(0, slot), cache->slot_token(0, slot));
      }
      EXPECT_EQ(copy->slot_token(1, slot), cache->slot_token(1, slot));
    }
    const auto q = random_vec(rng, 64 * batch), k = random_vec(rng, 32 * batch),
               v = random_vec(rng, 32 * batch);
    cache->begin_batch(batch);
    copy->begin_batch(batch);
    for (size_t layer : {size_t{0}, size_t{1}}) {
      EXPECT_EQ(run(*cache, layer, q, k, v), run(*copy, layer, q, k, v)) << "layer " << layer;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// On the real model.

SessionOptions policy(CachePolicy p, size_t n_sinks, size_t window) {
  SessionOptions o;
  o.policy = p;
  o.n_sinks = n_sinks;
  o.window = window;
  return o;
}

// Acceptance 1: streaming with S + W >= the stream is dense, bit for bit (f32 and f16 caches).
TEST(StreamingCacheTest, LargeStreamingCacheIsBitIdenticalToDense) {
  const size_t n = stream_length(1000, 300);
  const auto tokens = story_tokens(n);
  ThreadPool pool(2);
  for (KvType kv : {KvType::kF32, KvType::kF16}) {
    auto dense_opts = policy(CachePolicy::kDense, 0, n);
    auto stream_opts = policy(CachePolicy::kStreaming, 4, n - 4);
    dense_opts.kv_type = stream_opts.kv_type = kv;
    auto dense = make_session(dense_opts, pool);
    auto streaming = make_session(stream_opts, pool);
    std::vector<float> a, b;
    ASSERT_TRUE(dense->feed(tokens, &a).ok());
    ASSERT_TRUE(streaming->feed(tokens, &b).ok());
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  }
}

// Acceptance 2: streaming (S=4, W=60) over 3000 tokens agrees with the paper's method (keys
// stored unrotated, the whole cache re-rotated at in-cache positions every step).
TEST(StreamingCacheTest, MatchesNaiveReRotatingReferenceOver3000Tokens) {
  const auto tokens = story_tokens(stream_length(3000, 400));
  ThreadPool pool(1);
  auto session = make_session(policy(CachePolicy::kStreaming, 4, 60), pool);
  const auto model = ReferenceLlama::load(stories_gguf());
  NaiveStreamingReference reference(model, 4, 60);
  double worst = 0;
  for (TokenId t : tokens) {
    const TokenId one[1] = {t};
    ASSERT_TRUE(session->feed(one).ok());
    const auto expected = reference.step(t);
    std::vector<float> got(session->last_logits().begin(), session->last_logits().end());
    worst = std::max(worst, max_abs_diff(got, expected));
  }
  EXPECT_LT(worst, 1e-4);
  RecordProperty("max_abs_diff", std::to_string(worst));
}

// Acceptance 3a: window attention is streaming with no sinks, and matches the reference.
TEST(StreamingCacheTest, WindowIsStreamingWithoutSinks) {
  const auto tokens = story_tokens(400);
  ThreadPool pool(1);
  auto window = make_session(policy(CachePolicy::kWindow, 0, 64), pool);
  auto streaming0 = make_session(policy(CachePolicy::kStreaming, 0, 64), pool);
  std::vector<float> a, b;
  ASSERT_TRUE(window->feed(tokens, &a).ok());
  ASSERT_TRUE(streaming0->feed(tokens, &b).ok());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);

  const auto model = ReferenceLlama::load(stories_gguf());
  NaiveStreamingReference reference(model, 0, 64);
  const size_t n_vocab = stories().model.config().n_vocab;
  double worst = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const auto expected = reference.step(tokens[i]);
    std::vector<float> row(a.begin() + static_cast<std::ptrdiff_t>(i * n_vocab),
                           a.begin() + static_cast<std::ptrdiff_t>((i + 1) * n_vocab));
    worst = std::max(worst, max_abs_diff(row, expected));
  }
  EXPECT_LT(worst, 1e-4);
}

// Acceptance 3b: recompute equals a full fresh forward over the last W tokens at every step.
TEST(StreamingCacheTest, RecomputeIsAFreshForwardOverTheLastWTokens) {
  const size_t kWindow = 32, kSteps = stream_length(300, 80);
  const auto tokens = story_tokens(kSteps);
  ThreadPool pool(1);
  auto recompute = make_session(policy(CachePolicy::kRecompute, 0, kWindow), pool);
  std::vector<float> got;
  ASSERT_TRUE(recompute->feed(tokens, &got).ok());
  const auto model = ReferenceLlama::load(stories_gguf());
  const size_t n_vocab = stories().model.config().n_vocab;
  double worst_ref = 0;
  for (size_t i = 0; i < kSteps; ++i) {
    const std::vector<TokenId> so_far(tokens.begin(),
                                      tokens.begin() + static_cast<std::ptrdiff_t>(i + 1));
    std::vector<float> row(got.begin() + static_cast<std::ptrdiff_t>(i * n_vocab),
                           got.begin() + static_cast<std::ptrdiff_t>((i + 1) * n_vocab));
    // Bit-identical to a fresh dense session fed the same W tokens...
    auto fresh = make_session(policy(CachePolicy::kDense, 0, kWindow), pool);
    const size_t first = i + 1 > kWindow ? i + 1 - kWindow : 0;
    ASSERT_TRUE(fresh->feed(std::span(so_far).subspan(first)).ok());
    ASSERT_EQ(std::memcmp(row.data(), fresh->last_logits().data(), n_vocab * sizeof(float)), 0)
        << "step " << i;
    // ...and within float rounding of the double-precision reference's recompute step.
    if (i % 10 == 0)
      worst_ref = std::max(worst_ref, max_abs_diff(row, recompute_step(model, so_far, kWindow)));
  }
  EXPECT_LT(worst_ref, 1e-4);
}

// Recompute fed a whole prompt at once rebuilds its cache once, from the prompt's last W tokens:
// the same logits, bit for bit, as one rebuild per token, then and for the tokens after it.
TEST(StreamingCacheTest, RecomputeFedAtOnceEqualsTokenByToken) {
  const size_t kWindow = 32;
  const auto tokens = story_tokens(stream_length(200, 80));
  ThreadPool pool(1);
  for (size_t prompt : {size_t{5}, kWindow, tokens.size() - 3}) {
    auto at_once = make_session(policy(CachePolicy::kRecompute, 0, kWindow), pool);
    auto one = make_session(policy(CachePolicy::kRecompute, 0, kWindow), pool);
    ASSERT_TRUE(at_once->feed(std::span(tokens).first(prompt)).ok());
    for (size_t i = 0; i < prompt; ++i) ASSERT_TRUE(one->feed({&tokens[i], 1}).ok());
    for (size_t i = prompt; i <= tokens.size(); ++i) {
      ASSERT_EQ(at_once->n_seen(), one->n_seen());
      ASSERT_EQ(std::memcmp(at_once->last_logits().data(), one->last_logits().data(),
                            at_once->last_logits().size_bytes()),
                0)
          << "prompt " << prompt << ", token " << i;
      if (i == tokens.size()) break;
      ASSERT_TRUE(at_once->feed({&tokens[i], 1}).ok());
      ASSERT_TRUE(one->feed({&tokens[i], 1}).ok());
    }
  }
}

// Acceptance 4: chunked prefill of 2000 tokens with W=100 equals token-by-token feeding, for
// batches smaller than, equal to and larger than the window.
TEST(StreamingCacheTest, ChunkedPrefillEqualsTokenByToken) {
  const auto tokens = story_tokens(stream_length(2000, 600));
  ThreadPool pool(2);
  auto one = make_session(policy(CachePolicy::kStreaming, 4, 100), pool);
  const auto expected = feed_one_by_one(*one, tokens);
  for (size_t batch : {size_t{7}, size_t{100}, size_t{256}}) {
    auto opts = policy(CachePolicy::kStreaming, 4, 100);
    opts.max_batch = batch;
    auto chunked = make_session(opts, pool);
    std::vector<float> all;
    ASSERT_TRUE(chunked->feed(tokens, &all).ok());
    ASSERT_EQ(all.size(), tokens.size() * expected[0].size());
    EXPECT_LT(max_row_diff(all, expected), 1e-5) << "batch " << batch;
    // The cache ends in the same state: the next token's logits agree too.
    const TokenId next[1] = {tokens[5]};
    ASSERT_TRUE(one->feed(next).ok() && chunked->feed(next).ok());
    EXPECT_LT(max_abs_diff(
                  std::vector<float>(one->last_logits().begin(), one->last_logits().end()),
                  std::vector<float>(chunked->last_logits().begin(), chunked->last_logits().end())),
              1e-5);
    one = make_session(policy(CachePolicy::kStreaming, 4, 100), pool);
    feed_one_by_one(*one, tokens);
  }
}

// Acceptance 5: absolute positions of 2^24 and 2^32 give the logits of position 0.
TEST(StreamingCacheTest, LargeStartPositionsGiveTheSameLogits) {
  const auto tokens = story_tokens(300);
  ThreadPool pool(1);
  auto base = make_session(policy(CachePolicy::kStreaming, 4, 60), pool);
  std::vector<float> expected;
  ASSERT_TRUE(base->feed(tokens, &expected).ok());
  for (uint64_t start : {uint64_t{1} << 24, uint64_t{1} << 32}) {
    auto opts = policy(CachePolicy::kStreaming, 4, 60);
    opts.start_pos = start;
    auto shifted = make_session(opts, pool);
    std::vector<float> got;
    ASSERT_TRUE(shifted->feed(tokens, &got).ok());
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      worst = std::max(worst, std::abs(static_cast<double>(got[i]) - expected[i]));
    }
    EXPECT_LT(worst, 1e-4) << "start " << start;
    RecordProperty("max_abs_diff_start_" + std::to_string(start), std::to_string(worst));
  }
}

// Acceptance 6: a key slot is never written after its token was inserted: each token is written
// once per layer, and the bytes of a held slot never change while its token is held.
TEST(StreamingCacheTest, KeysAreWrittenOnceAndNeverRewritten) {
  const size_t kSinks = 4, kWindow = 60;
  const auto tokens = story_tokens(stream_length(1000, 300));
  ThreadPool pool(1);
  auto session = make_session(policy(CachePolicy::kStreaming, kSinks, kWindow), pool);
  const KvCache& cache = session->cache();
  const size_t n_layers = stories().model.config().n_layers;
  const size_t n_slots = kSinks + kWindow;
  // Snapshot of every slot's key bytes and the token it held at the last check.
  std::vector<std::vector<uint8_t>> snapshot(n_layers * n_slots);
  std::vector<uint64_t> held(n_layers * n_slots, UINT64_MAX);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const TokenId one[1] = {tokens[i]};
    ASSERT_TRUE(session->feed(one).ok());
    ASSERT_EQ(cache.n_key_writes(), (i + 1) * n_layers);
    for (size_t l = 0; l < n_layers; ++l) {
      for (size_t s = 0; s < std::min(i + 1, n_slots); ++s) {
        const size_t idx = l * n_slots + s;
        const std::vector<uint8_t> bytes = cache.key_row(l, s);
        if (cache.slot_token(l, s) == held[idx]) {
          ASSERT_EQ(bytes, snapshot[idx])
              << "slot " << s << " of layer " << l << " changed while holding token " << held[idx];
        } else {
          ASSERT_EQ(cache.slot_token(l, s), i) << "a slot may only change to take the new token";
          held[idx] = cache.slot_token(l, s);
          snapshot[idx] = bytes;
        }
      }
    }
  }
  // The sinks still hold tokens 0..3, written once, at the start of the stream.
  for (size_t s = 0; s < kSinks; ++s) EXPECT_EQ(cache.slot_token(0, s), s);
}

}  // namespace
}  // namespace sllm::test
