#include "kernels/quant.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>
#include <cstring>

namespace sllm::quant {

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp_mant = h & 0x7FFFu;
  const uint32_t exp = exp_mant >> 10;
  uint32_t bits;
  if (exp == 0x1F) {  // inf or NaN: keep the payload
    bits = 0x7F800000u | ((exp_mant & 0x3FFu) << 13);
  } else if (exp == 0) {  // zero or subnormal: mantissa * 2^-24, exact in f32
    bits = std::bit_cast<uint32_t>(static_cast<float>(exp_mant) * 0x1p-24f);
  } else {  // normal: rebias the exponent from 15 to 127
    bits = (exp_mant << 13) + ((127u - 15u) << 23);
  }
  return std::bit_cast<float>(sign | bits);
}

uint16_t f32_to_f16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (bits >> 16) & 0x8000u;
  const uint32_t abs = bits & 0x7FFFFFFFu;
  uint32_t h;
  if (abs > 0x7F800000u) {
    h = 0x7E00u;  // NaN
  } else if (abs >= 0x477FF000u) {
    // 65520 is the midpoint between 65504 (the largest f16) and 65536: it and everything above
    // (inf included) round to inf.
    h = 0x7C00u;
  } else if (abs >= 0x38800000u) {
    // Normal f16 (>= 2^-14): rebias the exponent, then round the 23-bit mantissa to 10 bits,
    // half to even. A carry out of the mantissa correctly bumps the exponent.
    const uint32_t rebiased = abs - ((127u - 15u) << 23);
    h = (rebiased + 0xFFFu + ((rebiased >> 13) & 1u)) >> 13;
  } else {
    // Subnormal f16: h = round(|f| * 2^24) with the implicit bit made explicit. Below 2^-25 (half
    // the smallest subnormal, a tie that goes to the even 0) everything rounds to zero.
    const uint32_t exp = abs >> 23;
    if (exp < 102) {
      h = 0;
    } else {
      const uint32_t mant = (abs & 0x7FFFFFu) | 0x800000u;
      const uint32_t shift = 126 - exp;  // in [14, 24]
      const uint32_t rest = mant & ((1u << shift) - 1);
      const uint32_t half = 1u << (shift - 1);
      h = mant >> shift;
      if (rest > half || (rest == half && (h & 1u))) ++h;
    }
  }
  return static_cast<uint16_t>(sign | h);
}

float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_bf16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) {
    return static_cast<uint16_t>((bits >> 16) | 0x40u);  // NaN: set the quiet bit
  }
  return static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

namespace {

void quantize_block_q8_0(const float* x, BlockQ8_0* out) {
  float amax = 0.0f;
  for (size_t j = 0; j < kBlockElems; ++j) amax = std::max(amax, std::fabs(x[j]));
  // The codes are computed with the f32 scale; only the stored scale is rounded to f16 (ggml).
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  out->d = f32_to_f16(d);
  for (size_t j = 0; j < kBlockElems; ++j) {
    out->qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));  // half away from zero
  }
}

void quantize_block_q4_0(const float* x, BlockQ4_0* out) {
  // The element of largest magnitude, with its sign, maps to code 0 (value -8 * d).
  float amax = 0.0f;
  float max = 0.0f;
  for (size_t j = 0; j < kBlockElems; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  out->d = f32_to_f16(d);
  // x * id lies in [-8, 8]; truncating x * id + 8.5 rounds half up, and the clamp maps the
  // opposite extreme (+8) to 15.
  auto code = [id](float v) {
    return static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>(v * id + 8.5f))));
  };
  constexpr size_t kHalf = kBlockElems / 2;
  for (size_t j = 0; j < kHalf; ++j) {
    out->qs[j] = static_cast<uint8_t>(code(x[j]) | (code(x[j + kHalf]) << 4));
  }
}

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

}  // namespace

void quantize_row(TensorType type, const float* src, void* dst, size_t n) {
  auto* out = static_cast<uint8_t*>(dst);
  switch (type) {
    case TensorType::kF32:
      if (n > 0) std::memcpy(out, src, n * sizeof(float));
      return;
    case TensorType::kF16:
    case TensorType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = type == TensorType::kF16 ? f32_to_f16(src[i]) : f32_to_bf16(src[i]);
        std::memcpy(out + 2 * i, &h, sizeof(h));
      }
      return;
    case TensorType::kQ8_0:
    case TensorType::kQ4_0:
      assert(n % kBlockElems == 0);
      for (size_t b = 0; b < n / kBlockElems; ++b) {
        // Blocks are built on the stack and copied, so dst needs no alignment.
        if (type == TensorType::kQ8_0) {
          BlockQ8_0 block;
          quantize_block_q8_0(src + b * kBlockElems, &block);
          std::memcpy(out + b * sizeof(block), &block, sizeof(block));
        } else {
          BlockQ4_0 block;
          quantize_block_q4_0(src + b * kBlockElems, &block);
          std::memcpy(out + b * sizeof(block), &block, sizeof(block));
        }
      }
      return;
  }
  assert(false && "quantize_row: unsupported type");
}

void dequantize_row_ref(TensorType type, const void* src, float* dst, size_t n) {
  const auto* in = static_cast<const uint8_t*>(src);
  switch (type) {
    case TensorType::kF32:
      if (n > 0) std::memcpy(dst, in, n * sizeof(float));
      return;
    case TensorType::kF16:
      for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(load_u16(in + 2 * i));
      return;
    case TensorType::kBF16:
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(load_u16(in + 2 * i));
      return;
    case TensorType::kQ8_0:
      assert(n % kBlockElems == 0);
      for (size_t b = 0; b < n / kBlockElems; ++b) {
        BlockQ8_0 block;
        std::memcpy(&block, in + b * sizeof(block), sizeof(block));
        const float d = f16_to_f32(block.d);
        for (size_t j = 0; j < kBlockElems; ++j)
          dst[b * kBlockElems + j] = static_cast<float>(block.qs[j]) * d;
      }
      return;
    case TensorType::kQ4_0:
      assert(n % kBlockElems == 0);
      for (size_t b = 0; b < n / kBlockElems; ++b) {
        BlockQ4_0 block;
        std::memcpy(&block, in + b * sizeof(block), sizeof(block));
        const float d = f16_to_f32(block.d);
        float* out = dst + b * kBlockElems;
        for (size_t j = 0; j < kBlockElems / 2; ++j) {
          out[j] = static_cast<float>((block.qs[j] & 0x0F) - 8) * d;
          out[j + kBlockElems / 2] = static_cast<float>((block.qs[j] >> 4) - 8) * d;
        }
      }
      return;
  }
  assert(false && "dequantize_row_ref: unsupported type");
}

}  // namespace sllm::quant
