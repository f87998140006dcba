// Element formats of weights and caches: f16 and bf16 scalars, and ggml's quantization blocks
// (quant_blocks.h): the legacy q4_0 q4_1 q5_0 q5_1 q8_0 (quant.cc), the K-quants q2_K..q6_K and
// q8_K (quant_k.cc), and iq4_nl, iq4_xs, mxfp4 (quant_iq.cc).
//
// Everything here is scalar and bit-exact with llama.cpp's reference code (ggml-quants.c: what
// ggml_quantize_chunk does without an importance matrix, i.e. what llama-quantize writes, and
// dequantize_row_*; ggml-impl.h
// ggml_compute_fp32_to_fp16 / ggml_compute_fp32_to_bf16), so that a GGUF we write reads the same in
// llama.cpp and the other way round. The SIMD kernels (ops-inl.h) decode the same layouts.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/quant_blocks.h"
#include "util/tensor_type.h"

namespace sllm::quant {

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
// n / block_elems blocks otherwise). For block types, n must be a multiple of the type's block
// size and the inputs finite. dst needs no alignment.
void quantize_row(TensorType type, const float* src, void* dst, size_t n);

// Decodes n elements of `type` from src into dst; the scalar reference for ops::dequantize_row.
// For block types, n must be a multiple of the type's block size. src needs no alignment.
void dequantize_row_ref(TensorType type, const void* src, float* dst, size_t n);

}  // namespace sllm::quant
