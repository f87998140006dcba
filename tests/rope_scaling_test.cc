// Llama rope scaling as config_from_gguf reads it (llama.cpp's keys and the rope_freqs tensor),
// and the files it refuses. That the numbers equal llama.cpp's is peer_greedy_test's part.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/config.h"
#include "streamingllm/tools.h"
#include "test_util.h"
#include "tools/make_model.h"

namespace sllm {
namespace {

std::string temp_dir() {
  static const std::string dir = [] {
    const std::string d = ::testing::TempDir() + "rope_scaling_test";
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

std::string make(const std::string& name, const std::string& scaling, float factor = 8.0f) {
  MakeModelOptions o;
  o.vocab = test::shared_path("data/vocab/ggml-vocab-llama-spm.gguf");
  o.n_embd = 32;
  o.n_layer = 1;
  o.n_head = 2;  // head dim 16: 8 rope pairs
  o.n_ctx = 4096;
  o.rope_base = 500000.0;
  o.rope_scaling = scaling;
  o.rope_factor = factor;
  const std::string path = temp_dir() + "/" + name + ".gguf";
  EXPECT_TRUE(make_model(o, path).ok());
  return path;
}

// A copy of `in` whose metadata and rope_freqs values `edit` may change.
std::string rewrite(const std::string& in, const std::string& name,
                    const std::function<void(GgufWriter&, std::vector<float>&)>& edit) {
  auto g = GgufFile::open(in);
  EXPECT_TRUE(g.ok());
  GgufWriter w;
  for (const auto& [key, value] : g->metadata()) w.set(key, value);
  std::vector<float> freqs;
  if (const GgufTensorInfo* t = g->find_tensor("rope_freqs.weight")) {
    freqs.assign(reinterpret_cast<const float*>(t->data),
                 reinterpret_cast<const float*>(t->data) + t->n_elements);
  }
  edit(w, freqs);
  for (const auto& t : g->tensors()) {
    if (t.name == "rope_freqs.weight") continue;
    EXPECT_TRUE(w.add_tensor(t.name, t.type, t.dims, {t.data, t.n_bytes}).ok());
  }
  if (!freqs.empty()) {
    EXPECT_TRUE(w.add_tensor("rope_freqs.weight", TensorType::kF32, {freqs.size()},
                             {reinterpret_cast<const uint8_t*>(freqs.data()), freqs.size() * 4})
                    .ok());
  }
  const std::string out = temp_dir() + "/" + name + ".gguf";
  EXPECT_TRUE(w.write(out).ok());
  return out;
}

Result<ModelConfig> config(const std::string& path) {
  auto g = GgufFile::open(path);
  if (!g.ok()) return g.error();
  return config_from_gguf(*g);
}

TEST(RopeScaling, NoneLeavesTheFrequenciesAlone) {
  auto c = config(make("none", "none"));
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->rope.freq_mul.empty());
  EXPECT_EQ(c->rope.mscale, 1.0f);
  EXPECT_EQ(c->rope_scaling, "");
}

TEST(RopeScaling, Llama3FactorsDivideEachPairsFrequency) {
  auto c = config(make("llama3", "llama3"));
  ASSERT_TRUE(c.ok());
  // Head dim 16, base 500000, original context 8192: wavelengths 2 pi 500000^(i/8); pairs 0-3
  // are below 2048 (factor 1), pair 4 (4443) is smoothed, pairs 5-7 are above 8192 (factor 8).
  const std::vector<float> f = make_model_detail::llama3_rope_factors(16, 500000.0, 8, 1, 4, 8192);
  ASSERT_EQ(f.size(), 8u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(f[i], 1.0f) << i;
  EXPECT_GT(f[4], 1.0f);
  EXPECT_LT(f[4], 8.0f);
  for (size_t i = 5; i < 8; ++i) EXPECT_EQ(f[i], 8.0f) << i;
  ASSERT_EQ(c->rope.freq_mul.size(), 8u);
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(c->rope.freq_mul[i], 1.0 / f[i]) << i;
  EXPECT_EQ(c->rope.mscale, 1.0f);
  EXPECT_EQ(c->rope_scaling, "rope_freqs factors");
}

TEST(RopeScaling, LinearDividesEveryFrequencyByTheFactor) {
  auto c = config(make("linear", "linear", 4.0f));
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->rope.freq_mul.size(), 8u);
  for (const double m : c->rope.freq_mul) EXPECT_EQ(m, 0.25);
  EXPECT_EQ(c->rope.mscale, 1.0f);
  EXPECT_EQ(c->rope_scaling, "linear x4");
}

TEST(RopeScaling, YarnRampsFromInterpolationToExtrapolationAndScalesMagnitude) {
  auto c = config(make("yarn", "yarn", 4.0f));
  ASSERT_TRUE(c.ok());
  const auto& m = c->rope.freq_mul;
  ASSERT_EQ(m.size(), 8u);
  // High-frequency pairs keep their frequency, low-frequency ones are interpolated by 1/4.
  EXPECT_EQ(m.front(), 1.0);
  EXPECT_EQ(m.back(), 0.25);
  for (size_t i = 1; i < m.size(); ++i) EXPECT_LE(m[i], m[i - 1]) << i;
  EXPECT_FLOAT_EQ(c->rope.mscale, 1.0f + 0.1f * std::log(4.0f));
  EXPECT_EQ(c->rope_scaling, "yarn x4");
}

TEST(RopeScaling, RefusesWhatItCannotCompute) {
  const std::string llama3 = make("bad_base", "llama3");
  const std::string longrope = rewrite(llama3, "longrope", [](GgufWriter& w, auto&) {
    w.set("llama.rope.scaling.type", GgufValue::str("longrope"));
  });
  auto c = config(longrope);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), longrope +
                                     ": metadata 'llama.rope.scaling.type' = 'longrope' is not "
                                     "supported (supported: none, linear, yarn)");

  const std::string nan =
      rewrite(llama3, "nan", [](GgufWriter&, std::vector<float>& f) { f[3] = std::nanf(""); });
  c = config(nan);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(),
            nan + ": tensor 'rope_freqs.weight' [3] = nan is not a finite number > 0");

  const std::string shape =
      rewrite(llama3, "shape", [](GgufWriter&, std::vector<float>& f) { f.push_back(1.0f); });
  c = config(shape);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(),
            shape + ": tensor 'rope_freqs.weight' must be [8] (rope dimensions / 2)");

  const std::string factor = rewrite(llama3, "factor", [](GgufWriter& w, auto&) {
    w.set("llama.rope.scaling.factor", GgufValue::f32(-2.0f));
  });
  c = config(factor);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), factor +
                                     ": metadata 'llama.rope.scaling.factor' = -2 is not a "
                                     "finite number in [0, 1e6]");
}

}  // namespace
}  // namespace sllm
