// SIMD kernels of the integer matmul (qdot.h): q8_0 / q4_0 weights times activations quantized
// once per call to 8-bit codes, int32 dot products, f32 scale products, in the exact order that
// qdot.h specifies (so every target equals ref::matmul_quantized bit for bit).
//
// One kernel serves decode and prefill: a tile of kRows weight rows times kToks tokens keeps
// kRows * kToks accumulators in registers, so each weight block is loaded and unpacked once per
// tile of tokens and each activation block once per tile of rows. Decode is the one-token tile;
// a prefill batch is walked in chunks of tokens whose codes stay in L2 while every row tile of a
// thread passes over them. Threads own disjoint chunks of whole rows (16 rows = one 64-byte line of
// y per token, so no two threads write one line), read the weights straight from the mapping.
//
// Targets: AVX3_DL (AVX-512 VNNI): vpdpbusd on two blocks per 512-bit vector; AVX2 and AVX3:
// pmaddubsw + pmaddwd, one block per 256-bit vector; the rest: the scalar reference's dot.
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
// corrections: the last one is zero, so that a two-block load at an odd last block stays inside.
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

  void resize(size_t n_batch, size_t blocks, bool with_corr) {
    n_blocks = blocks;
    q_stride = (blocks + 1) * quant::kBlockElems;
    d_stride = blocks + 1;
    c_stride = with_corr ? (blocks + 1) * 8 : 0;
    if (q.size() < n_batch * q_stride) q.resize(n_batch * q_stride);
    if (d.size() < n_batch * d_stride) d.resize(n_batch * d_stride);
    if (corr.size() < n_batch * c_stride) corr.resize(n_batch * c_stride);
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

HWY_BEFORE_NAMESPACE();
#if HWY_TARGET == HWY_AVX3_DL
// Highway 1.0.3's AVX3_DL target string names avxvnni but not avx512vnni, which its CPU check
// requires; enable it for this target's code (HWY_AFTER_NAMESPACE pops it with the rest).
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vnni"))), apply_to = function)
#define SLLM_QDOT_CLANG_VNNI 1
#else
#pragma GCC target("avx512vnni")
#endif
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
    }
  }
}

#if HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX2

// The last steps of the lane sum (qdot.h): v[8] -> h[4] -> g[2] -> y.
HWY_INLINE float finish8(__m256 v) {
  const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 g = _mm_add_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_add_ss(g, _mm_movehdup_ps(g)));
}

#endif

#if HWY_TARGET == HWY_AVX3_DL

// 16 accumulators per (row, token) = one zmm: lanes 0-7 take even blocks, 8-15 odd blocks.
constexpr size_t kRows = 4;
constexpr size_t kToks = 4;
// How far ahead of a weight row's current block pair its bytes are prefetched.
constexpr size_t kPrefetchBytes = 1024;

// [scale of block 0] x 8, [scale of block 1] x 8.
HWY_INLINE __m512 weight_scales(const uint8_t* block0, const uint8_t* block1) {
  const __m128i h0 = _mm_set1_epi16(static_cast<short>(load_u16(block0)));
  const __m128i h1 = _mm_set1_epi16(static_cast<short>(load_u16(block1)));
  return _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(h0), h1, 1));
}

// Blocks b and b + 1 (kPair) or b alone (its lanes 8-15 are left as they are).
template <TensorType kType, size_t kR, size_t kT, bool kPair>
HWY_INLINE void step(const uint8_t* const* w_rows, const Acts& a, size_t t0, size_t b,
                     __m512 (&acc)[kR][kT]) {
  constexpr size_t kBB = kBlockBytes<kType>;
  const __m512i k80 = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512i xv[kT];
  __m512i xc[kT];
  __m512 dx[kT];
  for (size_t t = 0; t < kT; ++t) {
    xv[t] = _mm512_loadu_si512(a.q.data() + (t0 + t) * a.q_stride + b * quant::kBlockElems);
    if constexpr (kType == TensorType::kQ8_0) {
      xv[t] = _mm512_xor_si512(xv[t], k80);  // code + 128, unsigned for vpdpbusd
    } else {
      xc[t] = _mm512_loadu_si512(a.corr.data() + (t0 + t) * a.c_stride + b * 8);
    }
    const float* d = a.d.data() + (t0 + t) * a.d_stride + b;
    dx[t] = _mm512_insertf32x8(_mm512_set1_ps(d[0]), _mm256_set1_ps(d[1]), 1);
  }
  for (size_t r = 0; r < kR; ++r) {
    const uint8_t* blk0 = w_rows[r] + b * kBB;
    const uint8_t* blk1 = kPair ? blk0 + kBB : blk0;
    // The hardware prefetcher alone leaves a third of one core's bandwidth unused (qdot_bench).
    _mm_prefetch(reinterpret_cast<const char*>(blk0) + kPrefetchBytes, _MM_HINT_T0);
    const __m512 dw = weight_scales(blk0, blk1);
    __m512i w;
    __m512i init = _mm512_setzero_si512();
    if constexpr (kType == TensorType::kQ8_0) {
      w = _mm512_inserti64x4(
          _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk0 + 2))),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk1 + 2)), 1);
      // sum (x + 128) w - 128 sum w = sum x w.
      init = _mm512_sub_epi32(init, _mm512_dpbusd_epi32(init, k80, w));
    } else {
      // 128-bit lanes [codes 0, codes 0, codes 1, codes 1] >> [0, 4, 0, 4] & 15: the nibbles in
      // element order, elements 0-15 then 16-31 of each block.
      const __m256i q0 =
          _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk0 + 2)));
      const __m256i q1 =
          _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk1 + 2)));
      const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
      w = _mm512_and_si512(_mm512_srlv_epi64(q, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0)),
                           _mm512_set1_epi8(0x0F));
    }
    for (size_t t = 0; t < kT; ++t) {
      const __m512i p = kType == TensorType::kQ8_0 ? _mm512_dpbusd_epi32(init, xv[t], w)
                                                   : _mm512_dpbusd_epi32(xc[t], w, xv[t]);
      const __m512 s = _mm512_mul_ps(dw, dx[t]);
      if constexpr (kPair) {
        acc[r][t] = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(p), acc[r][t]);
      } else {
        acc[r][t] = _mm512_mask3_fmadd_ps(s, _mm512_cvtepi32_ps(p), acc[r][t], 0x00FF);
      }
    }
  }
}

template <TensorType kType, size_t kT>
HWY_INLINE void tile(const uint8_t* const* w_rows, const Acts& a, size_t t0, size_t n_valid,
                     float* y, size_t y_stride) {
  __m512 acc[kRows][kT];
  for (auto& row : acc) {
    for (auto& v : row) v = _mm512_setzero_ps();
  }
  size_t b = 0;
  for (; b + 2 <= a.n_blocks; b += 2) step<kType, kRows, kT, true>(w_rows, a, t0, b, acc);
  if (b < a.n_blocks) step<kType, kRows, kT, false>(w_rows, a, t0, b, acc);
  for (size_t r = 0; r < n_valid; ++r) {
    for (size_t t = 0; t < kT; ++t) {
      const __m256 v =
          _mm256_add_ps(_mm512_castps512_ps256(acc[r][t]), _mm512_extractf32x8_ps(acc[r][t], 1));
      y[(t0 + t) * y_stride + r] = finish8(v);
    }
  }
}

#elif HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX2

// 16 accumulators per (row, token) = two ymm: [0] takes even blocks, [1] odd blocks.
constexpr size_t kRows = 2;
constexpr size_t kToks = 2;

// Block b into the accumulators acc[half].
template <TensorType kType, size_t kR, size_t kT>
HWY_INLINE void step(const uint8_t* const* w_rows, const Acts& a, size_t t0, size_t b, size_t half,
                     __m256 (&acc)[2][kR][kT]) {
  constexpr size_t kBB = kBlockBytes<kType>;
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i k0F = _mm256_set1_epi8(0x0F);
  __m256i xv[kT];
  __m256i xc[kT];
  __m256 dx[kT];
  for (size_t t = 0; t < kT; ++t) {
    xv[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.q.data() + (t0 + t) * a.q_stride +
                                                                b * quant::kBlockElems));
    if constexpr (kType == TensorType::kQ4_0) {
      xc[t] = _mm256_loadu_si256(
          reinterpret_cast<const __m256i*>(a.corr.data() + (t0 + t) * a.c_stride + b * 8));
    }
    dx[t] = _mm256_set1_ps(a.d[(t0 + t) * a.d_stride + b]);
  }
  for (size_t r = 0; r < kR; ++r) {
    const uint8_t* blk = w_rows[r] + b * kBB;
    const __m256 dw = _mm256_set1_ps(_cvtsh_ss(load_u16(blk)));
    __m256i w;
    if constexpr (kType == TensorType::kQ8_0) {
      w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    } else {
      const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
      w = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), k0F);
    }
    const __m256i aw = kType == TensorType::kQ8_0 ? _mm256_abs_epi8(w) : w;
    for (size_t t = 0; t < kT; ++t) {
      __m256i p;
      if constexpr (kType == TensorType::kQ8_0) {
        // |w| * (x with w's sign): pairs stay below 2 * 128 * 127, no saturation.
        p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv[t], w)), ones);
      } else {
        p = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(w, xv[t]), ones), xc[t]);
      }
      acc[half][r][t] =
          _mm256_fmadd_ps(_mm256_mul_ps(dw, dx[t]), _mm256_cvtepi32_ps(p), acc[half][r][t]);
    }
  }
}

template <TensorType kType, size_t kT>
HWY_INLINE void tile(const uint8_t* const* w_rows, const Acts& a, size_t t0, size_t n_valid,
                     float* y, size_t y_stride) {
  __m256 acc[2][kRows][kT];
  for (auto& half : acc) {
    for (auto& row : half) {
      for (auto& v : row) v = _mm256_setzero_ps();
    }
  }
  for (size_t b = 0; b < a.n_blocks; ++b) step<kType, kRows, kT>(w_rows, a, t0, b, b % 2, acc);
  for (size_t r = 0; r < n_valid; ++r) {
    for (size_t t = 0; t < kT; ++t) {
      y[(t0 + t) * y_stride + r] = finish8(_mm256_add_ps(acc[0][r][t], acc[1][r][t]));
    }
  }
}

#else

// Other targets: the reference's dot, one (row, token) at a time.
constexpr size_t kRows = 1;
constexpr size_t kToks = 1;

template <TensorType kType, size_t kT>
HWY_INLINE void tile(const uint8_t* const* w_rows, const Acts& a, size_t t0, size_t n_valid,
                     float* y, size_t y_stride) {
  for (size_t r = 0; r < n_valid; ++r) {
    for (size_t t = 0; t < kT; ++t) {
      y[(t0 + t) * y_stride + r] =
          ref::dot_quantized(kType, w_rows[r], a.q.data() + (t0 + t) * a.q_stride,
                             a.d.data() + (t0 + t) * a.d_stride, a.n_blocks);
    }
  }
}

#endif

// tile<kT> for the n_toks <= kT tokens at hand.
template <TensorType kType, size_t kT>
HWY_INLINE void tile_of(size_t n_toks, const uint8_t* const* w_rows, const Acts& a, size_t t0,
                        size_t n_valid, float* y, size_t y_stride) {
  if (n_toks == kT) return tile<kType, kT>(w_rows, a, t0, n_valid, y, y_stride);
  if constexpr (kT > 1) tile_of<kType, kT - 1>(n_toks, w_rows, a, t0, n_valid, y, y_stride);
}

// Rows [r_begin, r_end) of y for every token.
template <TensorType kType>
void rows_times_batch(const MatView& w, const Acts& a, size_t n_batch, float* y, size_t r_begin,
                      size_t r_end) {
  const auto* data = static_cast<const uint8_t*>(w.data);
  // Chunks of tokens whose codes (about 256 KiB) stay in L2 while the row tiles pass over them.
  const size_t chunk = std::max(kToks, (size_t{256} << 10) / a.q_stride / kToks * kToks);
  for (size_t c0 = 0; c0 < n_batch; c0 += chunk) {
    const size_t c1 = std::min(n_batch, c0 + chunk);
    for (size_t r = r_begin; r < r_end; r += kRows) {
      const size_t n_valid = std::min(kRows, r_end - r);
      const uint8_t* rows[kRows];
      for (size_t g = 0; g < kRows; ++g) {
        rows[g] = data + (r + std::min(g, n_valid - 1)) * w.row_bytes;
      }
      for (size_t t = c0; t < c1; t += kToks) {
        tile_of<kType, kToks>(std::min(kToks, c1 - t), rows, a, t, n_valid, y + r, w.n_rows);
      }
    }
  }
}

template <TensorType kType>
void matmul_type(const MatView& w, const float* x, size_t n_batch, float* y, ThreadPool& pool) {
  Acts& a = qdot_detail::thread_acts();
  const bool with_corr = kType == TensorType::kQ4_0;
  a.resize(n_batch, w.n_cols / quant::kBlockElems, with_corr);
  if (!pool.worth_parallel(w.n_rows * w.n_cols * n_batch)) {
    quantize_tokens(x, w.n_cols, 0, n_batch, with_corr, a);
    return rows_times_batch<kType>(w, a, n_batch, y, 0, w.n_rows);
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
    if (begin < end) rows_times_batch<kType>(w, a, n_batch, y, begin, end);
  });
}

void matmul_quantized_simd(const MatView& w, const float* x, size_t n_batch, float* y,
                           ThreadPool& pool) {
  if (w.type == TensorType::kQ8_0) return matmul_type<TensorType::kQ8_0>(w, x, n_batch, y, pool);
  return matmul_type<TensorType::kQ4_0>(w, x, n_batch, y, pool);
}

const char* quantized_target_name_simd() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace sllm::ops
#if defined(SLLM_QDOT_CLANG_VNNI)
#pragma clang attribute pop
#undef SLLM_QDOT_CLANG_VNNI
#endif
HWY_AFTER_NAMESPACE();

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
