// The kernel interface: everything numeric that the model and the cache need, and nothing else.
//
// Implementations live in one file per kernel family, matmul.cc, elementwise.cc and attention.cc
// (Highway, compiled for every target and dispatched once per call with HWY_DYNAMIC_DISPATCH;
// their shared per-target helpers are in ops-inl.h), and are checked against the scalar references
// in ops_ref.h.
// Kernels never see the model graph, the cache policy or the file format.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "util/tensor_type.h"
#include "util/thread_pool.h"

namespace sllm::ops {

// A row-major weight matrix [n_rows, n_cols] stored in `type` (rows are n_cols elements long,
// consecutive rows `row_bytes` apart). Views the file mapping; owns nothing.
struct MatView {
  TensorType type = TensorType::kF32;
  const void* data = nullptr;
  size_t n_rows = 0;
  size_t n_cols = 0;
  size_t row_bytes = 0;
};

// y[b, r] = sum_c W[r, c] * x[b, c] for b < n_batch, r < n_rows.
// x: [n_batch, n_cols] f32, y: [n_batch, n_rows] f32. Rows are split across the pool.
void matmul(const MatView& w, const float* x, size_t n_batch, float* y, ThreadPool& pool);

// out = x / sqrt(mean(x^2) + eps) * weight, n elements. out may alias x.
void rmsnorm(const float* x, const float* weight, size_t n, float eps, float* out);

// In place: x = exp(x - max) / sum.
void softmax(float* x, size_t n);

// gate = silu(gate) * up, n elements (SwiGLU).
void silu_mul(float* gate, const float* up, size_t n);

// y += x, n elements.
void add(const float* x, float* y, size_t n);

// Rows of the embedding table and other per-row reads: dst = dequantize(src row), n elements.
void dequantize_row(TensorType type, const void* src, float* dst, size_t n);

// How one head's keys and values lie in a KV cache: rows of head_dim elements of `type` (kF32 or
// kF16), consecutive rows `row_bytes` apart (the cache holds every KV head of a token in one row).
struct KvLayout {
  TensorType type = TensorType::kF32;
  size_t head_dim = 0;
  size_t row_bytes = 0;
  float softcap = 0.0f;  // > 0: each scaled score s becomes softcap * tanh(s / softcap) (Gemma 2)
};

// A run of consecutive cache rows, all scored against the same queries. A cache splits the tokens
// a query sees into a few runs: the sinks, the ring before and after its wrap, and the rows of the
// batch being fed; the sinks are scored against differently rotated queries.
struct KvRun {
  const float* q = nullptr;      // [n_heads, head_dim] the queries for these keys
  const void* keys = nullptr;    // [n_rows] rows of the layout, at the KV head's part of row 0
  const void* values = nullptr;  // [n_rows] likewise
  size_t n_rows = 0;
  // ALiBi only: the query-key distance of row 0; row r is at distance - r.
  uint64_t distance = 0;
};

// n_heads query heads that share one KV head (grouped-query attention; 1 without it) attending
// over the rows of all runs, taken in order as one sequence n = 0..N-1: for each head h,
//   out[h, 0..head_dim) = sum_n softmax_n(scale * q_run(n)[h] . k_n) * v_n
// scores: scratch of n_heads * N floats. The result depends only on the rows and their order,
// never on how they are split into runs, so two caches that hold the same tokens in differently
// split runs (a dense cache and a streaming cache before its first eviction) compute the same
// bits; nor on n_heads: a head's result is the same alone or in a group. One dispatch per call,
// whatever the number of rows: this is the inner loop of decoding. The heads of a group are
// scored while a group of keys is in L1, and share each value row's load.
// alibi_slopes (null: none): [n_heads]; head h's score of a row at distance d (KvRun::distance)
// gains slope_h * -d after the scale, as ggml_soft_max_ext adds its ALiBi bias.
void attention(const KvLayout& layout, std::span<const KvRun> runs, size_t n_heads, float scale,
               float* scores, float* out, const float* alibi_slopes = nullptr);

// Single rows of cached keys/values stored as f32 or f16 (`kv_type` is kF32 or kF16).
// dot: returns sum_i a[i] * k[i]. axpy: y[i] += a * v[i].
float dot_kv(const float* a, const void* k, TensorType kv_type, size_t n);
void axpy_kv(float a, const void* v, TensorType kv_type, float* y, size_t n);

// Stores f32 values as the cache's element type (f32 copy or f16 round-to-nearest-even).
void store_kv(const float* src, void* dst, TensorType kv_type, size_t n);

// Name of the SIMD target the dispatcher picked (for `info` and benchmark output).
const char* simd_target_name();

}  // namespace sllm::ops
