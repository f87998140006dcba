// Quantized KV cache rows (--kv-type q8_0 / q4_0): each token's keys (rotated once, at its
// absolute position) and values are stored as ggml's q8_0 or q4_0 blocks of 32, quantized once
// when written and never again. Attention reads a layer's rows dequantized into f32 (the
// cache's scratch, decoded once per layer and batch) and runs the f32 kernel on them: the same
// kernel, in the same row order, as every other cache type, so a streaming cache that has not
// evicted is dense attention bit for bit and chunked prefill is token-by-token feeding bit for bit
// with quantized K/V too.
//
// A token's row of n_kv_heads * head_dim values is quantized as one row of blocks. With a
// head_dim that is a multiple of 32 each block lies inside one head (the per-head rows llama.cpp
// quantizes); with a head_dim that divides 32 (stories260K: 8) one block spans 32 / head_dim
// consecutive KV heads of the token and they share its scale.
#pragma once

#include <cstddef>
#include <cstdint>

#include "streamingllm/error.h"
#include "util/tensor_type.h"

namespace sllm {

// Whether K/V of this type are stored as blocks (q8_0, q4_0), and the values of a block.
bool is_block_kv(TensorType type);
inline constexpr size_t kKvBlockValues = 32;

// Bytes of n values of a cache type (f32, f16, q8_0, q4_0); for a block type n is a multiple of
// 32 (check_kv_type checked it).
uint64_t kv_bytes(TensorType type, uint64_t n);

// Whether a cache of this type can hold this attention shape: f32 and f16 any, q8_0 and q4_0 a
// head_dim that is a multiple of 32, or divides 32 with n_kv_heads * head_dim a multiple of 32.
// The error names the type, the head_dim and the KV heads.
Status check_kv_type(TensorType type, size_t head_dim, size_t n_kv_heads);

// Stores n f32 values as the cache type (f32 copy, f16 round-to-nearest-even, or blocks of 32
// quantized as ggml's quantize_row_q8_0 / q4_0 reference does; n a multiple of 32 for those).
void store_kv_row(TensorType type, const float* src, uint8_t* dst, size_t n);

}  // namespace sllm
