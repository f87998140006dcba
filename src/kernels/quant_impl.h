// Internals of quant.cc / quant_k.cc / quant_iq.cc: per-family row codecs and the small helpers
// they share. Not for use outside src/kernels.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/quant.h"

namespace sllm::quant::detail {

// Round to nearest, ties to even, for |f| < 2^22: adding 1.5 * 2^23 leaves the rounded integer in
// the low mantissa bits (the FPU does the rounding). ggml's scale searches rely on this exact
// rounding (not roundf's ties away from zero).
inline int nearest_int(float f) {
  const int32_t bits = std::bit_cast<int32_t>(f + 12582912.0f);
  return (bits & 0x007FFFFF) - 0x00400000;
}

// Float to integer conversion as x86 does it for C's (int8_t)f / (uint8_t)f: truncate toward zero
// to 32 bits, then keep the low byte.
inline uint8_t truncate_to_byte(float f) {
  return static_cast<uint8_t>(static_cast<uint32_t>(static_cast<int32_t>(f)));
}

// Blocks are built on the stack and copied, so rows need no alignment.
template <class Block>
Block load_block(const uint8_t* p) {
  Block b;
  std::memcpy(&b, p, sizeof(b));
  return b;
}
template <class Block>
void store_block(const Block& b, uint8_t* p) {
  std::memcpy(p, &b, sizeof(b));
}

// q4_0 q4_1 q5_0 q5_1 q8_0 (quant.cc).
void quantize_legacy(TensorType type, const float* x, uint8_t* out, size_t n);
void dequantize_legacy(TensorType type, const uint8_t* in, float* y, size_t n);

// q2_K q3_K q4_K q5_K q6_K q8_K (quant_k.cc).
void quantize_k(TensorType type, const float* x, uint8_t* out, size_t n);
void dequantize_k(TensorType type, const uint8_t* in, float* y, size_t n);

// iq4_nl iq4_xs mxfp4 (quant_iq.cc).
void quantize_iq(TensorType type, const float* x, uint8_t* out, size_t n);
void dequantize_iq(TensorType type, const uint8_t* in, float* y, size_t n);

}  // namespace sllm::quant::detail
