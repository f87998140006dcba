// The number formats vs values worked out by hand from ggml's reference code: f16 and bf16
// conversions, and the Q8_0 / Q4_0 blocks.
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
#include "kernels/quant.h"
#include "util/thread_pool.h"

namespace sllm {
namespace {

using namespace kernel_test;

// ================================================================================================
// f16 / bf16 conversions

// The nearest f16 to f (ties to the even code), found by searching the ordered codes: independent
// of the bit manipulation in quant.cc. f must be finite and not NaN.
uint16_t nearest_f16(float f) {
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(f));
  if (a >= 65520.0) return sign | 0x7C00;
  // Codes 0..0x7BFF are ordered by value; find the last with value <= a.
  uint16_t lo = 0;
  uint16_t hi = 0x7BFF;
  while (lo < hi) {
    const uint16_t mid = static_cast<uint16_t>((lo + hi + 1) / 2);
    if (quant::f16_to_f32(mid) <= a) {
      lo = mid;
    } else {
      hi = static_cast<uint16_t>(mid - 1);
    }
  }
  const double below = quant::f16_to_f32(lo);
  const double above = lo == 0x7BFF ? 65536.0 : quant::f16_to_f32(static_cast<uint16_t>(lo + 1));
  const double d_below = a - below;
  const double d_above = above - a;
  const bool up = d_above < d_below || (d_above == d_below && (lo & 1));
  return static_cast<uint16_t>(sign | (up ? lo + 1 : lo));
}

TEST(F16, KnownValues) {
  struct Case {
    float f;
    uint16_t h;
  };
  const Case cases[] = {
      {0.0f, 0x0000},
      {-0.0f, 0x8000},
      {1.0f, 0x3C00},
      {-2.0f, 0xC000},
      {65504.0f, 0x7BFF},   // largest finite
      {65519.99f, 0x7BFF},  // just below the midpoint to inf
      {65520.0f, 0x7C00},   // the midpoint rounds to even: inf
      {1e10f, 0x7C00},      //
      {std::numeric_limits<float>::infinity(), 0x7C00},
      {-std::numeric_limits<float>::infinity(), 0xFC00},
      {std::ldexp(1.0f, -14), 0x0400},         // smallest normal
      {std::ldexp(1.0f, -24), 0x0001},         // smallest subnormal
      {std::ldexp(1023.0f, -24), 0x03FF},      // largest subnormal
      {std::ldexp(1.0f, -25), 0x0000},         // half the smallest subnormal: tie to even 0
      {std::ldexp(3.0f, -26), 0x0001},         // 0.75 of the smallest subnormal: rounds up
      {std::ldexp(3.0f, -25), 0x0002},         // 1.5 subnormal steps: tie to even 2
      {std::ldexp(5.0f, -25), 0x0002},         // 2.5 steps: tie to even 2
      {-std::ldexp(1.0f, -30), 0x8000},        // underflow keeps the sign
      {1.0f + std::ldexp(1.0f, -11), 0x3C00},  // tie between 1 and 1 + 2^-10: even (1)
      {1.0f + std::ldexp(3.0f, -11), 0x3C02},  // tie between 0x3C01 and 0x3C02: even (0x3C02)
      {1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20), 0x3C01},  // just above the tie
      {2047.5f, 0x6800},  // tie between 2047 (odd) and 2048: carries into the exponent
  };
  for (const auto& c : cases) {
    EXPECT_EQ(quant::f32_to_f16(c.f), c.h) << "f=" << c.f;
  }
  // Every NaN becomes the quiet NaN with the input's sign (ggml's FP16 conversion).
  EXPECT_EQ(quant::f32_to_f16(std::numeric_limits<float>::quiet_NaN()), 0x7E00);
  EXPECT_EQ(quant::f32_to_f16(std::bit_cast<float>(0xFF800001u)), 0xFE00);
  EXPECT_EQ(quant::f32_to_f16(std::bit_cast<float>(0x7FFFFFFFu)), 0x7E00);

  EXPECT_EQ(quant::f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(quant::f16_to_f32(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_EQ(quant::f16_to_f32(0x7BFF), 65504.0f);
  EXPECT_EQ(quant::f16_to_f32(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(std::bit_cast<uint32_t>(quant::f16_to_f32(0x8000)), 0x80000000u);
  EXPECT_TRUE(std::isnan(quant::f16_to_f32(0x7C01)));
}

TEST(F16, EveryCodeRoundTrips) {
  for (uint32_t code = 0; code <= 0xFFFF; ++code) {
    const auto h = static_cast<uint16_t>(code);
    const float f = quant::f16_to_f32(h);
    if (is_f16_nan(h)) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << code;
      ASSERT_EQ(quant::f32_to_f16(f), (h & 0x8000) | 0x7E00) << std::hex << code;
    } else {
      ASSERT_EQ(quant::f32_to_f16(f), h) << std::hex << code;
    }
  }
}

TEST(F16, RandomFloatsRoundToNearestEven) {
  std::mt19937 rng(1);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 200000; ++i) {
    // Exponents around the f16 range (normals, subnormals, overflow) are where the cases are.
    uint32_t b = bits(rng);
    b = (b & 0x807FFFFFu) | ((96u + (b >> 23) % 48u) << 23);
    const float f = std::bit_cast<float>(b);
    ASSERT_EQ(quant::f32_to_f16(f), nearest_f16(f)) << std::hex << b;
  }
}

TEST(BF16, KnownValues) {
  struct Case {
    uint32_t f_bits;
    uint16_t h;
  };
  const Case cases[] = {
      {0x00000000u, 0x0000},  // 0
      {0x80000000u, 0x8000},  // -0
      {0x3F800000u, 0x3F80},  // 1
      {0x3F808000u, 0x3F80},  // tie: stays on the even 0x3F80
      {0x3F818000u, 0x3F82},  // tie: goes to the even 0x3F82
      {0x3F808001u, 0x3F81},  // just above a tie
      {0x7F7FFFFFu, 0x7F80},  // FLT_MAX rounds to inf
      {0x7F800000u, 0x7F80},  // inf
      {0xFF800000u, 0xFF80},  // -inf
      {0x00010000u, 0x0001},  // subnormal kept, not flushed
      {0x00018000u, 0x0002},  // subnormal tie to even
      {0x7FC00000u, 0x7FC0},  // quiet NaN
      {0x7F800001u, 0x7FC0},  // signalling NaN is made quiet
      {0xFF812345u, 0xFFC1},  // NaN keeps its sign and top payload bits
  };
  for (const auto& c : cases) {
    EXPECT_EQ(quant::f32_to_bf16(std::bit_cast<float>(c.f_bits)), c.h) << std::hex << c.f_bits;
  }
  for (uint32_t code = 0; code <= 0xFFFF; ++code) {
    const auto h = static_cast<uint16_t>(code);
    const uint32_t f_bits = std::bit_cast<uint32_t>(quant::bf16_to_f32(h));
    ASSERT_EQ(f_bits, code << 16);
    if ((code & 0x7FFF) <= 0x7F80) {
      ASSERT_EQ(quant::f32_to_bf16(std::bit_cast<float>(f_bits)), h);
    }
  }
}

// ================================================================================================
// q8_0 / q4_0 blocks

TEST(Q8_0, KnownBlockWithUnitScale) {
  // max |x| = 127 gives d = 127 / 127 = 1 exactly; codes are roundf(x): half away from zero.
  std::vector<float> x(32, 0.0f);
  const float head[] = {127.0f, -127.0f, 0.5f, -0.5f, 1.5f, 2.5f, 63.4f, -100.6f};
  std::copy(std::begin(head), std::end(head), x.begin());
  x[31] = -2.5f;
  const std::vector<uint8_t> bytes = encode(TensorType::kQ8_0, x);
  ASSERT_EQ(bytes.size(), 34u);
  const uint8_t expected_head[] = {0x00, 0x3C,  // d = f16(1.0), little-endian
                                   127,  0x81, 1, 0xFF, 2, 3, 63, static_cast<uint8_t>(-101)};
  EXPECT_TRUE(std::equal(std::begin(expected_head), std::end(expected_head), bytes.begin()));
  for (size_t j = 8; j < 31; ++j) EXPECT_EQ(bytes[2 + j], 0) << j;
  EXPECT_EQ(bytes[2 + 31], static_cast<uint8_t>(-3));
}

TEST(Q8_0, KnownBlocksWithOtherScales) {
  // max |x| = 254: d = 2 (0x4000); 5 / 2 = 2.5 rounds away from zero to 3 (not to even 2).
  std::vector<float> x(32, 0.0f);
  x[0] = 254.0f;
  x[1] = 5.0f;
  x[2] = -3.0f;
  std::vector<uint8_t> bytes = encode(TensorType::kQ8_0, x);
  EXPECT_EQ(bytes[0], 0x00);
  EXPECT_EQ(bytes[1], 0x40);
  EXPECT_EQ(bytes[2], 127);
  EXPECT_EQ(bytes[3], 3);
  EXPECT_EQ(bytes[4], static_cast<uint8_t>(-2));  // -1.5 -> -2

  // max |x| = 1: d = 1/127 = 0.0078740157 -> f16 2^-7 * (1 + 8/1024) = 0x2008, but the codes use
  // the f32 scale: 1 -> 127, 0.5 -> 63.5 -> 64.
  std::fill(x.begin(), x.end(), 0.0f);
  x[0] = 1.0f;
  x[1] = 0.5f;
  bytes = encode(TensorType::kQ8_0, x);
  EXPECT_EQ(bytes[0] | (bytes[1] << 8), 0x2008);
  EXPECT_EQ(bytes[2], 127);
  EXPECT_EQ(bytes[3], 64);

  // All zero: d = 0 and every code 0 (no division by zero).
  bytes = encode(TensorType::kQ8_0, std::vector<float>(32, 0.0f));
  EXPECT_TRUE(std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; }));
}

TEST(Q4_0, KnownBlockWithNegativeExtreme) {
  // The element of largest magnitude is -8: d = -8 / -8 = 1, code = trunc(x + 8.5).
  std::vector<float> x(32, 0.0f);
  x[0] = -8.0f;   // code 0
  x[1] = 7.0f;    // 15
  x[2] = 0.5f;    // 9
  x[3] = -0.5f;   // 8
  x[4] = 3.49f;   // 11
  x[16] = -7.5f;  // 1   (high nibble of byte 0)
  x[17] = 7.49f;  // 15  (high nibble of byte 1)
  x[18] = -1.0f;  // 7   (high nibble of byte 2)
  const std::vector<uint8_t> bytes = encode(TensorType::kQ4_0, x);
  ASSERT_EQ(bytes.size(), 18u);
  EXPECT_EQ(bytes[0], 0x00);
  EXPECT_EQ(bytes[1], 0x3C);
  EXPECT_EQ(bytes[2 + 0], 0x10);
  EXPECT_EQ(bytes[2 + 1], 0xFF);
  EXPECT_EQ(bytes[2 + 2], 0x79);
  EXPECT_EQ(bytes[2 + 3], 0x88);
  EXPECT_EQ(bytes[2 + 4], 0x8B);
  for (size_t j = 5; j < 16; ++j) EXPECT_EQ(bytes[2 + j], 0x88) << j;
}

TEST(Q4_0, KnownBlockWithPositiveExtreme) {
  // The extreme is +8: d = -1 (0xBC00), so x * id = -x; the opposite extreme -8 gives 16.5,
  // clamped to code 15.
  std::vector<float> x(32, 0.0f);
  x[0] = 8.0f;    // -8 + 8.5 -> 0
  x[1] = -8.0f;   // 16.5 -> 15 (clamped)
  x[2] = 1.0f;    // 7.5 -> 7
  x[16] = -3.0f;  // 11.5 -> 11
  const std::vector<uint8_t> bytes = encode(TensorType::kQ4_0, x);
  EXPECT_EQ(bytes[0], 0x00);
  EXPECT_EQ(bytes[1], 0xBC);
  EXPECT_EQ(bytes[2 + 0], 0xB0);
  EXPECT_EQ(bytes[2 + 1], 0x8F);
  EXPECT_EQ(bytes[2 + 2], 0x87);

  std::vector<float> decoded(32);
  quant::dequantize_row_ref(TensorType::kQ4_0, bytes.data(), decoded.data(), 32);
  EXPECT_EQ(decoded[0], 8.0f);
  EXPECT_EQ(decoded[1], -7.0f);  // the clamp costs a full step at the opposite extreme
  EXPECT_EQ(decoded[2], 1.0f);
  EXPECT_EQ(decoded[16], -3.0f);
  EXPECT_EQ(decoded[3], 0.0f);
}

TEST(Quant, DequantizeKnownCodes) {
  // Codes the quantizer never writes but a file may hold: q8 -128, and q4 nibbles 0..15.
  quant::BlockQ8_0 q8{};
  q8.d = 0x3800;  // 0.5
  q8.qs[0] = -128;
  q8.qs[1] = 127;
  quant::BlockQ4_0 q4{};
  q4.d = 0x4000;  // 2
  for (uint8_t j = 0; j < 16; ++j) q4.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  std::vector<float> out(32);
  quant::dequantize_row_ref(TensorType::kQ8_0, &q8, out.data(), 32);
  EXPECT_EQ(out[0], -64.0f);
  EXPECT_EQ(out[1], 63.5f);
  EXPECT_EQ(out[2], 0.0f);
  quant::dequantize_row_ref(TensorType::kQ4_0, &q4, out.data(), 32);
  for (size_t j = 0; j < 16; ++j) {
    EXPECT_EQ(out[j], 2.0f * (static_cast<float>(j) - 8.0f)) << j;
    EXPECT_EQ(out[16 + j], 2.0f * (7.0f - static_cast<float>(j))) << j;
  }
}

// Round trip through q8_0: q = round(x * id) with id = 1 / d in f32 is within 0.5 + 127 * 2 eps of
// x / d; the stored scale d16 = f16(d) moves each value by at most 127 |d - d16|.
TEST(Q8_0, RoundTripErrorBound) {
  std::mt19937 rng(2);
  const std::vector<float> x = random_floats(rng, 32 * 64, -3.0f, 3.0f);
  std::vector<float> y(x.size());
  const std::vector<uint8_t> bytes = encode(TensorType::kQ8_0, x);
  quant::dequantize_row_ref(TensorType::kQ8_0, bytes.data(), y.data(), x.size());
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0.0f;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const double d = amax / 127.0f;
    const double d16 = quant::f16_to_f32(quant::f32_to_f16(amax / 127.0f));
    const double bound = d * (0.5 + 256 * kEps) + 127 * std::fabs(d - d16);
    for (size_t j = 0; j < 32; ++j) {
      ASSERT_LE(std::fabs(double{x[b * 32 + j]} - y[b * 32 + j]), bound) << b << "," << j;
    }
  }
}

// Round trip through q4_0: within half a step |d| except above code 15 (x * id > 7.5, the
// clamped side), where it is within a full step; plus 8 |d - d16| for the f16 scale.
TEST(Q4_0, RoundTripErrorBound) {
  std::mt19937 rng(3);
  const std::vector<float> x = random_floats(rng, 32 * 64, -3.0f, 3.0f);
  std::vector<float> y(x.size());
  const std::vector<uint8_t> bytes = encode(TensorType::kQ4_0, x);
  quant::dequantize_row_ref(TensorType::kQ4_0, bytes.data(), y.data(), x.size());
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float max = 0.0f;
    for (size_t j = 0; j < 32; ++j) {
      if (std::fabs(x[b * 32 + j]) > std::fabs(max)) max = x[b * 32 + j];
    }
    const double d = max / -8.0f;
    const double d16 = quant::f16_to_f32(quant::f32_to_f16(max / -8.0f));
    for (size_t j = 0; j < 32; ++j) {
      const double scaled = x[b * 32 + j] / d;
      const double steps = scaled > 7.5 ? 1.0 : 0.5;
      const double bound = std::fabs(d) * (steps + 32 * kEps) + 8 * std::fabs(d - d16);
      ASSERT_LE(std::fabs(double{x[b * 32 + j]} - y[b * 32 + j]), bound) << b << "," << j;
    }
  }
}

}  // namespace
}  // namespace sllm
