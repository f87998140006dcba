// SIMD kernels of the integer matmul (qdot.h): q8_0 / q4_0 weights times activations quantized
// once per call to 8-bit codes, int32 dot products, f32 scale products, in the exact order that
// qdot.h specifies (so every target equals ref::matmul_quantized bit for bit).
//
// One kernel per f32 order (qdot.h) serves decode and prefill: a tile of weight rows times kToks
// tokens keeps its accumulators in registers (lanes order: kRows x kToks 8-lane ones; block-sum
// order: 8 rows in the lanes of one per token, as llama.cpp's repacked q4_0x8 but read straight
// from the mapping), so each weight block is loaded and unpacked once per tile of tokens and each
// activation block once per tile of rows. Decode is the one-token tile;
// a prefill batch is walked in chunks of tokens whose codes stay in L2 while every row tile of a
// thread passes over them. Threads own disjoint chunks of whole rows (16 rows = one 64-byte line of
// y per token, so no two threads write one line), read the weights straight from the mapping.
//
// Targets: AVX3_DL (AVX-512 VNNI): 256-bit vpdpbusd, one block per vector (ggml's lanes are
// those of one block); AVX2 and AVX3: pmaddubsw + pmaddwd; the rest: the scalar reference's dot.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/qdot.h"
#include "kernels/quant.h"
#include "util/tensor_type.h"
#include "util/thread_pool.h"

// Highway 1.0.3 compiles its VNNI target (AVX3_DL) only on request: src/kernels/CMakeLists.txt
// requests it for every kernel file (see there why not for this one alone).
#ifndef HWY_WANT_AVX3_DL
#error "kernels need HWY_WANT_AVX3_DL (src/kernels/CMakeLists.txt)"
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/qdot.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#ifndef SLLM_KERNELS_QDOT_ONCE_
#define SLLM_KERNELS_QDOT_ONCE_
namespace sllm::ops::qdot_detail {

// A batch's quantized activations. Each token has n_blocks + 1 blocks of codes, scales and lane
// corrections: the last one is zero padding.
// csum (q4_0 weights only): per block, -8 * (the sum of its codes), the same for a whole block.
// corr (q4_0 weights only): per block and lane i < 8, -8 * (the sum of codes 4i..4i+3), which turns
// the dot of unsigned nibbles into that of nibbles - 8.
struct Acts {
  size_t n_blocks = 0;
  size_t q_stride = 0;  // codes per token
  size_t d_stride = 0;  // scales per token
  size_t c_stride = 0;  // corrections per token
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int32_t> corr;
  std::vector<int32_t> csum;  // d_stride per token

  void resize(size_t n_batch, size_t blocks, bool with_corr) {
    n_blocks = blocks;
    q_stride = (blocks + 1) * quant::kBlockElems;
    d_stride = blocks + 1;
    c_stride = with_corr ? (blocks + 1) * 8 : 0;
    if (q.size() < n_batch * q_stride) q.resize(n_batch * q_stride);
    if (d.size() < n_batch * d_stride) d.resize(n_batch * d_stride);
    if (corr.size() < n_batch * c_stride) corr.resize(n_batch * c_stride);
    if (with_corr && csum.size() < n_batch * d_stride) csum.resize(n_batch * d_stride);
  }
};

// One buffer per calling thread, kept between calls: a matmul is never re-entered on a thread.
inline Acts& thread_acts() {
  thread_local Acts acts;
  return acts;
}

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

}  // namespace sllm::ops::qdot_detail
#endif  // SLLM_KERNELS_QDOT_ONCE_

#if HWY_TARGET == HWY_AVX3_DL && defined(__clang__)
// Highway 1.0.3's AVX3_DL target string names avxvnni but not avx512vnni, which its CPU check
// requires; enable it for this target's code. clang applies the outermost pushed target
// attribute alone, so there it is Highway's string plus avx512vnni, pushed before Highway's.
#pragma clang attribute push(__attribute__((target(HWY_TARGET_STR ",avx512vnni"))), \
                             apply_to = function)
#define SLLM_QDOT_CLANG_VNNI 1
#endif
HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL && !defined(__clang__)
#pragma GCC target("avx512vnni")
#endif
namespace sllm::ops {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using qdot_detail::Acts;
using qdot_detail::load_u16;

template <TensorType kType>
constexpr size_t kBlockBytes = kType == TensorType::kQ8_0 ? sizeof(quant::BlockQ8_0)
                                                          : sizeof(quant::BlockQ4_0);

// Tokens [t_begin, t_end) of x quantized into a, as ref::quantize_activations.
void quantize_tokens(const float* x, size_t n_cols, size_t t_begin, size_t t_end, bool with_corr,
                     Acts& a) {
  const hn::CappedTag<float, 16> d;  // a lane count that divides 32
  const hn::RebindToSigned<decltype(d)> di;
  const hn::Rebind<int8_t, decltype(d)> di8;
  const size_t n_lanes = hn::Lanes(d);
  constexpr size_t kElems = quant::kBlockElems;
  for (size_t t = t_begin; t < t_end; ++t) {
    int8_t* q = a.q.data() + t * a.q_stride;
    float* scales = a.d.data() + t * a.d_stride;
    for (size_t b = 0; b < a.n_blocks; ++b) {
      const float* xb = x + t * n_cols + b * kElems;
      auto vmax = hn::Zero(d);
      for (size_t j = 0; j < kElems; j += n_lanes) {
        const auto v = hn::LoadU(d, xb + j);
        vmax = hn::Max(vmax, hn::IfThenElseZero(hn::Eq(v, v), hn::Abs(v)));
      }
      const float amax = hn::GetLane(hn::MaxOfLanes(d, vmax));
      scales[b] = quant::f16_to_f32(quant::f32_to_f16(amax / 127.0f));
      const auto id = hn::Set(d, amax != 0.0f ? 127.0f / amax : 0.0f);
      for (size_t j = 0; j < kElems; j += n_lanes) {
        auto v = hn::Mul(hn::LoadU(d, xb + j), id);
        v = hn::IfThenElseZero(hn::Eq(v, v), v);
        v = hn::Min(hn::Max(v, hn::Set(d, -127.0f)), hn::Set(d, 127.0f));
        hn::StoreU(hn::DemoteTo(di8, hn::ConvertTo(di, hn::Round(v))), di8, q + b * kElems + j);
      }
    }
    std::fill_n(q + a.n_blocks * kElems, kElems, int8_t{0});
    scales[a.n_blocks] = 0.0f;
    if (with_corr) {
      int32_t* corr = a.corr.data() + t * a.c_stride;
      for (size_t k = 0; k < a.n_blocks * 8; ++k) {
        corr[k] = -8 * (q[4 * k] + q[4 * k + 1] + q[4 * k + 2] + q[4 * k + 3]);
      }
      std::fill_n(corr + a.n_blocks * 8, 8, 0);
      int32_t* csum = a.csum.data() + t * a.d_stride;
      for (size_t b = 0; b <= a.n_blocks; ++b) {
        csum[b] = 0;
        for (size_t i = 0; i < 8; ++i) csum[b] += corr[8 * b + i];
      }
    }
  }
}

#if HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX2

// Tiles: the lanes order keeps one 8-lane accumulator per (row, token), kRows x kToks of them;
// the block-sum order one 8-row accumulator per token (rows in lanes, as llama.cpp's repacked
// q4_0x8 gemv), kToks of them.
#if HWY_TARGET == HWY_AVX3_DL
constexpr size_t kRows = 4;
constexpr size_t kToks = 4;
// Decode (one token): 8 rows in flight read the weights 30% faster than 4 (q8_0 in qdot_bench,
// 2048 and 5632 rows), where prefill's 4 x 4 tile is 12% faster than 8 x 2.
constexpr size_t kDecodeRows = 8;
#else
constexpr size_t kRows = 2;
constexpr size_t kToks = 2;
constexpr size_t kDecodeRows = kRows;
#endif

// Block b of one weight row as 32 bytes: q8_0 its signed codes, q4_0 its nibbles (0..15) in
// element order.
template <TensorType kType>
HWY_INLINE __m256i weight_codes(const uint8_t* blk) {
  if constexpr (kType == TensorType::kQ8_0) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  } else {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
  }
}

// p[b][0..7] (qdot.h) of one block. q8_0 on AVX3_DL: x the codes + 128 (load_acts) and aw the
// row's -128 * (sum of w) per lane (abs_codes), both made once per tile side, so one vpdpbusd per
// (row, token); q8_0 otherwise: aw = |w| and w, so that |w| * (x with w's sign) = w * x (pairs of
// products stay below 2 * 128 * 127: no saturation); q4_0: aw = w the nibbles and corr the -8
// offset's share.
template <TensorType kType>
HWY_INLINE __m256i dot_lanes(__m256i aw, __m256i w, __m256i x, __m256i corr) {
#if HWY_TARGET == HWY_AVX3_DL
  if constexpr (kType == TensorType::kQ8_0) return _mm256_dpbusd_epi32(aw, x, w);
#endif
  __m256i u;
  __m256i s;
  if constexpr (kType == TensorType::kQ8_0) {
    u = aw;
    s = _mm256_sign_epi8(x, w);
  } else {
    u = w;
    s = x;
  }
#if HWY_TARGET == HWY_AVX3_DL
  return _mm256_dpbusd_epi32(kType == TensorType::kQ8_0 ? _mm256_setzero_si256() : corr, u, s);
#else
  const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
  return kType == TensorType::kQ8_0 ? p : _mm256_add_epi32(p, corr);
#endif
}

template <TensorType kType>
HWY_INLINE __m256i abs_codes(__m256i w) {
#if HWY_TARGET == HWY_AVX3_DL
  if constexpr (kType == TensorType::kQ8_0) {
    const __m256i zero = _mm256_setzero_si256();
    return _mm256_sub_epi32(zero, _mm256_dpbusd_epi32(zero, _mm256_set1_epi8(-128), w));
  }
#endif
  return kType == TensorType::kQ8_0 ? _mm256_abs_epi8(w) : w;
}

// hsum_float_8 of ggml: (lanes i + i + 4) -> (+ i + 2) -> (0 + 1).
HWY_INLINE float finish8(__m256 v) {
  const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 g = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(g, _mm_movehdup_ps(g)));
}

// The activation side of block b for kT tokens from t0: codes, q4_0 corrections, scales.
template <TensorType kType, size_t kT>
HWY_INLINE void load_acts(const Acts& a, size_t t0, size_t b, __m256i (&xv)[kT], __m256i (&xc)[kT],
                          __m256 (&dx)[kT]) {
  for (size_t t = 0; t < kT; ++t) {
    xv[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q.data() + (t0 + t) * a.q_stride +
                                                                b * quant::kBlockElems));
#if HWY_TARGET == HWY_AVX3_DL
    if constexpr (kType == TensorType::kQ8_0) {
      xv[t] = _mm256_xor_si256(xv[t], _mm256_set1_epi8(-128));  // code + 128, unsigned
    }
#endif
    xc[t] = kType == TensorType::kQ4_0 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                                             a.corr.data() + (t0 + t) * a.c_stride + b * 8))
                                       : _mm256_setzero_si256();
    dx[t] = _mm256_set1_ps(a.d[(t0 + t) * a.d_stride + b]);
  }
}

// Eight f16 values in a vector (spelled out: the lane index of an insert must be a constant,
// which an unoptimized build's loop counter is not).
HWY_INLINE __m128i f16x8(const short* h) {
  __m128i v = _mm_cvtsi32_si128(static_cast<uint16_t>(h[0]));
  v = _mm_insert_epi16(v, h[1], 1);
  v = _mm_insert_epi16(v, h[2], 2);
  v = _mm_insert_epi16(v, h[3], 3);
  v = _mm_insert_epi16(v, h[4], 4);
  v = _mm_insert_epi16(v, h[5], 5);
  v = _mm_insert_epi16(v, h[6], 6);
  return _mm_insert_epi16(v, h[7], 7);
}

// The hardware prefetcher alone leaves a third of one core's bandwidth unused (qdot_bench). A
// tile's rows are adjacent, so it reads one contiguous span: block b of a row is prefetched for
// the next tile (ahead bytes on), which is where the sequential stream goes next.
// q8_0 prefetches every block, q4_0 every second one: prefetched addresses at most 64 bytes apart,
// so no line of the span is left out. Measured in qdot_bench's decode (one thread): q8_0 with every
// second 34-byte block (one line in 17 never prefetched) read 22 GB/s, with every block 29-30;
// q4_0's decode is compute-bound, and every block or every third cost it 15% against every second.
template <size_t kBB>
HWY_INLINE void prefetch_block(const uint8_t* blk, size_t b, size_t ahead) {
  constexpr size_t kEvery = kBB > 32 ? 1 : 2;
  static_assert(kBB * kEvery <= 64, "prefetched addresses at most one line apart");
  if (b % kEvery == 0) _mm_prefetch(reinterpret_cast<const char*>(blk) + ahead, _MM_HINT_T0);
}

// Lanes order: rows w_rows[0, kR) (the first n_valid distinct) times tokens [t0, t0 + kT).
template <TensorType kType, size_t kT, size_t kR = kRows>
HWY_INLINE void tile(const uint8_t* const* w_rows, size_t row_bytes, const Acts& a, size_t t0,
                     size_t n_valid, float* y, size_t y_stride) {
  constexpr size_t kBB = kBlockBytes<kType>;
  __m256 acc[kR][kT];
  for (auto& row : acc) {
    for (auto& v : row) v = _mm256_setzero_ps();
  }
  for (size_t b = 0; b < a.n_blocks; ++b) {
    __m256i xv[kT];
    __m256i xc[kT];
    __m256 dx[kT];
    load_acts<kType, kT>(a, t0, b, xv, xc, dx);
    for (size_t r = 0; r < kR; ++r) {
      const uint8_t* blk = w_rows[r] + b * kBB;
      prefetch_block<kBB>(blk, b, kR * row_bytes);
      const __m256 dw = _mm256_set1_ps(_cvtsh_ss(load_u16(blk)));
      const __m256i w = weight_codes<kType>(blk);
      const __m256i aw = abs_codes<kType>(w);
      for (size_t t = 0; t < kT; ++t) {
        const __m256i p = dot_lanes<kType>(aw, w, xv[t], xc[t]);
        acc[r][t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, dx[t]), _mm256_cvtepi32_ps(p), acc[r][t]);
      }
    }
  }
  for (size_t r = 0; r < n_valid; ++r) {
    for (size_t t = 0; t < kT; ++t) y[(t0 + t) * y_stride + r] = finish8(acc[r][t]);
  }
}

#if HWY_TARGET == HWY_AVX3_DL
// q8_0 lanes order for an even kT: two tokens per 512-bit vector (lanes 0-7 token 2i, 8-15 token
// 2i + 1) against the row's block in both halves, so each vpdpbusd / f32 step does two
// (row, token) pairs; every lane takes the same steps as tile's, so the bits are the same.
template <size_t kT, size_t kR = kRows>
HWY_INLINE void tile_pairs(const uint8_t* const* w_rows, size_t row_bytes, const Acts& a, size_t t0,
                           size_t n_valid, float* y, size_t y_stride) {
  constexpr size_t kBB = kBlockBytes<TensorType::kQ8_0>;
  constexpr size_t kP = kT / 2;
  __m512 acc[kR][kP];
  for (auto& row : acc) {
    for (auto& v : row) v = _mm512_setzero_ps();
  }
  const __m512i k80 = _mm512_set1_epi8(-128);
  for (size_t b = 0; b < a.n_blocks; ++b) {
    __m512i xv[kP];
    __m512 dx[kP];
    for (size_t i = 0; i < kP; ++i) {
      const size_t ta = t0 + 2 * i;
      const auto codes = [&](size_t t) {
        return _mm256_loadu_si256(
            reinterpret_cast<const __m256i*>(a.q.data() + t * a.q_stride + b * quant::kBlockElems));
      };
      xv[i] = _mm512_xor_si512(
          _mm512_inserti64x4(_mm512_castsi256_si512(codes(ta)), codes(ta + 1), 1), k80);
      dx[i] = _mm512_insertf32x8(_mm512_set1_ps(a.d[ta * a.d_stride + b]),
                                 _mm256_set1_ps(a.d[(ta + 1) * a.d_stride + b]), 1);
    }
    for (size_t r = 0; r < kR; ++r) {
      const uint8_t* blk = w_rows[r] + b * kBB;
      prefetch_block<kBB>(blk, b, kR * row_bytes);
      const __m512 dw = _mm512_set1_ps(_cvtsh_ss(load_u16(blk)));
      const __m512i w =
          _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2)));
      // -128 * (the sum of w) per lane: with x + 128 unsigned, vpdpbusd gives the dot of w and x.
      const __m512i zero = _mm512_setzero_si512();
      const __m512i aw = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, k80, w));
      for (size_t i = 0; i < kP; ++i) {
        const __m512i p = _mm512_dpbusd_epi32(aw, xv[i], w);
        acc[r][i] = _mm512_fmadd_ps(_mm512_mul_ps(dw, dx[i]), _mm512_cvtepi32_ps(p), acc[r][i]);
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
#endif

// Block-sum order (q4_0): the 8 rows from row0 (row_bytes apart) times tokens [t0, t0 + kT).
// The rows' code bytes are transposed so that lane r holds 4 bytes of row r: then each vpdpbusd
// (pmaddubsw + pmaddwd) adds 4 products of every row into its own lane against 4 broadcast
// activation codes, and after the 8 steps of a block lane r is row r's integer dot, with no
// horizontal sum (llama.cpp repacks the weights at load for this; we shuffle them in registers).
template <size_t kT>
HWY_INLINE void tile8(const uint8_t* row0, size_t row_bytes, const Acts& a, size_t t0, float* y,
                      size_t y_stride) {
  constexpr size_t kBB = kBlockBytes<TensorType::kQ4_0>;
  const __m256i k0F = _mm256_set1_epi8(0x0F);
  __m256 acc[kT];
  for (auto& v : acc) v = _mm256_setzero_ps();
  for (size_t b = 0; b < a.n_blocks; ++b) {
    const uint8_t* blk = row0 + b * kBB;
    __m256i pairs[4];  // rows r and r + 4 in the two halves
    short h[8];        // the rows' f16 scales
    for (size_t r = 0; r < 4; ++r) {
      const uint8_t* lo = blk + r * row_bytes;
      const uint8_t* hi = blk + (r + 4) * row_bytes;
      prefetch_block<kBB>(lo, b, 8 * row_bytes);
      prefetch_block<kBB>(hi, b, 8 * row_bytes);
      pairs[r] = _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(hi + 2)),
                                  _mm_loadu_si128(reinterpret_cast<const __m128i*>(lo + 2)));
      h[r] = static_cast<short>(load_u16(lo));
      h[r + 4] = static_cast<short>(load_u16(hi));
    }
    const __m256 dw = _mm256_cvtph_ps(f16x8(h));
    const __m256i t01lo = _mm256_unpacklo_epi32(pairs[0], pairs[1]);
    const __m256i t01hi = _mm256_unpackhi_epi32(pairs[0], pairs[1]);
    const __m256i t23lo = _mm256_unpacklo_epi32(pairs[2], pairs[3]);
    const __m256i t23hi = _mm256_unpackhi_epi32(pairs[2], pairs[3]);
    // v[j], lane r: bytes 4j..4j+3 of row r, i.e. elements 4j.. (low nibbles) and 16 + 4j..
    // (high nibbles).
    const __m256i v[4] = {_mm256_unpacklo_epi64(t01lo, t23lo), _mm256_unpackhi_epi64(t01lo, t23lo),
                          _mm256_unpacklo_epi64(t01hi, t23hi), _mm256_unpackhi_epi64(t01hi, t23hi)};
    __m256i nib[8];
    for (size_t j = 0; j < 4; ++j) {
      nib[j] = _mm256_and_si256(v[j], k0F);
      nib[j + 4] = _mm256_and_si256(_mm256_srli_epi16(v[j], 4), k0F);
    }
    for (size_t t = 0; t < kT; ++t) {
      const int8_t* x = a.q.data() + (t0 + t) * a.q_stride + b * quant::kBlockElems;
      __m256i p = _mm256_set1_epi32(a.csum[(t0 + t) * a.d_stride + b]);
      for (size_t j = 0; j < 8; ++j) {
        int32_t x4;
        std::memcpy(&x4, x + 4 * j, sizeof(x4));
#if HWY_TARGET == HWY_AVX3_DL
        p = _mm256_dpbusd_epi32(p, nib[j], _mm256_set1_epi32(x4));
#else
        p = _mm256_add_epi32(p,
                             _mm256_madd_epi16(_mm256_maddubs_epi16(nib[j], _mm256_set1_epi32(x4)),
                                               _mm256_set1_epi16(1)));
#endif
      }
      const __m256 dx = _mm256_set1_ps(a.d[(t0 + t) * a.d_stride + b]);
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw, dx), acc[t]);
    }
  }
  for (size_t t = 0; t < kT; ++t) _mm256_storeu_ps(y + (t0 + t) * y_stride, acc[t]);
}

#if HWY_TARGET == HWY_AVX3_DL
// Tokens per 16-row tile: 8 nibble vectors and kToks16 accumulators stay in the 32 registers.
constexpr size_t kToks16 = 8;

// tile8 on 16 rows in the lanes of 512-bit vectors (quarter q of a vector: rows 4q..4q+3), so
// each weight block's shuffles serve twice the rows and each vpdpbusd does 64 products.
template <size_t kT>
HWY_INLINE void tile16(const uint8_t* row0, size_t row_bytes, const Acts& a, size_t t0, float* y,
                       size_t y_stride) {
  constexpr size_t kBB = kBlockBytes<TensorType::kQ4_0>;
  const __m512i k0F = _mm512_set1_epi8(0x0F);
  __m512 acc[kT];
  for (auto& v : acc) v = _mm512_setzero_ps();
  for (size_t b = 0; b < a.n_blocks; ++b) {
    const uint8_t* blk = row0 + b * kBB;
    __m512i quads[4];  // rows r, r + 4, r + 8, r + 12 in the four quarters
    short h[16];       // the rows' f16 scales
    for (size_t r = 0; r < 4; ++r) {
      const uint8_t* q[4];
      for (size_t k = 0; k < 4; ++k) {
        q[k] = blk + (r + 4 * k) * row_bytes;
        prefetch_block<kBB>(q[k], b, 16 * row_bytes);
      }
      const auto load = [](const uint8_t* p) {
        return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
      };
      quads[r] = _mm512_inserti32x4(
          _mm512_inserti32x4(_mm512_inserti32x4(_mm512_castsi128_si512(load(q[0])), load(q[1]), 1),
                             load(q[2]), 2),
          load(q[3]), 3);
      for (size_t k = 0; k < 4; ++k) h[r + 4 * k] = static_cast<short>(load_u16(q[k]));
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_set_m128i(f16x8(h + 8), f16x8(h)));
    const __m512i t01lo = _mm512_unpacklo_epi32(quads[0], quads[1]);
    const __m512i t01hi = _mm512_unpackhi_epi32(quads[0], quads[1]);
    const __m512i t23lo = _mm512_unpacklo_epi32(quads[2], quads[3]);
    const __m512i t23hi = _mm512_unpackhi_epi32(quads[2], quads[3]);
    const __m512i v[4] = {_mm512_unpacklo_epi64(t01lo, t23lo), _mm512_unpackhi_epi64(t01lo, t23lo),
                          _mm512_unpacklo_epi64(t01hi, t23hi), _mm512_unpackhi_epi64(t01hi, t23hi)};
    __m512i nib[8];
    for (size_t j = 0; j < 4; ++j) {
      nib[j] = _mm512_and_si512(v[j], k0F);
      nib[j + 4] = _mm512_and_si512(_mm512_srli_epi16(v[j], 4), k0F);
    }
    for (size_t t = 0; t < kT; ++t) {
      const int8_t* x = a.q.data() + (t0 + t) * a.q_stride + b * quant::kBlockElems;
      __m512i p = _mm512_set1_epi32(a.csum[(t0 + t) * a.d_stride + b]);
      for (size_t j = 0; j < 8; ++j) {
        int32_t x4;
        std::memcpy(&x4, x + 4 * j, sizeof(x4));
        p = _mm512_dpbusd_epi32(p, nib[j], _mm512_set1_epi32(x4));
      }
      const __m512 dx = _mm512_set1_ps(a.d[(t0 + t) * a.d_stride + b]);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, dx), acc[t]);
    }
  }
  for (size_t t = 0; t < kT; ++t) _mm512_storeu_ps(y + (t0 + t) * y_stride, acc[t]);
}
#else
constexpr size_t kToks16 = 1;

template <size_t kT>
HWY_INLINE void tile16(const uint8_t* row0, size_t row_bytes, const Acts& a, size_t t0, float* y,
                       size_t y_stride);
#endif

#else

// Other targets: the reference's dot, one (row, token) at a time.
constexpr size_t kRows = 1;
constexpr size_t kToks = 1;
constexpr size_t kDecodeRows = kRows;

template <TensorType kType, size_t kT, size_t kR = kRows>
HWY_INLINE void tile(const uint8_t* const* w_rows, size_t /*row_bytes*/, const Acts& a, size_t t0,
                     size_t n_valid, float* y, size_t y_stride) {
  for (size_t r = 0; r < n_valid; ++r) {
    for (size_t t = 0; t < kT; ++t) {
      y[(t0 + t) * y_stride + r] =
          ref::dot_quantized(kType, false, w_rows[r], a.q.data() + (t0 + t) * a.q_stride,
                             a.d.data() + (t0 + t) * a.d_stride, a.n_blocks);
    }
  }
}

template <size_t kT>
HWY_INLINE void tile8(const uint8_t* row0, size_t row_bytes, const Acts& a, size_t t0, float* y,
                      size_t y_stride) {
  for (size_t r = 0; r < 8; ++r) {
    for (size_t t = 0; t < kT; ++t) {
      y[(t0 + t) * y_stride + r] = ref::dot_quantized(
          TensorType::kQ4_0, true, row0 + r * row_bytes, a.q.data() + (t0 + t) * a.q_stride,
          a.d.data() + (t0 + t) * a.d_stride, a.n_blocks);
    }
  }
}

constexpr size_t kToks16 = 1;

template <size_t kT>
HWY_INLINE void tile16(const uint8_t* row0, size_t row_bytes, const Acts& a, size_t t0, float* y,
                       size_t y_stride);

#endif

// tile<kT> / tile8<kT> / tile16<kT> for the n_toks <= kT tokens at hand.
template <TensorType kType, size_t kT>
HWY_INLINE void tile_of(size_t n_toks, const uint8_t* const* w_rows, size_t row_bytes,
                        const Acts& a, size_t t0, size_t n_valid, float* y, size_t y_stride) {
  if (n_toks == kT) {
#if HWY_TARGET == HWY_AVX3_DL
    if constexpr (kType == TensorType::kQ8_0 && kT % 2 == 0) {
      return tile_pairs<kT>(w_rows, row_bytes, a, t0, n_valid, y, y_stride);
    } else {
      return tile<kType, kT>(w_rows, row_bytes, a, t0, n_valid, y, y_stride);
    }
#else
    return tile<kType, kT>(w_rows, row_bytes, a, t0, n_valid, y, y_stride);
#endif
  }
  if constexpr (kT > 1) {
    tile_of<kType, kT - 1>(n_toks, w_rows, row_bytes, a, t0, n_valid, y, y_stride);
  }
}

template <size_t kT>
HWY_INLINE void tile16_of(size_t n_toks, const uint8_t* row0, size_t row_bytes, const Acts& a,
                          size_t t0, float* y, size_t y_stride) {
  if (n_toks == kT) return tile16<kT>(row0, row_bytes, a, t0, y, y_stride);
  if constexpr (kT > 1) tile16_of<kT - 1>(n_toks, row0, row_bytes, a, t0, y, y_stride);
}

template <size_t kT>
HWY_INLINE void tile8_of(size_t n_toks, const uint8_t* row0, size_t row_bytes, const Acts& a,
                         size_t t0, float* y, size_t y_stride) {
  if (n_toks == kT) return tile8<kT>(row0, row_bytes, a, t0, y, y_stride);
  if constexpr (kT > 1) tile8_of<kT - 1>(n_toks, row0, row_bytes, a, t0, y, y_stride);
}

// Rows [r_begin, r_end) of y for every token; kSums: the block-sum order (r_begin and r_end
// multiples of 8).
template <TensorType kType, bool kSums>
void rows_times_batch(const MatView& w, const Acts& a, size_t n_batch, float* y, size_t r_begin,
                      size_t r_end) {
  const auto* data = static_cast<const uint8_t*>(w.data);
  // Chunks of tokens whose codes (about 256 KiB) stay in L2 while the row tiles pass over them.
  const size_t chunk = std::max(kToks, (size_t{256} << 10) / a.q_stride / kToks * kToks);
  for (size_t c0 = 0; c0 < n_batch; c0 += chunk) {
    const size_t c1 = std::min(n_batch, c0 + chunk);
    if constexpr (kSums) {
      size_t r = r_begin;
      if constexpr (kToks16 > 1) {  // AVX3_DL: 16 rows at a time while there are
        for (; r + 16 <= r_end; r += 16) {
          for (size_t t = c0; t < c1; t += kToks16) {
            tile16_of<kToks16>(std::min(kToks16, c1 - t), data + r * w.row_bytes, w.row_bytes, a, t,
                               y + r, w.n_rows);
          }
        }
      }
      for (; r < r_end; r += 8) {
        for (size_t t = c0; t < c1; t += kToks) {
          tile8_of<kToks>(std::min(kToks, c1 - t), data + r * w.row_bytes, w.row_bytes, a, t, y + r,
                          w.n_rows);
        }
      }
    } else if (kDecodeRows != kRows && c1 - c0 == 1) {
      for (size_t r = r_begin; r < r_end; r += kDecodeRows) {
        const size_t n_valid = std::min(kDecodeRows, r_end - r);
        const uint8_t* rows[kDecodeRows];
        for (size_t g = 0; g < kDecodeRows; ++g) {
          rows[g] = data + (r + std::min(g, n_valid - 1)) * w.row_bytes;
        }
        tile<kType, 1, kDecodeRows>(rows, w.row_bytes, a, c0, n_valid, y + r, w.n_rows);
      }
    } else {
      for (size_t r = r_begin; r < r_end; r += kRows) {
        const size_t n_valid = std::min(kRows, r_end - r);
        const uint8_t* rows[kRows];
        for (size_t g = 0; g < kRows; ++g) {
          rows[g] = data + (r + std::min(g, n_valid - 1)) * w.row_bytes;
        }
        for (size_t t = c0; t < c1; t += kToks) {
          tile_of<kType, kToks>(std::min(kToks, c1 - t), rows, w.row_bytes, a, t, n_valid, y + r,
                                w.n_rows);
        }
      }
    }
  }
}

template <TensorType kType, bool kSums>
void matmul_type(const MatView& w, const float* x, size_t n_batch, float* y, ThreadPool& pool) {
  Acts& a = qdot_detail::thread_acts();
  const bool with_corr = kType == TensorType::kQ4_0;
  a.resize(n_batch, w.n_cols / quant::kBlockElems, with_corr);
  if (!pool.worth_parallel(w.n_rows * w.n_cols * n_batch)) {
    quantize_tokens(x, w.n_cols, 0, n_batch, with_corr, a);
    return rows_times_batch<kType, kSums>(w, a, n_batch, y, 0, w.n_rows);
  }
  if (n_batch >= 2 * pool.n_threads()) {
    const size_t n_tasks = pool.n_threads();
    pool.run(n_tasks, [&](size_t task) HWY_ATTR {
      quantize_tokens(x, w.n_cols, task * n_batch / n_tasks, (task + 1) * n_batch / n_tasks,
                      with_corr, a);
    });
  } else {
    quantize_tokens(x, w.n_cols, 0, n_batch, with_corr, a);
  }
  // Whole 16-row chunks: a thread's outputs of one token fill whole 64-byte lines of y.
  constexpr size_t kChunk = 16;
  const size_t n_chunks = (w.n_rows + kChunk - 1) / kChunk;
  const size_t n_tasks = std::min(pool.n_threads(), n_chunks);
  const size_t rows_per_task = (n_chunks + n_tasks - 1) / n_tasks * kChunk;
  pool.run(n_tasks, [&](size_t task) HWY_ATTR {
    const size_t begin = std::min(w.n_rows, task * rows_per_task);
    const size_t end = std::min(w.n_rows, begin + rows_per_task);
    if (begin < end) rows_times_batch<kType, kSums>(w, a, n_batch, y, begin, end);
  });
}

void matmul_quantized_simd(const MatView& w, const float* x, size_t n_batch, float* y,
                           ThreadPool& pool) {
  if (w.type == TensorType::kQ8_0) {
    return matmul_type<TensorType::kQ8_0, false>(w, x, n_batch, y, pool);
  }
  if (block_sum_order(w.type, w.n_rows)) {
    return matmul_type<TensorType::kQ4_0, true>(w, x, n_batch, y, pool);
  }
  return matmul_type<TensorType::kQ4_0, false>(w, x, n_batch, y, pool);
}

const char* quantized_target_name_simd() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace sllm::ops
HWY_AFTER_NAMESPACE();
#if defined(SLLM_QDOT_CLANG_VNNI)
#pragma clang attribute pop
#undef SLLM_QDOT_CLANG_VNNI
#endif

#if HWY_ONCE
namespace sllm::ops {

HWY_EXPORT(matmul_quantized_simd);
HWY_EXPORT(quantized_target_name_simd);

void matmul_quantized(const MatView& w, const float* x, size_t n_batch, float* y,
                      ThreadPool& pool) {
  if (w.n_rows == 0 || n_batch == 0) return;
  HWY_DYNAMIC_DISPATCH(matmul_quantized_simd)(w, x, n_batch, y, pool);
}

const char* quantized_target_name() { return HWY_DYNAMIC_DISPATCH(quantized_target_name_simd)(); }

}  // namespace sllm::ops
#endif  // HWY_ONCE
