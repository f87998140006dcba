// Scalar references of every op in ops.h, written for clarity rather than speed: one element at a
// time, sums and transcendental functions in double, weights decoded by quant::dequantize_row_ref.
// Tests compare the SIMD kernels with these; the benchmark times them as the scalar baseline.
#pragma once

#include <cstddef>
#include <span>

#include "kernels/ops.h"
#include "util/tensor_type.h"

namespace sllm::ops::ref {

// y[b, r] = sum_c W[r, c] * x[b, c]; x: [n_batch, n_cols], y: [n_batch, n_rows].
// For q8_0 / q4_0 weights: the integer algorithm of qdot.h (ref::matmul_quantized), which the
// SIMD kernels equal bit for bit.
void matmul(const MatView& w, const float* x, size_t n_batch, float* y);

void rmsnorm(const float* x, const float* weight, size_t n, float eps, float* out);
void softmax(float* x, size_t n);
void silu_mul(float* gate, const float* up, size_t n);
void add(const float* x, float* y, size_t n);
void dequantize_row(TensorType type, const void* src, float* dst, size_t n);
float dot_kv(const float* a, const void* k, TensorType kv_type, size_t n);
void axpy_kv(float a, const void* v, TensorType kv_type, float* y, size_t n);
void store_kv(const float* src, void* dst, TensorType kv_type, size_t n);
// Scores, softmax and the weighted sum in double, head by head; scores receives the softmax
// weights, [n_heads, N].
void attention(const KvLayout& layout, std::span<const KvRun> runs, size_t n_heads, float scale,
               float* scores, float* out);

}  // namespace sllm::ops::ref
