// Kernels vs their scalar references, on every Highway target this binary's CPU supports.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "hwy/tests/hwy_gtest.h"
#include "kernel_test_util.h"
#include "kernels/ops.h"
#include "kernels/ops_ref.h"
#include "kernels/quant.h"
#include "util/thread_pool.h"

namespace sllm {
namespace {

using namespace kernel_test;

// ================================================================================================
// SIMD kernels vs references, on every target

class Kernels : public hwy::TestWithParamTarget {};
HWY_TARGET_INSTANTIATE_TEST_SUITE_P(Kernels);

TEST_P(Kernels, TargetNameIsTheDispatchedOne) {
  EXPECT_STREQ(ops::simd_target_name(), hwy::TargetName(GetParam()));
}

TEST_P(Kernels, AddIsExact) {
  std::mt19937 rng(10);
  for (size_t n : test_counts()) {
    for (size_t offset : {0, 1}) {
      const std::vector<float> x = random_floats(rng, n, -10.0f, 10.0f);
      const std::vector<float> y0 = random_floats(rng, n, -10.0f, 10.0f);
      Shifted<float> xs(x, offset);
      Shifted<float> ys(y0, offset);
      std::vector<float> expected = y0;
      ops::ref::add(x.data(), expected.data(), n);
      ops::add(xs.data(), ys.data(), n);
      ASSERT_EQ(ys.values(), expected) << "n=" << n << " offset=" << offset;
    }
  }
}

TEST_P(Kernels, RmsNormMatchesReference) {
  std::mt19937 rng(11);
  for (size_t n : test_counts()) {
    for (size_t offset : {0, 1}) {
      const std::vector<float> x = random_floats(rng, n, -4.0f, 4.0f);
      const std::vector<float> w = random_floats(rng, n, 0.5f, 1.5f);
      std::vector<float> expected(n);
      ops::ref::rmsnorm(x.data(), w.data(), n, 1e-5f, expected.data());
      Shifted<float> xs(x, offset);
      Shifted<float> ws(w, offset);
      Shifted<float> out(std::vector<float>(n), offset);
      ops::rmsnorm(xs.data(), ws.data(), n, 1e-5f, out.data());
      // Sum of squares: n eps relative; 1/sqrt halves it and adds 2 eps; two products 2 eps.
      const std::vector<float> got = out.values();
      for (size_t i = 0; i < n; ++i) {
        ASSERT_NEAR(got[i], expected[i], ulps(n + 8) * std::fabs(expected[i]))
            << "n=" << n << " i=" << i;
      }
      // In place (out == x) gives the same bits.
      ops::rmsnorm(xs.data(), ws.data(), n, 1e-5f, xs.data());
      ASSERT_EQ(xs.values(), got);
    }
  }
}

TEST_P(Kernels, SoftmaxMatchesReference) {
  std::mt19937 rng(12);
  for (size_t n : test_counts()) {
    for (size_t offset : {0, 1}) {
      // Around 1000: exp without subtracting the max would overflow.
      const float center = offset == 0 ? 0.0f : 1000.0f;
      const std::vector<float> x = random_floats(rng, n, center - 20.0f, center + 20.0f);
      std::vector<float> expected = x;
      ops::ref::softmax(expected.data(), n);
      Shifted<float> xs(x, offset);
      ops::softmax(xs.data(), n);
      const std::vector<float> got = xs.values();
      const float max = n > 0 ? *std::max_element(x.begin(), x.end()) : 0.0f;
      double sum = 0.0;
      for (size_t i = 0; i < n; ++i) {
        // exp: 1 ulp; x - max rounded in f32: |x - max| eps relative after exp; sum: n eps.
        const double rel = (4.0 + (max - x[i]) + static_cast<double>(n)) * kEps;
        ASSERT_NEAR(got[i], expected[i], rel * expected[i] + 1e-38) << "n=" << n << " i=" << i;
        sum += got[i];
      }
      if (n > 0) {
        ASSERT_NEAR(sum, 1.0, 2.0 * ulps(n + 4));
      }
    }
  }
}

TEST_P(Kernels, SiluMulMatchesReference) {
  std::mt19937 rng(13);
  for (size_t n : test_counts()) {
    for (size_t offset : {0, 1}) {
      std::vector<float> gate = random_floats(rng, n, -20.0f, 20.0f);
      const std::vector<float> up = random_floats(rng, n, -3.0f, 3.0f);
      // Extremes where exp(-g) overflows or underflows.
      const float extremes[] = {-200.0f, -100.0f, -89.0f, 0.0f, 89.0f, 200.0f};
      for (size_t i = 0; i < std::min(n, std::size(extremes)); ++i) gate[n - 1 - i] = extremes[i];
      std::vector<float> expected = gate;
      ops::ref::silu_mul(expected.data(), up.data(), n);
      Shifted<float> gs(gate, offset);
      Shifted<float> us(up, offset);
      ops::silu_mul(gs.data(), us.data(), n);
      const std::vector<float> got = gs.values();
      for (size_t i = 0; i < n; ++i) {
        // exp 1 ulp, add, divide, multiply: a few roundings, relative. Where exp(-g) overflows f32
        // (g < -88.7), g / inf = -0 stands for |g| e^g * up < 1e-36, as with expf in ggml.
        ASSERT_NEAR(got[i], expected[i], 8 * kEps * std::fabs(expected[i]) + 1e-35f)
            << "n=" << n << " i=" << i << " gate=" << gate[i];
      }
    }
  }
}

// Random codes of every dense type, NaN excluded (a NaN's payload may legitimately differ).
std::vector<uint8_t> random_dense_bytes(std::mt19937& rng, TensorType type, size_t n) {
  std::uniform_int_distribution<uint32_t> bits;
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i < n; ++i) {
    if (type == TensorType::kF32) {
      const float f = std::bit_cast<float>(bits(rng) & 0xFF7FFFFFu);  // exponent != 255
      const auto* p = reinterpret_cast<const uint8_t*>(&f);
      bytes.insert(bytes.end(), p, p + 4);
    } else {
      auto h = static_cast<uint16_t>(bits(rng));
      if (type == TensorType::kF16 && is_f16_nan(h)) h = 0x7C00;  // keep inf, drop NaN
      if (type == TensorType::kBF16 && (h & 0x7FFF) > 0x7F80) h = 0x7F80;
      bytes.push_back(static_cast<uint8_t>(h));
      bytes.push_back(static_cast<uint8_t>(h >> 8));
    }
  }
  return bytes;
}

// Random blocks: any codes, scales from f16 values in [-2, 2].
std::vector<uint8_t> random_block_bytes(std::mt19937& rng, TensorType type, size_t n) {
  const size_t block_bytes = type == TensorType::kQ8_0 ? 34 : 18;
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(-2.0f, 2.0f);
  std::vector<uint8_t> bytes(n / 32 * block_bytes);
  for (size_t b = 0; b < n / 32; ++b) {
    const uint16_t d = quant::f32_to_f16(scale(rng));
    std::memcpy(&bytes[b * block_bytes], &d, 2);
    for (size_t j = 2; j < block_bytes; ++j) {
      bytes[b * block_bytes + j] = static_cast<uint8_t>(byte(rng));
    }
  }
  return bytes;
}

constexpr TensorType kAllTypes[] = {TensorType::kF32, TensorType::kF16, TensorType::kBF16,
                                    TensorType::kQ8_0, TensorType::kQ4_0};

bool is_block(TensorType type) { return type == TensorType::kQ8_0 || type == TensorType::kQ4_0; }

TEST_P(Kernels, DequantizeRowIsExact) {
  std::mt19937 rng(14);
  for (TensorType type : kAllTypes) {
    for (size_t n : is_block(type) ? block_counts() : test_counts()) {
      // Odd byte offsets for blocks (their rows are 34 or 18 bytes), whole elements otherwise.
      const size_t byte_offset = is_block(type) ? 1 : (type == TensorType::kF32 ? 4 : 2);
      const std::vector<uint8_t> bytes =
          is_block(type) ? random_block_bytes(rng, type, n) : random_dense_bytes(rng, type, n);
      std::vector<float> expected(n);
      ops::ref::dequantize_row(type, bytes.data(), expected.data(), n);
      Shifted<uint8_t> src(bytes, byte_offset);
      Shifted<float> out(std::vector<float>(n), 1);
      ops::dequantize_row(type, src.data(), out.data(), n);
      const std::vector<float> got = out.values();
      // Bit-exact: every type decodes exactly (block products are exact in f32).
      ASSERT_EQ(bit_patterns(got), bit_patterns(expected))
          << tensor_type_traits(static_cast<uint32_t>(type))->name << " n=" << n;
    }
  }
}

TEST_P(Kernels, KvOpsMatchReference) {
  std::mt19937 rng(15);
  for (TensorType kv_type : {TensorType::kF32, TensorType::kF16}) {
    for (size_t n : test_counts()) {
      const std::vector<float> a = random_floats(rng, n, -2.0f, 2.0f);
      const std::vector<float> values = random_floats(rng, n, -2.0f, 2.0f);
      const size_t elem_bytes = kv_type == TensorType::kF32 ? 4 : 2;

      // store_kv: exactly the scalar encoding.
      std::vector<uint8_t> expected_row(n * elem_bytes);
      ops::ref::store_kv(values.data(), expected_row.data(), kv_type, n);
      Shifted<uint8_t> row(std::vector<uint8_t>(n * elem_bytes), elem_bytes);
      Shifted<float> src(values, 1);
      ops::store_kv(src.data(), row.data(), kv_type, n);
      ASSERT_EQ(row.values(), expected_row) << "store n=" << n;

      // dot_kv: n eps relative to sum |a k|.
      std::vector<float> k(n);
      quant::dequantize_row_ref(kv_type, expected_row.data(), k.data(), n);
      double abs_sum = 0.0;
      for (size_t i = 0; i < n; ++i) abs_sum += std::fabs(double{a[i]} * k[i]);
      Shifted<float> as(a, 1);
      const float dot = ops::dot_kv(as.data(), row.data(), kv_type, n);
      ASSERT_NEAR(dot, ops::ref::dot_kv(a.data(), expected_row.data(), kv_type, n),
                  ulps(n + 2) * abs_sum)
          << "dot n=" << n;

      // axpy_kv: y + a v with one (fused) or two roundings per element.
      const float scale = 0.75f;
      const std::vector<float> y0 = random_floats(rng, n, -2.0f, 2.0f);
      std::vector<float> expected = y0;
      ops::ref::axpy_kv(scale, expected_row.data(), kv_type, expected.data(), n);
      Shifted<float> ys(y0, 1);
      ops::axpy_kv(scale, row.data(), kv_type, ys.data(), n);
      const std::vector<float> got = ys.values();
      for (size_t i = 0; i < n; ++i) {
        ASSERT_NEAR(got[i], expected[i], 2 * kEps * (std::fabs(scale * k[i]) + std::fabs(y0[i])))
            << "axpy n=" << n << " i=" << i;
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------
// attention

// Rows of kKvHeads heads each, like a KV cache; the tests attend with head 1, so every row read
// has another head's elements on both sides.
struct TestKv {
  static constexpr size_t kKvHeads = 3;
  ops::KvLayout layout;
  std::vector<uint8_t> keys, values;  // [n_rows, kKvHeads * head_dim] of layout.type
  std::vector<float> key_values;      // [n_rows, head_dim] head 1's keys, decoded

  TestKv(std::mt19937& rng, TensorType type, size_t head_dim, size_t n_rows, float key_range) {
    const size_t elem_bytes = type == TensorType::kF32 ? 4 : 2;
    layout = {type, head_dim, kKvHeads * head_dim * elem_bytes};
    const size_t n = n_rows * kKvHeads * head_dim;
    const std::vector<float> k = random_floats(rng, n, -key_range, key_range);
    const std::vector<float> v = random_floats(rng, n, -2.0f, 2.0f);
    keys.resize(n * elem_bytes);
    values.resize(n * elem_bytes);
    ops::ref::store_kv(k.data(), keys.data(), type, n);
    ops::ref::store_kv(v.data(), values.data(), type, n);
    key_values.resize(n_rows * head_dim);
    for (size_t r = 0; r < n_rows; ++r) {
      quant::dequantize_row_ref(type, key(r), &key_values[r * head_dim], head_dim);
    }
  }
  const uint8_t* key(size_t row) const { return &keys[row * layout.row_bytes + head_offset()]; }
  const uint8_t* value(size_t row) const { return &values[row * layout.row_bytes + head_offset()]; }
  size_t head_offset() const { return layout.row_bytes / kKvHeads; }
};

// Splits rows [0, n_rows) into runs at the given boundaries; the first run is scored with q_first
// (as sinks are), the others with q.
std::vector<ops::KvRun> split_runs(const TestKv& kv, size_t n_rows, std::vector<size_t> cuts,
                                   const float* q_first, const float* q) {
  cuts.push_back(n_rows);
  std::vector<ops::KvRun> runs;
  size_t begin = 0;
  for (size_t end : cuts) {
    runs.push_back({runs.empty() ? q_first : q, kv.key(begin), kv.value(begin), end - begin});
    begin = end;
  }
  return runs;
}

TEST_P(Kernels, AttentionMatchesReference) {
  std::mt19937 rng(17);
  for (TensorType type : {TensorType::kF32, TensorType::kF16}) {
    for (size_t head_dim : {1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 17, 24, 32, 64, 80, 128}) {
      for (size_t n_rows : {1, 2, 3, 5, 8, 9, 17, 33, 100, 1024}) {
        const size_t n_heads = 1 + (head_dim + n_rows) % 3;  // query heads sharing the KV head
        // Scores spread over about +-8: some weights near 1, most tiny, as in a trained model.
        const float key_range = 8.0f / std::sqrt(static_cast<float>(head_dim));
        TestKv kv(rng, type, head_dim, n_rows, key_range);
        const std::vector<float> q = random_floats(rng, n_heads * head_dim, -1.0f, 1.0f);
        const std::vector<float> q_sink = random_floats(rng, n_heads * head_dim, -1.0f, 1.0f);
        const std::vector<ops::KvRun> runs =
            split_runs(kv, n_rows, {std::min<size_t>(4, n_rows)}, q_sink.data(), q.data());
        const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
        std::vector<float> expected(n_heads * head_dim), weights(n_heads * n_rows);
        ops::ref::attention(kv.layout, runs, n_heads, scale, weights.data(), expected.data());
        Shifted<float> out(std::vector<float>(n_heads * head_dim, -1.0f), 1);
        std::vector<float> scores(n_heads * n_rows);
        ops::attention(kv.layout, runs, n_heads, scale, scores.data(), out.data());
        const std::vector<float> got = out.values();
        for (size_t h = 0; h < n_heads; ++h) {
          // A score is off by (head_dim + 2) eps |scale q| . |k| (the dot, then the scale); a
          // weight by twice the largest score error, plus exp (4 eps) and the sum of n_rows
          // terms; the weighted sum adds (n_rows + 4) eps of sum_n w_n |v_n|.
          double score_error = 0.0;
          for (size_t r = 0; r < n_rows; ++r) {
            const float* qr = (r < 4 ? q_sink.data() : q.data()) + h * head_dim;
            double abs_dot = 0.0;
            for (size_t i = 0; i < head_dim; ++i) {
              abs_dot += std::fabs(double{qr[i]} * kv.key_values[r * head_dim + i]);
            }
            score_error = std::max(score_error, ulps(head_dim + 2) * scale * abs_dot);
          }
          const double weight_rel = 2.0 * score_error + ulps(n_rows + 8);
          for (size_t i = 0; i < head_dim; ++i) {
            double abs_sum = 0.0;
            for (size_t r = 0; r < n_rows; ++r) {
              float v;
              quant::dequantize_row_ref(type, kv.value(r) + i * (type == TensorType::kF32 ? 4 : 2),
                                        &v, 1);
              abs_sum += weights[h * n_rows + r] * std::fabs(v);
            }
            ASSERT_NEAR(got[h * head_dim + i], expected[h * head_dim + i],
                        (weight_rel + ulps(n_rows + 4)) * abs_sum + 1e-30)
                << tensor_type_traits(static_cast<uint32_t>(type))->name << " head_dim=" << head_dim
                << " rows=" << n_rows << " head=" << h << " i=" << i;
          }
        }
      }
    }
  }
}

// A query head gives the same bits alone as in a group that shares its KV head.
TEST_P(Kernels, AttentionOfAHeadDoesNotDependOnItsGroup) {
  std::mt19937 rng(20);
  for (TensorType type : {TensorType::kF32, TensorType::kF16}) {
    for (size_t head_dim : {3, 8, 16, 64}) {
      const size_t n_rows = 45;
      const size_t n_heads = 5;  // two pairs and one alone
      TestKv kv(rng, type, head_dim, n_rows, 2.0f);
      const std::vector<float> q = random_floats(rng, n_heads * head_dim, -1.0f, 1.0f);
      std::vector<float> scores(n_heads * n_rows), group(n_heads * head_dim);
      ops::attention(kv.layout, split_runs(kv, n_rows, {6}, q.data(), q.data()), n_heads, 0.5f,
                     scores.data(), group.data());
      for (size_t h = 0; h < n_heads; ++h) {
        const float* qh = q.data() + h * head_dim;
        std::vector<float> alone(head_dim);
        ops::attention(kv.layout, split_runs(kv, n_rows, {6}, qh, qh), 1, 0.5f, scores.data(),
                       alone.data());
        const std::vector<float> in_group(
            group.begin() + static_cast<ptrdiff_t>(h * head_dim),
            group.begin() + static_cast<ptrdiff_t>((h + 1) * head_dim));
        ASSERT_EQ(bit_patterns(alone), bit_patterns(in_group)) << "head " << h;
      }
    }
  }
}

// The property the cache's bit-identity (dense vs streaming) rests on: the same rows give the same
// bits however they are split into runs, and wherever the runs lie in memory.
TEST_P(Kernels, AttentionDoesNotDependOnHowRowsAreSplit) {
  std::mt19937 rng(18);
  for (TensorType type : {TensorType::kF32, TensorType::kF16}) {
    for (size_t head_dim : {3, 8, 16, 64}) {
      const size_t n_rows = 37;
      TestKv kv(rng, type, head_dim, n_rows, 2.0f);
      const std::vector<float> q = random_floats(rng, head_dim, -1.0f, 1.0f);
      const float scale = 0.5f;
      std::vector<float> scores(n_rows);
      std::vector<float> whole(head_dim);
      const auto one_run = split_runs(kv, n_rows, {}, q.data(), q.data());
      ops::attention(kv.layout, one_run, 1, scale, scores.data(), whole.data());

      // Every single cut, then random cuts into 2..4 runs (some of them empty).
      std::vector<std::vector<size_t>> splits;
      for (size_t cut = 0; cut <= n_rows; ++cut) splits.push_back({cut});
      std::uniform_int_distribution<size_t> row(0, n_rows);
      for (int i = 0; i < 50; ++i) {
        std::vector<size_t> cuts(1 + i % 3);
        for (auto& c : cuts) c = row(rng);
        std::sort(cuts.begin(), cuts.end());
        splits.push_back(cuts);
      }
      for (const auto& cuts : splits) {
        std::vector<float> got(head_dim, -1.0f);
        ops::attention(kv.layout, split_runs(kv, n_rows, cuts, q.data(), q.data()), 1, scale,
                       scores.data(), got.data());
        ASSERT_EQ(bit_patterns(got), bit_patterns(whole))
            << tensor_type_traits(static_cast<uint32_t>(type))->name << " head_dim=" << head_dim
            << " first cut=" << cuts[0] << " of " << cuts.size();
      }

      // The same rows copied one element further into memory (other alignment), two runs.
      TestKv moved = kv;
      const size_t elem_bytes = type == TensorType::kF32 ? 4 : 2;
      moved.keys.insert(moved.keys.begin(), elem_bytes, 0);
      moved.values.insert(moved.values.begin(), elem_bytes, 0);
      std::vector<float> got(head_dim);
      const auto runs = split_runs(kv, n_rows, {13}, q.data(), q.data());
      std::vector<ops::KvRun> moved_runs = runs;
      for (auto& run : moved_runs) {
        run.keys =
            static_cast<const uint8_t*>(run.keys) - kv.keys.data() + moved.keys.data() + elem_bytes;
        run.values = static_cast<const uint8_t*>(run.values) - kv.values.data() +
                     moved.values.data() + elem_bytes;
      }
      ops::attention(kv.layout, moved_runs, 1, scale, scores.data(), got.data());
      ASSERT_EQ(bit_patterns(got), bit_patterns(whole)) << "moved, head_dim=" << head_dim;
    }
  }
}

// Caches of thousands of rows go through the values in blocks of rows (every head and column
// of a block before the next): cuts inside and across blocks, and heads alone or in a group of 8
// (TinyLlama's 32 heads over 4 KV heads), still give the same bits.
TEST_P(Kernels, AttentionOverManyRowBlocksKeepsItsBits) {
  std::mt19937 rng(21);
  for (TensorType type : {TensorType::kF32, TensorType::kF16}) {
    for (size_t head_dim : {8, 20, 64}) {
      const size_t n_rows = 333, n_heads = 8;
      TestKv kv(rng, type, head_dim, n_rows, 2.0f);
      const std::vector<float> q = random_floats(rng, n_heads * head_dim, -1.0f, 1.0f);
      std::vector<float> scores(n_heads * n_rows), whole(n_heads * head_dim);
      ops::attention(kv.layout, split_runs(kv, n_rows, {}, q.data(), q.data()), n_heads, 0.5f,
                     scores.data(), whole.data());
      for (const std::vector<size_t>& cuts : std::vector<std::vector<size_t>>{
               {63}, {64}, {65}, {1, 128}, {100, 101, 300}, {4, 333}}) {
        std::vector<float> got(n_heads * head_dim, -1.0f);
        ops::attention(kv.layout, split_runs(kv, n_rows, cuts, q.data(), q.data()), n_heads, 0.5f,
                       scores.data(), got.data());
        ASSERT_EQ(bit_patterns(got), bit_patterns(whole))
            << "head_dim=" << head_dim << " first cut=" << cuts[0];
      }
      for (size_t h = 0; h < n_heads; ++h) {
        const float* qh = q.data() + h * head_dim;
        std::vector<float> alone(head_dim);
        ops::attention(kv.layout, split_runs(kv, n_rows, {70}, qh, qh), 1, 0.5f, scores.data(),
                       alone.data());
        ASSERT_EQ(bit_patterns(alone),
                  bit_patterns(std::vector<float>(
                      whole.begin() + static_cast<ptrdiff_t>(h * head_dim),
                      whole.begin() + static_cast<ptrdiff_t>((h + 1) * head_dim))))
            << "head_dim=" << head_dim << " head " << h;
      }
    }
  }
}

// Huge scores (no overflow: the max is subtracted) and a single row (weight exactly 1).
TEST_P(Kernels, AttentionEdgeCases) {
  std::mt19937 rng(19);
  const size_t head_dim = 8;
  TestKv kv(rng, TensorType::kF32, head_dim, 5, 1000.0f);
  const std::vector<float> q = random_floats(rng, head_dim, 1.0f, 2.0f);
  std::vector<float> scores(5), out(head_dim), expected(head_dim), weights(5);
  const auto runs = split_runs(kv, 5, {2}, q.data(), q.data());
  ops::attention(kv.layout, runs, 1, 1.0f, scores.data(), out.data());
  ops::ref::attention(kv.layout, runs, 1, 1.0f, weights.data(), expected.data());
  for (size_t i = 0; i < head_dim; ++i) {
    ASSERT_TRUE(std::isfinite(out[i]));
    ASSERT_NEAR(out[i], expected[i], 1e-5f);
  }
  const auto one_row = split_runs(kv, 1, {}, q.data(), q.data());
  ops::attention(kv.layout, one_row, 1, 1.0f, scores.data(), out.data());
  std::vector<float> v(head_dim);
  quant::dequantize_row_ref(TensorType::kF32, kv.value(0), v.data(), head_dim);
  EXPECT_EQ(out, v);
}

TEST_P(Kernels, StoreKvF16MatchesScalarOnAllKindsOfValues) {
  // Random bit patterns (NaN, inf, overflow, subnormal, zero), then exact midpoints between two
  // f16 values, where only round-half-to-even decides: random ones, and every subnormal one.
  std::mt19937 rng(16);
  std::uniform_int_distribution<uint32_t> bits;
  std::vector<float> src;
  for (int i = 0; i < 4099; ++i) {
    uint32_t b = bits(rng);
    if (b & 1) b = (b & 0x807FFFFFu) | ((96u + (b >> 23) % 48u) << 23);  // near the f16 range
    src.push_back(std::bit_cast<float>(b));
  }
  for (int i = 0; i < 4096; ++i) {
    const auto h = static_cast<uint16_t>(0x0400 + bits(rng) % (0x7BFF - 0x0400));     // normal
    const uint32_t f_bits = std::bit_cast<uint32_t>(quant::f16_to_f32(h)) | 0x1000u;  // + half ulp
    src.push_back(std::bit_cast<float>(f_bits ^ (i % 2 ? 0x80000000u : 0u)));
  }
  for (int k = 0; k < 1024; ++k) src.push_back(std::ldexp(static_cast<float>(k) + 0.5f, -24));
  std::vector<uint16_t> got(src.size());
  ops::store_kv(src.data(), got.data(), TensorType::kF16, src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    ASSERT_EQ(got[i], quant::f32_to_f16(src[i])) << std::hex << std::bit_cast<uint32_t>(src[i]);
  }
}

// ------------------------------------------------------------------------------------------------
// matmul

// A weight matrix of `type` with rows `row_bytes` apart, starting `byte_offset` into its buffer.
struct TestMatrix {
  std::vector<uint8_t> storage;
  ops::MatView view;
};

TestMatrix make_matrix(TensorType type, size_t n_rows, size_t n_cols, size_t row_padding,
                       size_t byte_offset, const std::vector<uint8_t>& rows_bytes) {
  const auto traits = *tensor_type_traits(static_cast<uint32_t>(type));
  const size_t packed = n_cols / traits.block_elems * traits.block_bytes;
  TestMatrix m;
  m.storage.resize(byte_offset + n_rows * (packed + row_padding));
  for (size_t r = 0; r < n_rows; ++r) {
    std::copy_n(
        rows_bytes.begin() + static_cast<ptrdiff_t>(r * packed), packed,
        m.storage.begin() + static_cast<ptrdiff_t>(byte_offset + r * (packed + row_padding)));
  }
  m.view = {type, m.storage.data() + byte_offset, n_rows, n_cols, packed + row_padding};
  return m;
}

// Small integers: products and sums stay integers below 2^24, exact in f32 in any order, so the
// SIMD result must equal the reference exactly.
std::vector<uint8_t> integer_weights(std::mt19937& rng, TensorType type, size_t n) {
  std::uniform_int_distribution<int> value(-8, 7);
  if (is_block(type)) {
    std::vector<uint8_t> bytes = random_block_bytes(rng, type, n);
    const size_t block_bytes = type == TensorType::kQ8_0 ? 34 : 18;
    for (size_t b = 0; b < n / 32; ++b) {
      const uint16_t d = 0x3C00;  // 1.0: codes (q8) or nibbles - 8 (q4) are the values
      std::memcpy(&bytes[b * block_bytes], &d, 2);
      if (type == TensorType::kQ8_0) {
        for (size_t j = 0; j < 32; ++j)
          bytes[b * block_bytes + 2 + j] = static_cast<uint8_t>(value(rng));
      }
    }
    return bytes;
  }
  std::vector<float> values(n);
  for (auto& v : values) v = static_cast<float>(value(rng));
  return encode(type, values);
}

std::vector<float> integer_floats(std::mt19937& rng, size_t n) {
  std::uniform_int_distribution<int> value(-8, 8);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(value(rng));
  return v;
}

TEST_P(Kernels, MatmulExactOnIntegers) {
  std::mt19937 rng(20);
  ThreadPool pool(2);
  for (TensorType type : kAllTypes) {
    const auto traits = *tensor_type_traits(static_cast<uint32_t>(type));
    const std::vector<size_t> col_counts =
        is_block(type) ? std::vector<size_t>{0, 32, 64, 96, 160} : test_counts();
    for (size_t n_cols : col_counts) {
      if (n_cols > 2048) continue;
      for (size_t n_rows : {1, 3, 33}) {
        const size_t n_batch = 1 + (n_cols + n_rows) % 5;
        const size_t elem_offset = is_block(type) ? 1 : traits.block_bytes;
        TestMatrix m = make_matrix(type, n_rows, n_cols, n_rows % 2 ? 8 : 0, elem_offset,
                                   integer_weights(rng, type, n_rows * n_cols));
        const std::vector<float> x = integer_floats(rng, n_batch * n_cols);
        std::vector<float> expected(n_batch * n_rows);
        ops::ref::matmul(m.view, x.data(), n_batch, expected.data());
        Shifted<float> xs(x, 1);
        Shifted<float> y(std::vector<float>(n_batch * n_rows, -1.0f), 1);
        ops::matmul(m.view, xs.data(), n_batch, y.data(), pool);
        ASSERT_EQ(y.values(), expected)
            << traits.name << " rows=" << n_rows << " cols=" << n_cols << " batch=" << n_batch;
      }
    }
  }
}

// Real-valued data at the real shapes: within n eps of sum |w x| (the bound of any summation
// order), so a missing or doubled term is caught.
TEST_P(Kernels, MatmulMatchesReferenceAtRealShapes) {
  std::mt19937 rng(21);
  ThreadPool pool(3);
  struct Shape {
    size_t n_rows, n_cols;
  };
  // stories260K: wq [64, 64], w1 [172, 64], w2 [64, 172], output [512, 64];
  // TinyLlama: a slice of wq [., 2048] and of w2 [., 5632].
  const Shape shapes[] = {{64, 64}, {172, 64}, {64, 172}, {512, 64}, {9, 2048}, {5, 5632}};
  for (TensorType type : kAllTypes) {
    for (const Shape& s : shapes) {
      if (s.n_cols % 32 != 0 && is_block(type)) continue;  // ggml cannot store those either
      const size_t n_batch = 3;
      const std::vector<float> w_values = random_floats(rng, s.n_rows * s.n_cols, -1.0f, 1.0f);
      TestMatrix m = make_matrix(type, s.n_rows, s.n_cols, 0, 0, encode(type, w_values));
      const std::vector<float> x = random_floats(rng, n_batch * s.n_cols, -1.0f, 1.0f);
      std::vector<float> expected(n_batch * s.n_rows);
      ops::ref::matmul(m.view, x.data(), n_batch, expected.data());
      std::vector<float> y(n_batch * s.n_rows);
      ops::matmul(m.view, x.data(), n_batch, y.data(), pool);
      std::vector<float> w_row(s.n_cols);
      for (size_t r = 0; r < s.n_rows; ++r) {
        ops::ref::dequantize_row(type,
                                 static_cast<const uint8_t*>(m.view.data) + r * m.view.row_bytes,
                                 w_row.data(), s.n_cols);
        for (size_t b = 0; b < n_batch; ++b) {
          double abs_sum = 0.0;
          for (size_t c = 0; c < s.n_cols; ++c)
            abs_sum += std::fabs(double{w_row[c]} * x[b * s.n_cols + c]);
          ASSERT_NEAR(y[b * s.n_rows + r], expected[b * s.n_rows + r], ulps(s.n_cols + 4) * abs_sum)
              << tensor_type_traits(static_cast<uint32_t>(type))->name << " " << s.n_rows << "x"
              << s.n_cols << " r=" << r << " b=" << b;
        }
      }
    }
  }
}

// The result of each (batch row, weight row) does not depend on the batch size or thread count.
TEST_P(Kernels, MatmulIndependentOfThreadsAndBatch) {
  std::mt19937 rng(22);
  ThreadPool pools[] = {ThreadPool(1), ThreadPool(2), ThreadPool(3)};
  const size_t n_rows = 67;   // several chunks of rows, not a multiple of any chunk size
  const size_t n_cols = 512;  // large enough for the pool to split even one batch row
  for (TensorType type : kAllTypes) {
    const std::vector<float> w_values = random_floats(rng, n_rows * n_cols, -1.0f, 1.0f);
    TestMatrix m = make_matrix(type, n_rows, n_cols, 0, 0, encode(type, w_values));
    const std::vector<float> x = random_floats(rng, 5 * n_cols, -1.0f, 1.0f);
    // One batch row at a time, one thread: the baseline.
    std::vector<float> single(5 * n_rows);
    for (size_t b = 0; b < 5; ++b) {
      ops::matmul(m.view, x.data() + b * n_cols, 1, single.data() + b * n_rows, pools[0]);
    }
    for (size_t n_batch = 1; n_batch <= 5; ++n_batch) {
      for (ThreadPool& pool : pools) {
        std::vector<float> y(n_batch * n_rows);
        ops::matmul(m.view, x.data(), n_batch, y.data(), pool);
        ASSERT_TRUE(std::equal(y.begin(), y.end(), single.begin()))
            << tensor_type_traits(static_cast<uint32_t>(type))->name << " batch=" << n_batch
            << " threads=" << pool.n_threads();
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------
// ThreadPool (the matmul tests above depend on it)

// Every task runs exactly once per run(), whether the workers are spinning (back-to-back jobs) or
// asleep (a pause longer than their spin), and tiny jobs are not worth waking them for.
TEST(ThreadPool, RunsEveryTaskOnceAcrossSpinAndSleep) {
  for (size_t n_threads : {1, 2, 3}) {
    ThreadPool pool(n_threads);
    EXPECT_EQ(pool.n_threads(), n_threads);
    EXPECT_FALSE(pool.worth_parallel(100));
    EXPECT_EQ(pool.worth_parallel(size_t{1} << 20), n_threads > 1);
    for (int job = 0; job < 200; ++job) {
      const size_t n_tasks = static_cast<size_t>(job % 7);
      std::vector<std::atomic<int>> runs(n_tasks);
      pool.run(n_tasks, [&](size_t task) { runs[task].fetch_add(1); });
      for (size_t t = 0; t < n_tasks; ++t) ASSERT_EQ(runs[t].load(), 1) << "job " << job;
      if (job % 50 == 49) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

}  // namespace
}  // namespace sllm
