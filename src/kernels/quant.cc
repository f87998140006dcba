#include "kernels/quant.h"

#include "kernels/quant_impl.h"

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

namespace detail {
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

constexpr size_t kHalf = kBlockElems / 2;

// The element of largest magnitude, with its sign (the first one on ties).
float signed_absmax(const float* x) {
  float amax = 0.0f;
  float max = 0.0f;
  for (size_t j = 0; j < kBlockElems; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void quantize_block_q4_0(const float* x, BlockQ4_0* out) {
  // The element of largest magnitude, with its sign, maps to code 0 (value -8 * d).
  const float d = signed_absmax(x) / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  out->d = f32_to_f16(d);
  // x * id lies in [-8, 8]; truncating x * id + 8.5 rounds half up, and the clamp maps the
  // opposite extreme (+8) to 15.
  auto code = [id](float v) {
    return static_cast<uint8_t>(std::min<uint8_t>(15, truncate_to_byte(v * id + 8.5f)));
  };
  for (size_t j = 0; j < kHalf; ++j) {
    out->qs[j] = static_cast<uint8_t>(code(x[j]) | (code(x[j + kHalf]) << 4));
  }
}

void quantize_block_q5_0(const float* x, BlockQ5_0* out) {
  // As q4_0 with 5-bit codes: the largest magnitude maps to -16.
  const float d = signed_absmax(x) / -16.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  out->d = f32_to_f16(d);
  auto code = [id](float v) {
    return static_cast<uint32_t>(std::min<uint8_t>(31, truncate_to_byte(v * id + 16.5f)));
  };
  uint32_t qh = 0;
  for (size_t j = 0; j < kHalf; ++j) {
    const uint32_t lo = code(x[j]);
    const uint32_t hi = code(x[j + kHalf]);
    out->qs[j] = static_cast<uint8_t>((lo & 0x0Fu) | ((hi & 0x0Fu) << 4));
    qh |= ((lo >> 4) & 1u) << j;
    qh |= ((hi >> 4) & 1u) << (j + kHalf);
  }
  std::memcpy(out->qh, &qh, sizeof(qh));  // little-endian, as ggml on x86/ARM
}

// q4_1 / q5_1: codes (x - min) / d, d spanning [min, max] in 2^bits - 1 steps.
template <class Block, int kBits>
void quantize_block_affine(const float* x, Block* out) {
  float min = x[0];
  float max = x[0];
  for (size_t j = 1; j < kBlockElems; ++j) {
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
  const float d = (max - min) / static_cast<float>((1 << kBits) - 1);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  out->d = f32_to_f16(d);
  out->m = f32_to_f16(min);
  auto code = [&](float v) -> uint32_t {
    const uint8_t c = truncate_to_byte((v - min) * id + 0.5f);
    // q4_1 clamps the top code; q5_1 does not need to (the byte keeps bit 4, nothing above).
    return kBits == 4 ? std::min<uint8_t>(15, c) : c;
  };
  uint32_t qh = 0;
  for (size_t j = 0; j < kHalf; ++j) {
    const uint32_t lo = code(x[j]);
    const uint32_t hi = code(x[j + kHalf]);
    if constexpr (kBits == 4) {
      out->qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    } else {
      out->qs[j] = static_cast<uint8_t>((lo & 0x0Fu) | ((hi & 0x0Fu) << 4));
      qh |= ((lo >> 4) & 1u) << j;
      qh |= ((hi >> 4) & 1u) << (j + kHalf);
    }
  }
  if constexpr (kBits == 5) std::memcpy(out->qh, &qh, sizeof(qh));
}

// Element j of a 32-element block with 5-bit codes: nibble | bit j of qh as bit 4.
uint32_t code5(const uint8_t* qs, uint32_t qh, size_t j) {
  const uint32_t nibble = j < kHalf ? qs[j] & 0x0Fu : qs[j - kHalf] >> 4;
  return nibble | (((qh >> j) & 1u) << 4);
}

}  // namespace

void quantize_legacy(TensorType type, const float* x, uint8_t* out, size_t n) {
  for (size_t b = 0; b < n / kBlockElems; ++b, x += kBlockElems) {
    switch (type) {
      case TensorType::kQ8_0: {
        BlockQ8_0 block;
        quantize_block_q8_0(x, &block);
        store_block(block, out + b * sizeof(block));
        break;
      }
      case TensorType::kQ4_0: {
        BlockQ4_0 block;
        quantize_block_q4_0(x, &block);
        store_block(block, out + b * sizeof(block));
        break;
      }
      case TensorType::kQ4_1: {
        BlockQ4_1 block;
        quantize_block_affine<BlockQ4_1, 4>(x, &block);
        store_block(block, out + b * sizeof(block));
        break;
      }
      case TensorType::kQ5_0: {
        BlockQ5_0 block;
        quantize_block_q5_0(x, &block);
        store_block(block, out + b * sizeof(block));
        break;
      }
      case TensorType::kQ5_1: {
        BlockQ5_1 block;
        quantize_block_affine<BlockQ5_1, 5>(x, &block);
        store_block(block, out + b * sizeof(block));
        break;
      }
      default:
        assert(false && "quantize_legacy: not a legacy type");
        return;
    }
  }
}

void dequantize_legacy(TensorType type, const uint8_t* in, float* y, size_t n) {
  for (size_t b = 0; b < n / kBlockElems; ++b, y += kBlockElems) {
    switch (type) {
      case TensorType::kQ8_0: {
        const auto block = load_block<BlockQ8_0>(in + b * sizeof(BlockQ8_0));
        const float d = f16_to_f32(block.d);
        for (size_t j = 0; j < kBlockElems; ++j) y[j] = static_cast<float>(block.qs[j]) * d;
        break;
      }
      case TensorType::kQ4_0: {
        const auto block = load_block<BlockQ4_0>(in + b * sizeof(BlockQ4_0));
        const float d = f16_to_f32(block.d);
        for (size_t j = 0; j < kHalf; ++j) {
          y[j] = static_cast<float>((block.qs[j] & 0x0F) - 8) * d;
          y[j + kHalf] = static_cast<float>((block.qs[j] >> 4) - 8) * d;
        }
        break;
      }
      case TensorType::kQ4_1: {
        const auto block = load_block<BlockQ4_1>(in + b * sizeof(BlockQ4_1));
        const float d = f16_to_f32(block.d);
        const float m = f16_to_f32(block.m);
        for (size_t j = 0; j < kHalf; ++j) {
          y[j] = static_cast<float>(block.qs[j] & 0x0F) * d + m;
          y[j + kHalf] = static_cast<float>(block.qs[j] >> 4) * d + m;
        }
        break;
      }
      case TensorType::kQ5_0: {
        const auto block = load_block<BlockQ5_0>(in + b * sizeof(BlockQ5_0));
        const float d = f16_to_f32(block.d);
        uint32_t qh;
        std::memcpy(&qh, block.qh, sizeof(qh));
        for (size_t j = 0; j < kBlockElems; ++j) {
          y[j] = static_cast<float>(static_cast<int>(code5(block.qs, qh, j)) - 16) * d;
        }
        break;
      }
      case TensorType::kQ5_1: {
        const auto block = load_block<BlockQ5_1>(in + b * sizeof(BlockQ5_1));
        const float d = f16_to_f32(block.d);
        const float m = f16_to_f32(block.m);
        uint32_t qh;
        std::memcpy(&qh, block.qh, sizeof(qh));
        for (size_t j = 0; j < kBlockElems; ++j) {
          y[j] = static_cast<float>(code5(block.qs, qh, j)) * d + m;
        }
        break;
      }
      default:
        assert(false && "dequantize_legacy: not a legacy type");
        return;
    }
  }
}

}  // namespace detail

namespace {

bool is_legacy(TensorType type) {
  return type == TensorType::kQ8_0 || type == TensorType::kQ4_0 || type == TensorType::kQ4_1 ||
         type == TensorType::kQ5_0 || type == TensorType::kQ5_1;
}

bool is_iq(TensorType type) {
  return type == TensorType::kIQ4_NL || type == TensorType::kIQ4_XS || type == TensorType::kMXFP4;
}

uint16_t read_u16(const uint8_t* p) {
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
    default:
      break;
  }
  assert(n % traits_of(type).block_elems == 0);
  if (is_legacy(type)) return detail::quantize_legacy(type, src, out, n);
  if (is_iq(type)) return detail::quantize_iq(type, src, out, n);
  detail::quantize_k(type, src, out, n);
}

void dequantize_row_ref(TensorType type, const void* src, float* dst, size_t n) {
  const auto* in = static_cast<const uint8_t*>(src);
  switch (type) {
    case TensorType::kF32:
      if (n > 0) std::memcpy(dst, in, n * sizeof(float));
      return;
    case TensorType::kF16:
      for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(read_u16(in + 2 * i));
      return;
    case TensorType::kBF16:
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(read_u16(in + 2 * i));
      return;
    default:
      break;
  }
  assert(n % traits_of(type).block_elems == 0);
  if (is_legacy(type)) return detail::dequantize_legacy(type, in, dst, n);
  if (is_iq(type)) return detail::dequantize_iq(type, in, dst, n);
  detail::dequantize_k(type, in, dst, n);
}

}  // namespace sllm::quant
