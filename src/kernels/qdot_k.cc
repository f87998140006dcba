// SIMD kernels of the K-quant integer matmul (qdot_k.h): q4_K / q5_K / q6_K weights times
// activations quantized once per call to q8_K, int32 products with the sub-block scales, f32 only
// for the super-block scale products, in the exact order qdot_k.h specifies (so every target
// equals ref::matmul_kquant bit for bit).
//
// The structure is qdot.cc's: one kernel for decode and prefill, a tile of kRows weight rows times
// kToks tokens whose accumulators stay in registers (each super-block is loaded and unpacked once
// per tile of tokens), prefill batches walked in chunks of tokens whose codes stay in L2, threads
// owning disjoint runs of 16 rows, weights read straight from the mapping.
//
// Each row tile prefetches the same super-block of the next tile (kRows rows on), so the reads are
// one contiguous stream: prefetching within a row (1 KiB on, past the end of a 2048-column row)
// left q4_K / q6_K decode at 40% of the kernel's cache-resident speed.
//
// Targets: AVX3_DL: q4_K with 8 rows in the 64-bit lanes (tile_q4k: codes transposed in
// registers, vpdpbusd against broadcast activation codes, scales per lane, no horizontal sums);
// q5_K / q6_K 64 codes per zmm, pmaddubsw then vpdpwssd with the sub-block scales (VNNI), q6_K
// prefill with two tokens per zmm for the f32 steps; AVX2 and AVX3: 32 codes per ymm, pmaddubsw +
// pmaddwd (llama.cpp's AVX2 scheme); the rest: the scalar reference's dot. The activation
// quantization is the scalar reference's on every target: it runs once per token, not per weight
// row.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/qdot_k.h"
#include "kernels/quant.h"
#include "util/tensor_type.h"
#include "util/thread_pool.h"

#ifndef HWY_WANT_AVX3_DL
#error "kernels need HWY_WANT_AVX3_DL (src/kernels/CMakeLists.txt)"
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/qdot_k.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#ifndef SLLM_KERNELS_QDOT_K_ONCE_
#define SLLM_KERNELS_QDOT_K_ONCE_
namespace sllm::ops::kquant_detail {

constexpr size_t kSb = quant::kSuperBlockElems;

// A batch's q8_K activations: per token n_sb super-blocks of codes, scales and sums of 16.
struct Acts {
  size_t n_sb = 0;
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int16_t> bs;

  void resize(size_t n_batch, size_t sbs) {
    n_sb = sbs;
    if (q.size() < n_batch * n_sb * kSb) q.resize(n_batch * n_sb * kSb);
    if (d.size() < n_batch * n_sb) d.resize(n_batch * n_sb);
    if (bs.size() < n_batch * n_sb * 16) bs.resize(n_batch * n_sb * 16);
  }
  const int8_t* codes(size_t t, size_t b) const { return q.data() + (t * n_sb + b) * kSb; }
  float scale(size_t t, size_t b) const { return d[t * n_sb + b]; }
  const int16_t* sums(size_t t, size_t b) const { return bs.data() + (t * n_sb + b) * 16; }
};

// One buffer per calling thread, kept between calls: a matmul is never re-entered on a thread.
inline Acts& thread_acts() {
  thread_local Acts acts;
  return acts;
}

inline void quantize_tokens(const float* x, size_t n_cols, size_t t_begin, size_t t_end, Acts& a) {
  for (size_t t = t_begin; t < t_end; ++t) {
    ref::quantize_q8_K(x + t * n_cols, n_cols, a.q.data() + t * a.n_sb * kSb,
                       a.d.data() + t * a.n_sb, a.bs.data() + t * a.n_sb * 16);
  }
}

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <TensorType kType>
constexpr size_t kSbBytes = kType == TensorType::kQ4_K   ? sizeof(quant::BlockQ4_K)
                            : kType == TensorType::kQ5_K ? sizeof(quant::BlockQ5_K)
                                                         : sizeof(quant::BlockQ6_K);

}  // namespace sllm::ops::kquant_detail
#endif  // SLLM_KERNELS_QDOT_K_ONCE_

#if HWY_TARGET == HWY_AVX3_DL && defined(__clang__)
// As in qdot.cc: Highway 1.0.3's AVX3_DL target string lacks avx512vnni.
#pragma clang attribute push(__attribute__((target(HWY_TARGET_STR ",avx512vnni"))), \
                             apply_to = function)
#define SLLM_QDOT_K_CLANG_VNNI 1
#endif
HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL && !defined(__clang__)
#pragma GCC target("avx512vnni")
#endif
namespace sllm::ops {
namespace HWY_NAMESPACE {
using kquant_detail::Acts;
using kquant_detail::kSb;
using kquant_detail::kSbBytes;
using kquant_detail::load_u16;

#if HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX2

// The last steps of the lane sum (qdot_k.h): acc[8] -> h[4] -> g[2] -> y.
HWY_INLINE float finish8(__m256 v) {
  const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 g = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(g, _mm_movehdup_ps(g)));
}

// One (row, token) super-block's integer lanes into the f32 accumulator: acc = fma(s, P, acc),
// then for q4_K / q5_K acc = fma(-m, M, acc).
template <TensorType kType>
HWY_INLINE __m256 scale_into(__m256 acc, __m256i p, __m256i mins, float s, float m) {
  acc = _mm256_fmadd_ps(_mm256_set1_ps(s), _mm256_cvtepi32_ps(p), acc);
  if constexpr (kType != TensorType::kQ6_K) {
    acc = _mm256_fnmadd_ps(_mm256_set1_ps(m), _mm256_cvtepi32_ps(mins), acc);
  }
  return acc;
}

// The 16 unpacked scale/min bytes of a q4_K / q5_K super-block (kquant_detail::unpack_scales_mins
// on the 32-bit lanes of one register: the scalar version and its transfer into a vector cost a
// third of a q4_K decode).
HWY_INLINE __m128i scales_mins(const uint8_t* blk) {
  // Bytes 4..19: the 12 scale bytes u0 u1 u2 and 4 bytes of the codes (unused).
  const __m128i u = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 4));
  const __m128i a = _mm_shuffle_epi32(u, _MM_SHUFFLE(2, 1, 2, 0));  // u0 u2 u1 u2
  const __m128i b = _mm_shuffle_epi32(u, _MM_SHUFFLE(1, 1, 0, 0));  // u0 u0 u1 u1
  const __m128i even = _mm_and_si128(a, _mm_set1_epi32(0x3F3F3F3F));
  const __m128i low4 =
      _mm_and_si128(_mm_srlv_epi32(a, _mm_set_epi32(4, 0, 0, 0)), _mm_set1_epi32(0x0F0F0F0F));
  const __m128i high2 =
      _mm_slli_epi32(_mm_and_si128(_mm_srli_epi32(b, 6), _mm_set1_epi32(0x03030303)), 4);
  return _mm_blend_epi32(even, _mm_or_si128(low4, high2), 0b1010);
}

// The lines of the super-block at p (one per 64 bytes, so that the prefetches of consecutive
// super-blocks of a row leave no line out). The tile of rows after this one starts kRows rows on:
// prefetching the same super-block there keeps the reads one contiguous stream (the hardware
// prefetcher alone left the q4_K decode at a third of q4_0's bandwidth in qdot_bench).
template <TensorType kType>
HWY_INLINE void prefetch_block(const uint8_t* p) {
  for (size_t off = 0; off < kSbBytes<kType>; off += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(p) + off, _MM_HINT_T0);
  }
}

// q4_K's row-sum order (qdot_k.h) for one row: lane 0 of acc is acc_p, lane 1 acc_m (the other
// lanes are never read).
HWY_INLINE __m256 row_sums_into(__m256 acc, __m256i p, __m256i mins, float s, float m) {
  const __m256i h = _mm256_hadd_epi32(p, mins);  // p01 p23 m01 m23 | p45 p67 m45 m67
  __m128i pm = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  pm = _mm_hadd_epi32(pm, pm);  // P M P M
  const __m128 r =
      _mm_fmadd_ps(_mm_cvtepi32_ps(pm), _mm_set_ps(0.0f, 0.0f, m, s), _mm256_castps256_ps128(acc));
  return _mm256_castps128_ps256(r);
}

HWY_INLINE float finish_row_sums(__m256 acc) {
  const __m128 v = _mm256_castps256_ps128(acc);
  return _mm_cvtss_f32(v) - _mm_cvtss_f32(_mm_movehdup_ps(v));
}

// [m0, m0, m1, m1, ..., m7, m7] as int16.
HWY_INLINE __m256i mins_pairs(__m128i sm) {
  const __m128i m = _mm_unpackhi_epi64(sm, sm);
  return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m));
}

#endif

#if HWY_TARGET == HWY_AVX3_DL

// 8 rows x 2 tokens: decode has 8 weight streams in flight (4 x 4 was no faster at prefill and
// slower at decode in qdot_bench, within the noise of a loaded machine).
constexpr size_t kRows = 8;
constexpr size_t kToks = 2;

// A q6_K super-block's codes (w[c]: 64c..64c+63, unsigned), the sub-block scale of each int16
// pair of w[c] (sc[c]), the scales as int16 (sc16) and d.
HWY_INLINE void q6k_unpack(const uint8_t* blk, __m512i (&w)[4], __m512i (&sc)[4], __m256i& sc16,
                           float& dw) {
  const __m512i k0F = _mm512_set1_epi8(0x0F);
  const __m128i s8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192));
  sc16 = _mm256_cvtepi8_epi16(s8);
  dw = _cvtsh_ss(load_u16(blk + 208));
  for (size_t half = 0; half < 2; ++half) {
    const __m512i ql = _mm512_loadu_si512(blk + 64 * half);
    const __m512i qh = _mm512_broadcast_i64x4(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * half)));
    const __m512i k30 = _mm512_set1_epi8(0x30);
    const __m512i ha =
        _mm512_and_si512(_mm512_sllv_epi64(qh, _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4)), k30);
    const __m512i hb =
        _mm512_and_si512(_mm512_srlv_epi64(qh, _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0)), k30);
    w[2 * half] = _mm512_or_si512(_mm512_and_si512(ql, k0F), ha);
    w[2 * half + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), k0F), hb);
  }
  const __m512i s512 = _mm512_castsi256_si512(sc16);
  for (size_t c = 0; c < 4; ++c) {
    // int16 lane i of chunk c: sub-block 4c + i / 8.
    const short base = static_cast<short>(4 * c);
    const __m512i idx = _mm512_add_epi16(
        _mm512_set1_epi16(base), _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1,
                                                  1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0));
    sc[c] = _mm512_permutexvar_epi16(idx, s512);
  }
}

// Super-block b of kR rows times kT tokens.
template <TensorType kType, size_t kR, size_t kT>
HWY_INLINE void step(const uint8_t* const* w_rows, size_t ahead, const Acts& a, size_t t0, size_t b,
                     __m256 (&acc)[kR][kT]) {
  const __m512i k0F = _mm512_set1_epi8(0x0F);
  for (size_t r = 0; r < kR; ++r) {
    const uint8_t* blk = w_rows[r] + b * kSbBytes<kType>;
    prefetch_block<kType>(blk + ahead);
    __m512i w[4];   // codes 64c..64c+63 as unsigned bytes
    __m512i sc[4];  // the sub-block scale of each int16 pair of w[c]
    __m256i mins = _mm256_setzero_si256();
    __m256i corr = _mm256_setzero_si256();  // q6_K: 32 * (sc[2k] bs[2k] + sc[2k+1] bs[2k+1]) / bs
    __m256i sc16;
    float dw, dmin = 0.0f;
    if constexpr (kType == TensorType::kQ6_K) {
      q6k_unpack(blk, w, sc, sc16, dw);
    } else {
      constexpr size_t kQs = kType == TensorType::kQ5_K ? 48 : 16;
      const __m128i sm = scales_mins(blk);
      dw = _cvtsh_ss(load_u16(blk));
      dmin = _cvtsh_ss(load_u16(blk + 2));
      mins = mins_pairs(sm);
      const __m512i s512 = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(sm));
      __m512i qh = _mm512_setzero_si512();
      if constexpr (kType == TensorType::kQ5_K) {
        qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16)));
      }
      for (size_t c = 0; c < 4; ++c) {
        const __m512i q = _mm512_broadcast_i64x4(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + kQs + 32 * c)));
        w[c] =
            _mm512_and_si512(_mm512_srlv_epi64(q, _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0)), k0F);
        if constexpr (kType == TensorType::kQ5_K) {
          // Bit 2c (elements 0-31) and 2c + 1 (32-63) of each qh byte to bit 4.
          const long long lo = (4 - 2 * static_cast<long long>(c)) & 63;
          const long long hi = (3 - 2 * static_cast<long long>(c)) & 63;
          const __m512i bit = _mm512_and_si512(
              _mm512_rolv_epi64(qh, _mm512_set_epi64(hi, hi, hi, hi, lo, lo, lo, lo)),
              _mm512_set1_epi8(0x10));
          w[c] = _mm512_or_si512(w[c], bit);
        }
        const short s0 = static_cast<short>(2 * c);
        const __m512i idx =
            _mm512_add_epi16(_mm512_set1_epi16(s0),
                             _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(1), 1));
        sc[c] = _mm512_permutexvar_epi16(idx, s512);
      }
    }
    for (size_t t = 0; t < kT; ++t) {
      const int8_t* x = a.codes(t0 + t, b);
      __m512i p = _mm512_setzero_si512();
      for (size_t c = 0; c < 4; ++c) {
        const __m512i p16 = _mm512_maddubs_epi16(w[c], _mm512_loadu_si512(x + 64 * c));
        p = _mm512_dpwssd_epi32(p, p16, sc[c]);
      }
      __m256i p8 = _mm256_add_epi32(_mm512_castsi512_si256(p), _mm512_extracti64x4_epi64(p, 1));
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.sums(t0 + t, b)));
      const float dx = a.scale(t0 + t, b);
      if constexpr (kType == TensorType::kQ6_K) {
        corr = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5);
        p8 = _mm256_sub_epi32(p8, corr);
        acc[r][t] = scale_into<kType>(acc[r][t], p8, mins, dw * dx, 0.0f);
      } else {
        acc[r][t] =
            scale_into<kType>(acc[r][t], p8, _mm256_madd_epi16(mins, bs), dw * dx, dmin * dx);
      }
    }
  }
}

// q4_K, 8 rows in the lanes (qdot_k.h's row-sum order): the rows' code bytes are transposed so
// that 64-bit lane r holds 8 bytes of row r, vpdpbusd multiplies them with 8 activation codes
// broadcast to every lane, and the sub-block scales apply per lane, so a super-block ends with
// one integer per row and no horizontal sums (llama.cpp repacks the weights at load for this; we
// shuffle them in registers and read the mapping as it is).
constexpr size_t kToksQ4K = 4;

// The 16 first bytes (d, dmin, the 12 scale bytes) of the super-block of 4 rows, one per 128-bit
// lane, unpacked to [sc0..sc7, mn0..mn7] (unpack_scales_mins, with u0 u1 u2 in dwords 1 2 3).
HWY_INLINE __m512i scales_mins4(const __m512i u) {
  const __m512i a = _mm512_shuffle_epi32(u, _MM_PERM_ENUM(_MM_SHUFFLE(3, 2, 3, 1)));  // u0 u2 u1 u2
  const __m512i b = _mm512_shuffle_epi32(u, _MM_PERM_ENUM(_MM_SHUFFLE(2, 2, 1, 1)));  // u0 u0 u1 u1
  const __m512i even = _mm512_and_si512(a, _mm512_set1_epi32(0x3F3F3F3F));
  const __m512i low4 =
      _mm512_and_si512(_mm512_srlv_epi32(a, _mm512_set4_epi32(4, 0, 0, 0)), _mm512_set1_epi8(0x0F));
  const __m512i high2 = _mm512_and_si512(_mm512_srli_epi32(b, 2), _mm512_set1_epi8(0x30));
  return _mm512_mask_or_epi32(even, 0xAAAA, low4, high2);
}

// Super-blocks [0, n_sb) of rows w_rows[0, 8) times tokens [t0, t0 + kT): y for the first n_valid.
template <size_t kT>
HWY_INLINE void tile_q4k(const uint8_t* const* w_rows, size_t ahead, const Acts& a, size_t t0,
                         size_t n_valid, float* y, size_t y_stride) {
  constexpr size_t kBB = kSbBytes<TensorType::kQ4_K>;
  const __m512i k0F = _mm512_set1_epi8(0x0F);
  const __m512i lo_q = _mm512_set_epi64(13, 9, 5, 1, 12, 8, 4, 0);
  const __m512i hi_q = _mm512_set_epi64(15, 11, 7, 3, 14, 10, 6, 2);
  __m256 acc_p[kT];
  __m256 acc_m[kT];
  for (size_t t = 0; t < kT; ++t) {
    acc_p[t] = _mm256_setzero_ps();
    acc_m[t] = _mm256_setzero_ps();
  }
  for (size_t b = 0; b < a.n_sb; ++b) {
    const uint8_t* blk[kRows];
    for (size_t r = 0; r < kRows; ++r) {
      blk[r] = w_rows[r] + b * kBB;
      prefetch_block<TensorType::kQ4_K>(blk[r] + ahead);
    }
    const auto head = [&](size_t r) {
      return _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk[r]));
    };
    const auto quad = [&](size_t r) {
      return _mm512_inserti32x4(
          _mm512_inserti32x4(_mm512_inserti32x4(_mm512_castsi128_si512(head(r)), head(r + 1), 1),
                             head(r + 2), 2),
          head(r + 3), 3);
    };
    const __m512i u0 = quad(0);  // rows 0-3
    const __m512i u1 = quad(4);  // rows 4-7
    // Lane r: row r's scales (sc) and mins (mn), 8 bytes each.
    const __m512i sm0 = scales_mins4(u0);
    const __m512i sm1 = scales_mins4(u1);
    const __m512i sc =
        _mm512_permutex2var_epi64(sm0, _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0), sm1);
    const __m512i mn =
        _mm512_permutex2var_epi64(sm0, _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1), sm1);
    // Rows' d | dmin << 16 in dword lane r, then each as 8 floats.
    const __m256i dd = _mm512_castsi512_si256(_mm512_permutex2var_epi32(
        u0, _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 28, 24, 20, 16, 12, 8, 4, 0), u1));
    const __m256 dw = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(dd));
    const __m256 dmin = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(_mm256_srli_epi32(dd, 16)));
    // Mins as int16, rows 0-3 and 4-7 (one row per 128-bit lane).
    const __m512i mn_lo = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(mn));
    const __m512i mn_hi = _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(mn, 1));
    __m512i tsum[kT];
    for (auto& v : tsum) v = _mm512_setzero_si512();
    for (size_t j = 0; j < 4; ++j) {
      // Bytes 32j..32j+31 of the codes: low nibbles sub-block 2j, high nibbles 2j + 1.
      const auto pair = [&](size_t r) {
        const uint8_t* q = blk[r] + 16 + 32 * j;
        return _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q))),
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[r + 1] + 16 + 32 * j)), 1);
      };
      const __m512i z0 = pair(0), z1 = pair(2), z2 = pair(4), z3 = pair(6);
      const __m512i a01 = _mm512_permutex2var_epi64(z0, lo_q, z1);
      const __m512i b01 = _mm512_permutex2var_epi64(z0, hi_q, z1);
      const __m512i a23 = _mm512_permutex2var_epi64(z2, lo_q, z3);
      const __m512i b23 = _mm512_permutex2var_epi64(z2, hi_q, z3);
      // q[i], lane r: bytes 32j + 8i .. + 7 of row r.
      const __m512i q[4] = {_mm512_shuffle_i64x2(a01, a23, _MM_SHUFFLE(1, 0, 1, 0)),
                            _mm512_shuffle_i64x2(a01, a23, _MM_SHUFFLE(3, 2, 3, 2)),
                            _mm512_shuffle_i64x2(b01, b23, _MM_SHUFFLE(1, 0, 1, 0)),
                            _mm512_shuffle_i64x2(b01, b23, _MM_SHUFFLE(3, 2, 3, 2))};
      __m512i lo[4], hi[4];
      for (size_t i = 0; i < 4; ++i) {
        lo[i] = _mm512_and_si512(q[i], k0F);
        hi[i] = _mm512_and_si512(_mm512_srli_epi16(q[i], 4), k0F);
      }
      // Both dwords of lane r: the scale of row r's sub-block (2j, 2j + 1) as int32.
      const auto scale_of = [&](int s) {
        const char z = -128;
        const char s0 = static_cast<char>(s), s1 = static_cast<char>(s + 8);
        return _mm512_shuffle_epi8(sc, _mm512_broadcast_i32x4(_mm_setr_epi8(
                                           s0, z, z, z, s0, z, z, z, s1, z, z, z, s1, z, z, z)));
      };
      const __m512i sc_lo = scale_of(static_cast<int>(2 * j));
      const __m512i sc_hi = scale_of(static_cast<int>(2 * j + 1));
      for (size_t t = 0; t < kT; ++t) {
        const int8_t* x = a.codes(t0 + t, b) + 64 * j;
        __m512i s_lo = _mm512_setzero_si512();
        __m512i s_hi = _mm512_setzero_si512();
        for (size_t i = 0; i < 4; ++i) {
          int64_t xl, xh;
          std::memcpy(&xl, x + 8 * i, 8);
          std::memcpy(&xh, x + 32 + 8 * i, 8);
          s_lo = _mm512_dpbusd_epi32(s_lo, lo[i], _mm512_set1_epi64(xl));
          s_hi = _mm512_dpbusd_epi32(s_hi, hi[i], _mm512_set1_epi64(xh));
        }
        // A dword of s_lo / s_hi is 16 products of at most 15 * 127: an int16, so vpdpwssd with
        // the zero-extended scale multiplies it exactly (its high half, 0 or -1, meets a 0).
        tsum[t] = _mm512_dpwssd_epi32(tsum[t], s_lo, sc_lo);
        tsum[t] = _mm512_dpwssd_epi32(tsum[t], s_hi, sc_hi);
      }
    }
    for (size_t t = 0; t < kT; ++t) {
      // P of row r: the two dwords of lane r.
      const __m256i p =
          _mm512_cvtepi64_epi32(_mm512_add_epi64(tsum[t], _mm512_srli_epi64(tsum[t], 32)));
      // M: the rows' mins times the sums of the 8 sub-blocks' codes (bs[2k] + bs[2k + 1]).
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.sums(t0 + t, b)));
      const __m512i bw = _mm512_broadcast_i32x4(
          _mm256_cvtepi32_epi16(_mm256_madd_epi16(bs, _mm256_set1_epi16(1))));
      const __m512i m_lo = _mm512_madd_epi16(mn_lo, bw);  // rows 0-3: 4 dwords each
      const __m512i m_hi = _mm512_madd_epi16(mn_hi, bw);  // rows 4-7
      const __m512i z =
          _mm512_add_epi32(_mm512_unpacklo_epi32(m_lo, m_hi), _mm512_unpackhi_epi32(m_lo, m_hi));
      const __m512i w2 = _mm512_add_epi32(z, _mm512_shuffle_epi32(z, _MM_PERM_BADC));
      // Lane l: dword 0 row l, dword 1 row l + 4.
      const __m256i m = _mm512_castsi512_si256(_mm512_permutexvar_epi32(
          _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 13, 9, 5, 1, 12, 8, 4, 0), w2));
      const __m256 dx = _mm256_set1_ps(a.scale(t0 + t, b));
      acc_p[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw, dx), acc_p[t]);
      acc_m[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), _mm256_mul_ps(dmin, dx), acc_m[t]);
    }
  }
  const __mmask8 keep = static_cast<__mmask8>((1u << n_valid) - 1);
  for (size_t t = 0; t < kT; ++t) {
    _mm256_mask_storeu_ps(y + (t0 + t) * y_stride, keep, _mm256_sub_ps(acc_p[t], acc_m[t]));
  }
}

// q6_K (lanes order) for an even kT: the integer part as step's, then two tokens per 512-bit
// vector (lanes 0-7 token 2i, 8-15 token 2i + 1) for the lane folding, the -32 correction and
// the f32 steps; every lane takes step's operations, so the bits are the same.
template <size_t kT>
HWY_INLINE void tile_q6k_pairs(const uint8_t* const* w_rows, size_t ahead, const Acts& a, size_t t0,
                               size_t n_valid, float* y, size_t y_stride) {
  constexpr size_t kP = kT / 2;
  __m512 acc[kRows][kP];
  for (auto& row : acc) {
    for (auto& v : row) v = _mm512_setzero_ps();
  }
  for (size_t b = 0; b < a.n_sb; ++b) {
    __m512i bs[kP];
    __m512 dx[kP];
    for (size_t i = 0; i < kP; ++i) {
      const size_t ta = t0 + 2 * i;
      const auto sums = [&](size_t t) {
        return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.sums(t, b)));
      };
      bs[i] = _mm512_inserti64x4(_mm512_castsi256_si512(sums(ta)), sums(ta + 1), 1);
      dx[i] =
          _mm512_insertf32x8(_mm512_set1_ps(a.scale(ta, b)), _mm256_set1_ps(a.scale(ta + 1, b)), 1);
    }
    for (size_t r = 0; r < kRows; ++r) {
      const uint8_t* blk = w_rows[r] + b * kSbBytes<TensorType::kQ6_K>;
      prefetch_block<TensorType::kQ6_K>(blk + ahead);
      __m512i w[4];
      __m512i sc[4];
      __m256i sc16;
      float dw;
      q6k_unpack(blk, w, sc, sc16, dw);
      const __m512i sc16x2 = _mm512_broadcast_i64x4(sc16);
      const __m512 dwv = _mm512_set1_ps(dw);
      for (size_t i = 0; i < kP; ++i) {
        __m512i p[2];
        for (size_t k = 0; k < 2; ++k) {
          const int8_t* x = a.codes(t0 + 2 * i + k, b);
          p[k] = _mm512_setzero_si512();
          for (size_t c = 0; c < 4; ++c) {
            const __m512i p16 = _mm512_maddubs_epi16(w[c], _mm512_loadu_si512(x + 64 * c));
            p[k] = _mm512_dpwssd_epi32(p[k], p16, sc[c]);
          }
        }
        // [p0 low + p0 high | p1 low + p1 high]: step's 8 lanes of each token.
        __m512i p8 = _mm512_add_epi32(_mm512_shuffle_i64x2(p[0], p[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                      _mm512_shuffle_i64x2(p[0], p[1], _MM_SHUFFLE(3, 2, 3, 2)));
        p8 = _mm512_sub_epi32(p8, _mm512_slli_epi32(_mm512_madd_epi16(bs[i], sc16x2), 5));
        acc[r][i] = _mm512_fmadd_ps(_mm512_mul_ps(dwv, dx[i]), _mm512_cvtepi32_ps(p8), acc[r][i]);
      }
    }
  }
  for (size_t r = 0; r < n_valid; ++r) {
    for (size_t i = 0; i < kP; ++i) {
      y[(t0 + 2 * i) * y_stride + r] = finish8(_mm512_castps512_ps256(acc[r][i]));
      y[(t0 + 2 * i + 1) * y_stride + r] = finish8(_mm512_extractf32x8_ps(acc[r][i], 1));
    }
  }
}

#elif HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX2

constexpr size_t kRows = 2;
constexpr size_t kToks = 2;

// [s0 x 8, s1 x 8] as int16.
HWY_INLINE __m256i scale_pair(int s0, int s1) {
  return _mm256_set_m128i(_mm_set1_epi16(static_cast<short>(s1)),
                          _mm_set1_epi16(static_cast<short>(s0)));
}

// Bits of v shifted left by r (right by -r), within 16-bit lanes.
HWY_INLINE __m256i shift_bits(__m256i v, int r) {
  return r >= 0 ? _mm256_sll_epi16(v, _mm_cvtsi32_si128(r))
                : _mm256_srl_epi16(v, _mm_cvtsi32_si128(-r));
}

template <TensorType kType, size_t kR, size_t kT>
HWY_INLINE void step(const uint8_t* const* w_rows, size_t ahead, const Acts& a, size_t t0, size_t b,
                     __m256 (&acc)[kR][kT]) {
  const __m256i k0F = _mm256_set1_epi8(0x0F);
  for (size_t r = 0; r < kR; ++r) {
    const uint8_t* blk = w_rows[r] + b * kSbBytes<kType>;
    prefetch_block<kType>(blk + ahead);
    __m256i w[8];   // codes 32i..32i+31 as unsigned bytes
    __m256i sc[8];  // the sub-block scale of each int16 pair of w[i]
    __m256i mins = _mm256_setzero_si256();
    __m256i sc16 = _mm256_setzero_si256();
    float dw, dmin = 0.0f;
    if constexpr (kType == TensorType::kQ6_K) {
      const auto* s = reinterpret_cast<const int8_t*>(blk + 192);
      sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
      dw = _cvtsh_ss(load_u16(blk + 208));
      for (size_t half = 0; half < 2; ++half) {
        const uint8_t* ql = blk + 64 * half;
        const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
        const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
        const __m256i qh =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * half));
        const __m256i k30 = _mm256_set1_epi8(0x30);
        __m256i* o = w + 4 * half;
        o[0] = _mm256_or_si256(_mm256_and_si256(l0, k0F),
                               _mm256_and_si256(_mm256_slli_epi16(qh, 4), k30));
        o[1] = _mm256_or_si256(_mm256_and_si256(l1, k0F),
                               _mm256_and_si256(_mm256_slli_epi16(qh, 2), k30));
        o[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), k0F),
                               _mm256_and_si256(qh, k30));
        o[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), k0F),
                               _mm256_and_si256(_mm256_srli_epi16(qh, 2), k30));
      }
      for (size_t i = 0; i < 8; ++i) sc[i] = scale_pair(s[2 * i], s[2 * i + 1]);
    } else {
      constexpr size_t kQs = kType == TensorType::kQ5_K ? 48 : 16;
      const __m128i smv = scales_mins(blk);
      alignas(16) uint8_t sm[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(sm), smv);
      dw = _cvtsh_ss(load_u16(blk));
      dmin = _cvtsh_ss(load_u16(blk + 2));
      mins = mins_pairs(smv);
      __m256i qh = _mm256_setzero_si256();
      if constexpr (kType == TensorType::kQ5_K) {
        qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16));
      }
      for (size_t c = 0; c < 4; ++c) {
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + kQs + 32 * c));
        w[2 * c] = _mm256_and_si256(q, k0F);
        w[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(q, 4), k0F);
        if constexpr (kType == TensorType::kQ5_K) {
          const __m256i k10 = _mm256_set1_epi8(0x10);
          const int ci = static_cast<int>(c);
          w[2 * c] = _mm256_or_si256(w[2 * c], _mm256_and_si256(shift_bits(qh, 4 - 2 * ci), k10));
          w[2 * c + 1] =
              _mm256_or_si256(w[2 * c + 1], _mm256_and_si256(shift_bits(qh, 3 - 2 * ci), k10));
        }
        sc[2 * c] = _mm256_set1_epi16(sm[2 * c]);
        sc[2 * c + 1] = _mm256_set1_epi16(sm[2 * c + 1]);
      }
    }
    for (size_t t = 0; t < kT; ++t) {
      const int8_t* x = a.codes(t0 + t, b);
      __m256i p = _mm256_setzero_si256();
      for (size_t i = 0; i < 8; ++i) {
        const __m256i p16 = _mm256_maddubs_epi16(
            w[i], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32 * i)));
        p = _mm256_add_epi32(p, _mm256_madd_epi16(p16, sc[i]));
      }
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.sums(t0 + t, b)));
      const float dx = a.scale(t0 + t, b);
      if constexpr (kType == TensorType::kQ6_K) {
        p = _mm256_sub_epi32(p, _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5));
        acc[r][t] = scale_into<kType>(acc[r][t], p, mins, dw * dx, 0.0f);
      } else if constexpr (kType == TensorType::kQ4_K) {
        acc[r][t] = row_sums_into(acc[r][t], p, _mm256_madd_epi16(mins, bs), dw * dx, dmin * dx);
      } else {
        acc[r][t] =
            scale_into<kType>(acc[r][t], p, _mm256_madd_epi16(mins, bs), dw * dx, dmin * dx);
      }
    }
  }
}

#endif

#if HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX2

template <TensorType kType, size_t kT>
HWY_INLINE void tile(const uint8_t* const* w_rows, size_t ahead, const Acts& a, size_t t0,
                     size_t n_valid, float* y, size_t y_stride) {
  __m256 acc[kRows][kT];
  for (auto& row : acc) {
    for (auto& v : row) v = _mm256_setzero_ps();
  }
  for (size_t b = 0; b < a.n_sb; ++b) step<kType, kRows, kT>(w_rows, ahead, a, t0, b, acc);
  for (size_t r = 0; r < n_valid; ++r) {
    for (size_t t = 0; t < kT; ++t) {
      y[(t0 + t) * y_stride + r] =
          kType == TensorType::kQ4_K ? finish_row_sums(acc[r][t]) : finish8(acc[r][t]);
    }
  }
}

#else

constexpr size_t kRows = 1;
constexpr size_t kToks = 1;

template <TensorType kType, size_t kT>
HWY_INLINE void tile(const uint8_t* const* w_rows, size_t /*ahead*/, const Acts& a, size_t t0,
                     size_t n_valid, float* y, size_t y_stride) {
  for (size_t r = 0; r < n_valid; ++r) {
    for (size_t t = 0; t < kT; ++t) {
      y[(t0 + t) * y_stride + r] = ref::dot_kquant(
          kType, w_rows[r], a.codes(t0 + t, 0), &a.d[(t0 + t) * a.n_sb], a.sums(t0 + t, 0), a.n_sb);
    }
  }
}

#endif

template <TensorType kType, size_t kT>
HWY_INLINE void tile_of(size_t n_toks, const uint8_t* const* w_rows, size_t ahead, const Acts& a,
                        size_t t0, size_t n_valid, float* y, size_t y_stride) {
  if (n_toks == kT) {
#if HWY_TARGET == HWY_AVX3_DL
    if constexpr (kType == TensorType::kQ4_K) {
      return tile_q4k<kT>(w_rows, ahead, a, t0, n_valid, y, y_stride);
    } else if constexpr (kType == TensorType::kQ6_K && kT % 2 == 0) {
      return tile_q6k_pairs<kT>(w_rows, ahead, a, t0, n_valid, y, y_stride);
    } else {
      return tile<kType, kT>(w_rows, ahead, a, t0, n_valid, y, y_stride);
    }
#else
    return tile<kType, kT>(w_rows, ahead, a, t0, n_valid, y, y_stride);
#endif
  }
  if constexpr (kT > 1) {
    tile_of<kType, kT - 1>(n_toks, w_rows, ahead, a, t0, n_valid, y, y_stride);
  }
}

// Tokens per tile.
template <TensorType kType>
constexpr size_t toks_of() {
#if HWY_TARGET == HWY_AVX3_DL
  if (kType == TensorType::kQ4_K) return kToksQ4K;
#endif
  return kToks;
}

// Rows [r_begin, r_end) of y for every token.
template <TensorType kType>
void rows_times_batch(const MatView& w, const Acts& a, size_t n_batch, float* y, size_t r_begin,
                      size_t r_end) {
  constexpr size_t kTileToks = toks_of<kType>();
  const auto* data = static_cast<const uint8_t*>(w.data);
  // Chunks of tokens whose codes (about 256 KiB) stay in L2 while the row tiles pass over them.
  const size_t chunk = std::max(
      kTileToks, (size_t{256} << 10) / std::max<size_t>(1, a.n_sb * kSb) / kTileToks * kTileToks);
  for (size_t c0 = 0; c0 < n_batch; c0 += chunk) {
    const size_t c1 = std::min(n_batch, c0 + chunk);
    for (size_t r = r_begin; r < r_end; r += kRows) {
      const size_t n_valid = std::min(kRows, r_end - r);
      const uint8_t* rows[kRows];
      for (size_t g = 0; g < kRows; ++g) {
        rows[g] = data + (r + std::min(g, n_valid - 1)) * w.row_bytes;
      }
      for (size_t t = c0; t < c1; t += kTileToks) {
        tile_of<kType, kTileToks>(std::min(kTileToks, c1 - t), rows, kRows * w.row_bytes, a, t,
                                  n_valid, y + r, w.n_rows);
      }
    }
  }
}

template <TensorType kType>
void matmul_type(const MatView& w, const float* x, size_t n_batch, float* y, ThreadPool& pool) {
  Acts& a = kquant_detail::thread_acts();
  a.resize(n_batch, w.n_cols / kSb);
  if (!pool.worth_parallel(w.n_rows * w.n_cols * n_batch)) {
    kquant_detail::quantize_tokens(x, w.n_cols, 0, n_batch, a);
    return rows_times_batch<kType>(w, a, n_batch, y, 0, w.n_rows);
  }
  if (n_batch >= 2 * pool.n_threads()) {
    const size_t n_tasks = pool.n_threads();
    pool.run(n_tasks, [&](size_t task) {
      kquant_detail::quantize_tokens(x, w.n_cols, task * n_batch / n_tasks,
                                     (task + 1) * n_batch / n_tasks, a);
    });
  } else {
    kquant_detail::quantize_tokens(x, w.n_cols, 0, n_batch, a);
  }
  // Whole 16-row chunks: a thread's outputs of one token fill whole 64-byte lines of y.
  constexpr size_t kChunk = 16;
  const size_t n_chunks = (w.n_rows + kChunk - 1) / kChunk;
  const size_t n_tasks = std::min(pool.n_threads(), n_chunks);
  const size_t rows_per_task = (n_chunks + n_tasks - 1) / n_tasks * kChunk;
  pool.run(n_tasks, [&](size_t task) HWY_ATTR {
    const size_t begin = std::min(w.n_rows, task * rows_per_task);
    const size_t end = std::min(w.n_rows, begin + rows_per_task);
    if (begin < end) rows_times_batch<kType>(w, a, n_batch, y, begin, end);
  });
}

void matmul_kquant_simd(const MatView& w, const float* x, size_t n_batch, float* y,
                        ThreadPool& pool) {
  switch (w.type) {
    case TensorType::kQ4_K:
      return matmul_type<TensorType::kQ4_K>(w, x, n_batch, y, pool);
    case TensorType::kQ5_K:
      return matmul_type<TensorType::kQ5_K>(w, x, n_batch, y, pool);
    default:
      return matmul_type<TensorType::kQ6_K>(w, x, n_batch, y, pool);
  }
}

const char* kquant_target_name_simd() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace sllm::ops
HWY_AFTER_NAMESPACE();
#if defined(SLLM_QDOT_K_CLANG_VNNI)
#pragma clang attribute pop
#undef SLLM_QDOT_K_CLANG_VNNI
#endif

#if HWY_ONCE
namespace sllm::ops {

HWY_EXPORT(matmul_kquant_simd);
HWY_EXPORT(kquant_target_name_simd);

void matmul_kquant(const MatView& w, const float* x, size_t n_batch, float* y, ThreadPool& pool) {
  if (w.n_rows == 0 || n_batch == 0) return;
  HWY_DYNAMIC_DISPATCH(matmul_kquant_simd)(w, x, n_batch, y, pool);
}

const char* kquant_target_name() { return HWY_DYNAMIC_DISPATCH(kquant_target_name_simd)(); }

}  // namespace sllm::ops
#endif  // HWY_ONCE
