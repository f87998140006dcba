// Checks the test-only references themselves: against llama2.c's known-good greedy output of
// stories260K, and against each other where the math says they must agree.
#include "reference/reference_llama.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "test_util.h"

namespace sllm::reference {
namespace {

constexpr int32_t kBos = 1;
// Logits are O(10); two double-precision evaluations that differ only in summation order or in
// how a rotation angle was reached agree to ~1e-12.
constexpr double kExact = 1e-9;

const ReferenceLlama& stories() {
  static const ReferenceLlama model = ReferenceLlama::load(test::stories_gguf());
  return model;
}

std::vector<std::string> stories_vocab() {
  Result<GgufFile> file = GgufFile::open(test::stories_gguf());
  if (!file.ok()) throw std::runtime_error(file.error().message());
  Result<std::vector<std::string>> tokens = file->get_string_array("tokenizer.ggml.tokens");
  if (!tokens.ok()) throw std::runtime_error(tokens.error().message());
  return *tokens;
}

// llama2.c's decoding: "▁" is a space, "<0xXX>" a raw byte, and the text does not start with the
// space of its first piece.
std::string decode(const std::vector<std::string>& vocab, const std::vector<int32_t>& ids) {
  const std::string kSpaceMarker = "\xe2\x96\x81";  // U+2581
  std::string text;
  for (int32_t id : ids) {
    const std::string& piece = vocab.at(static_cast<size_t>(id));
    if (piece.size() == 6 && piece.starts_with("<0x") && piece.back() == '>') {
      text += static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16));
      continue;
    }
    for (size_t i = 0; i < piece.size();) {
      if (piece.compare(i, kSpaceMarker.size(), kSpaceMarker) == 0) {
        text += ' ';
        i += kSpaceMarker.size();
      } else {
        text += piece[i++];
      }
    }
  }
  if (text.starts_with(' ')) text.erase(0, 1);
  return text;
}

int32_t argmax(const std::vector<double>& logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// Infinite when the sizes differ or either side holds a NaN, so that no comparison passes by it.
double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return INFINITY;
  double diff = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::abs(a[i] - b[i]);
    if (std::isnan(d)) return INFINITY;
    diff = std::max(diff, d);
  }
  return diff;
}

// BOS, then ids drawn from std::mt19937 (whose sequence the standard fixes).
std::vector<int32_t> pseudo_random_tokens(size_t n_tokens, size_t vocab_size, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<int32_t> tokens = {kBos};
  while (tokens.size() < n_tokens) tokens.push_back(static_cast<int32_t>(gen() % vocab_size));
  return tokens;
}

TEST(ReferenceLlamaTest, LoadsStoriesConfig) {
  const ReferenceConfig& c = stories().config();
  EXPECT_EQ(c.dim, 64u);
  EXPECT_EQ(c.n_layers, 5u);
  EXPECT_EQ(c.n_heads, 8u);
  EXPECT_EQ(c.n_kv_heads, 4u);
  EXPECT_EQ(c.head_dim, 8u);
  EXPECT_EQ(c.ffn_dim, 172u);
  EXPECT_EQ(c.vocab_size, 512u);
  EXPECT_EQ(c.rope_dim, 8u);
  EXPECT_EQ(c.rope_base, 10000.0);  // absent from the file: the default
  EXPECT_EQ(c.rms_eps, static_cast<double>(1e-5f));
  EXPECT_EQ(c.rope_style, RopeStyle::kAdjacentPairs);
}

// llama2.c `run stories260K.bin -t 0 -n 256`, as recorded in shared/README.md.
TEST(ReferenceLlamaTest, GreedyFromBosReproducesLlama2c) {
  const std::string kExpectedText =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n"
      "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. "
      "She said, \"I want to play with your ball, but I can't find it.\"\n"
      "Lily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to "
      "do.\"\n"
      "Lily didn't want to help her mom, so she said, \"I'm sorry, mom. I didn't know what to "
      "do.\" "
      "Her mom said, \"Don't worry, Lily. We can help you.";
  // Dense attention, one token at a time (much cheaper than forward_dense per step).
  NaiveStreamingReference dense(stories(), 0, size_t{1} << 30);
  std::vector<int32_t> generated;
  int32_t token = kBos;
  for (int step = 0; step < 256; ++step) {
    token = argmax(dense.step(token));
    generated.push_back(token);
  }
  const std::vector<int32_t> kFirstTen = {403, 407, 261, 378, 432, 383, 286, 261, 376, 298};
  EXPECT_EQ(std::vector<int32_t>(generated.begin(), generated.begin() + 10), kFirstTen);
  EXPECT_EQ(decode(stories_vocab(), generated), kExpectedText);
}

TEST(ReferenceLlamaTest, DenseForwardEqualsStreamingWithoutEviction) {
  const std::vector<int32_t> tokens = pseudo_random_tokens(64, stories().config().vocab_size, 7);
  const std::vector<std::vector<double>> dense = stories().forward_dense(tokens);
  NaiveStreamingReference streaming(stories(), 4, size_t{1} << 30);
  for (size_t t = 0; t < tokens.size(); ++t) {
    EXPECT_LT(max_abs_diff(streaming.step(tokens[t]), dense[t]), kExact) << "token " << t;
  }
  EXPECT_EQ(streaming.n_cached(), tokens.size());
}

// Until the cache is full StreamingLLM is dense attention; the first eviction changes the logits.
TEST(ReferenceLlamaTest, StreamingEqualsDenseUntilFirstEviction) {
  const std::vector<int32_t> tokens = pseudo_random_tokens(24, stories().config().vocab_size, 11);
  const std::vector<std::vector<double>> dense = stories().forward_dense(tokens);
  for (size_t n_sinks : {size_t{0}, size_t{4}}) {
    const size_t window = 16 - n_sinks;
    NaiveStreamingReference streaming(stories(), n_sinks, window);
    for (size_t t = 0; t < 16; ++t) {
      EXPECT_LT(max_abs_diff(streaming.step(tokens[t]), dense[t]), kExact)
          << "n_sinks " << n_sinks << " token " << t;
    }
    EXPECT_GT(max_abs_diff(streaming.step(tokens[16]), dense[16]), 1e-3) << "n_sinks " << n_sinks;
    EXPECT_EQ(streaming.n_cached(), 16u);
    EXPECT_EQ(streaming.n_seen(), 17u);
  }
}

// With a window of one, a token sees only the sinks and itself, whose keys and values were
// computed over the sinks alone: exactly a dense pass over (sinks, token). This checks that the
// sinks survive every eviction and that keys are re-rotated at their cache positions.
TEST(ReferenceLlamaTest, SinksWithWindowOfOneEqualDenseOverSinksAndToken) {
  const size_t kSinks = 3;
  const std::vector<int32_t> tokens = pseudo_random_tokens(12, stories().config().vocab_size, 5);
  NaiveStreamingReference streaming(stories(), kSinks, 1);
  for (size_t t = 0; t < tokens.size(); ++t) {
    const std::vector<double> logits = streaming.step(tokens[t]);
    std::vector<int32_t> sinks_and_token(
        tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(std::min(t, kSinks)));
    sinks_and_token.push_back(tokens[t]);
    EXPECT_LT(max_abs_diff(logits, stories().forward_dense(sinks_and_token).back()), kExact)
        << "token " << t;
  }
}

// Window attention of one token is context-free, and so is recomputation over one token.
TEST(ReferenceLlamaTest, WindowOfOneEqualsRecompute) {
  const std::vector<int32_t> tokens = pseudo_random_tokens(10, stories().config().vocab_size, 3);
  NaiveStreamingReference streaming(stories(), 0, 1);
  std::vector<int32_t> stream;
  for (int32_t token : tokens) {
    stream.push_back(token);
    EXPECT_LT(max_abs_diff(streaming.step(token), recompute_step(stories(), stream, 1)), kExact);
  }
}

TEST(ReferenceLlamaTest, RecomputeEqualsDenseWhileStreamFitsWindow) {
  const std::vector<int32_t> tokens = pseudo_random_tokens(12, stories().config().vocab_size, 13);
  const std::vector<std::vector<double>> dense = stories().forward_dense(tokens);
  for (size_t t = 0; t < tokens.size(); ++t) {
    const std::vector<int32_t> stream(tokens.begin(),
                                      tokens.begin() + static_cast<std::ptrdiff_t>(t + 1));
    EXPECT_LT(max_abs_diff(recompute_step(stories(), stream, 12), dense[t]), kExact);
  }
  // Past the window the first token is dropped and the rest move to positions 0..window-1.
  const std::vector<int32_t> tail(tokens.begin() + 4, tokens.end());
  EXPECT_LT(
      max_abs_diff(recompute_step(stories(), tokens, 8), stories().forward_dense(tail).back()),
      kExact);
  EXPECT_GT(max_abs_diff(recompute_step(stories(), tokens, 8), dense.back()), 1e-3);
}

// RoPE scores depend only on the distance between positions (Su et al. 2021, section 3.4.2).
TEST(ReferenceLlamaTest, LogitsAreInvariantToShiftingAllPositions) {
  const std::vector<int32_t> tokens = pseudo_random_tokens(32, stories().config().vocab_size, 17);
  const std::vector<std::vector<double>> at_zero = stories().forward_dense(tokens, 0);
  const std::vector<std::vector<double>> at_1000 = stories().forward_dense(tokens, 1000);
  for (size_t t = 0; t < tokens.size(); ++t) {
    EXPECT_LT(max_abs_diff(at_zero[t], at_1000[t]), kExact) << "token " << t;
  }
}

TEST(RopeTest, RotatesAdjacentPairsByPosTimesFrequency) {
  ReferenceConfig c;
  c.head_dim = 6;
  c.rope_dim = 4;  // the last two dimensions stay as they are
  c.rope_base = 10000.0;
  std::vector<double> x = {1, 0, 0, 1, 5, 6, /* head 1 */ 0, 2, 3, 0, 7, 8};
  rope(x, 2, 3, c);
  // Pair 0 turns by 3 rad, pair 1 by 3 * 10000^(-2/4) = 0.03 rad.
  const std::vector<double> expected = {
      std::cos(3.0),      std::sin(3.0),     -std::sin(0.03),    std::cos(0.03),     5, 6,
      -2 * std::sin(3.0), 2 * std::cos(3.0), 3 * std::cos(0.03), 3 * std::sin(0.03), 7, 8};
  EXPECT_LT(max_abs_diff(x, expected), 1e-15);
}

TEST(RopeTest, HalfSplitPairsDimensionIWithIPlusHalf) {
  ReferenceConfig c;
  c.head_dim = 6;
  c.rope_dim = 4;
  c.rope_base = 10000.0;
  c.rope_style = RopeStyle::kHalfSplit;
  std::vector<double> x = {1, 0, 0, 1, 5, 6};  // pairs (x0, x2) and (x1, x3)
  rope(x, 1, 3, c);
  const std::vector<double> expected = {
      std::cos(3.0), -std::sin(0.03), std::sin(3.0), std::cos(0.03), 5, 6};
  EXPECT_LT(max_abs_diff(x, expected), 1e-15);
}

// Reorders each head's q and k rows so that adjacent pair (2i, 2i+1) becomes half-split pair
// (i, i + rope_dim/2): the permutation HF-to-GGUF conversion undoes for Llama.
Matrix to_half_split_rows(const Matrix& w, size_t n_heads, const ReferenceConfig& c) {
  Matrix out = w;
  const size_t half = c.rope_dim / 2;
  for (size_t h = 0; h < n_heads; ++h) {
    for (size_t i = 0; i < half; ++i) {
      for (auto [from, to] : {std::pair{2 * i, i}, std::pair{2 * i + 1, i + half}}) {
        std::memcpy(&out.data[(h * c.head_dim + to) * w.n_cols],
                    &w.data[(h * c.head_dim + from) * w.n_cols], w.n_cols * sizeof(double));
      }
    }
  }
  return out;
}

TEST(ReferenceLlamaTest, HalfSplitRopeWithPermutedWeightsEqualsAdjacentPairs) {
  const std::vector<int32_t> tokens = pseudo_random_tokens(16, stories().config().vocab_size, 19);
  for (size_t rope_dim : {size_t{8}, size_t{4}}) {
    ReferenceConfig adjacent_config = stories().config();
    adjacent_config.rope_dim = rope_dim;
    const ReferenceLlama adjacent(adjacent_config, stories().weights());

    ReferenceConfig half_split_config = adjacent_config;
    half_split_config.rope_style = RopeStyle::kHalfSplit;
    ReferenceWeights permuted = stories().weights();
    for (ReferenceLayer& layer : permuted.layers) {
      layer.wq = to_half_split_rows(layer.wq, half_split_config.n_heads, half_split_config);
      layer.wk = to_half_split_rows(layer.wk, half_split_config.n_kv_heads, half_split_config);
    }
    const ReferenceLlama half_split(half_split_config, permuted);
    const ReferenceLlama half_split_unpermuted(half_split_config, stories().weights());

    const std::vector<std::vector<double>> expected = adjacent.forward_dense(tokens);
    const std::vector<std::vector<double>> actual = half_split.forward_dense(tokens);
    const std::vector<std::vector<double>> wrong = half_split_unpermuted.forward_dense(tokens);
    for (size_t t = 0; t < tokens.size(); ++t) {
      EXPECT_LT(max_abs_diff(actual[t], expected[t]), kExact) << "rope_dim " << rope_dim;
    }
    EXPECT_GT(max_abs_diff(wrong.back(), expected.back()), 1e-3) << "rope_dim " << rope_dim;
  }
}

TEST(F16Test, ConvertsExactly) {
  EXPECT_EQ(f16_to_double(0x0000), 0.0);
  EXPECT_TRUE(std::signbit(f16_to_double(0x8000)));
  EXPECT_EQ(f16_to_double(0x3c00), 1.0);
  EXPECT_EQ(f16_to_double(0xc000), -2.0);
  EXPECT_EQ(f16_to_double(0x3555), 0x555 / 4096.0);        // 1.0101010101b * 2^-2
  EXPECT_EQ(f16_to_double(0x7bff), 65504.0);               // largest finite
  EXPECT_EQ(f16_to_double(0x0400), std::ldexp(1.0, -14));  // smallest normal
  EXPECT_EQ(f16_to_double(0x0001), std::ldexp(1.0, -24));  // smallest subnormal
  EXPECT_EQ(f16_to_double(0x03ff), std::ldexp(1023.0, -24));
  EXPECT_EQ(f16_to_double(0x7c00), INFINITY);
  EXPECT_EQ(f16_to_double(0xfc00), -INFINITY);
  EXPECT_TRUE(std::isnan(f16_to_double(0x7e00)));
}

// A tiny llama GGUF with made-up f16 weights: dim 32, 1 layer, 4 heads, 2 kv heads, ffn 48,
// vocab 16, and optionally one defect in one tensor.
enum class Defect { kNone, kMissing, kQ8_0, kTransposed };

struct TinyGguf {
  std::string path;
  std::map<std::string, std::vector<uint16_t>> f16_bits;  // what each f16 tensor holds
};

TinyGguf write_tiny_gguf(const std::string& file_name, const std::string& bad_tensor = "",
                         Defect defect = Defect::kNone) {
  GgufWriter writer;
  writer.set("general.architecture", GgufValue::str("llama"));
  writer.set("llama.embedding_length", GgufValue::u32(32));
  writer.set("llama.block_count", GgufValue::u32(1));
  writer.set("llama.attention.head_count", GgufValue::u32(4));
  writer.set("llama.attention.head_count_kv", GgufValue::u32(2));
  writer.set("llama.feed_forward_length", GgufValue::u32(48));
  writer.set("llama.attention.layer_norm_rms_epsilon", GgufValue::f32(1e-6f));
  writer.set("llama.rope.freq_base", GgufValue::f32(500000.0f));
  std::vector<std::string> vocab;
  for (int i = 0; i < 16; ++i) vocab.push_back(std::to_string(i));
  writer.set("tokenizer.ggml.tokens", GgufValue::string_array(vocab));

  TinyGguf gguf{::testing::TempDir() + file_name, {}};
  std::mt19937 gen(23);
  auto add = [&](const std::string& tensor, std::vector<uint64_t> dims) {
    if (tensor == bad_tensor && defect == Defect::kMissing) return;
    if (tensor == bad_tensor && defect == Defect::kTransposed) std::swap(dims[0], dims[1]);
    if (tensor == bad_tensor && defect == Defect::kQ8_0) {
      // 34-byte blocks of 32 weights; zeros are a valid (all-zero) block.
      std::vector<uint8_t> bytes(dims[0] / 32 * 34 * dims[1], 0);
      ASSERT_TRUE(writer.add_tensor(tensor, TensorType::kQ8_0, dims, bytes).ok());
      return;
    }
    uint64_t n = 1;
    for (uint64_t d : dims) n *= d;
    std::vector<uint16_t> bits(n);
    // Any sign and mantissa, exponent 10..17 (magnitudes 2^-5 .. 8): finite and well scaled.
    for (uint16_t& b : bits) {
      const uint32_t sign_and_mantissa = gen() & 0x83ffu;
      const uint32_t exponent = 10 + gen() % 8;
      b = static_cast<uint16_t>(sign_and_mantissa | (exponent << 10));
    }
    std::vector<uint8_t> bytes(n * 2);
    std::memcpy(bytes.data(), bits.data(), bytes.size());
    ASSERT_TRUE(writer.add_tensor(tensor, TensorType::kF16, dims, bytes).ok());
    gguf.f16_bits[tensor] = bits;
  };
  add("token_embd.weight", {32, 16});
  add("blk.0.attn_norm.weight", {32});
  add("blk.0.attn_q.weight", {32, 32});
  add("blk.0.attn_k.weight", {32, 16});
  add("blk.0.attn_v.weight", {32, 16});
  add("blk.0.attn_output.weight", {32, 32});
  add("blk.0.ffn_norm.weight", {32});
  add("blk.0.ffn_gate.weight", {32, 48});
  add("blk.0.ffn_up.weight", {32, 48});
  add("blk.0.ffn_down.weight", {48, 32});
  add("output_norm.weight", {32});
  add("output.weight", {32, 16});
  EXPECT_TRUE(writer.write(gguf.path).ok());
  return gguf;
}

std::vector<double> to_doubles(const std::vector<uint16_t>& bits) {
  std::vector<double> values;
  for (uint16_t b : bits) values.push_back(f16_to_double(b));
  return values;
}

TEST(ReferenceLoadTest, ReadsF16TensorsInGgufOrder) {
  const TinyGguf gguf = write_tiny_gguf("reference_f16.gguf");
  const ReferenceLlama model = ReferenceLlama::load(gguf.path);
  const ReferenceConfig& c = model.config();
  EXPECT_EQ(c.head_dim, 8u);
  EXPECT_EQ(c.rope_dim, 8u);  // absent: head_dim
  EXPECT_EQ(c.rope_base, 500000.0);
  EXPECT_EQ(c.vocab_size, 16u);
  const ReferenceLayer& layer = model.weights().layers.at(0);
  EXPECT_EQ(layer.wk.n_rows, 16u);
  EXPECT_EQ(layer.wk.n_cols, 32u);
  EXPECT_EQ(layer.w_down.n_rows, 32u);
  EXPECT_EQ(layer.w_down.n_cols, 48u);
  EXPECT_EQ(layer.wk.data, to_doubles(gguf.f16_bits.at("blk.0.attn_k.weight")));
  EXPECT_EQ(layer.w_down.data, to_doubles(gguf.f16_bits.at("blk.0.ffn_down.weight")));
  EXPECT_EQ(model.weights().output.data, to_doubles(gguf.f16_bits.at("output.weight")));
  const std::vector<std::vector<double>> logits = model.forward_dense({1, 2, 3});
  for (double logit : logits.back()) EXPECT_TRUE(std::isfinite(logit));
}

TEST(ReferenceLoadTest, TiesMissingOutputToTokenEmbedding) {
  const TinyGguf gguf = write_tiny_gguf("reference_tied.gguf", "output.weight", Defect::kMissing);
  const ReferenceLlama model = ReferenceLlama::load(gguf.path);
  EXPECT_EQ(model.weights().output.data, to_doubles(gguf.f16_bits.at("token_embd.weight")));
}

void expect_load_error(const std::string& path, const std::string& message) {
  try {
    ReferenceLlama::load(path);
    ADD_FAILURE() << "loaded " << path;
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(e.what(), message);
  }
}

TEST(ReferenceLoadTest, RejectsQuantizedTensors) {
  const TinyGguf gguf = write_tiny_gguf("reference_q8.gguf", "blk.0.attn_q.weight", Defect::kQ8_0);
  expect_load_error(gguf.path, gguf.path +
                                   ": tensor blk.0.attn_q.weight has type q8_0; the reference "
                                   "reads only f32 and f16");
}

TEST(ReferenceLoadTest, NamesMissingTensor) {
  const TinyGguf gguf =
      write_tiny_gguf("reference_missing.gguf", "blk.0.ffn_up.weight", Defect::kMissing);
  expect_load_error(gguf.path, gguf.path + ": tensor blk.0.ffn_up.weight is missing");
}

TEST(ReferenceLoadTest, NamesWrongDims) {
  const TinyGguf gguf =
      write_tiny_gguf("reference_dims.gguf", "blk.0.ffn_down.weight", Defect::kTransposed);
  expect_load_error(gguf.path, gguf.path +
                                   ": tensor blk.0.ffn_down.weight has dims [32, 48], "
                                   "expected [48, 32]");
}

TEST(NaiveStreamingReferenceTest, RejectsEmptyWindow) {
  EXPECT_THROW(NaiveStreamingReference(stories(), 4, 0), std::runtime_error);
}

}  // namespace
}  // namespace sllm::reference
