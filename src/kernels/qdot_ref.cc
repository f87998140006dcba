// Scalar reference of the integer matmul (qdot.h): plain loops in the exact order the header
// specifies; the SIMD targets in qdot.cc must equal it bit for bit.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/qdot.h"
#include "kernels/quant.h"

namespace sllm::ops::ref {

void quantize_activations(const float* x, size_t n, int8_t* codes, float* scales) {
  assert(n % quant::kBlockElems == 0);
  for (size_t b = 0; b < n / quant::kBlockElems; ++b) {
    const float* xb = x + b * quant::kBlockElems;
    float amax = 0.0f;
    for (size_t j = 0; j < quant::kBlockElems; ++j) {
      if (!std::isnan(xb[j])) amax = std::max(amax, std::fabs(xb[j]));
    }
    scales[b] = quant::f16_to_f32(quant::f32_to_f16(amax / 127.0f));
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    for (size_t j = 0; j < quant::kBlockElems; ++j) {
      float v = xb[j] * id;
      if (std::isnan(v)) v = 0.0f;
      v = std::clamp(v, -127.0f, 127.0f);
      codes[b * quant::kBlockElems + j] = static_cast<int8_t>(std::nearbyint(v));
    }
  }
}

namespace {

// Code j of a weight block as a signed integer.
int weight_code(TensorType type, const uint8_t* qs, size_t j) {
  if (type == TensorType::kQ8_0) return static_cast<int8_t>(qs[j]);
  constexpr size_t kHalf = quant::kBlockElems / 2;
  return j < kHalf ? (qs[j] & 0x0F) - 8 : (qs[j - kHalf] >> 4) - 8;
}

}  // namespace

float dot_quantized(TensorType w_type, bool block_sums, const uint8_t* w_row, const int8_t* codes,
                    const float* scales, size_t n_blocks) {
  assert(is_quantized_matmul_type(w_type));
  const size_t block_bytes =
      w_type == TensorType::kQ8_0 ? sizeof(quant::BlockQ8_0) : sizeof(quant::BlockQ4_0);
  float acc[8] = {};
  float y = 0.0f;
  for (size_t b = 0; b < n_blocks; ++b) {
    const uint8_t* block = w_row + b * block_bytes;
    uint16_t d;
    std::memcpy(&d, block, sizeof(d));
    const float s = quant::f16_to_f32(d) * scales[b];
    const int8_t* q = codes + b * quant::kBlockElems;
    int32_t sum = 0;
    for (size_t i = 0; i < 8; ++i) {
      int32_t p = 0;
      for (size_t k = 0; k < 4; ++k) p += weight_code(w_type, block + 2, 4 * i + k) * q[4 * i + k];
      acc[i] = std::fma(s, static_cast<float>(p), acc[i]);
      sum += p;
    }
    y = std::fma(static_cast<float>(sum), s, y);
  }
  if (block_sums) return y;
  float v[4], g[2];
  for (size_t i = 0; i < 4; ++i) v[i] = acc[i] + acc[i + 4];
  for (size_t i = 0; i < 2; ++i) g[i] = v[i] + v[i + 2];
  return g[0] + g[1];
}

void matmul_quantized(const MatView& w, const float* x, size_t n_batch, float* y) {
  const size_t n_blocks = w.n_cols / quant::kBlockElems;
  std::vector<int8_t> codes(w.n_cols);
  std::vector<float> scales(n_blocks);
  const bool block_sums = block_sum_order(w.type, w.n_rows);
  for (size_t b = 0; b < n_batch; ++b) {
    quantize_activations(x + b * w.n_cols, w.n_cols, codes.data(), scales.data());
    for (size_t r = 0; r < w.n_rows; ++r) {
      y[b * w.n_rows + r] =
          dot_quantized(w.type, block_sums, static_cast<const uint8_t*>(w.data) + r * w.row_bytes,
                        codes.data(), scales.data(), n_blocks);
    }
  }
}

}  // namespace sllm::ops::ref
