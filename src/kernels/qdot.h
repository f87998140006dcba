// Integer matmul of the q8_0 / q4_0 weight types (ggml's vec_dot_q8_0_q8_0 / vec_dot_q4_0_q8_0
// scheme): each activation row is quantized ONCE per matmul to q8_0-style 8-bit codes with an f16
// scale per 32 values, the dot products of weight and activation codes are taken in int32, and
// only the per-block scale products are f32. This is what llama.cpp does, so the result differs
// from the f32 product of the decoded weights by the activation's quantization, as llama.cpp's.
//
// The f32 part is llama.cpp's, bit for bit, as its x86 build computes it on an AVX2 / AVX-512
// CPU (so greedy decoding on a quantized file follows llama.cpp's: the 8-bit activation codes
// turn any 1-ulp difference upstream into whole code steps, which grow over the layers), and every
// dispatch target computes the same bits as the scalar reference (ref::matmul_quantized). For one
// (token, weight row) with weight scale dw[b] and activation scale dx[b] of block b, in f32:
//   s[b]    = f16_to_f32(dw[b]) * dx[b]                              (one rounding)
//   p[b][i] = sum_{k<4} w[32b + 4i + k] * q[32b + 4i + k]            (int32, exact), i < 8
// lanes order (q8_0; q4_0 whose row count is not a multiple of 8): ggml's vec_dot / tinyBLAS,
//   acc[i] = fma(s[b], float(p[b][i]), acc[i]) over the blocks in order, from 0,
//   v[i] = acc[i] + acc[i + 4], g[i] = v[i] + v[i + 2], y = g[0] + g[1]   (hsum_float_8);
// block-sum order (q4_0 with a multiple of 8 rows, which llama.cpp repacks into q4_0x8 at load
// and multiplies with its gemv / gemm_q4_0_8x8_q8_0):
//   y = fma(float(sum_i p[b][i]), s[b], y) over the blocks in order, from 0.
// Activation codes: amax = max |x| over the block (NaN counts as 0), scale = f16(amax / 127),
// codes = round-half-even(clamp(x * (127 / amax), -127, 127)) (NaN -> 0): llama.cpp's x86
// quantize_row_q8_0 (and quantize_mat_q8_0, the same per row).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/ops.h"
#include "kernels/qdot_k.h"
#include "util/tensor_type.h"
#include "util/thread_pool.h"

namespace sllm::ops {

// Whether matmul of this weight type quantizes its activations and takes integer dot products:
// the path below, or the K-quants' (qdot_k.h).
constexpr bool is_quantized_matmul_type(TensorType type) {
  return type == TensorType::kQ8_0 || type == TensorType::kQ4_0 || is_kquant_matmul_type(type);
}

// Whether a matrix of this type and row count takes the block-sum order above.
constexpr bool block_sum_order(TensorType type, size_t n_rows) {
  return type == TensorType::kQ4_0 && n_rows % 8 == 0;
}

// The integer path of ops::matmul (same contract); w.type q8_0 or q4_0.
void matmul_quantized(const MatView& w, const float* x, size_t n_batch, float* y, ThreadPool& pool);

// Name of the target matmul_quantized dispatches to (it may include targets the other kernel
// files are not compiled for, such as AVX3_DL with VNNI).
const char* quantized_target_name();

namespace ref {

// Quantizes n activations (n a multiple of 32) to codes[n] and scales[n / 32] as described above.
void quantize_activations(const float* x, size_t n, int8_t* codes, float* scales);

// The dot of one weight row (n_blocks blocks of w_type) with quantized activations, in the exact
// order described above (block_sums: block_sum_order of the matrix).
float dot_quantized(TensorType w_type, bool block_sums, const uint8_t* w_row, const int8_t* codes,
                    const float* scales, size_t n_blocks);

// Scalar reference of matmul_quantized.
void matmul_quantized(const MatView& w, const float* x, size_t n_batch, float* y);

}  // namespace ref
}  // namespace sllm::ops
