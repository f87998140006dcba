// The K-quants (q2_K q3_K q4_K q5_K q6_K, and q8_K, llama.cpp's activation format for them): 256
// elements per super-block, sub-blocks of 16 or 32 with their own quantized scales (and mins).
//
// The quantizers follow llama.cpp's reference algorithms (ggml-quants.c quantize_row_*_K_ref,
// which ggml_quantize_chunk runs when there is no importance matrix), float operation for float
// operation: the scale searches compare sums of squares, so a different summation order or
// rounding would pick other scales and the files would differ.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

#include "kernels/quant.h"
#include "kernels/quant_impl.h"

namespace sllm::quant::detail {
namespace {

constexpr size_t kK = kSuperBlockElems;
// Below this a group counts as all zeros (ggml's GROUP_MAX_EPS).
constexpr float kGroupMaxEps = 1e-15f;

float fl(int v) { return static_cast<float>(v); }

// The value of largest magnitude (the first of equals), with its sign.
float largest_magnitude(int n, const float* x) {
  float max = 0.0f;
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  return max;
}

// Symmetric codes l in [-nmax, nmax) for n values, stored as l + nmax, and their scale: the
// largest magnitude maps to -nmax, then 18 nearby scales are tried and the one minimising the
// x^2-weighted squared error wins. (ggml's make_qx_quants with rmse_type 1, no weights.)
float make_symmetric_codes(int n, int nmax, const float* x, int8_t* L) {
  const float max = largest_magnitude(n, x);
  if (std::fabs(max) < kGroupMaxEps) {
    std::fill(L, L + n, int8_t{0});
    return 0.0f;
  }
  auto code = [nmax](float v) { return std::max(-nmax, std::min(nmax - 1, nearest_int(v))); };
  float iscale = fl(-nmax) / max;
  float sumlx = 0.0f;
  float suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = code(iscale * x[i]);
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * fl(l);
    suml2 += w * fl(l) * fl(l);
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(fl(nmax) + 0.1f * fl(is)) / max;
    sumlx = suml2 = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = code(iscale * x[i]);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * fl(l);
      suml2 += w * fl(l) * fl(l);
    }
    if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(nmax + code(iscale * x[i]));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// q3_K's sub-block codes: symmetric codes in [-nmax, nmax) refined one element at a time (up to 5
// sweeps) while that raises the x^2-weighted fit; stored as l + nmax. (ggml's make_q3_quants with
// do_rmse.)
float make_q3_codes(int n, int nmax, const float* x, int8_t* L) {
  const float max = largest_magnitude(n, x);
  if (std::fabs(max) < kGroupMaxEps) {
    std::fill(L, L + n, int8_t{0});
    return 0.0f;
  }
  auto clamp = [nmax](int l) { return std::max(-nmax, std::min(nmax - 1, l)); };
  const float iscale = fl(-nmax) / max;
  float sumlx = 0.0f;
  float suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = clamp(nearest_int(iscale * x[i]));
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * fl(l);
    suml2 += w * fl(l) * fl(l);
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * fl(L[i]);
      if (slx > 0.0f) {
        float sl2 = suml2 - w * fl(L[i]) * fl(L[i]);
        const int new_l = clamp(nearest_int(x[i] * sl2 / slx));
        if (new_l != L[i]) {
          slx += w * x[i] * fl(new_l);
          sl2 += w * fl(new_l) * fl(new_l);
          if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (n_changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Affine codes l in [0, nmax] with x ~= scale * l - the_min (the_min >= 0): the range's own
// scale, then nstep + 1 scales around it, each with the least-squares scale and min of its codes
// (min clamped to <= 0), keeping the lowest weighted error (squared, or absolute with use_mad).
// (ggml's make_qkx2_quants.)
float make_affine_codes(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                        float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                        bool use_mad) {
  float min = x[0];
  float max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0.0f) min = 0.0f;
  if (max == min) {
    std::fill(L, L + n, uint8_t{0});
    *the_min = -min;
    return 0.0f;
  }
  auto error_of = [use_mad](float diff) { return use_mad ? std::fabs(diff) : diff * diff; };
  float iscale = fl(nmax) / (max - min);
  float scale = 1.0f / iscale;
  float best_error = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    best_error += weights[i] * error_of(scale * fl(L[i]) + min - x[i]);
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * fl(is) + fl(nmax)) / (max - min);
    float sum_l = 0.0f;
    float sum_l2 = 0.0f;
    float sum_xl = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(0, std::min(nmax, nearest_int(iscale * (x[i] - min))));
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * fl(l);
      sum_l2 += w * fl(l) * fl(l);
      sum_xl += w * fl(l) * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0.0f) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0.0f) {
        this_min = 0.0f;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0.0f;
      for (int i = 0; i < n; ++i) {
        cur_error += weights[i] * error_of(this_scale * fl(Laux[i]) + this_min - x[i]);
      }
      if (cur_error < best_error) {
        std::copy(Laux, Laux + n, L);
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Scale and min of sub-block j < 8 in q4_K/q5_K's 12 bytes: j < 4 in the low 6 bits of bytes j and
// j + 4; j >= 4 in the nibbles of byte j + 4 with the top 2 bits in bytes j - 4 and j.
void scale_min_k4(size_t j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Two-bit codes of 256 elements into 64 bytes: byte 32 * h + l holds elements 128 * h + l +
// 32 * k in bits 2k, 2k + 1.
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (size_t j = 0; j < kK; j += 128) {
    for (size_t l = 0; l < 32; ++l) {
      qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                           (L[j + l + 96] << 6));
    }
  }
}

BlockQ2_K quantize_q2_K(const float* x) {
  BlockQ2_K y{};
  uint8_t L[kK];
  uint8_t Laux[16];
  float weights[16];
  float mins[kK / 16];
  float scales[kK / 16];
  constexpr float kQ4Scale = 15.0f;
  float max_scale = 0.0f;  // the mins are subtracted, so scales are never negative
  float max_min = 0.0f;
  for (size_t j = 0; j < kK / 16; ++j) {
    for (size_t l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
    scales[j] = make_affine_codes(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f,
                                  0.1f, 15, true);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  if (max_scale > 0.0f) {
    const float iscale = kQ4Scale / max_scale;
    for (size_t j = 0; j < kK / 16; ++j) {
      y.scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
    }
    y.d = f32_to_f16(max_scale / kQ4Scale);
  } else {
    y.d = f32_to_f16(0.0f);
  }
  if (max_min > 0.0f) {
    const float iscale = kQ4Scale / max_min;
    for (size_t j = 0; j < kK / 16; ++j) {
      y.scales[j] = static_cast<uint8_t>(y.scales[j] | (nearest_int(iscale * mins[j]) << 4));
    }
    y.dmin = f32_to_f16(max_min / kQ4Scale);
  } else {
    y.dmin = f32_to_f16(0.0f);
  }
  // Re-derive the codes against the rounded scales.
  for (size_t j = 0; j < kK / 16; ++j) {
    const float d = f16_to_f32(y.d) * fl(y.scales[j] & 0xF);
    if (d == 0.0f) continue;
    const float dm = f16_to_f32(y.dmin) * fl(y.scales[j] >> 4);
    for (size_t i = 0; i < 16; ++i) {
      const int l = nearest_int((x[16 * j + i] + dm) / d);
      L[16 * j + i] = static_cast<uint8_t>(std::max(0, std::min(3, l)));
    }
  }
  pack_2bit(L, y.qs);
  return y;
}

// Two-bit codes of sub-block s (16 elements) in q2_K / q3_K's qs: byte 32 * (s / 8) + 16 * (s % 2)
// + l, bits 2 * ((s % 8) / 2).
void codes_2bit(const uint8_t* qs, size_t s, int* q) {
  const uint8_t* bytes = qs + 32 * (s / 8) + 16 * (s % 2);
  const int shift = static_cast<int>(2 * ((s % 8) / 2));
  for (size_t l = 0; l < 16; ++l) q[l] = (bytes[l] >> shift) & 3;
}

void dequantize_q2_K(const BlockQ2_K& b, float* y) {
  const float d = f16_to_f32(b.d);
  const float min = f16_to_f32(b.dmin);
  for (size_t s = 0; s < kK / 16; ++s, y += 16) {
    const float dl = d * fl(b.scales[s] & 0xF);
    const float ml = min * fl(b.scales[s] >> 4);
    int q[16];
    codes_2bit(b.qs, s, q);
    for (size_t l = 0; l < 16; ++l) y[l] = dl * fl(q[l]) - ml;
  }
}

// Sub-block j's 6-bit scale in q3_K's 12 bytes: low 4 bits in the nibbles of bytes 0..7, high 2
// bits in bytes 8..11.
int q3_scale(const uint8_t* s, size_t j) {
  const int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
  const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
  return lo | (hi << 4);
}

BlockQ3_K quantize_q3_K(const float* x) {
  BlockQ3_K y{};
  int8_t L[kK];
  float scales[kK / 16];
  float max_scale = 0.0f;
  float amax = 0.0f;
  for (size_t j = 0; j < kK / 16; ++j) {
    scales[j] = make_q3_codes(16, 4, x + 16 * j, L + 16 * j);
    const float scale = std::fabs(scales[j]);
    if (scale > amax) {
      amax = scale;
      max_scale = scales[j];
    }
  }
  if (max_scale != 0.0f) {
    const float iscale = -32.0f / max_scale;
    for (size_t j = 0; j < kK / 16; ++j) {
      // ggml keeps the rounded value in an int8_t before clamping.
      const auto rounded = static_cast<int8_t>(nearest_int(iscale * scales[j]));
      const int l = std::max(-32, std::min(31, int{rounded})) + 32;
      if (j < 8) {
        y.scales[j] = static_cast<uint8_t>(l & 0xF);
      } else {
        y.scales[j - 8] = static_cast<uint8_t>(y.scales[j - 8] | ((l & 0xF) << 4));
      }
      y.scales[j % 4 + 8] = static_cast<uint8_t>(y.scales[j % 4 + 8] | ((l >> 4) << (2 * (j / 4))));
    }
    y.d = f32_to_f16(1.0f / iscale);
  } else {
    y.d = f32_to_f16(0.0f);
  }
  for (size_t j = 0; j < kK / 16; ++j) {
    const float d = f16_to_f32(y.d) * fl(q3_scale(y.scales, j) - 32);
    if (d == 0.0f) continue;
    for (size_t i = 0; i < 16; ++i) {
      const int l = nearest_int(x[16 * j + i] / d);
      L[16 * j + i] = static_cast<int8_t>(std::max(-4, std::min(3, l)) + 4);
    }
  }
  // Codes 4..7 set their element's bit in hmask: element e is bit e / 32 of byte e % 32.
  uint8_t low[kK];
  for (size_t e = 0; e < kK; ++e) {
    int l = L[e];
    if (l > 3) {
      y.hmask[e % 32] = static_cast<uint8_t>(y.hmask[e % 32] | (1u << (e / 32)));
      l -= 4;
    }
    low[e] = static_cast<uint8_t>(l);
  }
  pack_2bit(low, y.qs);
  return y;
}

void dequantize_q3_K(const BlockQ3_K& b, float* y) {
  const float d_all = f16_to_f32(b.d);
  for (size_t s = 0; s < kK / 16; ++s, y += 16) {
    const float dl = d_all * fl(q3_scale(b.scales, s) - 32);
    int q[16];
    codes_2bit(b.qs, s, q);
    // Element e's high bit is bit e / 32 of hmask[e % 32].
    const size_t e0 = 16 * s;
    for (size_t l = 0; l < 16; ++l) {
      const size_t e = e0 + l;
      const int high = (b.hmask[e % 32] >> (e / 32)) & 1;
      y[l] = dl * fl(q[l] - (high ? 0 : 4));
    }
  }
}

// q4_K / q5_K: 8 sub-blocks of 32 with affine codes of kBits bits.
template <int kBits>
void quantize_scales_mins(const float* x, uint16_t* d_out, uint16_t* dmin_out, uint8_t* packed,
                          uint8_t* L) {
  constexpr int kNmax = (1 << kBits) - 1;
  uint8_t Laux[32];
  float weights[32];
  float mins[kK / 32];
  float scales[kK / 32];
  float max_scale = 0.0f;
  float max_min = 0.0f;
  for (size_t j = 0; j < kK / 32; ++j) {
    float sum_x2 = 0.0f;
    for (size_t l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32.0f);
    for (size_t l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = kBits == 4 ? make_affine_codes(32, kNmax, x + 32 * j, weights, L + 32 * j, &mins[j],
                                               Laux, -1.0f, 0.1f, 20, false)
                           : make_affine_codes(32, kNmax, x + 32 * j, weights, L + 32 * j, &mins[j],
                                               Laux, -0.5f, 0.1f, 15, false);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
  for (size_t j = 0; j < kK / 32; ++j) {
    // ggml keeps the rounded values in uint8_t before clamping to 63.
    const auto ls = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j])));
    const auto lm = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j])));
    if (j < 4) {
      packed[j] = ls;
      packed[j + 4] = lm;
    } else {
      packed[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      packed[j - 4] = static_cast<uint8_t>(packed[j - 4] | ((ls >> 4) << 6));
      packed[j] = static_cast<uint8_t>(packed[j] | ((lm >> 4) << 6));
    }
  }
  *d_out = f32_to_f16(max_scale / 63.0f);
  *dmin_out = f32_to_f16(max_min / 63.0f);
  for (size_t j = 0; j < kK / 32; ++j) {
    uint8_t sc;
    uint8_t m;
    scale_min_k4(j, packed, &sc, &m);
    const float d = f16_to_f32(*d_out) * fl(sc);
    if (d == 0.0f) continue;
    const float dm = f16_to_f32(*dmin_out) * fl(m);
    for (size_t i = 0; i < 32; ++i) {
      const int l = nearest_int((x[32 * j + i] + dm) / d);
      L[32 * j + i] = static_cast<uint8_t>(std::max(0, std::min(kNmax, l)));
    }
  }
}

BlockQ4_K quantize_q4_K(const float* x) {
  BlockQ4_K y{};
  uint8_t L[kK];
  quantize_scales_mins<4>(x, &y.d, &y.dmin, y.scales, L);
  // Byte 32 * k + l: element 64 * k + l (low nibble) and 64 * k + 32 + l (high nibble).
  for (size_t j = 0; j < kK; j += 64) {
    for (size_t l = 0; l < 32; ++l) {
      y.qs[j / 2 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
    }
  }
  return y;
}

template <class Block>
void dequantize_affine_k(const Block& b, float* y) {
  const float d = f16_to_f32(b.d);
  const float min = f16_to_f32(b.dmin);
  for (size_t s = 0; s < kK / 32; ++s, y += 32) {
    uint8_t sc;
    uint8_t m;
    scale_min_k4(s, b.scales, &sc, &m);
    const float d1 = d * fl(sc);
    const float m1 = min * fl(m);
    // Sub-block s: the low (s even) or high (s odd) nibbles of bytes 32 * (s / 2) + l.
    const uint8_t* bytes = b.qs + 32 * (s / 2);
    const int shift = s % 2 == 0 ? 0 : 4;
    for (size_t l = 0; l < 32; ++l) {
      int q = (bytes[l] >> shift) & 0xF;
      if constexpr (sizeof(Block) == sizeof(BlockQ5_K)) {
        q += ((b.qh[l] >> s) & 1) ? 16 : 0;  // fifth bit: bit s of qh[l]
      }
      y[l] = d1 * fl(q) - m1;
    }
  }
}

BlockQ5_K quantize_q5_K(const float* x) {
  BlockQ5_K y{};
  uint8_t L[kK];
  quantize_scales_mins<5>(x, &y.d, &y.dmin, y.scales, L);
  for (size_t j = 0; j < kK; j += 64) {
    for (size_t l = 0; l < 32; ++l) {
      int l1 = L[j + l];
      int l2 = L[j + l + 32];
      if (l1 > 15) {
        l1 -= 16;
        y.qh[l] = static_cast<uint8_t>(y.qh[l] | (1u << (j / 32)));
      }
      if (l2 > 15) {
        l2 -= 16;
        y.qh[l] = static_cast<uint8_t>(y.qh[l] | (2u << (j / 32)));
      }
      y.qs[j / 2 + l] = static_cast<uint8_t>(l1 | (l2 << 4));
    }
  }
  return y;
}

BlockQ6_K quantize_q6_K(const float* x) {
  BlockQ6_K y{};
  int8_t L[kK];
  float scales[kK / 16];
  float max_scale = 0.0f;
  float max_abs_scale = 0.0f;
  for (size_t ib = 0; ib < kK / 16; ++ib) {
    scales[ib] = make_symmetric_codes(16, 32, x + 16 * ib, L + 16 * ib);
    if (std::fabs(scales[ib]) > max_abs_scale) {
      max_abs_scale = std::fabs(scales[ib]);
      max_scale = scales[ib];
    }
  }
  if (max_abs_scale < kGroupMaxEps) return y;  // all zeros, d = +0
  const float iscale = -128.0f / max_scale;
  y.d = f32_to_f16(1.0f / iscale);
  for (size_t ib = 0; ib < kK / 16; ++ib) {
    y.scales[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
  }
  for (size_t j = 0; j < kK / 16; ++j) {
    const float d = f16_to_f32(y.d) * fl(y.scales[j]);
    if (d == 0.0f) continue;
    for (size_t i = 0; i < 16; ++i) {
      const int l = nearest_int(x[16 * j + i] / d);
      L[16 * j + i] = static_cast<int8_t>(std::max(-32, std::min(31, l)) + 32);
    }
  }
  // Per 128 elements: ql byte l holds elements l (low) and l + 64 (high), byte l + 32 elements
  // l + 32 and l + 96; qh byte l holds the top 2 bits of l, l + 32, l + 64, l + 96.
  for (size_t j = 0; j < kK; j += 128) {
    uint8_t* ql = y.ql + j / 2;
    uint8_t* qh = y.qh + j / 4;
    for (size_t l = 0; l < 32; ++l) {
      const auto at = [&](size_t k) { return static_cast<unsigned>(L[j + l + 32 * k]); };
      ql[l] = static_cast<uint8_t>((at(0) & 0xF) | ((at(2) & 0xF) << 4));
      ql[l + 32] = static_cast<uint8_t>((at(1) & 0xF) | ((at(3) & 0xF) << 4));
      qh[l] = static_cast<uint8_t>((at(0) >> 4) | ((at(1) >> 4) << 2) | ((at(2) >> 4) << 4) |
                                   ((at(3) >> 4) << 6));
    }
  }
  return y;
}

void dequantize_q6_K(const BlockQ6_K& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (size_t half = 0; half < 2; ++half) {
    const uint8_t* ql = b.ql + 64 * half;
    const uint8_t* qh = b.qh + 32 * half;
    for (size_t k = 0; k < 4; ++k) {  // quarters of 32 elements
      for (size_t h16 = 0; h16 < 2; ++h16) {
        const float ds = d * fl(b.scales[8 * half + 2 * k + h16]);
        float* out = y + 128 * half + 32 * k + 16 * h16;
        for (size_t i = 0; i < 16; ++i) {
          const size_t l = 16 * h16 + i;
          const uint8_t lo_byte = ql[l + 32 * (k & 1)];
          const int lo = k < 2 ? lo_byte & 0xF : lo_byte >> 4;
          const int hi = (qh[l] >> (2 * k)) & 3;
          out[i] = ds * fl((lo | (hi << 4)) - 32);
        }
      }
    }
  }
}

BlockQ8_K quantize_q8_K(const float* x) {
  BlockQ8_K y{};
  float max = 0.0f;
  float amax = 0.0f;
  for (size_t j = 0; j < kK; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  if (amax == 0.0f) return y;
  // -127 rather than -128 keeps every code in [-127, 127] (llama.cpp's choice for its SIMD dots).
  const float iscale = -127.0f / max;
  for (size_t j = 0; j < kK; ++j) {
    y.qs[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * x[j])));
  }
  for (size_t j = 0; j < kK / 16; ++j) {
    int sum = 0;
    for (size_t i = 0; i < 16; ++i) sum += y.qs[16 * j + i];
    y.bsums[j] = static_cast<int16_t>(sum);
  }
  y.d = 1.0f / iscale;
  return y;
}

template <class Block, class Fn>
void quantize_blocks(const float* x, uint8_t* out, size_t n, Fn fn) {
  for (size_t b = 0; b < n / kK; ++b) store_block<Block>(fn(x + b * kK), out + b * sizeof(Block));
}

template <class Block, class Fn>
void dequantize_blocks(const uint8_t* in, float* y, size_t n, Fn fn) {
  for (size_t b = 0; b < n / kK; ++b) fn(load_block<Block>(in + b * sizeof(Block)), y + b * kK);
}

}  // namespace

void quantize_k(TensorType type, const float* x, uint8_t* out, size_t n) {
  switch (type) {
    case TensorType::kQ2_K:
      return quantize_blocks<BlockQ2_K>(x, out, n, quantize_q2_K);
    case TensorType::kQ3_K:
      return quantize_blocks<BlockQ3_K>(x, out, n, quantize_q3_K);
    case TensorType::kQ4_K:
      return quantize_blocks<BlockQ4_K>(x, out, n, quantize_q4_K);
    case TensorType::kQ5_K:
      return quantize_blocks<BlockQ5_K>(x, out, n, quantize_q5_K);
    case TensorType::kQ6_K:
      return quantize_blocks<BlockQ6_K>(x, out, n, quantize_q6_K);
    case TensorType::kQ8_K:
      return quantize_blocks<BlockQ8_K>(x, out, n, quantize_q8_K);
    default:
      assert(false && "quantize_k: not a K-quant");
  }
}

void dequantize_k(TensorType type, const uint8_t* in, float* y, size_t n) {
  switch (type) {
    case TensorType::kQ2_K:
      return dequantize_blocks<BlockQ2_K>(in, y, n, dequantize_q2_K);
    case TensorType::kQ3_K:
      return dequantize_blocks<BlockQ3_K>(in, y, n, dequantize_q3_K);
    case TensorType::kQ4_K:
      return dequantize_blocks<BlockQ4_K>(in, y, n, dequantize_affine_k<BlockQ4_K>);
    case TensorType::kQ5_K:
      return dequantize_blocks<BlockQ5_K>(in, y, n, dequantize_affine_k<BlockQ5_K>);
    case TensorType::kQ6_K:
      return dequantize_blocks<BlockQ6_K>(in, y, n, dequantize_q6_K);
    case TensorType::kQ8_K:
      return dequantize_blocks<BlockQ8_K>(in, y, n, [](const BlockQ8_K& b, float* out) {
        for (size_t j = 0; j < kK; ++j) out[j] = b.d * fl(b.qs[j]);
      });
    default:
      assert(false && "dequantize_k: not a K-quant");
  }
}

}  // namespace sllm::quant::detail
