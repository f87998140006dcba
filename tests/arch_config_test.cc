// Each architecture's family as config_from_gguf reads it from a make-model file (blocks, rope
// layout, partial rotary, parallel residual), what `info` prints of it, and the files refused:
// an unknown architecture (the error lists the supported ones), a missing per-family tensor or
// key, a long-rope factor tensor of the wrong size. That the numbers equal llama.cpp's is
// peer_greedy_test's part.
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
#include "model/transformer.h"
#include "streamingllm/tools.h"
#include "test_util.h"

namespace sllm {
namespace {

std::string dir() {
  static const std::string d = [] {
    const std::string p = ::testing::TempDir() + "arch_config_test";
    std::filesystem::create_directories(p);
    return p;
  }();
  return d;
}

// A small model of `arch` (the llama-spm vocabulary keeps it small whatever the family).
std::string make(const std::string& arch) {
  MakeModelOptions o;
  o.arch = arch;
  o.vocab = test::shared_path("data/vocab/ggml-vocab-llama-spm.gguf");
  o.n_embd = 32;
  o.n_layer = 1;
  o.n_head = 2;
  o.n_ff = 64;
  const std::string path = dir() + "/" + arch + ".gguf";
  const Status s = make_model(o, path);
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message());
  return path;
}

// A copy of `in` with its metadata edited, tensors named in `drop` left out and `extra` added.
std::string rewrite(const std::string& in, const std::string& name,
                    const std::function<void(GgufWriter&)>& edit,
                    const std::set<std::string>& drop = {},
                    const std::vector<std::string>& extra = {}) {
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
  const std::vector<float> ones(8, 1.0f);
  for (const std::string& t : extra) {
    EXPECT_TRUE(w.add_tensor(t, TensorType::kF32, {ones.size()},
                             {reinterpret_cast<const uint8_t*>(ones.data()), ones.size() * 4})
                    .ok());
  }
  const std::string out = dir() + "/" + name + ".gguf";
  EXPECT_TRUE(w.write(out).ok());
  return out;
}

// Loads the whole model (config and weights); the error message if it fails.
std::string load_error(const std::string& path) {
  auto g = GgufFile::open(path);
  if (!g.ok()) return g.error().message();
  auto m = TransformerModel::load(*g);
  return m.ok() ? "" : m.error().message();
}

struct Expected {
  std::string arch, title, blocks;
  RopeLayout layout;
  size_t rope_dim;
  bool parallel_residual;
};

TEST(ArchConfig, EachFamilyReadsItsBlocksFromTheFile) {
  const std::vector<Expected> all = {
      {"llama", "Llama", "RMSNorm, separate Q/K/V, SwiGLU", RopeLayout::kAdjacentPairs, 16, false},
      {"qwen2", "Qwen2", "RMSNorm, separate Q/K/V with biases, SwiGLU", RopeLayout::kHalfSplit, 16,
       false},
      {"qwen3", "Qwen3", "RMSNorm, separate Q/K/V, q/k head RMSNorm, SwiGLU",
       RopeLayout::kHalfSplit, 16, false},
      {"phi3", "Phi-3", "RMSNorm, fused QKV, SwiGLU (fused gate/up)", RopeLayout::kHalfSplit, 16,
       false},
      // Partial rotary: a quarter of the 16-dim heads.
      {"gptneox", "GPT-NeoX", "LayerNorm, fused QKV with biases, GELU MLP", RopeLayout::kHalfSplit,
       4, true},
  };
  for (const Expected& e : all) {
    SCOPED_TRACE(e.arch);
    const std::string path = make(e.arch);
    auto g = GgufFile::open(path);
    ASSERT_TRUE(g.ok());
    auto m = TransformerModel::load(*g);
    ASSERT_TRUE(m.ok()) << m.error().message();
    const ModelConfig& c = m->config();
    EXPECT_EQ(c.architecture, e.arch);
    EXPECT_EQ(c.family->title, e.title);
    EXPECT_EQ(c.family->blocks(), e.blocks);
    EXPECT_EQ(c.rope.layout, e.layout);
    EXPECT_EQ(c.rope.rope_dim, e.rope_dim);
    EXPECT_EQ(c.head_dim, 16u);
    EXPECT_EQ(c.parallel_residual, e.parallel_residual);
    EXPECT_EQ(c.ffn_dim, 64u);
  }
}

TEST(ArchConfig, InfoNamesTheFamilyAndItsBlocks) {
  const std::string path = make("gptneox");
  const auto r = test::run_cli("info -m " + test::quote(path));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("architecture:   gptneox"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("family:         GPT-NeoX (LayerNorm, fused QKV with biases, GELU MLP, "
                       "parallel residual)\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("rope:           4 dims, base 10000, half split (neox)"), std::string::npos)
      << r.out;
  const auto q = test::run_cli("info -m " + test::quote(make("qwen3")));
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_NE(q.out.find("family:         Qwen3 (RMSNorm, separate Q/K/V, q/k head RMSNorm, "
                       "SwiGLU)\n"),
            std::string::npos)
      << q.out;
}

TEST(ArchConfig, AnUnsupportedArchitectureListsTheSupportedOnes) {
  const std::string path = rewrite(make("llama"), "bloom", [](GgufWriter& w) {
    w.set("general.architecture", GgufValue::str("bloom"));
  });
  EXPECT_EQ(load_error(path), path +
                                  ": architecture 'bloom' is not supported (supported: llama, "
                                  "mistral, qwen2, qwen3, phi3, gptneox, gemma2, gemma3, falcon, "
                                  "mpt)");
}

TEST(ArchConfig, MissingFamilyTensorsAndKeysAreNamed) {
  const std::string qwen3 = make("qwen3");
  const std::string no_norm =
      rewrite(qwen3, "qwen3_no_q_norm", [](GgufWriter&) {}, {"blk.0.attn_q_norm.weight"});
  EXPECT_EQ(load_error(no_norm), no_norm + ": missing tensor 'blk.0.attn_q_norm.weight'");

  const std::string phi3 = make("phi3");
  const std::string no_qkv =
      rewrite(phi3, "phi3_separate", [](GgufWriter&) {}, {"blk.0.attn_qkv.weight"});
  EXPECT_EQ(load_error(no_qkv), no_qkv + ": missing tensor 'blk.0.attn_qkv.weight'");

  const std::string neox = make("gptneox");
  auto g = GgufFile::open(neox);
  ASSERT_TRUE(g.ok());
  const std::string no_flag = rewrite(neox, "neox_no_flag", [&](GgufWriter& w) {
    GgufWriter fresh;
    for (const auto& [key, value] : g->metadata()) {
      if (key != "gptneox.use_parallel_residual") fresh.set(key, value);
    }
    w = std::move(fresh);
  });
  EXPECT_EQ(load_error(no_flag), no_flag + ": missing metadata 'gptneox.use_parallel_residual'");
  const std::string no_bias =
      rewrite(neox, "neox_no_bias", [](GgufWriter&) {}, {"blk.0.attn_output.bias"});
  EXPECT_EQ(load_error(no_bias), no_bias + ": missing tensor 'blk.0.attn_output.bias'");
}

// Phi-3.5's long-rope: the short factors below original_context_length tokens of cache, the long
// ones above, each dividing its pair's frequency, and attn_factor on both. (That llama.cpp picks
// the same by its context size: peer_greedy_test's phi3-longrope and phi3-shortrope.)
TEST(ArchConfig, Phi3LongRopeFactorsAreChosenByCacheSize) {
  MakeModelOptions o;
  o.arch = "phi3";
  o.vocab = test::shared_path("data/vocab/ggml-vocab-llama-spm.gguf");
  o.n_embd = 64;
  o.n_layer = 1;
  o.n_head = 2;  // head dim 32: 16 rope pairs
  o.n_ff = 64;
  o.n_ctx = 4096;
  o.rope_scaling = "longrope";
  o.rope_factor = 32.0f;  // original context 4096 / 32 = 128
  const std::string path = dir() + "/phi3_longrope.gguf";
  ASSERT_TRUE(make_model(o, path).ok());
  auto g = GgufFile::open(path);
  ASSERT_TRUE(g.ok());
  auto c = config_from_gguf(*g);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->n_ctx_orig, 128u);
  ASSERT_TRUE(c->rope_long.has_value());
  const float attn_factor = *g->get_f32("phi3.rope.scaling.attn_factor");
  EXPECT_NEAR(attn_factor, std::sqrt(1.0 + std::log(32.0) / std::log(128.0)), 1e-6);
  const auto factors = [&](const char* name) {
    const GgufTensorInfo* t = g->find_tensor(name);
    EXPECT_NE(t, nullptr) << name;
    const auto* f = reinterpret_cast<const float*>(t->data);
    return std::vector<float>(f, f + t->n_elements);
  };
  const std::vector<float> shorts = factors("rope_factors_short.weight");
  const std::vector<float> longs = factors("rope_factors_long.weight");
  ASSERT_EQ(shorts.size(), 16u);
  ASSERT_EQ(c->rope.freq_mul.size(), 16u);
  ASSERT_EQ(c->rope_long->freq_mul.size(), 16u);
  for (size_t i = 0; i < 16; ++i) {
    EXPECT_EQ(c->rope.freq_mul[i], 1.0 / shorts[i]) << i;
    EXPECT_EQ(c->rope_long->freq_mul[i], 1.0 / longs[i]) << i;
  }
  EXPECT_GT(longs[15], 10.0f);  // the slow pairs stretched: the two ropes differ
  EXPECT_EQ(c->rope.mscale, attn_factor);
  EXPECT_EQ(c->rope_long->mscale, attn_factor);
  EXPECT_EQ(&c->rope_for(128), &c->rope);
  EXPECT_EQ(&c->rope_for(129), &*c->rope_long);
  EXPECT_EQ(c->rope_scaling,
            "long-rope factors (the long ones above 128 tokens of cache), attn_factor 1.30931");

  // A factor tensor of the wrong length is refused by name.
  const std::string bad = rewrite(path, "phi3_longrope_bad", [](GgufWriter&) {},
                                  {"rope_factors_long.weight"}, {"rope_factors_long.weight"});
  EXPECT_EQ(load_error(bad),
            bad + ": tensor 'rope_factors_long.weight' must be [16] (rope dimensions / 2)");
}

}  // namespace
}  // namespace sllm
