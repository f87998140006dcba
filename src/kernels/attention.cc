// SIMD kernels of ops.h that read and write KV cache rows: attention over the runs of a cache
// (the inner loop of decoding), and the single-row dot_kv, axpy_kv and store_kv.
//
// Highway's foreach_target.h compiles this file once per target; the public functions at the
// bottom pick the best target the CPU supports, once per call, through HWY_DYNAMIC_DISPATCH. The
// f16 load and store, the transposed row sums and the exp pieces are shared with the other kernel
// files through ops-inl.h. The single-row ops live here, next to attention, because they read the
// same row layout (f32 or f16) and attention replaced a per-row loop of them.
#include "kernels/ops.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

#include "hwy/cache_control.h"
#include "kernels/quant.h"
#include "util/tensor_type.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/attention.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// After foreach_target.h: these are re-included for each target.
#include "hwy/highway.h"
#include "kernels/ops-inl.h"

HWY_BEFORE_NAMESPACE();
namespace sllm::ops {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ------------------------------------------------------------------------------------------------
// KV cache rows

template <TensorType kType>
float dot_dense(const float* a, const uint8_t* k, size_t n) {
  const DF d;
  const size_t n_lanes = hn::Lanes(d);
  auto acc = hn::Zero(d);
  size_t i = 0;
  for (; i + n_lanes <= n; i += n_lanes) {
    acc = hn::MulAdd(hn::LoadU(d, a + i), load_dense<kType>(d, k, i), acc);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, acc));
  for (; i < n; ++i) sum += a[i] * dense_at<kType>(k, i);
  return sum;
}

float dot_kv_simd(const float* a, const void* k, TensorType kv_type, size_t n) {
  const auto* in = static_cast<const uint8_t*>(k);
  return kv_type == TensorType::kF16 ? dot_dense<TensorType::kF16>(a, in, n)
                                     : dot_dense<TensorType::kF32>(a, in, n);
}

template <TensorType kType>
void axpy_dense(float a, const uint8_t* v, float* y, size_t n) {
  const DF d;
  const size_t n_lanes = hn::Lanes(d);
  const auto va = hn::Set(d, a);
  size_t i = 0;
  for (; i + n_lanes <= n; i += n_lanes) {
    hn::StoreU(hn::MulAdd(va, load_dense<kType>(d, v, i), hn::LoadU(d, y + i)), d, y + i);
  }
  for (; i < n; ++i) y[i] += a * dense_at<kType>(v, i);
}

void axpy_kv_simd(float a, const void* v, TensorType kv_type, float* y, size_t n) {
  const auto* in = static_cast<const uint8_t*>(v);
  if (kv_type == TensorType::kF16) {
    axpy_dense<TensorType::kF16>(a, in, y, n);
  } else {
    axpy_dense<TensorType::kF32>(a, in, y, n);
  }
}

void store_kv_simd(const float* src, void* dst, TensorType kv_type, size_t n) {
  if (kv_type == TensorType::kF32) {
    if (n > 0) std::memcpy(dst, src, n * sizeof(float));
    return;
  }
  const DF d;
  const size_t n_lanes = hn::Lanes(d);
  auto* out = static_cast<uint16_t*>(dst);
  size_t i = 0;
  for (; i + n_lanes <= n; i += n_lanes) store_f16(d, hn::LoadU(d, src + i), out + i);
  for (; i < n; ++i) out[i] = quant::f32_to_f16(src[i]);
}

// ------------------------------------------------------------------------------------------------
// Attention
//
// Once the cache holds a few hundred tokens, decoding spends its time here: per token and head a
// dot and an axpy for every cached row, with rows as short as 8 floats (stories260K). One
// dispatched call per row cost more than its arithmetic, and a 16-lane vector half-used by an
// 8-float row fell back to scalar code. So a head is one call over its runs of rows, with vectors
// no wider than a row, and each row's arithmetic is fixed by its index alone (not by its run).

// Elements [col, col + n_valid) of a row, n_valid < Lanes, zero-padded to a vector.
template <TensorType kType, class D>
HWY_INLINE hn::Vec<D> load_kv_tail(D d, const uint8_t* HWY_RESTRICT row, size_t col,
                                   size_t n_valid) {
  HWY_ALIGN float buf[HWY_LANES(float)] = {};
  for (size_t j = 0; j < n_valid; ++j) buf[j] = dense_at<kType>(row, col + j);
  return hn::Load(d, buf);
}

// Asks for rows [first, first + n) of a run's K or V rows (the head's `bytes` of each) ahead of
// their use. A KV head's rows are contiguous in the cache, but the hardware prefetchers stop at
// 4 KiB page ends (16 rows of a 64-float head): with these hints a 4096-row cache, read from
// memory, attends 10-25% faster (kernels_bench's layers:22 cases).
HWY_INLINE void prefetch_rows(const uint8_t* base, size_t row_bytes, size_t first, size_t n,
                              size_t bytes) {
  for (size_t r = first; r < first + n; ++r) {
    const uint8_t* row = base + r * row_bytes;
    for (size_t b = 0; b < bytes; b += 64) hwy::Prefetch(row + b);
  }
}

// Lane j of q . k for one row: the products of elements j, j + L, j + 2L, ... added in order.
// kOneVector: head_dim == Lanes, the row is one vector (and q_tail is all of q).
template <TensorType kType, bool kOneVector, class D>
HWY_INLINE hn::Vec<D> dot_lanes(D d, const float* HWY_RESTRICT q, hn::Vec<D> q_tail,
                                const uint8_t* HWY_RESTRICT k, size_t head_dim) {
  if constexpr (kOneVector) return hn::Mul(q_tail, load_dense<kType>(d, k, 0));
  const size_t n_lanes = hn::Lanes(d);
  auto acc = hn::Zero(d);
  size_t i = 0;
  for (; i + n_lanes <= head_dim; i += n_lanes) {
    acc = hn::MulAdd(hn::LoadU(d, q + i), load_dense<kType>(d, k, i), acc);
  }
  if (i < head_dim) acc = hn::MulAdd(q_tail, load_kv_tail<kType>(d, k, i, head_dim - i), acc);
  return acc;
}

// scores[h * stride + r] = scale * (q_h . key r) for the rows r of one run and its query heads h.
// Rows go in groups, and every head of the group is scored while the group's keys are in L1.
template <TensorType kType, bool kOneVector, class D>
HWY_INLINE void score_run(D d, const KvLayout& layout, const KvRun& run, size_t n_heads,
                          size_t stride, float scale, float* HWY_RESTRICT scores) {
  const size_t head_dim = layout.head_dim;
  const size_t n_full = kOneVector ? 0 : head_dim / hn::Lanes(d) * hn::Lanes(d);
  const auto* keys = static_cast<const uint8_t*>(run.keys);
  const size_t n_rows = run.n_rows;
  HWY_ALIGN float q_pad[HWY_LANES(float)] = {};
  // q_h's elements from n_full on, zero-padded (all of q_h when a row is one vector).
  const auto q_tail = [&](const float* q) HWY_ATTR {
    if (kOneVector) return hn::LoadU(d, q);
    if (n_full == head_dim) return hn::Zero(d);  // unused
    std::copy(q + n_full, q + head_dim, q_pad);
    return hn::Load(d, q_pad);
  };
#if HWY_TARGET == HWY_SCALAR || HWY_HAVE_SCALABLE
  for (size_t h = 0; h < n_heads; ++h) {
    const float* q = run.q + h * head_dim;
    const auto q_rest = q_tail(q);
    for (size_t r = 0; r < n_rows; ++r) {
      const auto lanes =
          dot_lanes<kType, kOneVector>(d, q, q_rest, keys + r * layout.row_bytes, head_dim);
      scores[h * stride + r] = hn::GetLane(hn::SumOfLanes(d, lanes)) * scale;
    }
  }
#else
  constexpr size_t kGroup = hn::MaxLanes(D()) >= 8 ? 8 : 4;
  const hn::CappedTag<float, kGroup> dg;
  const auto vscale = hn::Set(dg, scale);
  constexpr size_t kAheadRows = 32;  // about a memory latency of scoring ahead
  const size_t head_bytes = head_dim * (kType == TensorType::kF16 ? 2 : 4);
  for (size_t r = 0; r < n_rows; r += kGroup) {
    const size_t n_valid = std::min(kGroup, n_rows - r);
    if (r + kAheadRows < n_rows) {
      prefetch_rows(keys, layout.row_bytes, r + kAheadRows,
                    std::min(kGroup, n_rows - r - kAheadRows), head_bytes);
    }
    for (size_t h = 0; h < n_heads; ++h) {
      const float* q = run.q + h * head_dim;
      const auto q_rest = q_tail(q);
      // The group's rows side by side, chunk by chunk: kGroup independent FMA chains instead of
      // one row's chain at a time waiting out the FMA latency (each row's lanes still see the
      // products in dot_lanes' order, so the bits are dot_lanes'). A partial group is padded
      // with zero rows.
      hn::Vec<D> acc[kGroup];
      const auto chunks = [&](auto n_rows_const) HWY_ATTR {
        constexpr size_t kRows = decltype(n_rows_const)::value;
        const size_t n = kRows > 0 ? kRows : n_valid;
        const uint8_t* k0 = keys + r * layout.row_bytes;
        for (size_t j = 0; j < kGroup; ++j) acc[j] = hn::Zero(d);
        if constexpr (kOneVector) {
          for (size_t j = 0; j < n; ++j) {
            acc[j] = hn::Mul(q_rest, load_dense<kType>(d, k0 + j * layout.row_bytes, 0));
          }
          return;
        }
        const size_t n_lanes = hn::Lanes(d);
        size_t i = 0;
        for (; i + n_lanes <= head_dim; i += n_lanes) {
          const auto qi = hn::LoadU(d, q + i);
          for (size_t j = 0; j < n; ++j) {
            acc[j] = hn::MulAdd(qi, load_dense<kType>(d, k0 + j * layout.row_bytes, i), acc[j]);
          }
        }
        if (i < head_dim) {
          for (size_t j = 0; j < n; ++j) {
            acc[j] = hn::MulAdd(
                q_rest, load_kv_tail<kType>(d, k0 + j * layout.row_bytes, i, head_dim - i), acc[j]);
          }
        }
      };
      if (n_valid == kGroup) {
        chunks(std::integral_constant<size_t, kGroup>());
      } else {
        chunks(std::integral_constant<size_t, 0>());
      }
      hn::Vec<decltype(dg)> sums;
      if constexpr (kGroup == 8) {
        sums = sum_lanes_x8(d, acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7]);
      } else {
        sums = sum_lanes_x4(d, acc[0], acc[1], acc[2], acc[3]);
      }
      float* out = scores + h * stride + r;
      if (n_valid == kGroup) {
        hn::StoreU(hn::Mul(sums, vscale), dg, out);
      } else {
        HWY_ALIGN float last[kGroup];
        hn::Store(hn::Mul(sums, vscale), dg, last);
        std::copy(last, last + n_valid, out);
      }
    }
  }
#endif
}

// Rows [lo, hi) of sum_n w_h[n] * v_n[col, col + n_valid) for one or two query heads h (kTwo),
// n_valid <= Lanes, w_h = weights + h * stride, added to the partial sums in `state` (8 vectors:
// head 0's four, then head 1's; lo == 0 starts them at zero). Row n goes into partial sum n % 4:
// four independent FMA chains per head instead of one that waits out the FMA latency on every
// row, in an order fixed by n alone. Both heads share each value row's load.
template <TensorType kType, bool kPartial, bool kTwo, class D>
HWY_INLINE void accumulate_values(D d, const KvLayout& layout, std::span<const KvRun> runs,
                                  const float* HWY_RESTRICT weights, size_t stride, size_t col,
                                  size_t n_valid, size_t lo, size_t hi, float* HWY_RESTRICT state) {
  const auto load = [&](const uint8_t* row) HWY_ATTR {
    if constexpr (kPartial) return load_kv_tail<kType>(d, row, col, n_valid);
    return load_dense<kType>(d, row, col);
  };
  const size_t n_lanes = hn::Lanes(d);
  const auto start = [&](size_t i) HWY_ATTR {
    return lo == 0 ? hn::Zero(d) : hn::LoadU(d, state + i * n_lanes);
  };
  auto a0 = start(0), a1 = start(1), a2 = start(2), a3 = start(3);  // head 0
  auto b0 = kTwo ? start(4) : a0, b1 = kTwo ? start(5) : a0;        // head 1
  auto b2 = kTwo ? start(6) : a0, b3 = kTwo ? start(7) : a0;
  size_t n = 0;  // index of the run's first row among all rows
  for (const KvRun& run : runs) {
    if (n >= hi) break;
    const size_t r_end = std::min(run.n_rows, hi - n);
    const auto* values = static_cast<const uint8_t*>(run.values);
    const float* wa = weights + n;
    const float* wb = weights + stride + n;
    const auto add_row = [&](size_t r) HWY_ATTR {
      const auto x = load(values + r * layout.row_bytes);
      const auto wa_r = hn::Set(d, wa[r]);
      const auto wb_r = kTwo ? hn::Set(d, wb[r]) : wa_r;
      switch ((n + r) % 4) {
        case 0:
          a0 = hn::MulAdd(wa_r, x, a0);
          if constexpr (kTwo) b0 = hn::MulAdd(wb_r, x, b0);
          break;
        case 1:
          a1 = hn::MulAdd(wa_r, x, a1);
          if constexpr (kTwo) b1 = hn::MulAdd(wb_r, x, b1);
          break;
        case 2:
          a2 = hn::MulAdd(wa_r, x, a2);
          if constexpr (kTwo) b2 = hn::MulAdd(wb_r, x, b2);
          break;
        default:
          a3 = hn::MulAdd(wa_r, x, a3);
          if constexpr (kTwo) b3 = hn::MulAdd(wb_r, x, b3);
          break;
      }
    };
    size_t r = lo > n ? lo - n : 0;
    for (; r < r_end && (n + r) % 4 != 0; ++r) add_row(r);
    const size_t row_bytes = layout.row_bytes;
    for (; r + 4 <= r_end; r += 4) {
      const uint8_t* row = values + r * row_bytes;
      const auto x0 = load(row), x1 = load(row + row_bytes);
      const auto x2 = load(row + 2 * row_bytes), x3 = load(row + 3 * row_bytes);
      a0 = hn::MulAdd(hn::Set(d, wa[r]), x0, a0);
      a1 = hn::MulAdd(hn::Set(d, wa[r + 1]), x1, a1);
      a2 = hn::MulAdd(hn::Set(d, wa[r + 2]), x2, a2);
      a3 = hn::MulAdd(hn::Set(d, wa[r + 3]), x3, a3);
      if constexpr (kTwo) {
        b0 = hn::MulAdd(hn::Set(d, wb[r]), x0, b0);
        b1 = hn::MulAdd(hn::Set(d, wb[r + 1]), x1, b1);
        b2 = hn::MulAdd(hn::Set(d, wb[r + 2]), x2, b2);
        b3 = hn::MulAdd(hn::Set(d, wb[r + 3]), x3, b3);
      }
    }
    for (; r < r_end; ++r) add_row(r);
    n += run.n_rows;
  }
  hn::StoreU(a0, d, state);
  hn::StoreU(a1, d, state + n_lanes);
  hn::StoreU(a2, d, state + 2 * n_lanes);
  hn::StoreU(a3, d, state + 3 * n_lanes);
  if constexpr (kTwo) {
    hn::StoreU(b0, d, state + 4 * n_lanes);
    hn::StoreU(b1, d, state + 5 * n_lanes);
    hn::StoreU(b2, d, state + 6 * n_lanes);
    hn::StoreU(b3, d, state + 7 * n_lanes);
  }
}

#if !(HWY_TARGET == HWY_SCALAR || HWY_HAVE_SCALABLE)
// accumulate_values<kType, false, true> for two full column chunks at once, col and col + Lanes,
// with their states: each weight is broadcast once for both, so a row costs a head pair two value
// loads and two broadcasts instead of two loads and four (loads, not FMAs, bounded the pass). The
// same products are added in the same order, so the bits are accumulate_values'.
template <TensorType kType, class D>
HWY_INLINE void accumulate_values_x2(D d, const KvLayout& layout, std::span<const KvRun> runs,
                                     const float* HWY_RESTRICT weights, size_t stride, size_t col,
                                     size_t lo, size_t hi, float* HWY_RESTRICT state0,
                                     float* HWY_RESTRICT state1) {
  const size_t n_lanes = hn::Lanes(d);
  float* const states[2] = {state0, state1};
  // acc[c][h * 4 + j]: column chunk c, head h of the pair, the partial sum of rows n % 4 == j.
  hn::Vec<D> acc[2][8];
  for (size_t c = 0; c < 2; ++c) {
    for (size_t i = 0; i < 8; ++i) {
      acc[c][i] = lo == 0 ? hn::Zero(d) : hn::LoadU(d, states[c] + i * n_lanes);
    }
  }
  using J0 = std::integral_constant<size_t, 0>;
  using J1 = std::integral_constant<size_t, 1>;
  using J2 = std::integral_constant<size_t, 2>;
  using J3 = std::integral_constant<size_t, 3>;
  size_t n = 0;  // index of the run's first row among all rows
  for (const KvRun& run : runs) {
    if (n >= hi) break;
    const size_t r_end = std::min(run.n_rows, hi - n);
    const auto* values = static_cast<const uint8_t*>(run.values);
    const float* wa = weights + n;
    const float* wb = weights + stride + n;
    const auto add_row = [&](size_t r, auto j_const) HWY_ATTR {
      constexpr size_t j = decltype(j_const)::value;
      const uint8_t* row = values + r * layout.row_bytes;
      const auto x0 = load_dense<kType>(d, row, col);
      const auto x1 = load_dense<kType>(d, row, col + n_lanes);
      const auto a = hn::Set(d, wa[r]), b = hn::Set(d, wb[r]);
      acc[0][j] = hn::MulAdd(a, x0, acc[0][j]);
      acc[0][4 + j] = hn::MulAdd(b, x0, acc[0][4 + j]);
      acc[1][j] = hn::MulAdd(a, x1, acc[1][j]);
      acc[1][4 + j] = hn::MulAdd(b, x1, acc[1][4 + j]);
    };
    const auto add_any = [&](size_t r) HWY_ATTR {
      switch ((n + r) % 4) {
        case 0:
          add_row(r, J0());
          break;
        case 1:
          add_row(r, J1());
          break;
        case 2:
          add_row(r, J2());
          break;
        default:
          add_row(r, J3());
          break;
      }
    };
    size_t r = lo > n ? lo - n : 0;
    for (; r < r_end && (n + r) % 4 != 0; ++r) add_any(r);
    for (; r + 4 <= r_end; r += 4) {
      add_row(r, J0());
      add_row(r + 1, J1());
      add_row(r + 2, J2());
      add_row(r + 3, J3());
    }
    for (; r < r_end; ++r) add_any(r);
    n += run.n_rows;
  }
  for (size_t c = 0; c < 2; ++c) {
    for (size_t i = 0; i < 8; ++i) hn::StoreU(acc[c][i], d, states[c] + i * n_lanes);
  }
}
#endif

// out[col, col + n_valid) = inv_sum * the sum of the four partial sums at `state`.
template <bool kPartial, class D>
HWY_INLINE void finish_values(D d, const float* HWY_RESTRICT state, float inv_sum, size_t col,
                              size_t n_valid, float* HWY_RESTRICT out) {
  const size_t n_lanes = hn::Lanes(d);
  const auto sum = hn::Mul(
      hn::Add(hn::Add(hn::LoadU(d, state), hn::LoadU(d, state + n_lanes)),
              hn::Add(hn::LoadU(d, state + 2 * n_lanes), hn::LoadU(d, state + 3 * n_lanes))),
      hn::Set(d, inv_sum));
  if constexpr (kPartial) {
    HWY_ALIGN float buf[HWY_LANES(float)];
    hn::Store(sum, d, buf);
    std::copy(buf, buf + n_valid, out + col);
  } else {
    hn::StoreU(sum, d, out + col);
  }
}

// scores[h * n_rows + n] += slope_h * -distance(n): ALiBi, after the scale.
void add_alibi(std::span<const KvRun> runs, size_t n_heads, size_t n_rows, const float* slopes,
               float* scores) {
  for (size_t h = 0; h < n_heads; ++h) {
    float* row = scores + h * n_rows;
    for (const KvRun& run : runs) {
      for (size_t r = 0; r < run.n_rows; ++r) {
        row[r] += slopes[h] * -static_cast<float>(run.distance - r);
      }
      row += run.n_rows;
    }
  }
}

template <TensorType kType, class D>
void attention_typed(D d, const KvLayout& layout, std::span<const KvRun> runs, size_t n_heads,
                     float scale, float* scores, float* out, const float* alibi_slopes) {
  const size_t head_dim = layout.head_dim;
  size_t n_rows = 0;
  for (const KvRun& run : runs) n_rows += run.n_rows;
  if (n_rows == 0) {
    std::fill(out, out + n_heads * head_dim, 0.0f);
    return;
  }
  size_t first = 0;
  for (const KvRun& run : runs) {
    if (head_dim == hn::Lanes(d)) {
      score_run<kType, true>(d, layout, run, n_heads, n_rows, scale, scores + first);
    } else {
      score_run<kType, false>(d, layout, run, n_heads, n_rows, scale, scores + first);
    }
    first += run.n_rows;
  }
  if (layout.softcap > 0.0f) {
    // As llama.cpp: the scaled score times 1/cap, tanh, times cap.
    const float inv = 1.0f / layout.softcap;
    for (size_t i = 0; i < n_heads * n_rows; ++i) {
      scores[i] = std::tanh(scores[i] * inv) * layout.softcap;
    }
  }
  if (alibi_slopes != nullptr) add_alibi(runs, n_heads, n_rows, alibi_slopes, scores);
  // Softmax, its normalization folded into the weighted sum: one pass over the scores less.
  // Heads go in pairs that share each value row's load.
  // Values in blocks of rows, every (head pair, column chunk) of the group over one block before
  // the next: a block's value rows are read from memory once and stay in L1 for the group's
  // heads. (Pair by pair over all rows, a 4096-row cache re-read each head's values from L3 once
  // per pair and column chunk.) The partial sums wait in `state` between blocks; each one sees
  // the same rows in the same order as without blocks, so the bits do not change.
  const size_t n_lanes = hn::Lanes(d);
  const size_t n_chunks = (head_dim + n_lanes - 1) / n_lanes;
  const size_t n_pairs = (n_heads + 1) / 2;
  thread_local std::vector<float> inv_sums, state;
  inv_sums.resize(n_heads);
  state.resize(n_pairs * n_chunks * 8 * n_lanes);
  for (size_t h = 0; h < n_heads; ++h) {
    inv_sums[h] = 1.0f / exp_shifted_in_place<true>(scores + h * n_rows, n_rows);
  }
  constexpr size_t kBlockRows = 64;
  const size_t head_bytes = head_dim * (kType == TensorType::kF16 ? 2 : 4);
  // The value rows [lo, hi) of all runs, asked for a block ahead of their use.
  const auto prefetch_values = [&](size_t lo, size_t hi) {
    size_t n = 0;
    for (const KvRun& run : runs) {
      if (n >= hi) break;
      const size_t from = lo > n ? lo - n : 0, end = std::min(run.n_rows, hi - n);
      if (from < end) {
        prefetch_rows(static_cast<const uint8_t*>(run.values), layout.row_bytes, from, end - from,
                      head_bytes);
      }
      n += run.n_rows;
    }
  };
  prefetch_values(0, kBlockRows);
  for (size_t lo = 0; lo < n_rows; lo += kBlockRows) {
    const size_t hi = std::min(n_rows, lo + kBlockRows);
    if (hi < n_rows) prefetch_values(hi, std::min(n_rows, hi + kBlockRows));
    for (size_t p = 0; p < n_pairs; ++p) {
      const float* w = scores + 2 * p * n_rows;
      for (size_t c = 0; c < n_chunks; ++c) {
        const size_t col = c * n_lanes;
        float* st = &state[(p * n_chunks + c) * 8 * n_lanes];
        const bool two = 2 * p + 1 < n_heads, partial = col + n_lanes > head_dim;
        const size_t n_valid = partial ? head_dim - col : n_lanes;
#if !(HWY_TARGET == HWY_SCALAR || HWY_HAVE_SCALABLE)
        if (two && col + 2 * n_lanes <= head_dim) {
          accumulate_values_x2<kType>(d, layout, runs, w, n_rows, col, lo, hi, st,
                                      st + 8 * n_lanes);
          ++c;  // both chunks done
          continue;
        }
#endif
        if (two && !partial) {
          accumulate_values<kType, false, true>(d, layout, runs, w, n_rows, col, n_valid, lo, hi,
                                                st);
        } else if (two) {
          accumulate_values<kType, true, true>(d, layout, runs, w, n_rows, col, n_valid, lo, hi,
                                               st);
        } else if (!partial) {
          accumulate_values<kType, false, false>(d, layout, runs, w, n_rows, col, n_valid, lo, hi,
                                                 st);
        } else {
          accumulate_values<kType, true, false>(d, layout, runs, w, n_rows, col, n_valid, lo, hi,
                                                st);
        }
      }
    }
  }
  for (size_t h = 0; h < n_heads; ++h) {
    for (size_t c = 0; c < n_chunks; ++c) {
      const size_t col = c * n_lanes;
      const float* st = &state[((h / 2) * n_chunks + c) * 8 * n_lanes + (h % 2) * 4 * n_lanes];
      if (col + n_lanes > head_dim) {
        finish_values<true>(d, st, inv_sums[h], col, head_dim - col, out + h * head_dim);
      } else {
        finish_values<false>(d, st, inv_sums[h], col, n_lanes, out + h * head_dim);
      }
    }
  }
}

template <class D>
void attention_vectors(D d, const KvLayout& layout, std::span<const KvRun> runs, size_t n_heads,
                       float scale, float* scores, float* out, const float* alibi_slopes) {
  if (layout.type == TensorType::kF16) {
    attention_typed<TensorType::kF16>(d, layout, runs, n_heads, scale, scores, out, alibi_slopes);
  } else {
    attention_typed<TensorType::kF32>(d, layout, runs, n_heads, scale, scores, out, alibi_slopes);
  }
}

void attention_simd(const KvLayout& layout, std::span<const KvRun> runs, size_t n_heads,
                    float scale, float* scores, float* out, const float* alibi_slopes) {
  // The widest vector that divides a row: full vectors for head_dim 64 or 128, 8 lanes for the
  // 8-float rows of stories260K on AVX-512; padded tails only for odd sizes.
  if (layout.head_dim % hn::Lanes(DF()) == 0) {
    attention_vectors(DF(), layout, runs, n_heads, scale, scores, out, alibi_slopes);
  } else if (layout.head_dim % 8 == 0) {
    attention_vectors(hn::CappedTag<float, 8>(), layout, runs, n_heads, scale, scores, out,
                      alibi_slopes);
  } else {
    attention_vectors(hn::CappedTag<float, 4>(), layout, runs, n_heads, scale, scores, out,
                      alibi_slopes);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace sllm::ops
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sllm::ops {

HWY_EXPORT(dot_kv_simd);
HWY_EXPORT(axpy_kv_simd);
HWY_EXPORT(attention_simd);
HWY_EXPORT(store_kv_simd);

namespace {

[[maybe_unused]] bool is_kv_type(TensorType type) {
  return type == TensorType::kF32 || type == TensorType::kF16;
}

}  // namespace

float dot_kv(const float* a, const void* k, TensorType kv_type, size_t n) {
  assert(is_kv_type(kv_type));
  return HWY_DYNAMIC_DISPATCH(dot_kv_simd)(a, k, kv_type, n);
}

void axpy_kv(float a, const void* v, TensorType kv_type, float* y, size_t n) {
  assert(is_kv_type(kv_type));
  HWY_DYNAMIC_DISPATCH(axpy_kv_simd)(a, v, kv_type, y, n);
}

void attention(const KvLayout& layout, std::span<const KvRun> runs, size_t n_heads, float scale,
               float* scores, float* out, const float* alibi_slopes) {
  assert(is_kv_type(layout.type) && layout.head_dim > 0 && n_heads > 0);
  HWY_DYNAMIC_DISPATCH(attention_simd)(layout, runs, n_heads, scale, scores, out, alibi_slopes);
}

void store_kv(const float* src, void* dst, TensorType kv_type, size_t n) {
  assert(is_kv_type(kv_type));
  HWY_DYNAMIC_DISPATCH(store_kv_simd)(src, dst, kv_type, n);
}

}  // namespace sllm::ops
#endif  // HWY_ONCE
