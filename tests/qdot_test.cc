// The integer matmul of q8_0 / q4_0 weights (kernels/qdot.h): every dispatch target the machine
// has (AVX3_DL's VNNI included, which the other kernel files do not compile) equals the scalar
// reference bit for bit; the activation quantization is llama.cpp's; and the result stays within
// the activation quantization's error of the f32 product.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

// As the kernel files are compiled (src/kernels/CMakeLists.txt): HWY_TARGETS here then lists the
// targets qdot.cc has. This file does not dispatch, so it need not agree with them otherwise.
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif
#include "hwy/highway.h"
#include "kernels/ops.h"
#include "kernels/ops_ref.h"
#include "kernels/qdot.h"
#include "kernels/quant.h"
#include "util/thread_pool.h"

namespace sllm {
namespace {

constexpr TensorType kTypes[] = {TensorType::kQ8_0, TensorType::kQ4_0};

size_t block_bytes(TensorType type) { return type == TensorType::kQ8_0 ? 34 : 18; }

// Every target the CPU has among those qdot.cc is compiled for.
std::vector<int64_t> machine_targets() {
  std::vector<int64_t> out;
  for (int64_t t : {HWY_AVX3_DL, HWY_AVX3, HWY_AVX2, HWY_SSE4, HWY_SSSE3, HWY_EMU128, HWY_SCALAR}) {
    if ((hwy::SupportedTargets() & t) && (t & HWY_TARGETS)) out.push_back(t);
  }
  return out;
}

// Restores the real dispatch when a test ends, passing or not.
struct TargetScope {
  explicit TargetScope(int64_t target) { hwy::SetSupportedTargetsForTest(target); }
  ~TargetScope() { hwy::SetSupportedTargetsForTest(0); }
};

// Rows of random blocks: any code bytes; scales any f16 bits when `any_scale` (inf and NaN
// included), else finite values in [-2, 2].
std::vector<uint8_t> random_rows(std::mt19937& rng, TensorType type, size_t n_rows, size_t n_cols,
                                 bool any_scale) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(-2.0f, 2.0f);
  const size_t n_blocks = n_rows * n_cols / 32;
  std::vector<uint8_t> bytes(n_blocks * block_bytes(type));
  for (size_t b = 0; b < n_blocks; ++b) {
    uint8_t* block = bytes.data() + b * block_bytes(type);
    const uint16_t d = any_scale ? static_cast<uint16_t>(byte(rng) | byte(rng) << 8)
                                 : quant::f32_to_f16(scale(rng));
    std::memcpy(block, &d, 2);
    for (size_t j = 2; j < block_bytes(type); ++j) block[j] = static_cast<uint8_t>(byte(rng));
  }
  return bytes;
}

// Activations with blocks of different magnitudes, and some blocks of special values: all zero,
// exact halves after scaling (ties), and non-finite values.
std::vector<float> random_activations(std::mt19937& rng, size_t n) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-20, 20);
  std::uniform_int_distribution<int> kind(0, 15);
  std::uniform_int_distribution<int> code(-254, 254);
  std::vector<float> x(n);
  for (size_t b = 0; b < n / 32; ++b) {
    float* xb = x.data() + b * 32;
    const int k = kind(rng);
    const float magnitude = std::ldexp(1.0f, exponent(rng));
    for (size_t j = 0; j < 32; ++j) xb[j] = normal(rng) * magnitude;
    if (k == 0) {
      for (size_t j = 0; j < 32; ++j) xb[j] = 0.0f;
    } else if (k == 1) {
      // amax 127: the codes are x rounded half to even, and the halves are ties.
      for (size_t j = 0; j < 32; ++j) xb[j] = static_cast<float>(code(rng)) / 2.0f;
      xb[0] = 127.0f;
    } else if (k == 2) {
      xb[3] = std::numeric_limits<float>::quiet_NaN();
      xb[7] = -std::numeric_limits<float>::infinity();
    } else if (k == 3) {
      xb[5] = std::numeric_limits<float>::quiet_NaN();
    }
  }
  return x;
}

// Bitwise equality, except that any NaN equals any NaN (payloads may differ between targets).
bool same(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) ||
         std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
}

TEST(QuantizeActivations, IsLlamaCppsX86RoundingAndScale) {
  // amax 127: id = 1, the scale is 1 and halves round to even.
  std::vector<float> x(32, 0.0f);
  const float values[] = {127.0f, 2.5f, -2.5f, 3.5f, 0.5f, -0.5f, 1.5f, 126.5f, -127.0f, 0.49f};
  std::copy(std::begin(values), std::end(values), x.begin());
  int8_t codes[32];
  float scale;
  ops::ref::quantize_activations(x.data(), 32, codes, &scale);
  EXPECT_EQ(scale, 1.0f);
  const int expected[] = {127, 2, -2, 4, 0, 0, 2, 126, -127, 0};
  for (size_t j = 0; j < std::size(expected); ++j) EXPECT_EQ(codes[j], expected[j]) << j;
  // The scale is amax / 127 rounded to f16; the codes use the exact 127 / amax.
  for (size_t j = 0; j < 32; ++j) x[j] = 0.1f * static_cast<float>(j) - 1.55f;
  ops::ref::quantize_activations(x.data(), 32, codes, &scale);
  EXPECT_EQ(scale, quant::f16_to_f32(quant::f32_to_f16(1.55f / 127.0f)));
  for (size_t j = 0; j < 32; ++j) {
    EXPECT_EQ(codes[j], static_cast<int8_t>(std::nearbyint(x[j] * (127.0f / 1.55f)))) << j;
  }
  // All zero, and non-finite values: NaN counts as 0; an infinite amax gives scale inf, codes 0.
  x.assign(32, 0.0f);
  ops::ref::quantize_activations(x.data(), 32, codes, &scale);
  EXPECT_EQ(scale, 0.0f);
  for (int8_t c : codes) EXPECT_EQ(c, 0);
  x[1] = std::numeric_limits<float>::quiet_NaN();
  x[2] = 2.0f;
  ops::ref::quantize_activations(x.data(), 32, codes, &scale);
  EXPECT_EQ(codes[1], 0);
  EXPECT_EQ(codes[2], 127);
  x[3] = std::numeric_limits<float>::infinity();
  ops::ref::quantize_activations(x.data(), 32, codes, &scale);
  EXPECT_TRUE(std::isinf(scale));
  for (int8_t c : codes) EXPECT_EQ(c, 0);
}

// One case of the equality test: every target and thread count against the reference.
void expect_equal_to_reference(TensorType type, size_t n_rows, size_t n_cols, size_t n_batch,
                               bool any_scale, std::mt19937& rng) {
  const size_t row_bytes = n_cols / 32 * block_bytes(type) + (n_rows % 2 ? 5 : 0);
  // One byte of offset: the mapping gives no alignment either.
  std::vector<uint8_t> storage(1 + n_rows * row_bytes);
  const std::vector<uint8_t> packed = random_rows(rng, type, n_rows, n_cols, any_scale);
  const size_t packed_row = n_cols / 32 * block_bytes(type);
  for (size_t r = 0; r < n_rows && packed_row > 0; ++r) {
    std::memcpy(storage.data() + 1 + r * row_bytes, packed.data() + r * packed_row, packed_row);
  }
  const ops::MatView w{type, storage.data() + 1, n_rows, n_cols, row_bytes};
  const std::vector<float> x = random_activations(rng, n_batch * n_cols);
  std::vector<float> expected(n_batch * n_rows);
  ops::ref::matmul_quantized(w, x.data(), n_batch, expected.data());
  for (int64_t target : machine_targets()) {
    TargetScope scope(target);
    ASSERT_STREQ(ops::quantized_target_name(), hwy::TargetName(target));
    for (size_t n_threads : {1, 2, 3}) {
      ThreadPool pool(n_threads);
      std::vector<float> y(n_batch * n_rows, -7.0f);
      ops::matmul(w, x.data(), n_batch, y.data(), pool);
      for (size_t i = 0; i < y.size(); ++i) {
        ASSERT_TRUE(same(y[i], expected[i]))
            << hwy::TargetName(target) << " " << (type == TensorType::kQ8_0 ? "q8_0" : "q4_0")
            << " rows=" << n_rows << " cols=" << n_cols << " batch=" << n_batch
            << " threads=" << n_threads << " token=" << i / n_rows << " row=" << i % n_rows << ": "
            << y[i] << " vs " << expected[i];
      }
    }
  }
}

TEST(QuantizedMatmul, EveryTargetEqualsTheReference) {
  std::mt19937 rng(120);
  struct Case {
    size_t n_rows, n_cols, n_batch;
  };
  // Odd and even block counts (a lone last block), row counts around the tiles and the 16-row
  // chunks, batches of every tile remainder; 5632 columns x 50 tokens take two token chunks.
  // Multiples of 8 rows take q4_0's block-sum order (8, 24, 40, 16, 64).
  const Case cases[] = {{1, 32, 1},   {3, 64, 2},   {5, 96, 3},     {17, 160, 5},  {33, 32, 9},
                        {67, 512, 1}, {67, 512, 4}, {40, 2048, 17}, {5, 5632, 50}, {16, 0, 3},
                        {8, 32, 1},   {24, 96, 5},  {64, 5632, 3},  {8, 160, 50}};
  for (TensorType type : kTypes) {
    for (const Case& c : cases) {
      for (bool any_scale : {false, true}) {
        expect_equal_to_reference(type, c.n_rows, c.n_cols, c.n_batch, any_scale, rng);
        if (HasFatalFailure()) return;
      }
    }
  }
}

// The integer result is the f32 product of the decoded weights and the decoded activation codes,
// up to f32 rounding; and that differs from the product with x by at most half a code step
// (plus the f16 rounding of the scale) per element.
TEST(QuantizedMatmul, WithinTheActivationQuantizationOfTheF32Product) {
  std::mt19937 rng(121);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  ThreadPool pool(2);
  for (TensorType type : kTypes) {
    const size_t n_rows = 24;
    const size_t n_cols = 2048;
    const size_t n_batch = 3;
    std::vector<float> w_values(n_rows * n_cols);
    for (auto& v : w_values) v = uniform(rng);
    std::vector<uint8_t> bytes(n_rows * n_cols / 32 * block_bytes(type));
    quant::quantize_row(type, w_values.data(), bytes.data(), w_values.size());
    const ops::MatView w{type, bytes.data(), n_rows, n_cols, n_cols / 32 * block_bytes(type)};
    std::vector<float> x(n_batch * n_cols);
    for (auto& v : x) v = uniform(rng);
    std::vector<float> y(n_batch * n_rows);
    ops::matmul(w, x.data(), n_batch, y.data(), pool);
    std::vector<float> w_row(n_cols);
    for (size_t r = 0; r < n_rows; ++r) {
      quant::dequantize_row_ref(type, bytes.data() + r * w.row_bytes, w_row.data(), n_cols);
      for (size_t b = 0; b < n_batch; ++b) {
        const float* xb = x.data() + b * n_cols;
        double exact = 0.0;
        double bound = 0.0;
        for (size_t k = 0; k < n_cols / 32; ++k) {
          double amax = 0.0;
          double abs_w = 0.0;
          for (size_t j = 0; j < 32; ++j) {
            exact += double{w_row[32 * k + j]} * xb[32 * k + j];
            amax = std::max(amax, std::fabs(double{xb[32 * k + j]}));
            abs_w += std::fabs(double{w_row[32 * k + j]});
          }
          // Half a step of amax / 127, the f16 scale's relative 2^-11 over 127 steps, f32 sums.
          bound += abs_w * amax * (0.5 / 127.0 + 0x1p-11 + 1e-6);
        }
        EXPECT_NEAR(y[b * n_rows + r], exact, bound) << r << " " << b;
        // Not the f32 product: the activations were quantized (a sanity check of the test).
        EXPECT_GT(bound, 1e-3);
      }
    }
  }
}

}  // namespace
}  // namespace sllm
