// Crafted variants of stories260K: every hyper-parameter non-finite, zero, wrapped or huge, a
// block count the file cannot back, NaN and Inf weights. Each is a clear error, fast, with little
// memory; non-finite logits name the stream position where they appeared.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "runtime/engine.h"
#include "runtime/session.h"
#include "test_util.h"

namespace sllm {
namespace {

using test::stories_gguf;

const GgufFile& stories_file() {
  static const GgufFile file = [] {
    auto f = GgufFile::open(stories_gguf());
    if (!f.ok()) throw std::runtime_error(f.error().message());
    return std::move(f).value();
  }();
  return file;
}

using TensorEdit = std::function<void(const std::string& name, std::vector<float>& data)>;

// stories260K with `overrides` set (added if absent) and `edit` applied to each tensor's floats
// (every tensor of stories260K is f32); returns the path written.
// Tensors named in `renames` are stored under the new name.
std::string write_variant(const std::string& name,
                          const std::map<std::string, GgufValue>& overrides,
                          const TensorEdit& edit = {},
                          const std::map<std::string, std::string>& renames = {}) {
  const GgufFile& f = stories_file();
  GgufWriter w;
  for (const auto& [key, value] : f.metadata()) w.set(key, value);
  for (const auto& [key, value] : overrides) w.set(key, value);
  for (const GgufTensorInfo& t : f.tensors()) {
    std::vector<float> data(t.n_elements);
    std::memcpy(data.data(), t.data, t.n_bytes);
    if (edit) edit(t.name, data);
    const Status added =
        w.add_tensor(renames.count(t.name) != 0 ? renames.at(t.name) : t.name, t.type, t.dims,
                     {reinterpret_cast<const uint8_t*>(data.data()), data.size() * sizeof(float)});
    if (!added.ok()) throw std::runtime_error(added.error().message());
  }
  const std::string path = ::testing::TempDir() + "hostile_" + name + ".gguf";
  const Status written = w.write(path);
  if (!written.ok()) throw std::runtime_error(written.error().message());
  return path;
}

// The error of loading `path`, or "" if it loads.
std::string load_error(const std::string& path) {
  auto engine = Engine::load(path);
  return engine.ok() ? "" : engine.error().message();
}

using test::peak_rss_bytes;
using test::reset_peak_rss;

TEST(HostileModel, UnmodifiedCopyLoads) { EXPECT_EQ(load_error(write_variant("copy", {})), ""); }

// Issue 8: block_count 2^31 aborted with bad_alloc; 10^7 in a 1 MB file took 3.9 GB and 18 s.
TEST(HostileModel, BlockCountTheFileCannotBackFailsFastWithLittleMemory) {
  struct Case {
    uint64_t block_count;
    std::string expected;
  };
  const Case cases[] = {
      {uint64_t{1} << 31,
       "block_count 2147483648 does not match the file: 2147483648 blocks need at least "
       "19327352834 tensors, the file has 48"},
      {10000000,
       "block_count 10000000 does not match the file: 10000000 blocks need at least "
       "90000002 tensors, the file has 48"},
      {6, "block_count 6 does not match the file: 6 blocks need at least 56 tensors"},
      {uint64_t{1} << 32, "'llama.block_count' = 4294967296 is out of range"},
      {~uint64_t{0}, "'llama.block_count' = 18446744073709551615 is out of range"},
      {0, "'llama.block_count' = 0 is out of range"},
  };
  for (const Case& c : cases) {
    const std::string path =
        write_variant("blocks", {{"llama.block_count", GgufValue::u64(c.block_count)}});
    const bool can_measure = !test::kSanitizedBuild && reset_peak_rss();
    const uint64_t rss_before = peak_rss_bytes();
    const auto start = std::chrono::steady_clock::now();
    const std::string error = load_error(path);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_NE(error.find(c.expected), std::string::npos) << error;
    EXPECT_LT(seconds, 1.0) << c.block_count;
    if (can_measure) {
      EXPECT_LT(peak_rss_bytes() - rss_before, uint64_t{64} << 20) << c.block_count;
    }
  }
  // A count the tensors cover but whose last block is missing.
  const std::string path =
      write_variant("blocks", {}, {}, {{"blk.4.attn_norm.weight", "blk.9.attn_norm.weight"}});
  EXPECT_NE(load_error(path).find("block_count 5 does not match the file: its last block's tensor "
                                  "'blk.4.attn_norm.weight' is missing"),
            std::string::npos)
      << load_error(path);
}

TEST(HostileModel, FloatHyperParametersMustBeFiniteAndInRange) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  struct Case {
    std::string key;
    float value;
    std::string expected;  // "" : loads
  };
  const std::string eps = "llama.attention.layer_norm_rms_epsilon";
  const std::string base = "llama.rope.freq_base";
  const Case cases[] = {
      {eps, nan, "'" + eps + "' = nan is not a finite number in (0, 1]"},
      {eps, inf, "'" + eps + "' = inf is not a finite number in (0, 1]"},
      {eps, -inf, "'" + eps + "' = -inf is not a finite number in (0, 1]"},
      {eps, 0.0f, "'" + eps + "' = 0 is not a finite number in (0, 1]"},
      {eps, -1e-5f, "'" + eps + "' = -1e-05 is not a finite number in (0, 1]"},
      {eps, 2.0f, "'" + eps + "' = 2 is not a finite number in (0, 1]"},
      {eps, 1e-6f, ""},
      {base, nan, "'" + base + "' = nan is not a finite number > 1"},
      {base, inf, "'" + base + "' = inf is not a finite number > 1"},
      {base, -inf, "'" + base + "' = -inf is not a finite number > 1"},
      {base, 0.0f, "'" + base + "' = 0 is not a finite number > 1"},
      {base, 1.0f, "'" + base + "' = 1 is not a finite number > 1"},
      {base, -10.0f, "'" + base + "' = -10 is not a finite number > 1"},
      {base, 500000.0f, ""},
  };
  for (const Case& c : cases) {
    const std::string error =
        load_error(write_variant("float", {{c.key, GgufValue::f32(c.value)}}));
    if (c.expected.empty()) {
      EXPECT_EQ(error, "") << c.key << " = " << c.value;
    } else {
      EXPECT_NE(error.find(c.expected), std::string::npos) << c.key << ": " << error;
    }
  }
}

// Every size hyper-parameter at 0, wrapped (a negative number stored unsigned), huge, and
// inconsistent with the tensors: each is an error naming what is wrong, in well under a second.
TEST(HostileModel, SizeHyperParametersZeroWrappedHugeOrInconsistentAreErrors) {
  struct Case {
    std::string key;
    uint64_t value;
    std::string expected;
  };
  const uint64_t wrapped32 = 0xFFFFFFFFu;  // -1 as u32
  const uint64_t wrapped64 = ~uint64_t{0};
  const uint64_t huge = uint64_t{1} << 31;
  const Case cases[] = {
      {"llama.embedding_length", 0, "'llama.embedding_length' = 0 is out of range"},
      {"llama.embedding_length", wrapped32, "= 4294967295 is out of range"},
      {"llama.embedding_length", wrapped64, "= 18446744073709551615 is out of range"},
      {"llama.embedding_length", huge, "tensor 'token_embd.weight' must be [2147483648, n_vocab]"},
      {"llama.embedding_length", 128, "tensor 'token_embd.weight' must be [128, n_vocab]"},
      {"llama.attention.head_count", 0, "'llama.attention.head_count' = 0 is out of range"},
      {"llama.attention.head_count", wrapped32, "= 4294967295 is out of range"},
      {"llama.attention.head_count", huge,
       "head_count 2147483648 is larger than embedding_length 64"},
      {"llama.attention.head_count", 3, "head_count 3 is not a multiple of head_count_kv 4"},
      {"llama.attention.head_count", 16,
       "rope.dimension_count 8 must be even and at most the head dimension 4"},
      {"llama.attention.head_count_kv", 0, "'llama.attention.head_count_kv' = 0 is out of range"},
      {"llama.attention.head_count_kv", 16, "head_count 8 is not a multiple of head_count_kv 16"},
      {"llama.feed_forward_length", 0, "'llama.feed_forward_length' = 0 is out of range"},
      {"llama.feed_forward_length", wrapped64, "is out of range"},
      {"llama.feed_forward_length", huge, "expected [64, 2147483648]"},
      {"llama.attention.key_length", 0, "'llama.attention.key_length' = 0 is out of range"},
      {"llama.attention.key_length", 7, "head dimension 7 is odd"},
      {"llama.attention.key_length", huge, "head_count 8 x head dimension 2147483648 is more than"},
      {"llama.attention.key_length", 16, "has shape [64, 64], expected [64, 128]"},
      {"llama.rope.dimension_count", 0, "'llama.rope.dimension_count' = 0 is out of range"},
      {"llama.rope.dimension_count", 3, "rope.dimension_count 3 must be even and at most"},
      {"llama.rope.dimension_count", huge, "rope.dimension_count 2147483648 must be even and at"},
      {"llama.context_length", 0, "'llama.context_length' = 0 is out of range"},
      {"llama.context_length", wrapped32 + 1,
       "'llama.context_length' = 4294967296 is out of range"},
  };
  for (const Case& c : cases) {
    const std::string path = write_variant("size", {{c.key, GgufValue::u64(c.value)}});
    const auto start = std::chrono::steady_clock::now();
    const std::string error = load_error(path);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_NE(error.find(c.expected), std::string::npos)
        << c.key << " = " << c.value << ": " << error;
    EXPECT_LT(seconds, 1.0) << c.key << " = " << c.value;
  }
}

// Feeds `tokens` to a fresh session of the model at `path`: one batch (with every row's logits
// if `all_logits`) or one token at a time. Returns the first error, or "".
std::string feed_error(const std::string& path, const std::vector<TokenId>& tokens, bool one_by_one,
                       bool all_logits, CachePolicy policy = CachePolicy::kStreaming) {
  auto engine = Engine::load(path);
  if (!engine.ok()) return "load: " + engine.error().message();
  ThreadPool pool(1);
  SessionOptions options;
  options.policy = policy;
  options.window = 16;
  auto session = Session::create((*engine)->model, options, pool);
  if (!session.ok()) return "create: " + session.error().message();
  std::vector<float> logits;
  if (one_by_one) {
    for (TokenId t : tokens) {
      const Status s = (*session)->feed({&t, 1}, all_logits ? &logits : nullptr);
      if (!s.ok()) return s.error().message();
    }
    return "";
  }
  const Status s = (*session)->feed(tokens, all_logits ? &logits : nullptr);
  return s.ok() ? "" : s.error().message();
}

std::string non_finite_at(uint64_t position) {
  return "the model produced non-finite logits at stream position " + std::to_string(position) +
         " (NaN or Inf in its weights?)";
}

// Issue 8: NaN/Inf weights loaded and printed garbage with exit 0.
TEST(HostileModel, NanWeightStopsAtTheFirstToken) {
  const std::string path =
      write_variant("nan_ffn", {}, [](const std::string& name, std::vector<float>& data) {
        if (name == "blk.2.ffn_down.weight") data[5] = std::numeric_limits<float>::quiet_NaN();
      });
  const std::vector<TokenId> tokens = {1, 200, 300, 400};
  EXPECT_EQ(feed_error(path, tokens, true, false), non_finite_at(0));
  EXPECT_EQ(feed_error(path, tokens, false, true), non_finite_at(0));
  // Without every row's logits only the batch's last row is computed: it names that token.
  EXPECT_EQ(feed_error(path, tokens, false, false), non_finite_at(3));
  // The clean model runs the same tokens.
  EXPECT_EQ(feed_error(write_variant("clean", {}), tokens, false, true), "");
}

TEST(HostileModel, InfEmbeddingOfOneTokenNamesItsPosition) {
  const std::string path =
      write_variant("inf_embd", {}, [](const std::string& name, std::vector<float>& data) {
        // Row 300 of token_embd ([512, 64], rows of 64).
        if (name == "token_embd.weight")
          data[300 * 64 + 7] = std::numeric_limits<float>::infinity();
      });
  const std::vector<TokenId> tokens = {1, 200, 300, 400};
  EXPECT_EQ(feed_error(path, tokens, true, false), non_finite_at(2));
  EXPECT_EQ(feed_error(path, tokens, false, true), non_finite_at(2));
  EXPECT_EQ(feed_error(path, {1, 200}, false, true), "");
  // Every policy checks, recompute (a fresh forward per token) included.
  for (CachePolicy policy : {CachePolicy::kDense, CachePolicy::kWindow, CachePolicy::kRecompute}) {
    EXPECT_EQ(feed_error(path, tokens, false, true, policy), non_finite_at(2))
        << policy_name(policy);
    EXPECT_EQ(feed_error(path, {1, 200}, false, false, policy), "") << policy_name(policy);
  }
}

}  // namespace
}  // namespace sllm
