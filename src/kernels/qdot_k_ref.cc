// Scalar reference of the K-quant integer matmul (qdot_k.h): plain loops in the exact order the
// header specifies; the SIMD targets in qdot_k.cc must equal it bit for bit.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/qdot_k.h"
#include "kernels/quant.h"

namespace sllm::ops::ref {

namespace {

// llama.cpp's nearest_int: round half to even by adding 1.5 * 2^23 (exact for |v| <= 2^22, and
// |v| <= 127 here); NaN gives 0. Inline, unlike a call of nearbyint.
inline int nearest_int(float v) {
  const float shifted = v + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof(bits));
  return (bits & 0x007FFFFF) - 0x00400000;
}

}  // namespace

void quantize_q8_K(const float* x, size_t n, int8_t* codes, float* scales, int16_t* bsums) {
  constexpr size_t kSb = quant::kSuperBlockElems;
  assert(n % kSb == 0);
  for (size_t b = 0; b < n / kSb; ++b) {
    const float* xb = x + b * kSb;
    int8_t* q = codes + b * kSb;
    float max = 0.0f;
    float amax = 0.0f;
    for (size_t j = 0; j < kSb; ++j) {
      const float ax = std::fabs(xb[j]);
      if (ax > amax) {
        amax = ax;
        max = xb[j];
      }
    }
    if (amax == 0.0f) {
      scales[b] = 0.0f;
      std::fill_n(q, kSb, int8_t{0});
      std::fill_n(bsums + b * 16, 16, int16_t{0});
      continue;
    }
    const float iscale = -127.0f / max;
    for (size_t j = 0; j < kSb; ++j)
      q[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * xb[j])));
    for (size_t i = 0; i < 16; ++i) {
      int sum = 0;
      for (size_t j = 0; j < 16; ++j) sum += q[16 * i + j];
      bsums[b * 16 + i] = static_cast<int16_t>(sum);
    }
    scales[b] = 1.0f / iscale;
  }
}

namespace {

constexpr size_t kSb = quant::kSuperBlockElems;

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Unsigned weight codes of one super-block and the scale of each element's sub-block.
void decode_codes(TensorType type, const uint8_t* block, int* w, int* scale) {
  if (type == TensorType::kQ6_K) {
    // By offset, not through BlockQ6_K: a mapped row gives no 2-byte alignment.
    const auto* sc = reinterpret_cast<const int8_t*>(block + 192);
    for (size_t half = 0; half < 2; ++half) {
      const uint8_t* ql = block + 64 * half;
      const uint8_t* qh = block + 128 + 32 * half;
      for (size_t l = 0; l < 32; ++l) {
        const size_t e = 128 * half + l;
        w[e] = (ql[l] & 0x0F) | ((qh[l] & 3) << 4);
        w[e + 32] = (ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4);
        w[e + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
        w[e + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
      }
    }
    for (size_t e = 0; e < kSb; ++e) scale[e] = sc[e / 16];
    return;
  }
  // q4_K and q5_K share the scales and the nibbles; q5_K's fifth bit is in qh.
  const uint8_t* scales = block + 4;
  const uint8_t* qs = block + (type == TensorType::kQ5_K ? 48 : 16);
  const uint8_t* qh = type == TensorType::kQ5_K ? block + 16 : nullptr;
  uint32_t words[4];
  kquant_detail::unpack_scales_mins(scales, words);
  uint8_t sm[16];
  std::memcpy(sm, words, 16);
  for (size_t j = 0; j < 4; ++j) {
    for (size_t l = 0; l < 32; ++l) {
      const size_t e = 64 * j + l;
      w[e] = qs[32 * j + l] & 0x0F;
      w[e + 32] = qs[32 * j + l] >> 4;
      if (qh != nullptr) {
        w[e] |= ((qh[l] >> (2 * j)) & 1) << 4;
        w[e + 32] |= ((qh[l] >> (2 * j + 1)) & 1) << 4;
      }
    }
  }
  for (size_t e = 0; e < kSb; ++e) scale[e] = sm[e / 32];
}

size_t super_block_bytes(TensorType type) {
  switch (type) {
    case TensorType::kQ4_K:
      return sizeof(quant::BlockQ4_K);
    case TensorType::kQ5_K:
      return sizeof(quant::BlockQ5_K);
    default:
      return sizeof(quant::BlockQ6_K);
  }
}

}  // namespace

float dot_kquant(TensorType w_type, const uint8_t* w_row, const int8_t* codes, const float* scales,
                 const int16_t* bsums, size_t n_sb) {
  assert(is_kquant_matmul_type(w_type));
  const size_t sb_bytes = super_block_bytes(w_type);
  int w[kSb];
  int scale[kSb];
  if (w_type == TensorType::kQ4_K) {
    // Row-sum order (qdot_k.h): whole super-block integers, two f32 accumulators.
    float acc_p = 0.0f;
    float acc_m = 0.0f;
    for (size_t b = 0; b < n_sb; ++b) {
      const uint8_t* block = w_row + b * sb_bytes;
      decode_codes(w_type, block, w, scale);
      const int8_t* q = codes + b * kSb;
      const int16_t* bs = bsums + b * 16;
      int32_t p = 0;
      for (size_t e = 0; e < kSb; ++e) p += scale[e] * w[e] * q[e];
      uint32_t words[4];
      kquant_detail::unpack_scales_mins(block + 4, words);
      uint8_t sm[16];
      std::memcpy(sm, words, 16);
      int32_t m = 0;
      for (size_t k = 0; k < 8; ++k) m += sm[8 + k] * (bs[2 * k] + bs[2 * k + 1]);
      acc_p =
          std::fma(static_cast<float>(p), quant::f16_to_f32(load_u16(block)) * scales[b], acc_p);
      acc_m = std::fma(static_cast<float>(m), quant::f16_to_f32(load_u16(block + 2)) * scales[b],
                       acc_m);
    }
    return acc_p - acc_m;
  }
  float acc[8] = {};
  for (size_t b = 0; b < n_sb; ++b) {
    const uint8_t* block = w_row + b * sb_bytes;
    decode_codes(w_type, block, w, scale);
    const int8_t* q = codes + b * kSb;
    const int16_t* bs = bsums + b * 16;
    int32_t p[8] = {};
    for (size_t e = 0; e < kSb; ++e) p[(e % 32) / 4] += scale[e] * w[e] * q[e];
    if (w_type == TensorType::kQ6_K) {
      const auto* sc = reinterpret_cast<const int8_t*>(block + 192);
      for (size_t k = 0; k < 8; ++k)
        p[k] -= 32 * (sc[2 * k] * bs[2 * k] + sc[2 * k + 1] * bs[2 * k + 1]);
      const float s = quant::f16_to_f32(load_u16(block + 208)) * scales[b];
      for (size_t k = 0; k < 8; ++k) acc[k] = std::fma(s, static_cast<float>(p[k]), acc[k]);
    } else {
      uint32_t words[4];
      kquant_detail::unpack_scales_mins(block + 4, words);
      uint8_t sm[16];
      std::memcpy(sm, words, 16);
      const float s = quant::f16_to_f32(load_u16(block)) * scales[b];
      const float m = quant::f16_to_f32(load_u16(block + 2)) * scales[b];
      for (size_t k = 0; k < 8; ++k) {
        const int32_t mk = sm[8 + k] * (bs[2 * k] + bs[2 * k + 1]);
        acc[k] = std::fma(s, static_cast<float>(p[k]), acc[k]);
        acc[k] = std::fma(-m, static_cast<float>(mk), acc[k]);
      }
    }
  }
  float h[4], g[2];
  for (size_t i = 0; i < 4; ++i) h[i] = acc[i] + acc[i + 4];
  for (size_t i = 0; i < 2; ++i) g[i] = h[i] + h[i + 2];
  return g[0] + g[1];
}

void matmul_kquant(const MatView& w, const float* x, size_t n_batch, float* y) {
  const size_t n_sb = w.n_cols / kSb;
  std::vector<int8_t> codes(w.n_cols);
  std::vector<float> scales(n_sb);
  std::vector<int16_t> bsums(n_sb * 16);
  for (size_t b = 0; b < n_batch; ++b) {
    quantize_q8_K(x + b * w.n_cols, w.n_cols, codes.data(), scales.data(), bsums.data());
    for (size_t r = 0; r < w.n_rows; ++r) {
      y[b * w.n_rows + r] =
          dot_kquant(w.type, static_cast<const uint8_t*>(w.data) + r * w.row_bytes, codes.data(),
                     scales.data(), bsums.data(), n_sb);
    }
  }
}

}  // namespace sllm::ops::ref
