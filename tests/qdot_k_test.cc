// The integer matmul of the K-quants q4_K / q5_K / q6_K (kernels/qdot_k.h): every dispatch target
// the machine has (AVX3_DL's VNNI included) equals the scalar reference bit for bit; the
// activation quantization is llama.cpp's quantize_row_q8_K_ref; the reference's integer lanes
// decode the blocks as quant::dequantize_row_ref does; and the result stays within the activation
// quantization's error of the f32 product.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

// As the kernel files are compiled (src/kernels/CMakeLists.txt), so that HWY_TARGETS lists the
// targets qdot_k.cc has.
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif
#include "hwy/highway.h"
#include "kernels/ops.h"
#include "kernels/qdot.h"
#include "kernels/qdot_k.h"
#include "kernels/quant.h"
#include "test_util.h"
#include "util/thread_pool.h"

namespace sllm {
namespace {

constexpr TensorType kTypes[] = {TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K};
constexpr size_t kSb = 256;

size_t sb_bytes(TensorType type) {
  switch (type) {
    case TensorType::kQ4_K:
      return 144;
    case TensorType::kQ5_K:
      return 176;
    default:
      return 210;
  }
}

const char* name(TensorType type) {
  return type == TensorType::kQ4_K ? "q4_K" : type == TensorType::kQ5_K ? "q5_K" : "q6_K";
}

std::vector<int64_t> machine_targets() {
  std::vector<int64_t> out;
  for (int64_t t : {HWY_AVX3_DL, HWY_AVX3, HWY_AVX2, HWY_SSE4, HWY_SSSE3, HWY_EMU128, HWY_SCALAR}) {
    if ((hwy::SupportedTargets() & t) && (t & HWY_TARGETS)) out.push_back(t);
  }
  return out;
}

struct TargetScope {
  explicit TargetScope(int64_t target) { hwy::SetSupportedTargetsForTest(target); }
  ~TargetScope() { hwy::SetSupportedTargetsForTest(0); }
};

// Offsets of the f16 scales d (and dmin) in a super-block.
std::vector<size_t> scale_offsets(TensorType type) {
  if (type == TensorType::kQ6_K) return {208};
  return {0, 2};
}

// Rows of random super-blocks: every byte pattern is a valid code, scale or min; the f16 scales
// are any bits when `any_scale` (inf and NaN included), else finite values in [-2, 2].
std::vector<uint8_t> random_rows(std::mt19937& rng, TensorType type, size_t n_sbs, bool any_scale) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(-2.0f, 2.0f);
  std::vector<uint8_t> bytes(n_sbs * sb_bytes(type));
  for (auto& b : bytes) b = static_cast<uint8_t>(byte(rng));
  for (size_t b = 0; b < n_sbs; ++b) {
    for (size_t off : scale_offsets(type)) {
      const uint16_t d = any_scale ? static_cast<uint16_t>(byte(rng) | byte(rng) << 8)
                                   : quant::f32_to_f16(scale(rng));
      std::memcpy(bytes.data() + b * sb_bytes(type) + off, &d, 2);
    }
  }
  return bytes;
}

// Super-blocks of different magnitudes, some all zero, some of integers (ties after scaling) and
// some with the largest magnitude twice with both signs (the first one sets the sign).
std::vector<float> random_activations(std::mt19937& rng, size_t n, bool non_finite) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-20, 20);
  std::uniform_int_distribution<int> kind(0, 7);
  std::uniform_int_distribution<int> code(-254, 254);
  std::vector<float> x(n);
  for (size_t b = 0; b < n / kSb; ++b) {
    float* xb = x.data() + b * kSb;
    const int k = kind(rng);
    const float magnitude = std::ldexp(1.0f, exponent(rng));
    for (size_t j = 0; j < kSb; ++j) xb[j] = normal(rng) * magnitude;
    if (k == 0) {
      for (size_t j = 0; j < kSb; ++j) xb[j] = 0.0f;
    } else if (k == 1) {
      for (size_t j = 0; j < kSb; ++j) xb[j] = static_cast<float>(code(rng)) / 2.0f;
      xb[9] = -127.0f;
    } else if (k == 2) {
      xb[4] = 1e3f * magnitude;
      xb[200] = -1e3f * magnitude;
    } else if (k == 3 && non_finite) {
      xb[17] = std::numeric_limits<float>::quiet_NaN();
      xb[18] = std::numeric_limits<float>::infinity();
    }
  }
  return x;
}

bool same(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) ||
         std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
}

TEST(QuantizeQ8K, IsLlamaCppsReference) {
  std::vector<float> x(kSb, 0.0f);
  int8_t codes[kSb];
  float scale;
  int16_t bsums[16];
  // All zero: scale 0, codes 0, sums 0.
  ops::ref::quantize_q8_K(x.data(), kSb, codes, &scale, bsums);
  EXPECT_EQ(scale, 0.0f);
  for (int8_t c : codes) EXPECT_EQ(c, 0);
  for (int16_t s : bsums) EXPECT_EQ(s, 0);
  // max = -127: iscale = 1, halves round to even; d = 1 / iscale.
  const float values[] = {2.5f, -2.5f, 3.5f, 0.5f, -127.0f, 127.0f, 126.5f, -0.49f};
  std::copy(std::begin(values), std::end(values), x.begin());
  ops::ref::quantize_q8_K(x.data(), kSb, codes, &scale, bsums);
  EXPECT_EQ(scale, 1.0f);
  const int expected[] = {2, -2, 4, 0, -127, 127, 126, 0};
  for (size_t j = 0; j < std::size(expected); ++j) EXPECT_EQ(codes[j], expected[j]) << j;
  EXPECT_EQ(bsums[0], 2 - 2 + 4 - 127 + 127 + 126);
  // The first value of largest magnitude sets the sign: max = +2 here, so iscale = -63.5 and the
  // scale is negative; -2 then maps to 127 (min(127, ...)).
  x.assign(kSb, 0.0f);
  x[3] = 2.0f;
  x[70] = -2.0f;
  x[71] = 1.0f;
  ops::ref::quantize_q8_K(x.data(), kSb, codes, &scale, bsums);
  EXPECT_EQ(scale, 1.0f / (-127.0f / 2.0f));
  EXPECT_EQ(codes[3], -127);
  EXPECT_EQ(codes[70], 127);
  EXPECT_EQ(codes[71], static_cast<int8_t>(std::nearbyint(-127.0f / 2.0f)));  // -64, to even
  EXPECT_EQ(bsums[0], -127);
  EXPECT_EQ(bsums[4], 127 - 64);
}

// The reference's integer lanes use the blocks' codes, scales and mins as the dequantizer does:
// with finite scales, the dot equals the f64 product of the decoded weights and the decoded
// activation codes up to f32 rounding.
TEST(KQuantMatmul, ReferenceDecodesAsTheDequantizer) {
  std::mt19937 rng(122);
  for (TensorType type : kTypes) {
    const size_t n_sb = 3;
    const std::vector<uint8_t> w = random_rows(rng, type, n_sb, false);
    const std::vector<float> x = random_activations(rng, n_sb * kSb, false);
    std::vector<int8_t> codes(n_sb * kSb);
    std::vector<float> scales(n_sb);
    std::vector<int16_t> bsums(n_sb * 16);
    ops::ref::quantize_q8_K(x.data(), x.size(), codes.data(), scales.data(), bsums.data());
    std::vector<float> w_dec(n_sb * kSb);
    quant::dequantize_row_ref(type, w.data(), w_dec.data(), w_dec.size());
    double exact = 0.0;
    double abs_sum = 0.0;
    for (size_t e = 0; e < w_dec.size(); ++e) {
      const double xe = double{scales[e / kSb]} * codes[e];
      exact += double{w_dec[e]} * xe;
      abs_sum += std::fabs(double{w_dec[e]} * xe);
    }
    const float got =
        ops::ref::dot_kquant(type, w.data(), codes.data(), scales.data(), bsums.data(), n_sb);
    EXPECT_NEAR(got, exact, abs_sum * 1e-5) << name(type);
    EXPECT_GT(abs_sum, 0.0) << name(type);
  }
}

void expect_equal_to_reference(TensorType type, size_t n_rows, size_t n_cols, size_t n_batch,
                               bool any_scale, std::mt19937& rng) {
  const size_t packed_row = n_cols / kSb * sb_bytes(type);
  const size_t row_bytes = packed_row + (n_rows % 2 ? 3 : 0);
  std::vector<uint8_t> storage(1 + n_rows * row_bytes);  // one byte of offset: no alignment
  const std::vector<uint8_t> packed = random_rows(rng, type, n_rows * n_cols / kSb, any_scale);
  for (size_t r = 0; r < n_rows && packed_row > 0; ++r) {
    std::memcpy(storage.data() + 1 + r * row_bytes, packed.data() + r * packed_row, packed_row);
  }
  const ops::MatView w{type, storage.data() + 1, n_rows, n_cols, row_bytes};
  const std::vector<float> x = random_activations(rng, n_batch * n_cols, any_scale);
  std::vector<float> expected(n_batch * n_rows);
  ops::ref::matmul_kquant(w, x.data(), n_batch, expected.data());
  for (int64_t target : machine_targets()) {
    TargetScope scope(target);
    ASSERT_STREQ(ops::kquant_target_name(), hwy::TargetName(target));
    for (size_t n_threads : {1, 2, 3}) {
      ThreadPool pool(n_threads);
      std::vector<float> y(n_batch * n_rows, -7.0f);
      ops::matmul(w, x.data(), n_batch, y.data(), pool);
      for (size_t i = 0; i < y.size(); ++i) {
        ASSERT_TRUE(same(y[i], expected[i]))
            << hwy::TargetName(target) << " " << name(type) << " rows=" << n_rows
            << " cols=" << n_cols << " batch=" << n_batch << " threads=" << n_threads
            << " any_scale=" << any_scale << " token=" << i / n_rows << " row=" << i % n_rows
            << ": " << y[i] << " vs " << expected[i];
      }
    }
  }
}

TEST(KQuantMatmul, EveryTargetEqualsTheReference) {
  std::mt19937 rng(123);
  struct Case {
    size_t n_rows, n_cols, n_batch;
  };
  // Row counts around the tiles and the 16-row chunks, batches of every tile remainder, one to
  // 22 super-blocks; 5632 columns x 50 tokens take several token chunks.
#if defined(SLLM_TEST_ASAN)
  const Case cases[] = {{1, 256, 1},  {3, 512, 2},  {5, 768, 3}, {17, 256, 5},
                        {33, 256, 9}, {67, 512, 1}, {16, 0, 3},  {7, 5632, 50}};
#else
  const Case cases[] = {{1, 256, 1},   {3, 512, 2},  {5, 768, 3},    {17, 256, 5},
                        {33, 256, 9},  {67, 512, 1}, {67, 512, 4},   {40, 2048, 17},
                        {7, 5632, 50}, {16, 0, 3},   {130, 2048, 1}, {18, 1024, 33}};
#endif
  for (TensorType type : kTypes) {
    for (const Case& c : cases) {
      for (bool any_scale : {false, true}) {
        expect_equal_to_reference(type, c.n_rows, c.n_cols, c.n_batch, any_scale, rng);
        if (HasFatalFailure()) return;
      }
    }
  }
}

// With weights quantized from floats, the integer result is the f32 product up to the q8_K
// rounding of the activations: half a step of amax / 127 per element, plus f32 sums.
TEST(KQuantMatmul, WithinTheActivationQuantizationOfTheF32Product) {
  std::mt19937 rng(124);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  ThreadPool pool(2);
  for (TensorType type : kTypes) {
    const size_t n_rows = 24;
    const size_t n_cols = 1024;
    const size_t n_batch = 3;
    std::vector<float> w_values(n_rows * n_cols);
    for (auto& v : w_values) v = uniform(rng);
    const size_t row_bytes = n_cols / kSb * sb_bytes(type);
    std::vector<uint8_t> bytes(n_rows * row_bytes);
    quant::quantize_row(type, w_values.data(), bytes.data(), w_values.size());
    const ops::MatView w{type, bytes.data(), n_rows, n_cols, row_bytes};
    std::vector<float> x(n_batch * n_cols);
    for (auto& v : x) v = uniform(rng);
    std::vector<float> y(n_batch * n_rows);
    ops::matmul(w, x.data(), n_batch, y.data(), pool);
    std::vector<float> w_row(n_cols);
    for (size_t r = 0; r < n_rows; ++r) {
      quant::dequantize_row_ref(type, bytes.data() + r * row_bytes, w_row.data(), n_cols);
      for (size_t b = 0; b < n_batch; ++b) {
        const float* xb = x.data() + b * n_cols;
        double exact = 0.0;
        double bound = 0.0;
        for (size_t k = 0; k < n_cols / kSb; ++k) {
          double amax = 0.0;
          double abs_w = 0.0;
          for (size_t j = 0; j < kSb; ++j) {
            exact += double{w_row[kSb * k + j]} * xb[kSb * k + j];
            amax = std::max(amax, std::fabs(double{xb[kSb * k + j]}));
            abs_w += std::fabs(double{w_row[kSb * k + j]});
          }
          bound += abs_w * amax * (0.5 / 127.0 + 1e-5);
        }
        EXPECT_NEAR(y[b * n_rows + r], exact, bound) << name(type) << " " << r << " " << b;
        EXPECT_GT(bound, 1e-3);
      }
    }
  }
}

}  // namespace
}  // namespace sllm
