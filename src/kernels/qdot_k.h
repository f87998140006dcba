// Integer matmul of the K-quant weight types q4_K, q5_K and q6_K (ggml's vec_dot_q*_K_q8_K
// scheme): each activation row is quantized ONCE per matmul to q8_K (256 values per super-block,
// an f32 scale, int8 codes and sums of 16 codes), the products of weight and activation codes and
// the sub-block scales and mins are taken in int32, and only the super-block scale products are
// f32. This is what llama.cpp does on x86, so the result differs from the f32 product of the
// decoded weights by the activation's 8-bit rounding, as llama.cpp's does.
//
// The f32 part is specified exactly so that every dispatch target computes the same bits as the
// scalar reference (ref::dot_kquant). q4_K takes the row-sum order of llama.cpp's repacked
// q4_K 8x8 kernels (ggml_gemv/gemm_q4_K_8x8_q8_K, which its x86 build runs for every q4_K matrix
// of a multiple of 8 rows), so the result equals llama.cpp's bit for bit: per super-block the
// whole integer P = sum_e sc[sub(e)] * w[e] * q[e] and M = sum_k mn[k] * (bs[2k] + bs[2k + 1]),
// then acc_p = fma(float(P), f16_to_f32(d) * (activation d), acc_p), acc_m = fma(float(M),
// f16_to_f32(dmin) * (activation d), acc_m) over the super-blocks in order, y = acc_p - acc_m
// (rows in vector lanes: no horizontal f32 sum per row). q5_K and q6_K take the lanes order
// below. For one (token, weight row) and super-block b, with w the
// weight codes as unsigned integers (q4_K 0..15, q5_K 0..31, q6_K 0..63), q the activation codes,
// bs[i] the sum of codes 16i..16i+15, sc/mn the sub-block scales and mins (q6_K: signed scales of
// 16-value sub-blocks, no mins), lanes k < 8 take the elements e with (e % 32) / 4 == k:
//   P[k] = sum_e sc[sub(e)] * w[e] * q[e]                                (int32, exact)
//   q4_K, q5_K: M[k] = mn[k] * (bs[2k] + bs[2k + 1])                     (int32, exact)
//   q6_K:       P[k] -= 32 * (sc[2k] * bs[2k] + sc[2k + 1] * bs[2k + 1])  (int32, exact)
//   s = f16_to_f32(weight d) * (activation d), m = f16_to_f32(weight dmin) * (activation d)
//   acc[k] = fma(s, float(P[k]), acc[k]); then q4_K, q5_K: acc[k] = fma(-m, float(M[k]), acc[k])
// over the super-blocks in order, and at the end h[k] = acc[k] + acc[k + 4], g[k] = h[k] + h[k +
// 2], y = g[0] + g[1] (the lanes of a 256-bit accumulator). Activation codes are llama.cpp's
// quantize_row_q8_K_ref (what its x86 build runs): max = the first value of largest magnitude,
// iscale = -127 / max, codes = min(127, round-half-even(iscale * x)), d = 1 / iscale; an all-zero
// super-block has d = 0 and zero codes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/ops.h"
#include "util/tensor_type.h"
#include "util/thread_pool.h"

namespace sllm::ops {

// Whether matmul of this weight type runs the integer K-quant path below.
constexpr bool is_kquant_matmul_type(TensorType type) {
  return type == TensorType::kQ4_K || type == TensorType::kQ5_K || type == TensorType::kQ6_K;
}

// The integer path of ops::matmul for the K-quants (same contract); w.type must be
// is_kquant_matmul_type and w.n_cols a multiple of 256.
void matmul_kquant(const MatView& w, const float* x, size_t n_batch, float* y, ThreadPool& pool);

// Name of the target matmul_kquant dispatches to.
const char* kquant_target_name();

namespace ref {

// Quantizes n activations (n a multiple of 256) to codes[n], scales[n / 256] and
// bsums[n / 16] as described above.
void quantize_q8_K(const float* x, size_t n, int8_t* codes, float* scales, int16_t* bsums);

// The dot of one weight row (n_sb super-blocks of w_type) with q8_K activations, in the exact
// order described above.
float dot_kquant(TensorType w_type, const uint8_t* w_row, const int8_t* codes, const float* scales,
                 const int16_t* bsums, size_t n_sb);

// Scalar reference of matmul_kquant.
void matmul_kquant(const MatView& w, const float* x, size_t n_batch, float* y);

}  // namespace ref

namespace kquant_detail {

// The 6-bit scales and mins of a q4_K / q5_K super-block (12 bytes) as 16 bytes in 4 words:
// bytes 0..7 the scales of sub-blocks 0..7, bytes 8..15 their mins (ggml's get_scale_min_k4, on
// 32-bit words; little-endian).
inline void unpack_scales_mins(const uint8_t* s, uint32_t* words) {
  constexpr uint32_t kLow6 = 0x3F3F3F3F, kLow4 = 0x0F0F0F0F, kLow2 = 0x03030303;
  uint32_t u[3];
  std::memcpy(u, s, 12);
  words[0] = u[0] & kLow6;
  words[1] = (u[2] & kLow4) | (((u[0] >> 6) & kLow2) << 4);
  words[2] = u[1] & kLow6;
  words[3] = ((u[2] >> 4) & kLow4) | (((u[1] >> 6) & kLow2) << 4);
}

}  // namespace kquant_detail
}  // namespace sllm::ops
