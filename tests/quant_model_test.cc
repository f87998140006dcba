// Issue 12 (types): a model in each quantization type loads and runs, its logits equal those of the
// f32 model of the same decoded weights (the loader and kernels add nothing of their own), and
// stay close to the unquantized model's; rows a K-quant cannot take fall back as in llama.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/qdot.h"
#include "runtime/engine.h"
#include "runtime/session.h"
#include "streamingllm/tools.h"
#include "test_util.h"
#include "tools/quantize.h"
#include "util/tensor_type.h"
#include "util/thread_pool.h"

namespace sllm::test {
namespace {

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "qmodel-" + name; }

// A random-weight llama whose every matrix row (256, 512) suits the 256-element K-quants, with
// stories260K's 512-token vocabulary so that it stays small.
const std::string& base_model() {
  static const std::string path = [] {
    MakeModelOptions o;
    o.vocab = stories_gguf();
    o.n_embd = 256;
    o.n_ff = 512;
    o.n_head = 4;
    o.n_head_kv = 2;
    o.n_layer = 2;
    o.seed = 12;
    const std::string p = temp_path("base-f32.gguf");
    const Status s = make_model(o, p);
    if (!s.ok()) throw std::runtime_error(s.error().message());
    return p;
  }();
  return path;
}

// Logits after each of `tokens`, fed one at a time: [n_tokens * n_vocab].
std::vector<float> logits_of(const std::string& path, const std::vector<TokenId>& tokens) {
  auto engine = Engine::load(path);
  if (!engine.ok()) throw std::runtime_error(path + ": " + engine.error().message());
  ThreadPool pool(2);
  auto session = Session::create((*engine)->model, SessionOptions{}, pool);
  if (!session.ok()) throw std::runtime_error(session.error().message());
  std::vector<float> out;
  for (TokenId t : tokens) {
    const TokenId one[1] = {t};
    const Status s = (*session)->feed(one);
    if (!s.ok()) throw std::runtime_error(s.error().message());
    out.insert(out.end(), (*session)->last_logits().begin(), (*session)->last_logits().end());
  }
  return out;
}

double rms(const std::vector<float>& a) {
  double s = 0.0;
  for (float v : a) s += double{v} * v;
  return std::sqrt(s / static_cast<double>(a.size()));
}

double rms_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += (double{a[i]} - b[i]) * (double{a[i]} - b[i]);
  return std::sqrt(s / static_cast<double>(a.size()));
}

// 12 tokens; 4 under the sanitizers, which run the engine 10-30x slower.
const std::vector<TokenId> kTokens = [] {
  std::vector<TokenId> t = {1, 403, 261, 302, 71, 9, 264, 492, 317, 88, 43, 280};
  if (kSanitizedBuild) t.resize(4);
  return t;
}();

// Under the sanitizers one type per family keeps the suite fast (every codec is checked there by
// quant_types_test); the release build runs them all.
bool sanitized_skip(TensorType type) {
  return kSanitizedBuild && type != TensorType::kQ5_1 && type != TensorType::kQ4_K &&
         type != TensorType::kIQ4_XS && type != TensorType::kMXFP4;
}

struct TypeCase {
  TensorType type;
  // Of the logits' change against the f32 model: about 1.3-1.5x the measured figure (uniform
  // random weights; the non-linear iq4 / mxfp4 books suit bell-shaped real weights better).
  double max_relative_rms;
};

TEST(QuantModel, EveryTypeLoadsAndEqualsItsDecodedF32Model) {
  const std::vector<float> f32 = logits_of(base_model(), kTokens);
  const double scale = rms(f32);
  ASSERT_GT(scale, 0.0);
  for (const TypeCase& c : {TypeCase{TensorType::kQ8_0, 0.02}, TypeCase{TensorType::kQ4_0, 0.25},
                            TypeCase{TensorType::kQ4_1, 0.3}, TypeCase{TensorType::kQ5_0, 0.13},
                            TypeCase{TensorType::kQ5_1, 0.13}, TypeCase{TensorType::kQ2_K, 0.9},
                            TypeCase{TensorType::kQ3_K, 0.5}, TypeCase{TensorType::kQ4_K, 0.25},
                            TypeCase{TensorType::kQ5_K, 0.12}, TypeCase{TensorType::kQ6_K, 0.06},
                            TypeCase{TensorType::kIQ4_NL, 0.3}, TypeCase{TensorType::kIQ4_XS, 0.3},
                            TypeCase{TensorType::kMXFP4, 0.45}}) {
    if (sanitized_skip(c.type)) continue;
    const std::string name = traits_of(c.type).name;
    const std::string quantized = temp_path(name + ".gguf");
    const std::string decoded = temp_path(name + "-decoded-f32.gguf");
    ASSERT_TRUE(quantize_gguf(base_model(), quantized, c.type, [](const std::string&) {}).ok());
    {
      // Every matrix is of the requested type: rows of 256 and 512 need no fallback.
      auto file = GgufFile::open(quantized);
      ASSERT_TRUE(file.ok()) << file.error().message();
      size_t n_matrices = 0;
      for (const GgufTensorInfo& t : file->tensors()) {
        if (t.dims.size() != 2) continue;
        ++n_matrices;
        // quantize keeps output.weight at q8_0 for q4_0, as llama.cpp keeps it wider.
        if (c.type == TensorType::kQ4_0 && t.name == "output.weight") continue;
        EXPECT_EQ(t.type, c.type) << name << " " << t.name;
      }
      EXPECT_GE(n_matrices, 15u);
    }
    // The same weights decoded by the scalar reference into an f32 file.
    ASSERT_TRUE(
        quantize_gguf(quantized, decoded, TensorType::kF32, [](const std::string&) {}).ok());
    const std::vector<float> q = logits_of(quantized, kTokens);
    const std::vector<float> d = logits_of(decoded, kTokens);
    ASSERT_EQ(q.size(), f32.size());
    const double vs_decoded = rms_diff(q, d) / scale;
    const double vs_f32 = rms_diff(q, f32) / scale;
    std::printf("%-7s logits vs its decoded f32 model: rel. rms %.2e; vs the f32 model: %.4f\n",
                name.c_str(), vs_decoded, vs_f32);
    RecordProperty("rel_rms_vs_f32_" + name, std::to_string(vs_f32));
    if (ops::is_quantized_matmul_type(c.type)) {
      // The integer kernels round the activations to 8 bits as llama.cpp does (qdot_test checks
      // them bit for bit): a step of amax/127 over 32 values (amax ~ 2 sigma) is ~0.5% rms per
      // matmul, compounding over the model's matmuls to 1-2% (measured 1.3e-2 q8_0, 1.2e-2 q4_0).
      EXPECT_LT(vs_decoded, 3e-2) << name;
    } else {
      // Only the f32 sums' order may differ from the decoded model's.
      EXPECT_LT(vs_decoded, 1e-5) << name;
    }
    EXPECT_LT(vs_f32, c.max_relative_rms) << name;
    EXPECT_GT(vs_f32, 0.0) << name << ": quantization changed nothing?";
    std::remove(quantized.c_str());
    std::remove(decoded.c_str());
  }
}

// stories260K's rows (64, 172 columns) are no multiple of 256: the K-quants and iq4_xs fall back
// to llama.cpp's 32-element types, and rows of 172 (not a multiple of 32 either) to f16.
TEST(QuantModel, KQuantFallbacksOnStories) {
  struct Fallback {
    TensorType type;
    TensorType for_64;
  };
  const std::vector<float> f32 = logits_of(stories_gguf(), kTokens);
  for (const Fallback& f : {Fallback{TensorType::kQ2_K, TensorType::kQ4_0},
                            Fallback{TensorType::kQ3_K, TensorType::kQ4_0},
                            Fallback{TensorType::kQ4_K, TensorType::kQ5_0},
                            Fallback{TensorType::kQ5_K, TensorType::kQ5_1},
                            Fallback{TensorType::kQ6_K, TensorType::kQ8_0},
                            Fallback{TensorType::kIQ4_XS, TensorType::kIQ4_NL}}) {
    const std::string name = traits_of(f.type).name;
    const std::string path = temp_path("stories-" + name + ".gguf");
    std::vector<std::string> log;
    ASSERT_TRUE(quantize_gguf(stories_gguf(), path, f.type, [&](const std::string& l) {
                  log.push_back(l);
                }).ok());
    auto file = GgufFile::open(path);
    ASSERT_TRUE(file.ok());
    const GgufTensorInfo* wq = file->find_tensor("blk.0.attn_q.weight");
    const GgufTensorInfo* down = file->find_tensor("blk.0.ffn_down.weight");  // rows of 172
    ASSERT_NE(wq, nullptr);
    ASSERT_NE(down, nullptr);
    EXPECT_EQ(wq->type, f.for_64) << name;
    EXPECT_EQ(down->type, TensorType::kF16) << name;
    bool logged = false;
    for (const std::string& l : log) {
      logged |= l == "blk.0.attn_q.weight: row length 64 is not a multiple of the 256-element " +
                         name + " block; written as " + traits_of(f.for_64).name;
    }
    EXPECT_TRUE(logged) << name;
    const std::vector<float> q = logits_of(path, kTokens);
    const double rel = rms_diff(q, f32) / rms(f32);
    std::printf("stories260K --type %-6s (64-column rows as %s): logits rel. rms vs f32 %.4f\n",
                name.c_str(), traits_of(f.for_64).name, rel);
    EXPECT_LT(rel, 0.2) << name;
    std::remove(path.c_str());
  }
}

// llama.cpp's Q4_K_M / Q5_K_M choices on an 8-layer model: use_more_bits picks layers 0, 3, 6, 7
// (the first and last eighth, and every third between) for q6_K attn_v and ffn_down; output.weight
// is q6_K; everything else the base type.
TEST(QuantModel, MixesPickLlamaCppsTypesPerTensor) {
  MakeModelOptions o;
  o.vocab = stories_gguf();
  o.n_embd = 256;
  o.n_ff = 512;
  o.n_head = 4;
  o.n_head_kv = 2;
  o.n_layer = 8;
  o.seed = 12;
  const std::string base = temp_path("base8-f32.gguf");
  ASSERT_TRUE(make_model(o, base).ok());
  const std::vector<float> f32 = logits_of(base, kTokens);
  struct Mix {
    QuantMix mix;
    TensorType base;
    uint32_t file_type;
    double max_relative_rms;  // measured 0.246 / 0.120 (8 random layers compound the error)
  };
  for (const Mix& m : {Mix{QuantMix::kQ4_K_M, TensorType::kQ4_K, 15, 0.35},
                       Mix{QuantMix::kQ5_K_M, TensorType::kQ5_K, 17, 0.17}}) {
    if (kSanitizedBuild && m.mix == QuantMix::kQ5_K_M) continue;  // the same code as Q4_K_M
    const std::string name = traits_of(m.base).name;
    const std::string path = temp_path("mix-" + name + ".gguf");
    ASSERT_TRUE(quantize_gguf_mix(base, path, m.mix, [](const std::string&) {}).ok());
    auto file = GgufFile::open(path);
    ASSERT_TRUE(file.ok()) << file.error().message();
    EXPECT_EQ(*file->get_u32("general.file_type"), m.file_type);
    for (const GgufTensorInfo& t : file->tensors()) {
      if (t.dims.size() != 2) continue;
      int layer = -1;
      std::sscanf(t.name.c_str(), "blk.%d.", &layer);
      const bool more_bits = layer == 0 || layer == 3 || layer == 6 || layer == 7;
      const bool sensitive = t.name.find("attn_v.weight") != std::string::npos ||
                             t.name.find("ffn_down") != std::string::npos;
      const TensorType expected = t.name == "output.weight"  ? TensorType::kQ6_K
                                  : (sensitive && more_bits) ? TensorType::kQ6_K
                                                             : m.base;
      EXPECT_EQ(t.type, expected) << name << "_M " << t.name;
    }
    const double rel = rms_diff(logits_of(path, kTokens), f32) / rms(f32);
    std::printf("%s_M: logits rel. rms vs f32 %.4f\n", name.c_str(), rel);
    EXPECT_LT(rel, m.max_relative_rms);
    std::remove(path.c_str());
  }
  EXPECT_EQ(parse_quant_mix("Q4_K_M"), QuantMix::kQ4_K_M);
  EXPECT_EQ(parse_quant_mix("q5_k_m"), QuantMix::kQ5_K_M);
  EXPECT_FALSE(parse_quant_mix("q4_K").has_value());
  std::remove(base.c_str());
}

// Rows are encoded in parallel; a non-finite weight is still reported at its first position in row
// order, whatever thread met it.
TEST(QuantModel, NonFiniteWeightsAreNamed) {
  std::vector<float> w(256 * 64, 0.5f);
  w[7 * 256 + 5] = INFINITY;
  w[40 * 256 + 1] = NAN;
  GgufWriter writer;
  writer.set("general.architecture", GgufValue::str("llama"));
  const auto* bytes = reinterpret_cast<const uint8_t*>(w.data());
  ASSERT_TRUE(
      writer.add_tensor("x.weight", TensorType::kF32, {256, 64}, {bytes, 4 * w.size()}).ok());
  const std::string in = temp_path("nonfinite.gguf");
  ASSERT_TRUE(writer.write(in).ok());
  const Status s = quantize_gguf(in, temp_path("nonfinite-q4_K.gguf"), TensorType::kQ4_K,
                                 [](const std::string&) {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "'" + in +
                                     "': tensor 'x.weight' has the non-finite value inf at row 7, "
                                     "column 5; q4_K needs finite weights");
  std::remove(in.c_str());
}

}  // namespace
}  // namespace sllm::test
