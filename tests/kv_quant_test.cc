// The quantized KV cache (--kv-type q8_0 / q4_0, issue 12): keys quantized once after their
// rotation and never again, attention over the dequantized rows for every policy, the byte
// counts, and the errors. Model-free tests first, then stories260K (head_dim 8: one block of 32
// spans its 4 KV heads).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>

#include "cache/kv_cache.h"
#include "cache/kv_quant.h"
#include "cli_runner.h"
#include "engine_fixture.h"
#include "kernels/quant.h"
#include "streamingllm/model.h"

namespace sllm::test {
namespace {

std::vector<float> random_vec(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& e : x) e = d(rng);
  return x;
}

KvCacheShape shape_with(size_t n_heads, size_t n_kv_heads, size_t head_dim) {
  KvCacheShape s;
  s.n_layers = 1;
  s.n_heads = n_heads;
  s.n_kv_heads = n_kv_heads;
  s.head_dim = head_dim;
  s.rope = RopeSpec{head_dim, head_dim, 10000.0, RopeLayout::kAdjacentPairs};
  return s;
}

// The paper's method on quantized K/V, in double: each key is rotated at its absolute stream
// position n (rounded to float, as the cache computes it) and quantized once with ggml's
// reference quantizer; the held keys are then moved to their in-cache positions c(n) by a
// rotation of c(n) - n, and the query is rotated at c(t), every step, as the reference code
// re-rotates its cache.
struct QuantizingReference {
  KvCacheShape shape;
  TensorType type;
  size_t n_sinks, window;
  struct Held {
    uint64_t n;
    std::vector<double> k, v;  // dequantized
  };
  std::vector<Held> held = {};
  uint64_t t = 0;

  void rotate(std::vector<double>& x, size_t n_heads, double pos) const {
    const size_t hd = shape.rope.rope_dim;  // 0: ALiBi, no rotation
    for (size_t h = 0; h < n_heads; ++h) {
      for (size_t i = 0; i < hd / 2; ++i) {
        const double a =
            pos * std::pow(10000.0, -2.0 * static_cast<double>(i) / static_cast<double>(hd));
        double& x0 = x[h * hd + 2 * i];
        double& x1 = x[h * hd + 2 * i + 1];
        const double y0 = x0 * std::cos(a) - x1 * std::sin(a);
        const double y1 = x0 * std::sin(a) + x1 * std::cos(a);
        x0 = y0;
        x1 = y1;
      }
    }
  }

  std::vector<double> quantized(const std::vector<double>& x) const {
    std::vector<float> f(x.begin(), x.end());
    std::vector<uint8_t> blocks(kv_bytes(type, f.size()));
    quant::quantize_row(type, f.data(), blocks.data(), f.size());
    quant::dequantize_row_ref(type, blocks.data(), f.data(), f.size());
    return {f.begin(), f.end()};
  }

  std::vector<double> step(const std::vector<float>& qf, const std::vector<float>& kf,
                           const std::vector<float>& vf) {
    std::vector<double> k(kf.begin(), kf.end());
    rotate(k, shape.n_kv_heads, static_cast<double>(t));
    held.push_back({t, quantized(k), quantized({vf.begin(), vf.end()})});
    if (held.size() > n_sinks + window) held.erase(held.begin() + static_cast<ptrdiff_t>(n_sinks));
    ++t;
    const size_t n = held.size(), hd = shape.head_dim;
    std::vector<double> q(qf.begin(), qf.end());
    rotate(q, shape.n_heads, static_cast<double>(n - 1));
    std::vector<double> out(shape.n_heads * hd, 0.0);
    for (size_t h = 0; h < shape.n_heads; ++h) {
      const size_t g = h / (shape.n_heads / shape.n_kv_heads);
      std::vector<double> s(n);
      double mx = -1e300;
      for (size_t j = 0; j < n; ++j) {
        std::vector<double> kj = held[j].k;
        rotate(kj, shape.n_kv_heads, static_cast<double>(j) - static_cast<double>(held[j].n));
        double d = 0;
        for (size_t c = 0; c < hd; ++c) d += q[h * hd + c] * kj[g * hd + c];
        s[j] = d / std::sqrt(static_cast<double>(hd));
        if (!shape.alibi_slopes.empty()) {  // the in-cache distance, as the paper's positions
          s[j] -= static_cast<double>(shape.alibi_slopes[h]) * static_cast<double>(n - 1 - j);
        }
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (size_t j = 0; j < n; ++j) {
        for (size_t c = 0; c < hd; ++c) out[h * hd + c] += s[j] / sum * held[j].v[g * hd + c];
      }
    }
    return out;
  }
};

double max_diff(const std::vector<float>& a, const std::vector<double>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

// Streaming (3 sinks + 7 window, 40 tokens: the ring wraps several times) with q8_0 and q4_0
// K/V equals the re-rotating reference that quantizes the same way, for a head_dim of whole
// blocks (32, 64) and one that divides a block (8: four KV heads share it), one token at a time
// and in batches of 4. The same stream against the unquantized reference is far off: the test
// sees the quantization. With ALiBi (no rotation) the bias is the in-cache distance.
TEST(KvQuantCacheTest, MatchesAReferenceThatQuantizesTheSameWay) {
  struct Shape {
    size_t n_heads, n_kv_heads, head_dim;
    bool alibi = false;
  };
  for (TensorType type : {TensorType::kQ8_0, TensorType::kQ4_0}) {
    for (const Shape sh :
         {Shape{4, 2, 32}, Shape{2, 1, 64}, Shape{8, 4, 8}, Shape{4, 2, 16, true}}) {
      for (size_t batch : {size_t{1}, size_t{4}}) {
        KvCacheShape shape = shape_with(sh.n_heads, sh.n_kv_heads, sh.head_dim);
        if (sh.alibi) {  // MPT: no rotation, a bias of -slope * in-cache distance
          shape.rope.rope_dim = 0;
          shape.alibi_slopes = {0.5f, 0.25f, 0.125f, 0.0625f};
        }
        KvCacheOptions o;
        o.n_sinks = 3;
        o.window = 7;
        o.kv_type = type;
        o.max_batch = batch;
        auto cache = KvCache::create(shape, o);
        ASSERT_TRUE(cache.ok()) << cache.error().message();
        QuantizingReference ref{shape, type, 3, 7};
        QuantizingReference unquantized{shape, TensorType::kF32, 3, 7};
        ThreadPool pool(2);
        std::mt19937 rng(11);
        const size_t q_dim = sh.n_heads * sh.head_dim, kv_dim = sh.n_kv_heads * sh.head_dim;
        double worst = 0, worst_f32 = 0;
        for (int step = 0; step < 40 / static_cast<int>(batch); ++step) {
          auto q = random_vec(rng, q_dim * batch), k = random_vec(rng, kv_dim * batch),
               v = random_vec(rng, kv_dim * batch);
          std::vector<std::vector<double>> expected, expected_f32;
          for (size_t i = 0; i < batch; ++i) {
            const auto part = [&](const std::vector<float>& x, size_t n) {
              return std::vector<float>(x.begin() + static_cast<ptrdiff_t>(i * n),
                                        x.begin() + static_cast<ptrdiff_t>((i + 1) * n));
            };
            expected.push_back(ref.step(part(q, q_dim), part(k, kv_dim), part(v, kv_dim)));
            expected_f32.push_back(
                unquantized.step(part(q, q_dim), part(k, kv_dim), part(v, kv_dim)));
          }
          std::vector<float> out(q_dim * batch);
          cache->begin_batch(batch);
          cache->attend(0, q.data(), k.data(), v.data(), out.data(), pool);
          cache->end_batch();
          for (size_t i = 0; i < batch; ++i) {
            const std::vector<float> row(out.begin() + static_cast<ptrdiff_t>(i * q_dim),
                                         out.begin() + static_cast<ptrdiff_t>((i + 1) * q_dim));
            worst = std::max(worst, max_diff(row, expected[i]));
            worst_f32 = std::max(worst_f32, max_diff(row, expected_f32[i]));
          }
        }
        const std::string what = std::string(traits_of(type).name) + " head_dim " +
                                 std::to_string(sh.head_dim) + (sh.alibi ? " ALiBi" : "") +
                                 " batch " + std::to_string(batch);
        EXPECT_LT(worst, 2e-5) << what;
        EXPECT_GT(worst_f32, type == TensorType::kQ8_0 ? 2e-3 : 2e-2) << what;
        EXPECT_EQ(cache->n_key_writes(), 40u) << what;
      }
    }
  }
}

// A cache large enough that its rows are decoded on the pool in several tasks (512 values a
// token, 100 slots) computes what one thread computes, bit for bit.
TEST(KvQuantCacheTest, DecodingOnThePoolIsDecodingInline) {
  const KvCacheShape shape = shape_with(8, 8, 64);
  KvCacheOptions o;
  o.n_sinks = 4;
  o.window = 96;
  o.kv_type = TensorType::kQ8_0;
  o.max_batch = 8;
  auto one = KvCache::create(shape, o);
  auto two = KvCache::create(shape, o);
  ASSERT_TRUE(one.ok() && two.ok());
  ThreadPool pool1(1), pool2(2);
  std::mt19937 rng(2);
  for (int step = 0; step < 20; ++step) {
    const auto q = random_vec(rng, 8 * 512), k = random_vec(rng, 8 * 512),
               v = random_vec(rng, 8 * 512);
    std::vector<float> out1(q.size()), out2(q.size());
    for (auto [cache, pool, out] : {std::tuple{&*one, &pool1, &out1}, {&*two, &pool2, &out2}}) {
      auto qc = q, kc = k;
      cache->begin_batch(8);
      cache->attend(0, qc.data(), kc.data(), v.data(), out->data(), *pool);
      cache->end_batch();
    }
    ASSERT_EQ(std::memcmp(out1.data(), out2.data(), out1.size() * sizeof(float)), 0)
        << "step " << step;
  }
}

// A key row is stored as the blocks ggml's quantizer makes of the rotated key, once: the bytes
// of a held slot are quantize_row of what the cache rotated (here: position 0, no rotation).
TEST(KvQuantCacheTest, StoresGgmlBlocks) {
  const KvCacheShape shape = shape_with(4, 2, 32);
  KvCacheOptions o;
  o.n_sinks = 1;
  o.window = 2;
  o.kv_type = TensorType::kQ8_0;
  auto cache = KvCache::create(shape, o);
  ASSERT_TRUE(cache.ok());
  ASSERT_EQ(cache->slot_bytes(), 2u * 34u);
  std::mt19937 rng(5);
  auto q = random_vec(rng, 128), k = random_vec(rng, 64), v = random_vec(rng, 64);
  const auto k0 = k, v0 = v;
  std::vector<float> out(128);
  ThreadPool pool(1);
  cache->begin_batch(1);
  cache->attend(0, q.data(), k.data(), v.data(), out.data(), pool);
  cache->end_batch();
  std::vector<uint8_t> want(68);
  quant::quantize_row(TensorType::kQ8_0, k0.data(), want.data(), 64);
  EXPECT_EQ(cache->key_row(0, 0), want);
  quant::quantize_row(TensorType::kQ8_0, v0.data(), want.data(), 64);
  EXPECT_EQ(cache->value_row(0, 0), want);
}

// Bytes: q8_0 is 34 bytes per 32 values, q4_0 18; the slots, the layers and K and V multiply.
TEST(KvQuantCacheTest, BytesAreBlocksPerRow) {
  const KvCacheShape shape = shape_with(4, 2, 32);
  KvCacheOptions o;
  o.n_sinks = 4;
  o.window = 60;
  for (const auto& [type, block] : {std::pair{TensorType::kQ8_0, 34u}, {TensorType::kQ4_0, 18u}}) {
    o.kv_type = type;
    auto c = KvCache::create(shape, o);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->n_bytes(), 64u * 2u * (64u / 32u) * block);
  }
}

// A head_dim that is neither a multiple of 32 nor a divisor whose heads fill blocks is refused,
// naming the type and the shape; so is an unknown type.
TEST(KvQuantCacheTest, RefusesShapesThatDoNotFillBlocks) {
  KvCacheOptions o;
  o.window = 8;
  o.kv_type = TensorType::kQ8_0;
  auto c = KvCache::create(shape_with(2, 2, 48), o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(),
            "the q8_0 KV cache stores blocks of 32 values: it needs a head_dim that is a multiple "
            "of 32 (or divides 32, with the KV heads of a token filling whole blocks); this "
            "model's head_dim is 48 with 2 KV heads (use --kv-type f16 or f32)");
  o.kv_type = TensorType::kQ4_0;
  c = KvCache::create(shape_with(2, 1, 16), o);  // 16 values a token: half a block
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(),
            "the q4_0 KV cache stores blocks of 32 values: it needs a head_dim that is a multiple "
            "of 32 (or divides 32, with the KV heads of a token filling whole blocks); this "
            "model's head_dim is 16 with 1 KV heads (use --kv-type f16 or f32)");
  EXPECT_TRUE(KvCache::create(shape_with(4, 2, 16), o).ok());
  o.kv_type = TensorType::kQ4_1;
  c = KvCache::create(shape_with(4, 2, 32), o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "the KV cache type must be f32, f16, q8_0 or q4_0");
}

TEST(KvQuantCacheTest, ParsesTheFourNames) {
  for (KvType t : {KvType::kF32, KvType::kF16, KvType::kQ8_0, KvType::kQ4_0}) {
    auto parsed = parse_kv_type(kv_type_name(t));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, t);
  }
  EXPECT_EQ(static_cast<uint32_t>(KvType::kQ8_0), static_cast<uint32_t>(TensorType::kQ8_0));
  EXPECT_EQ(static_cast<uint32_t>(KvType::kQ4_0), static_cast<uint32_t>(TensorType::kQ4_0));
  auto bad = parse_kv_type("q4_1");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(),
            "unknown KV cache type 'q4_1' (expected f32, f16, q8_0 or q4_0)");
}

// ---------------------------------------------------------------------------------------------
// On stories260K.

SessionOptions policy(CachePolicy p, size_t n_sinks, size_t window, TensorType kv) {
  SessionOptions o;
  o.policy = p;
  o.n_sinks = n_sinks;
  o.window = window;
  o.kv_type = static_cast<KvType>(kv);
  return o;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Streaming with S + W >= the stream is dense attention bit for bit, with quantized K/V as with
// f32 and f16; and window attention is streaming without sinks, bit for bit.
TEST(KvQuantModelTest, LargeStreamingCacheIsDenseBitForBit) {
  const size_t n = stream_length(600, 150);
  const auto tokens = story_tokens(n);
  ThreadPool pool(2);
  for (TensorType kv : {TensorType::kQ8_0, TensorType::kQ4_0}) {
    auto dense = make_session(policy(CachePolicy::kDense, 0, n, kv), pool);
    auto streaming = make_session(policy(CachePolicy::kStreaming, 4, n - 4, kv), pool);
    std::vector<float> a, b;
    ASSERT_TRUE(dense->feed(tokens, &a).ok());
    ASSERT_TRUE(streaming->feed(tokens, &b).ok());
    EXPECT_TRUE(same_bits(a, b)) << traits_of(kv).name;
    auto window = make_session(policy(CachePolicy::kWindow, 0, 64, kv), pool);
    auto streaming0 = make_session(policy(CachePolicy::kStreaming, 0, 64, kv), pool);
    ASSERT_TRUE(window->feed(tokens, &a).ok());
    ASSERT_TRUE(streaming0->feed(tokens, &b).ok());
    EXPECT_TRUE(same_bits(a, b)) << traits_of(kv).name;
  }
}

// Chunked prefill equals token-by-token feeding with q8_0 K/V, for batches smaller than, equal
// to and larger than the window (S=4, W=100).
TEST(KvQuantModelTest, ChunkedPrefillEqualsTokenByToken) {
  const auto tokens = story_tokens(stream_length(1000, 300));
  ThreadPool pool(2);
  auto one = make_session(policy(CachePolicy::kStreaming, 4, 100, TensorType::kQ8_0), pool);
  const auto expected = feed_one_by_one(*one, tokens);
  for (size_t batch : {size_t{7}, size_t{100}, size_t{256}}) {
    auto opts = policy(CachePolicy::kStreaming, 4, 100, TensorType::kQ8_0);
    opts.max_batch = batch;
    auto chunked = make_session(opts, pool);
    std::vector<float> all;
    ASSERT_TRUE(chunked->feed(tokens, &all).ok());
    ASSERT_EQ(all.size(), tokens.size() * expected[0].size());
    EXPECT_LT(max_row_diff(all, expected), 1e-5) << "batch " << batch;
  }
}

// Recompute with q8_0 K/V: every step equals a fresh dense q8_0 session fed the last W tokens.
TEST(KvQuantModelTest, RecomputeIsAFreshForwardOverTheLastWTokens) {
  const size_t kWindow = 16;
  const auto tokens = story_tokens(stream_length(120, 40));
  ThreadPool pool(1);
  auto recompute =
      make_session(policy(CachePolicy::kRecompute, 0, kWindow, TensorType::kQ8_0), pool);
  std::vector<float> got;
  ASSERT_TRUE(recompute->feed(tokens, &got).ok());
  const size_t n_vocab = stories().model.config().n_vocab;
  for (size_t i = 0; i < tokens.size(); ++i) {
    auto fresh = make_session(policy(CachePolicy::kDense, 0, kWindow, TensorType::kQ8_0), pool);
    const size_t first = i + 1 > kWindow ? i + 1 - kWindow : 0;
    ASSERT_TRUE(fresh->feed(std::span(tokens).subspan(first, i + 1 - first)).ok());
    ASSERT_EQ(std::memcmp(&got[i * n_vocab], fresh->last_logits().data(), n_vocab * sizeof(float)),
              0)
        << "step " << i;
  }
}

// The model's byte figures: q8_0 34/64 of f16 (53%), q4_0 18/64 (28%); a session's cache holds
// exactly what ModelInfo says.
TEST(KvQuantModelTest, BytesPerToken) {
  auto model = Model::load(stories_gguf());
  ASSERT_TRUE(model.ok());
  const ModelInfo& info = (*model)->info();
  // stories260K: 5 layers, 4 KV heads of 8.
  EXPECT_EQ(info.kv_bytes_per_token(KvType::kF16), 5u * 2 * 32 * 2);
  EXPECT_EQ(info.kv_bytes_per_token(KvType::kQ8_0), 5u * 2 * 34);
  EXPECT_EQ(info.kv_bytes_per_token(KvType::kQ4_0), 5u * 2 * 18);
  ThreadPool pool(1);
  for (TensorType kv : {TensorType::kQ8_0, TensorType::kQ4_0}) {
    auto s = make_session(policy(CachePolicy::kStreaming, 4, 60, kv), pool);
    EXPECT_EQ(s->cache().n_bytes(), info.kv_cache_bytes(static_cast<KvType>(kv), 64));
  }
}

// The CLI takes the four names, prints the quantized bytes per token, and refuses others.
TEST(KvQuantCliTest, KvTypeOption) {
  const std::string model = quote(stories_gguf());
  const CliResult info = run_cli("info -m " + model);
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("kv bytes/token: 1280 (f32), 640 (f16), 340 (q8_0), 180 (q4_0)\n"),
            std::string::npos)
      << info.out;
  const CliResult run =
      run_cli("run -m " + model + " --kv-type q8_0 --window 252 -n 8 -p Once --temp 0");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.err.find("cache 256 tokens, 87040 bytes (4 sinks + 252 window, q8_0)"),
            std::string::npos)
      << run.err;
  const CliResult bad = run_cli("run -m " + model + " --kv-type q4_1 -n 8 -p Once");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--kv-type: q4_1 not in {f32,f16,q8_0,q4_0}"), std::string::npos)
      << bad.err;
}

}  // namespace
}  // namespace sllm::test
