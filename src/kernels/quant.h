// Element formats of weights and caches: f16 and bf16 scalars, and ggml's q8_0 / q4_0 blocks.
//
// Everything here is scalar and bit-exact with llama.cpp's reference code (ggml-quants.c
// quantize_row_q8_0_ref / quantize_row_q4_0_ref / dequantize_row_*, ggml-impl.h
// ggml_compute_fp32_to_fp16 / ggml_compute_fp32_to_bf16), so that a GGUF we write reads the same in
// llama.cpp and the other way round. The SIMD kernels (ops-inl.h) decode the same layouts.
#pragma once

#include <cstddef>
#include <cstdint>

#include "util/tensor_type.h"

namespace sllm::quant {

// Elements per q8_0 / q4_0 block (ggml's QK8_0 / QK4_0).
inline constexpr size_t kBlockElems = 32;

// q8_0: x[j] ~= qs[j] * d. The scale is chosen so that max|x| maps to 127.
struct BlockQ8_0 {
  uint16_t d;              // f16 scale
  int8_t qs[kBlockElems];  // [32]
};
static_assert(sizeof(BlockQ8_0) == 34, "q8_0 block must match ggml's block_q8_0");

// q4_0: x[j] ~= (nibble(j) - 8) * d, where element j < 16 is the low nibble of qs[j] and element
// j + 16 is the high nibble of qs[j]. The scale maps the element of largest magnitude to -8.
struct BlockQ4_0 {
  uint16_t d;                   // f16 scale
  uint8_t qs[kBlockElems / 2];  // [16] two 4-bit values per byte
};
static_assert(sizeof(BlockQ4_0) == 18, "q4_0 block must match ggml's block_q4_0");

// IEEE binary16 <-> binary32. f32_to_f16 rounds to nearest even; values of magnitude >= 65520
// become inf and every NaN becomes the quiet NaN 0x7E00 with the input's sign, as in ggml.
// f16_to_f32 is exact (subnormals included) and keeps a NaN's payload.
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// bfloat16 <-> binary32. f32_to_bf16 rounds to nearest even (subnormals are kept, not flushed);
// a NaN keeps its top bits and is made quiet, as in ggml.
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

// Encodes n floats as `type` into dst (n * 4 bytes for f32, n * 2 for f16/bf16,
// n / 32 blocks for q8_0/q4_0). For q8_0/q4_0, n must be a multiple of 32 and the inputs finite.
void quantize_row(TensorType type, const float* src, void* dst, size_t n);

// Decodes n elements of `type` from src into dst; the scalar reference for ops::dequantize_row.
// For q8_0/q4_0, n must be a multiple of 32. src needs no alignment.
void dequantize_row_ref(TensorType type, const void* src, float* dst, size_t n);

}  // namespace sllm::quant
