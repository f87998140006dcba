#include "kernels/ops_ref.h"

#include <cassert>
#include <cmath>
#include <vector>

#include "kernels/qdot.h"
#include "kernels/quant.h"

namespace sllm::ops::ref {

namespace {

// Decodes n cached elements (f32 or f16) into f32.
std::vector<float> decode_kv(const void* src, TensorType kv_type, size_t n) {
  assert(kv_type == TensorType::kF32 || kv_type == TensorType::kF16);
  std::vector<float> out(n);
  quant::dequantize_row_ref(kv_type, src, out.data(), n);
  return out;
}

}  // namespace

void matmul(const MatView& w, const float* x, size_t n_batch, float* y) {
  if (is_kquant_matmul_type(w.type)) return matmul_kquant(w, x, n_batch, y);
  if (is_quantized_matmul_type(w.type)) return matmul_quantized(w, x, n_batch, y);
  std::vector<float> row(w.n_cols);
  for (size_t r = 0; r < w.n_rows; ++r) {
    quant::dequantize_row_ref(w.type, static_cast<const char*>(w.data) + r * w.row_bytes,
                              row.data(), w.n_cols);
    for (size_t b = 0; b < n_batch; ++b) {
      double sum = 0.0;
      for (size_t c = 0; c < w.n_cols; ++c) sum += double{row[c]} * x[b * w.n_cols + c];
      y[b * w.n_rows + r] = static_cast<float>(sum);
    }
  }
}

void rmsnorm(const float* x, const float* weight, size_t n, float eps, float* out) {
  if (n == 0) return;
  double sum_sq = 0.0;
  for (size_t i = 0; i < n; ++i) sum_sq += double{x[i]} * x[i];
  const double scale = 1.0 / std::sqrt(sum_sq / static_cast<double>(n) + eps);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(x[i] * scale * weight[i]);
}

void softmax(float* x, size_t n) {
  if (n == 0) return;
  float max = x[0];
  for (size_t i = 1; i < n; ++i) max = std::fmax(max, x[i]);
  std::vector<double> e(n);
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    e[i] = std::exp(double{x[i]} - max);
    sum += e[i];
  }
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(e[i] / sum);
}

void silu_mul(float* gate, const float* up, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const double g = gate[i];
    gate[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

void add(const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += x[i];
}

void dequantize_row(TensorType type, const void* src, float* dst, size_t n) {
  quant::dequantize_row_ref(type, src, dst, n);
}

float dot_kv(const float* a, const void* k, TensorType kv_type, size_t n) {
  const std::vector<float> kf = decode_kv(k, kv_type, n);
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += double{a[i]} * kf[i];
  return static_cast<float>(sum);
}

void axpy_kv(float a, const void* v, TensorType kv_type, float* y, size_t n) {
  const std::vector<float> vf = decode_kv(v, kv_type, n);
  for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>(double{a} * vf[i] + y[i]);
}

void attention(const KvLayout& layout, std::span<const KvRun> runs, size_t n_heads, float scale,
               float* scores, float* out) {
  size_t n_rows = 0;
  for (const KvRun& run : runs) n_rows += run.n_rows;
  for (size_t h = 0; h < n_heads; ++h) {
    std::vector<double> weights;
    for (const KvRun& run : runs) {
      for (size_t r = 0; r < run.n_rows; ++r) {
        const auto* key = static_cast<const uint8_t*>(run.keys) + r * layout.row_bytes;
        const std::vector<float> k = decode_kv(key, layout.type, layout.head_dim);
        double dot = 0.0;
        for (size_t i = 0; i < layout.head_dim; ++i) {
          dot += double{run.q[h * layout.head_dim + i]} * k[i];
        }
        weights.push_back(dot * scale);
      }
    }
    double max = -INFINITY;
    for (double w : weights) max = std::fmax(max, w);
    double sum = 0.0;
    for (double& w : weights) sum += (w = std::exp(w - max));
    std::vector<double> acc(layout.head_dim, 0.0);
    size_t n = 0;
    for (const KvRun& run : runs) {
      for (size_t r = 0; r < run.n_rows; ++r, ++n) {
        const auto* value = static_cast<const uint8_t*>(run.values) + r * layout.row_bytes;
        const std::vector<float> v = decode_kv(value, layout.type, layout.head_dim);
        for (size_t i = 0; i < layout.head_dim; ++i) acc[i] += weights[n] / sum * v[i];
        scores[h * n_rows + n] = static_cast<float>(weights[n] / sum);
      }
    }
    for (size_t i = 0; i < layout.head_dim; ++i) {
      out[h * layout.head_dim + i] = static_cast<float>(acc[i]);
    }
  }
}

void store_kv(const float* src, void* dst, TensorType kv_type, size_t n) {
  assert(kv_type == TensorType::kF32 || kv_type == TensorType::kF16);
  quant::quantize_row(kv_type, src, dst, n);
}

}  // namespace sllm::ops::ref
