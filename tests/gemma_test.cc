// Gemma 2 and Gemma 3 (issue 11): the hyper-parameters read from the file (sliding-window layer
// pattern, local rope base, soft-caps, attention scale) and the files refused, what `info`
// prints, the per-layer cache under every policy (local layers keep their native window, at most
// the cache's size), and a chat saved and resumed with that per-layer layout. That the numbers
// equal llama.cpp's is peer_greedy_test's part; streaming against the naive reference is
// arch_streaming_test's.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "gguf/gguf.h"
#include "model/config.h"
#include "streamingllm/streamingllm.h"
#include "test_util.h"

namespace sllm {
namespace {

std::string dir() {
  static const std::string d = [] {
    const std::string p = ::testing::TempDir() + "gemma_test";
    std::filesystem::create_directories(p);
    return p;
  }();
  return d;
}

// A small Gemma of `n_layer` layers, sliding window 16 (written once per test binary).
std::string make(const std::string& arch, size_t n_layer) {
  static std::set<std::string> made;
  const std::string path = dir() + "/" + arch + "_" + std::to_string(n_layer) + ".gguf";
  if (!made.insert(path).second) return path;
  MakeModelOptions o;
  o.arch = arch;
  o.vocab = test::shared_path("data/vocab/ggml-vocab-llama-spm.gguf");
  o.n_embd = 32;
  o.n_layer = n_layer;
  o.n_head = 2;
  o.n_head_kv = 1;
  o.n_ff = 64;
  o.rope_base = 1000000.0;
  o.sliding_window = 16;
  o.seed = 3;
  const Status s = make_model(o, path);
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message());
  return path;
}

// A copy of `in` with its metadata edited and the keys in `drop` left out.
std::string rewrite(const std::string& in, const std::string& name,
                    const std::function<void(GgufWriter&)>& edit,
                    const std::set<std::string>& drop = {}) {
  auto g = GgufFile::open(in);
  EXPECT_TRUE(g.ok());
  GgufWriter w;
  for (const auto& [key, value] : g->metadata()) {
    if (drop.count(key) == 0) w.set(key, value);
  }
  edit(w);
  for (const auto& t : g->tensors()) {
    EXPECT_TRUE(w.add_tensor(t.name, t.type, t.dims, {t.data, t.n_bytes}).ok());
  }
  const std::string out = dir() + "/" + name + ".gguf";
  EXPECT_TRUE(w.write(out).ok());
  return out;
}

ModelConfig config_of(const std::string& path) {
  auto g = GgufFile::open(path);
  EXPECT_TRUE(g.ok());
  auto c = config_from_gguf(*g);
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message());
  return c.ok() ? *c : ModelConfig{};
}

std::string load_error(const std::string& path) {
  auto g = GgufFile::open(path);
  EXPECT_TRUE(g.ok());
  auto c = config_from_gguf(*g);
  return c.ok() ? "" : c.error().message();
}

TEST(GemmaConfig, Gemma2AlternatesLocalAndGlobalLayersAndSoftCaps) {
  const ModelConfig c = config_of(make("gemma2", 4));
  EXPECT_EQ(c.local_layers, (std::vector<bool>{true, false, true, false}));
  EXPECT_EQ(c.sliding_window, 16u);
  EXPECT_EQ(c.attn_softcap, 10.0f);
  EXPECT_EQ(c.final_softcap, 30.0f);
  EXPECT_EQ(c.attn_scale, 1.0f / std::sqrt(16.0f));
  EXPECT_TRUE(c.family->scaled_embd && c.family->post_norms);
  EXPECT_EQ(c.rope.layout, RopeLayout::kHalfSplit);
  // Gemma 2's local layers turn at the global base unless rope.freq_base_swa says otherwise.
  EXPECT_EQ(c.local_rope.freq_base, 1000000.0);
  const ModelConfig swa =
      config_of(rewrite(make("gemma2", 4), "gemma2_swa_base", [](GgufWriter& w) {
        w.set("gemma2.rope.freq_base_swa", GgufValue::f32(20000.0f));
        w.set("gemma2.attention.sliding_window_pattern", GgufValue::u32(4));
      }));
  EXPECT_EQ(swa.local_rope.freq_base, 20000.0);
  EXPECT_EQ(swa.local_layers, (std::vector<bool>{true, true, true, false}));
}

TEST(GemmaConfig, Gemma3LocalLayersHaveTheirOwnRopeAndThePatternComesFromTheFile) {
  // make-model writes the pattern min(6, layers): 5 local, then global, for 7 layers.
  const ModelConfig c = config_of(make("gemma3", 7));
  EXPECT_EQ(c.local_layers, (std::vector<bool>{true, true, true, true, true, false, true}));
  EXPECT_TRUE(c.family->head_norm);
  EXPECT_EQ(c.attn_softcap, 0.0f);
  EXPECT_EQ(c.final_softcap, 0.0f);
  EXPECT_EQ(c.rope.freq_base, 1000000.0);
  EXPECT_EQ(c.local_rope.freq_base, 10000.0);
  // Without the pattern key, llama.cpp's default 6; pattern 0: every layer local.
  const std::string base = make("gemma3", 7);
  const ModelConfig six = config_of(rewrite(base, "gemma3_no_pattern", [](GgufWriter&) {},
                                            {"gemma3.attention.sliding_window_pattern"}));
  EXPECT_EQ(six.local_layers, c.local_layers);
  const ModelConfig all = config_of(rewrite(base, "gemma3_pattern0", [](GgufWriter& w) {
    w.set("gemma3.attention.sliding_window_pattern", GgufValue::u32(0));
  }));
  EXPECT_EQ(all.local_layers, std::vector<bool>(7, true));
  // No sliding window: every layer global.
  const ModelConfig global = config_of(
      rewrite(base, "gemma3_no_swa", [](GgufWriter&) {}, {"gemma3.attention.sliding_window"}));
  EXPECT_TRUE(global.local_layers.empty());
  // Linear rope scaling scales the global layers only.
  const ModelConfig linear = config_of(rewrite(base, "gemma3_linear", [](GgufWriter& w) {
    w.set("gemma3.rope.scaling.type", GgufValue::str("linear"));
    w.set("gemma3.rope.scaling.factor", GgufValue::f32(8.0f));
  }));
  ASSERT_FALSE(linear.rope.freq_mul.empty());
  EXPECT_EQ(linear.rope.freq_mul[0], 0.125);
  EXPECT_TRUE(linear.local_rope.freq_mul.empty());
}

TEST(GemmaConfig, BadHyperParametersAreNamed) {
  const std::string base = make("gemma2", 2);
  const std::string zero = rewrite(base, "gemma2_sw0", [](GgufWriter& w) {
    w.set("gemma2.attention.sliding_window", GgufValue::u32(0));
  });
  EXPECT_EQ(load_error(zero),
            zero + ": metadata 'gemma2.attention.sliding_window' = 0 is out of range (1..2^31)");
  const std::string cap = rewrite(base, "gemma2_cap", [](GgufWriter& w) {
    w.set("gemma2.attn_logit_softcapping", GgufValue::f32(-1.0f));
  });
  EXPECT_EQ(load_error(cap), cap +
                                 ": metadata 'gemma2.attn_logit_softcapping' = -1 is not a finite "
                                 "number > 0");
  const std::string no_post = dir() + "/gemma2_no_post.gguf";
  {
    auto g = GgufFile::open(base);
    ASSERT_TRUE(g.ok());
    GgufWriter w;
    for (const auto& [key, value] : g->metadata()) w.set(key, value);
    for (const auto& t : g->tensors()) {
      // Renamed, so that the block count still matches the tensor count.
      const std::string tensor_name =
          t.name == "blk.1.post_ffw_norm.weight" ? "blk.1.x.weight" : t.name;
      ASSERT_TRUE(w.add_tensor(tensor_name, t.type, t.dims, {t.data, t.n_bytes}).ok());
    }
    ASSERT_TRUE(w.write(no_post).ok());
  }
  auto model = Model::load(no_post);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.error().message().find("'blk.1.post_ffw_norm.weight'"), std::string::npos)
      << model.error().message();
}

TEST(GemmaInfo, NamesTheFamilyAndItsHyperParameters) {
  const auto r = test::run_cli("info -m " + test::quote(make("gemma2", 2)));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* line :
       {"family:         Gemma 2 (RMSNorm, separate Q/K/V, post-attention/FFN RMSNorms, "
        "embedding x sqrt(dim), GeGLU (tanh))\n",
        "sliding window: 16\n", "swa pattern:    2\n", "global layers:  1\n",
        "local rope base: 1e+06\n", "attn softcap:   10\n", "final softcap:  30\n",
        "attn scale:     1/sqrt(16)\n",
        "local layers:   1 of 2 keep at most 16 tokens (their sliding window)\n"}) {
    EXPECT_NE(r.out.find(line), std::string::npos) << line << r.out;
  }
  const auto g3 = test::run_cli("info -m " + test::quote(make("gemma3", 3)));
  ASSERT_EQ(g3.exit_code, 0) << g3.err;
  EXPECT_NE(g3.out.find("global layers:  2\n"), std::string::npos) << g3.out;
  EXPECT_NE(g3.out.find("local rope base: 10000\n"), std::string::npos) << g3.out;
  EXPECT_NE(g3.out.find("final softcap:  none\n"), std::string::npos) << g3.out;
}

// Every policy runs; local layers hold min(sliding window, cache tokens) under each: dense's
// local layers still see only their window (that is the model).
TEST(GemmaCache, EveryPolicyKeepsLocalLayersAtTheirWindow) {
  auto model = Model::load(make("gemma3", 3), {.n_threads = 1});
  ASSERT_TRUE(model.ok()) << model.error().message();
  const ModelInfo& info = (*model)->info();
  EXPECT_EQ(info.n_local_layers, 2u);
  EXPECT_EQ(info.sliding_window, 16u);
  const size_t row = 2 * info.n_kv_heads * info.head_dim * 4;  // K and V of one token, f32
  auto tokens = (*model)->tokenize(
      "It is a truth universally acknowledged, that a single man in "
      "possession of a good fortune, must be in want of a wife.");
  ASSERT_TRUE(tokens.ok());
  ASSERT_GT(tokens->size(), 24u);
  struct Case {
    CachePolicy policy;
    size_t cache_tokens, n_sinks, local_slots;
  };
  for (const Case& c :
       {Case{CachePolicy::kDense, 64, 0, 16}, Case{CachePolicy::kWindow, 8, 0, 8},
        Case{CachePolicy::kStreaming, 12, 4, 12}, Case{CachePolicy::kStreaming, 36, 4, 16},
        Case{CachePolicy::kRecompute, 20, 0, 16}}) {
    auto o = CacheOptions::for_policy(c.policy, c.cache_tokens, c.n_sinks);
    ASSERT_TRUE(o.ok()) << o.error().message();
    auto s = Stream::create(*model, *o);
    ASSERT_TRUE(s.ok()) << s.error().message();
    EXPECT_EQ((*s)->cache_bytes(), (1 * c.cache_tokens + 2 * c.local_slots) * row)
        << policy_name(c.policy) << " " << c.cache_tokens;
    EXPECT_EQ((*s)->cache_bytes(), info.kv_cache_bytes(KvType::kF32, c.cache_tokens));
    auto fed = (*s)->feed(*tokens);
    ASSERT_TRUE(fed.ok()) << fed.error().message();
    for (float x : (*s)->logits()) ASSERT_TRUE(std::isfinite(x));
  }
}

// The attention-mass probe (`inspect`) computes the model's attention: a sliding-window layer
// gives nothing to the first token once it has left the window, a global layer does.
TEST(GemmaInspect, LocalLayersGiveNoMassOutsideTheirWindow) {
  auto model = Model::load(make("gemma3", 3), {.n_threads = 1});
  ASSERT_TRUE(model.ok()) << model.error().message();
  auto tokens = (*model)->tokenize(
      "It is a truth universally acknowledged, that a single man in "
      "possession of a good fortune, must be in want of a wife.");
  ASSERT_TRUE(tokens.ok());
  AttentionMassOptions o;
  o.max_k = 2;
  o.min_query_pos = 17;  // every counted query (t >= 17) sees tokens t - 15..t: not 0 or 1
  auto mass = measure_attention_mass(**model, *tokens, o);
  ASSERT_TRUE(mass.ok()) << mass.error().message();
  for (size_t h = 0; h < mass->n_heads; ++h) {
    EXPECT_EQ(mass->head_mass(0, h, 2), 0.0) << "local layer 0, head " << h;
    EXPECT_EQ(mass->head_mass(1, h, 2), 0.0) << "local layer 1, head " << h;
    EXPECT_GT(mass->head_mass(2, h, 2), 0.0) << "global layer 2, head " << h;
  }
}

// A chat saved after its local windows and its global window have wrapped resumes exactly: the
// session file holds each layer's own slots.
TEST(GemmaSession, SavedChatResumesWithItsPerLayerCache) {
  for (const std::string arch : {"gemma2", "gemma3"}) {
    auto loaded = Model::load(make(arch, 3), {.n_threads = 1});
    ASSERT_TRUE(loaded.ok()) << loaded.error().message();
    const std::shared_ptr<const Model> model = *loaded;
    ChatOptions options;
    options.cache = *CacheOptions::for_policy(CachePolicy::kStreaming, 28, 4);
    options.sampling.seed = 5;
    StopOptions stop;
    stop.max_tokens = 8;
    const std::vector<std::string> turns = {"Once upon a time", "The dog ran far away",
                                            "She smiled", "They played all day", "The end"};
    auto whole = Chat::create(model, options);
    ASSERT_TRUE(whole.ok()) << whole.error().message();
    std::vector<std::string> expected;
    for (const std::string& t : turns) {
      auto r = (*whole)->send(t, stop);
      ASSERT_TRUE(r.ok()) << r.error().message();
      expected.push_back(r->text);
    }
    const std::string path = dir() + "/" + arch + ".session";
    auto first = Chat::create(model, options);
    ASSERT_TRUE(first.ok());
    for (size_t i = 0; i < 3; ++i) ASSERT_EQ((*first)->send(turns[i], stop)->text, expected[i]);
    ASSERT_GT((*first)->n_seen(), 28u) << arch << ": the windows must have wrapped";
    ASSERT_TRUE((*first)->save(path).ok());
    auto resumed = Chat::load(model, path);
    ASSERT_TRUE(resumed.ok()) << resumed.error().message();
    for (size_t i = 3; i < turns.size(); ++i) {
      auto r = (*resumed)->send(turns[i], stop);
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(r->text, expected[i]) << arch << " turn " << i;
    }
    EXPECT_EQ((*resumed)->cache_bytes(), (*whole)->cache_bytes());
    EXPECT_EQ((*resumed)->cache_bytes(), model->info().kv_cache_bytes(KvType::kF32, 28));
  }
}

}  // namespace
}  // namespace sllm
