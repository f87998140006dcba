// Falcon and MPT as config_from_gguf and the model read them from make-model files: Falcon's two
// styles (one shared LayerNorm, or attn_norm_2 for attention), MPT's ALiBi slopes (ggml's two
// series), clipping and optional biases, what `info` prints, and the files refused. That the
// numbers equal llama.cpp's is peer_greedy_test's part (goldens falcon-7b, falcon-40b, mpt); the
// streaming cache's ALiBi positions against a re-biasing reference are arch_streaming_test's.
// Here: MPT under every cache policy, and a restored session state that continues exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "gguf/gguf.h"
#include "kernels/ops.h"
#include "model/config.h"
#include "model/transformer.h"
#include "runtime/inspect.h"
#include "runtime/session.h"
#include "streamingllm/streamingllm.h"
#include "test_util.h"
#include "util/thread_pool.h"

namespace sllm {
namespace {

std::string dir() {
  static const std::string d = [] {
    const std::string p = ::testing::TempDir() + "falcon_mpt_test";
    std::filesystem::create_directories(p);
    return p;
  }();
  return d;
}

std::string make(const std::string& arch, size_t n_head, size_t n_head_kv,
                 const std::string& name) {
  MakeModelOptions o;
  o.arch = arch;
  o.vocab = test::shared_path("data/vocab/ggml-vocab-llama-spm.gguf");
  o.n_embd = 16 * n_head;
  o.n_layer = 1;
  o.n_head = n_head;
  o.n_head_kv = n_head_kv;
  o.n_ff = 64;
  const std::string path = dir() + "/" + name + ".gguf";
  const Status s = make_model(o, path);
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message());
  return path;
}

// A copy of `in` with its metadata edited and tensors named in `drop` left out, `extra` added
// (f32 vectors of the given sizes).
std::string rewrite(const std::string& in, const std::string& name,
                    const std::function<void(GgufWriter&)>& edit,
                    const std::set<std::string>& drop = {},
                    const std::vector<std::pair<std::string, size_t>>& extra = {}) {
  auto g = GgufFile::open(in);
  EXPECT_TRUE(g.ok());
  GgufWriter w;
  for (const auto& [key, value] : g->metadata()) w.set(key, value);
  edit(w);
  for (const auto& t : g->tensors()) {
    if (drop.count(t.name) == 0) {
      EXPECT_TRUE(w.add_tensor(t.name, t.type, t.dims, {t.data, t.n_bytes}).ok());
    }
  }
  for (const auto& [t, n] : extra) {
    const std::vector<float> v(n, 0.5f);
    EXPECT_TRUE(
        w.add_tensor(t, TensorType::kF32, {n}, {reinterpret_cast<const uint8_t*>(v.data()), n * 4})
            .ok());
  }
  const std::string out = dir() + "/" + name + ".gguf";
  EXPECT_TRUE(w.write(out).ok());
  return out;
}

Result<TransformerModel> load(const GgufFile& g) { return TransformerModel::load(g); }

std::string load_error(const std::string& path) {
  auto g = GgufFile::open(path);
  if (!g.ok()) return g.error().message();
  auto m = load(*g);
  return m.ok() ? "" : m.error().message();
}

// The last logits after feeding `tokens` to a dense session of the file's model.
std::vector<float> logits_of(const std::string& path, const std::vector<TokenId>& tokens) {
  auto g = GgufFile::open(path);
  EXPECT_TRUE(g.ok());
  auto m = load(*g);
  EXPECT_TRUE(m.ok()) << m.error().message();
  ThreadPool pool(1);
  SessionOptions o;
  o.policy = CachePolicy::kDense;
  o.window = 64;
  auto s = Session::create(*m, o, pool);
  EXPECT_TRUE(s.ok());
  EXPECT_TRUE((*s)->feed(tokens).ok());
  return {(*s)->last_logits().begin(), (*s)->last_logits().end()};
}

const std::vector<TokenId> kTokens = {1, 450, 4996, 17354, 1701, 432, 17204, 975};

TEST(Falcon, SevenAndFortyBStylesFromTheFile) {
  const std::string seven = make("falcon", 4, 1, "falcon7");
  const std::string forty = make("falcon", 4, 2, "falcon40");
  for (const auto& [path, norms] :
       {std::pair{seven, "attn_norm for attention and MLP (7B style)"},
        std::pair{forty, "attn_norm_2 for attention, attn_norm for the MLP (40B style)"}}) {
    auto g = GgufFile::open(path);
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(g->find_tensor("blk.0.attn_norm_2.weight") != nullptr, path == forty);
    EXPECT_EQ(g->find_tensor("blk.0.ffn_norm.weight"), nullptr);
    auto m = load(*g);
    ASSERT_TRUE(m.ok()) << m.error().message();
    const ModelConfig& c = m->config();
    EXPECT_EQ(c.family->title, "Falcon");
    EXPECT_EQ(c.family->blocks(), "LayerNorm, fused QKV, GELU MLP");
    EXPECT_TRUE(c.parallel_residual);
    EXPECT_EQ(c.rope.layout, RopeLayout::kHalfSplit);
    EXPECT_EQ(c.rope.rope_dim, 16u);
    EXPECT_TRUE(c.alibi_slopes.empty());
    ASSERT_EQ(c.family_params.size(), 1u);
    EXPECT_EQ(c.family_params[0].first, "norms");
    EXPECT_EQ(c.family_params[0].second, norms);
  }
  // The 40B file's attention reads attn_norm_2: without it the same file is a 7B-style model with
  // different logits (attention then reads attn_norm).
  const std::string dropped = rewrite(forty, "falcon40_no_norm2", [](GgufWriter&) {},
                                      {"blk.0.attn_norm_2.weight", "blk.0.attn_norm_2.bias"});
  EXPECT_EQ(load_error(dropped), "");
  EXPECT_NE(logits_of(forty, kTokens), logits_of(dropped, kTokens));
  // attn_norm (the MLP's, and attention's in 7B) is required.
  const std::string no_norm =
      rewrite(seven, "falcon7_no_norm", [](GgufWriter&) {}, {"blk.0.attn_norm.bias"});
  EXPECT_EQ(load_error(no_norm), no_norm + ": missing tensor 'blk.0.attn_norm.bias'");
}

TEST(Mpt, AlibiSlopesClippingAndNoRope) {
  const std::string path = make("mpt", 6, 3, "mpt6");
  auto g = GgufFile::open(path);
  ASSERT_TRUE(g.ok());
  auto m = load(*g);
  ASSERT_TRUE(m.ok()) << m.error().message();
  const ModelConfig& c = m->config();
  EXPECT_EQ(c.family->title, "MPT");
  EXPECT_EQ(c.family->blocks(), "LayerNorm, fused QKV, biases where present, GELU MLP");
  EXPECT_EQ(c.rope.rope_dim, 0u);
  EXPECT_FALSE(c.parallel_residual);
  EXPECT_EQ(c.clamp_kqv, 1.5f);
  // max bias 8 over 6 heads: 4 heads of 2^(-8/4)^(h+1), then 2 of 2^(-4/4)^(2(h-4)+1).
  EXPECT_EQ(c.alibi_slopes,
            (std::vector<float>{0.25f, 0.0625f, 0.015625f, 0.00390625f, 0.5f, 0.125f}));
  const auto r = test::run_cli("info -m " + test::quote(path));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* line :
       {"family:         MPT (LayerNorm, fused QKV, biases where present, GELU MLP)\n",
        "rope:           none\n", "alibi max bias: 8\n",
        "alibi slopes:   0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125\n",
        "clamp kqv:      1.5\n"}) {
    EXPECT_NE(r.out.find(line), std::string::npos) << line << r.out;
  }

  // Clipping and ALiBi each change what the model computes.
  const auto base = logits_of(path, kTokens);
  const std::string no_clip = rewrite(path, "mpt_no_clip", [](GgufWriter& w) {
    w.set("mpt.attention.clamp_kqv", GgufValue::f32(0.0f));
  });
  EXPECT_NE(logits_of(no_clip, kTokens), base);
  const std::string no_alibi = rewrite(path, "mpt_no_alibi", [](GgufWriter& w) {
    w.set("mpt.attention.max_alibi_bias", GgufValue::f32(0.0f));
  });
  EXPECT_NE(logits_of(no_alibi, kTokens), base);
}

TEST(Mpt, BiasesAreLoadedWhenPresent) {
  const std::string path = make("mpt", 4, 4, "mpt4");
  const auto base = logits_of(path, kTokens);
  // A bias of the right size changes the logits; one of the wrong size is refused by name.
  const std::string with_bias =
      rewrite(path, "mpt_bias", [](GgufWriter&) {}, {}, {{"blk.0.attn_output.bias", 64}});
  EXPECT_EQ(load_error(with_bias), "");
  EXPECT_NE(logits_of(with_bias, kTokens), base);
  const std::string norm_bias =
      rewrite(path, "mpt_norm_bias", [](GgufWriter&) {}, {}, {{"blk.0.ffn_norm.bias", 64}});
  EXPECT_NE(logits_of(norm_bias, kTokens), base);
  const std::string bad =
      rewrite(path, "mpt_bad_bias", [](GgufWriter&) {}, {}, {{"blk.0.ffn_up.bias", 8}});
  EXPECT_NE(load_error(bad).find(bad + ": tensor 'blk.0.ffn_up.bias' has shape"), std::string::npos)
      << load_error(bad);
}

TEST(Mpt, UnsupportedPartsAndBadKeysAreRefusedByName) {
  const std::string path = make("mpt", 4, 4, "mpt_refused");
  const std::string pos =
      rewrite(path, "mpt_pos", [](GgufWriter&) {}, {}, {{"position_embd.weight", 64}});
  EXPECT_EQ(load_error(pos),
            pos +
                ": mpt tensor 'position_embd.weight' is not supported (learned position "
                "embeddings, q/k LayerNorm and AWQ activation scales are not implemented)");
  const std::string neg = rewrite(path, "mpt_neg", [](GgufWriter& w) {
    w.set("mpt.attention.clamp_kqv", GgufValue::f32(-1.0f));
  });
  EXPECT_EQ(load_error(neg),
            neg + ": metadata 'mpt.attention.clamp_kqv' = -1 is not a finite number >= 0");
}

std::unique_ptr<Stream> stream(const std::shared_ptr<Model>& model, CachePolicy policy,
                               size_t n_sinks, size_t window) {
  CacheOptions o;
  o.policy = policy;
  o.n_sinks = n_sinks;
  o.window = window;
  auto s = Stream::create(model, o);
  EXPECT_TRUE(s.ok()) << s.error().message();
  return std::move(s).value();
}

std::vector<TokenId> stream_ids(size_t n) {
  std::vector<TokenId> ids;
  for (size_t i = 0; i < n; ++i) ids.push_back(static_cast<TokenId>(1 + (i * 7919) % 31000));
  return ids;
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

// All four policies on an ALiBi model: while the stream fits, window and streaming are dense bit
// for bit and recompute (which rebuilds its cache at positions 0..) too; past it, each runs on
// with finite logits, and the sinks make streaming differ from window attention.
TEST(Mpt, EveryCachePolicyRuns) {
  auto model = Model::load(make("mpt", 6, 3, "mpt_policies"), {.n_threads = 1});
  ASSERT_TRUE(model.ok()) << model.error().message();
  const std::shared_ptr<Model> m = std::move(model).value();
  const auto ids = stream_ids(48);
  auto dense = stream(m, CachePolicy::kDense, 0, 64);
  auto window = stream(m, CachePolicy::kWindow, 0, 64);
  auto streaming = stream(m, CachePolicy::kStreaming, 4, 60);
  auto recompute = stream(m, CachePolicy::kRecompute, 0, 64);
  for (const TokenId id : ids) {
    for (Stream* s : {dense.get(), window.get(), streaming.get(), recompute.get()}) {
      ASSERT_TRUE(s->feed({&id, 1}).ok());
    }
    EXPECT_TRUE(same_bits(dense->logits(), window->logits()));
    EXPECT_TRUE(same_bits(dense->logits(), streaming->logits()));
    EXPECT_TRUE(same_bits(dense->logits(), recompute->logits()));
  }
  const auto more = stream_ids(100);
  auto small_window = stream(m, CachePolicy::kWindow, 0, 16);
  auto small_streaming = stream(m, CachePolicy::kStreaming, 4, 12);
  auto small_recompute = stream(m, CachePolicy::kRecompute, 0, 16);
  for (Stream* s : {small_window.get(), small_streaming.get(), small_recompute.get()}) {
    ASSERT_TRUE(s->feed(more).ok());
    EXPECT_EQ(s->n_seen(), more.size());
    for (const float x : s->logits()) ASSERT_TRUE(std::isfinite(x));
  }
  EXPECT_FALSE(same_bits(small_window->logits(), small_streaming->logits()));
  // ALiBi sees distances only, and a one-layer model's keys depend on their own token alone: so
  // recompute (the last 16 tokens at positions 0..15) is window attention here, bit for bit.
  ASSERT_EQ(m->info().n_layers, 1u);
  EXPECT_TRUE(same_bits(small_window->logits(), small_recompute->logits()));
}

// A streaming session's state (what a session file holds), taken past its first evictions and
// restored into a fresh session, continues exactly: nothing ALiBi needs is stored, the positions
// follow from the tokens seen.
TEST(Mpt, RestoredSessionContinuesExactly) {
  auto g = GgufFile::open(make("mpt", 4, 2, "mpt_session"));
  ASSERT_TRUE(g.ok());
  auto model = load(*g);
  ASSERT_TRUE(model.ok()) << model.error().message();
  ThreadPool pool(1);
  SessionOptions o;
  o.policy = CachePolicy::kStreaming;
  o.n_sinks = 4;
  o.window = 16;
  auto a = Session::create(*model, o, pool);
  auto b = Session::create(*model, o, pool);
  ASSERT_TRUE(a.ok() && b.ok());
  const auto ids = stream_ids(80);
  ASSERT_TRUE((*a)->feed(std::span(ids).first(50)).ok());
  ASSERT_TRUE((*b)->restore((*a)->state()).ok());
  for (size_t i = 50; i < ids.size(); ++i) {
    ASSERT_TRUE((*a)->feed({&ids[i], 1}).ok());
    ASSERT_TRUE((*b)->feed({&ids[i], 1}).ok());
    ASSERT_TRUE(same_bits((*a)->last_logits(), (*b)->last_logits())) << "token " << i;
  }
}

// The attention-mass probe (`inspect`) attends as the cache does on an ALiBi model: as the
// model's AttendFn it gives the dense session's logits.
TEST(Mpt, AttentionProbeAddsTheAlibiBias) {
  auto g = GgufFile::open(make("mpt", 6, 3, "mpt_probe"));
  ASSERT_TRUE(g.ok());
  auto model = load(*g);
  ASSERT_TRUE(model.ok()) << model.error().message();
  const ModelConfig& c = model->config();
  const auto ids = stream_ids(40);
  ThreadPool pool(1);
  SessionOptions o;
  o.policy = CachePolicy::kDense;
  o.window = 64;
  auto dense = Session::create(*model, o, pool);
  ASSERT_TRUE(dense.ok());
  AttentionProbe probe(c, {});
  const AttendFn attend = [&](size_t layer, size_t n, float* q, float* k, const float* v,
                              float* out) { probe.attend(layer, n, q, k, v, out); };
  ForwardScratch scratch(c, 1);
  std::vector<float> logits(c.n_vocab);
  double worst = 0;
  for (const TokenId id : ids) {
    ASSERT_TRUE((*dense)->feed({&id, 1}).ok());
    model->forward({&id, 1}, attend, scratch, pool, logits.data(), false);
    for (size_t i = 0; i < logits.size(); ++i) {
      worst =
          std::max(worst, static_cast<double>(std::abs(logits[i] - (*dense)->last_logits()[i])));
    }
  }
  EXPECT_LT(worst, 1e-4);
}

// ops::attention's ALiBi bias: head h's score of a row at distance d gains slope_h * -d after the
// scale (against a double computation), whatever the runs the rows are split into (bit for bit:
// what makes a streaming cache that never evicted equal dense attention).
TEST(Mpt, AttentionKernelBiasesEachRowByItsDistance) {
  const size_t hd = 8, n_rows = 11, n_heads = 2;
  const float slopes[n_heads] = {0.5f, 0.125f};
  std::vector<float> q(n_heads * hd), k(n_rows * hd), v(n_rows * hd);
  for (size_t i = 0; i < q.size(); ++i) q[i] = std::sin(0.7f * static_cast<float>(i));
  for (size_t i = 0; i < k.size(); ++i) k[i] = std::cos(0.3f * static_cast<float>(i));
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.11f * static_cast<float>(i) + 1.0f);
  const ops::KvLayout layout{TensorType::kF32, hd, hd * sizeof(float)};
  const float scale = 0.35f;
  // The query is at distance 12 from row 0 (as a sink seen from c(t) = 12), 2 from the last.
  const uint64_t d0 = 12;
  const auto run = [&](size_t first, size_t n) {
    return ops::KvRun{q.data(), &k[first * hd], &v[first * hd], n, d0 - first};
  };
  std::vector<float> scores(n_heads * n_rows), whole(n_heads * hd), split(n_heads * hd);
  const ops::KvRun one[] = {run(0, n_rows)};
  ops::attention(layout, one, n_heads, scale, scores.data(), whole.data(), slopes);
  const ops::KvRun three[] = {run(0, 4), run(4, 1), run(5, n_rows - 5)};
  ops::attention(layout, three, n_heads, scale, scores.data(), split.data(), slopes);
  EXPECT_EQ(std::memcmp(whole.data(), split.data(), whole.size() * sizeof(float)), 0);
  for (size_t h = 0; h < n_heads; ++h) {
    std::vector<double> w(n_rows);
    double mx = -INFINITY, sum = 0;
    for (size_t r = 0; r < n_rows; ++r) {
      double dot = 0;
      for (size_t i = 0; i < hd; ++i) dot += double{q[h * hd + i]} * k[r * hd + i];
      w[r] = dot * scale - double{slopes[h]} * static_cast<double>(d0 - r);
      mx = std::max(mx, w[r]);
    }
    for (double& x : w) sum += (x = std::exp(x - mx));
    for (size_t i = 0; i < hd; ++i) {
      double o = 0;
      for (size_t r = 0; r < n_rows; ++r) o += w[r] * v[r * hd + i];
      EXPECT_NEAR(whole[h * hd + i], o / sum, 1e-6) << "head " << h << ", dim " << i;
    }
  }
  // Without the slopes the result is another one: the bias matters at these distances.
  std::vector<float> plain(n_heads * hd);
  ops::attention(layout, one, n_heads, scale, scores.data(), plain.data());
  EXPECT_GT(std::abs(plain[0] - whole[0]) + std::abs(plain[hd] - whole[hd]), 1e-3);
}

}  // namespace
}  // namespace sllm
