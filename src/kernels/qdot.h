// Integer matmul of the q8_0 / q4_0 weight types (ggml's vec_dot_q8_0_q8_0 / vec_dot_q4_0_q8_0
// scheme): each activation row is quantized ONCE per matmul to q8_0-style 8-bit codes with an f16
// scale per 32 values, the dot products of weight and activation codes are taken in int32, and
// only the per-block scale products are f32. This is what llama.cpp does, so the result differs
// from the f32 product of the decoded weights by the activation's quantization, as llama.cpp's.
//
// The f32 part is specified exactly so that every dispatch target computes the same bits as the
// scalar reference (ref::matmul_quantized): for one (token, weight row),
//   p[b][i] = sum_{k<4} w[32b + 4i + k] * q[32b + 4i + k]        (int32, exact), i < 8
//   s[b]    = f16_to_f32(weight scale b) * (activation scale b)   (one f32 rounding)
//   acc[8 * (b % 2) + i] = fma(s[b], float(p[b][i]), acc[...])  (blocks in order, lanes 0..15)
//   v[i] = acc[i] + acc[i + 8], h[i] = v[i] + v[i + 4], g[i] = h[i] + h[i + 2], y = g[0] + g[1]
// (the lanes of one 512-bit VNNI dot of two blocks, or two 256-bit accumulators). Activation codes:
// amax = max |x| over the block (NaN counts as 0), scale = f16(amax / 127), codes =
// round-half-even(clamp(x * (127 / amax), -127, 127)) (NaN -> 0): llama.cpp's x86
// quantize_row_q8_0.
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

// The integer path of ops::matmul (same contract) for q8_0 / q4_0 weights.
void matmul_quantized(const MatView& w, const float* x, size_t n_batch, float* y, ThreadPool& pool);

// Name of the target matmul_quantized dispatches to (it may include targets the other kernel
// files are not compiled for, such as AVX3_DL with VNNI).
const char* quantized_target_name();

namespace ref {

// Quantizes n activations (n a multiple of 32) to codes[n] and scales[n / 32] as described above.
void quantize_activations(const float* x, size_t n, int8_t* codes, float* scales);

// The dot of one weight row (n_blocks blocks of w_type) with quantized activations, in the exact
// order described above.
float dot_quantized(TensorType w_type, const uint8_t* w_row, const int8_t* codes,
                    const float* scales, size_t n_blocks);

// Scalar reference of matmul_quantized.
void matmul_quantized(const MatView& w, const float* x, size_t n_batch, float* y);

}  // namespace ref
}  // namespace sllm::ops
