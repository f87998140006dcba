// SIMD kernels of ops.h. Highway's foreach_target.h compiles this file once per target (SSE4,
// AVX2, AVX-512, ... and the portable EMU128); the public functions at the bottom pick the best
// target the CPU supports, once per call, through HWY_DYNAMIC_DISPATCH.
//
// Every kernel accepts any element count and unaligned pointers: full vectors use LoadU/StoreU,
// and the last n % Lanes elements take a scalar or padded path.
#include "kernels/ops.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/quant.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/ops.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// After foreach_target.h: these are re-included for each target.
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace sllm::ops {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
// Block formats are decoded a vector at a time; capping the vector at 16 lanes makes a lane count
// that divides both the 16 bytes of q4_0 codes and the 32 elements of a block.
using DBlock = hn::CappedTag<float, 16>;

// ------------------------------------------------------------------------------------------------
// Element decoding

inline uint16_t read_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// f16 lanes [p, p + Lanes(df)) as f32.
template <class D>
HWY_INLINE hn::Vec<D> load_f16(D df, const uint16_t* HWY_RESTRICT p) {
  const hn::Rebind<uint16_t, D> du16;
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2 && !defined(HWY_DISABLE_F16C)
  // F16C converts exactly in one instruction.
  const hn::Rebind<hwy::float16_t, D> df16;
  return hn::PromoteTo(df, hn::BitCast(df16, hn::LoadU(du16, p)));
#else
  // Highway 1.0.3 emulates the conversion on targets without F16C but maps inf/NaN to finite
  // values, so decode by hand: rebias normals, scale subnormals, widen inf/NaN.
  const hn::RebindToUnsigned<D> du;
  const hn::RebindToSigned<D> di;
  const auto h = hn::PromoteTo(du, hn::LoadU(du16, p));
  const auto sign = hn::ShiftLeft<16>(hn::And(h, hn::Set(du, 0x8000u)));
  const auto exp_mant = hn::And(h, hn::Set(du, 0x7FFFu));
  const auto exp = hn::ShiftRight<10>(exp_mant);
  const auto normal = hn::Add(hn::ShiftLeft<13>(exp_mant), hn::Set(du, (127u - 15u) << 23));
  const auto subnormal =
      hn::BitCast(du, hn::Mul(hn::ConvertTo(df, hn::BitCast(di, exp_mant)), hn::Set(df, 0x1p-24f)));
  const auto inf_nan = hn::Or(hn::ShiftLeft<13>(exp_mant), hn::Set(du, 0x7F800000u));
  auto bits = hn::IfThenElse(hn::Eq(exp, hn::Zero(du)), subnormal, normal);
  bits = hn::IfThenElse(hn::Eq(exp, hn::Set(du, 0x1Fu)), inf_nan, bits);
  return hn::BitCast(df, hn::Or(bits, sign));
#endif
}

// bf16 lanes as f32: bf16 is the top half of an f32.
template <class D>
HWY_INLINE hn::Vec<D> load_bf16(D df, const uint16_t* HWY_RESTRICT p) {
  const hn::RebindToUnsigned<D> du;
  const hn::Rebind<uint16_t, D> du16;
  return hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(du, hn::LoadU(du16, p))));
}

// Stores f32 lanes as f16 with the exact rounding of quant::f32_to_f16 (nearest even, inf above
// 65520, NaN -> quiet NaN). Done by hand on every target: Highway 1.0.3 truncates where F16C is
// missing, and F16C keeps NaN payloads, which would make caches differ between machines.
template <class D>
HWY_INLINE void store_f16(D df, hn::Vec<D> v, uint16_t* HWY_RESTRICT p) {
  const hn::RebindToUnsigned<D> du;
  const hn::RebindToSigned<D> di;
  const hn::Rebind<uint16_t, D> du16;
  const auto bits = hn::BitCast(du, v);
  const auto sign = hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 0x8000u));
  const auto abs = hn::And(bits, hn::Set(du, 0x7FFFFFFFu));
  // Normal: rebias the exponent, round the mantissa at bit 13 half to even.
  const auto rebiased = hn::Sub(abs, hn::Set(du, (127u - 15u) << 23));
  const auto odd = hn::And(hn::ShiftRight<13>(rebiased), hn::Set(du, 1u));
  const auto normal = hn::ShiftRight<13>(hn::Add(rebiased, hn::Add(hn::Set(du, 0xFFFu), odd)));
  // Subnormal: the ulp of 0.5f is 2^-24, the f16 subnormal step, so the FPU's own round to nearest
  // even in |v| + 0.5f yields the code in the low bits (1024 = the smallest normal, also right).
  const auto sum = hn::Add(hn::BitCast(df, abs), hn::Set(df, 0.5f));
  const auto subnormal = hn::Sub(hn::BitCast(du, sum), hn::Set(du, 0x3F000000u));
  const auto abs_i = hn::BitCast(di, abs);
  auto h =
      hn::IfThenElse(hn::RebindMask(du, hn::Lt(abs_i, hn::Set(di, 0x38800000))), subnormal, normal);
  // >= 65520 (0x477FF000) rounds to inf; written as > since 1.0.3 has no integer Ge.
  h = hn::IfThenElse(hn::RebindMask(du, hn::Gt(abs_i, hn::Set(di, 0x477FEFFF))),
                     hn::Set(du, 0x7C00u), h);
  h = hn::IfThenElse(hn::RebindMask(du, hn::Gt(abs_i, hn::Set(di, 0x7F800000))),
                     hn::Set(du, 0x7E00u), h);
  hn::StoreU(hn::DemoteTo(du16, hn::BitCast(di, hn::Or(h, sign))), du16, p);
}

// Dense weight types: one element per column.
template <TensorType kType, class D>
HWY_INLINE hn::Vec<D> load_dense(D df, const uint8_t* HWY_RESTRICT row, size_t col) {
  if constexpr (kType == TensorType::kF32) {
    return hn::LoadU(df, reinterpret_cast<const float*>(row) + col);
  } else if constexpr (kType == TensorType::kF16) {
    return load_f16(df, reinterpret_cast<const uint16_t*>(row) + col);
  } else {
    static_assert(kType == TensorType::kBF16);
    return load_bf16(df, reinterpret_cast<const uint16_t*>(row) + col);
  }
}

template <TensorType kType>
float dense_at(const uint8_t* row, size_t col) {
  if constexpr (kType == TensorType::kF32) {
    float v;
    std::memcpy(&v, row + col * sizeof(float), sizeof(v));
    return v;
  } else if constexpr (kType == TensorType::kF16) {
    return quant::f16_to_f32(read_u16(row + 2 * col));
  } else {
    return quant::bf16_to_f32(read_u16(row + 2 * col));
  }
}

// Block types: decodes the 32 elements of one block into out[0, 32). The products code * d are
// exact in f32 (an 8-bit code times an 11-bit scale), so this equals the scalar decode bit for bit.
template <TensorType kType>
HWY_INLINE void decode_block(const uint8_t* HWY_RESTRICT block, float* HWY_RESTRICT out) {
  const DBlock d;
  const size_t n_lanes = hn::Lanes(d);
  const hn::Rebind<int32_t, DBlock> di32;
  const auto scale = hn::Set(d, quant::f16_to_f32(read_u16(block)));
  const uint8_t* qs = block + sizeof(uint16_t);
  if constexpr (kType == TensorType::kQ8_0) {
    const hn::Rebind<int8_t, DBlock> di8;
    for (size_t j = 0; j < quant::kBlockElems; j += n_lanes) {
      const auto codes =
          hn::PromoteTo(di32, hn::LoadU(di8, reinterpret_cast<const int8_t*>(qs) + j));
      hn::StoreU(hn::Mul(hn::ConvertTo(d, codes), scale), d, out + j);
    }
  } else {
    static_assert(kType == TensorType::kQ4_0);
    // Byte j holds element j (low nibble) and element j + 16 (high nibble).
    const hn::Rebind<uint8_t, DBlock> du8;
    const auto k8 = hn::Set(di32, 8);
    const auto k15 = hn::Set(di32, 15);
    constexpr size_t kHalf = quant::kBlockElems / 2;
    for (size_t j = 0; j < kHalf; j += n_lanes) {
      const auto bytes = hn::PromoteTo(di32, hn::LoadU(du8, qs + j));
      const auto lo = hn::Sub(hn::And(bytes, k15), k8);
      const auto hi = hn::Sub(hn::ShiftRight<4>(bytes), k8);
      hn::StoreU(hn::Mul(hn::ConvertTo(d, lo), scale), d, out + j);
      hn::StoreU(hn::Mul(hn::ConvertTo(d, hi), scale), d, out + kHalf + j);
    }
  }
}

constexpr bool is_block_type(TensorType type) {
  return type == TensorType::kQ8_0 || type == TensorType::kQ4_0;
}

constexpr size_t block_bytes(TensorType type) {
  return type == TensorType::kQ8_0 ? sizeof(quant::BlockQ8_0) : sizeof(quant::BlockQ4_0);
}

// ------------------------------------------------------------------------------------------------
// Row sums

#if HWY_TARGET != HWY_SCALAR && !HWY_HAVE_SCALABLE
// Row sums of a group of rows by a transpose of additions: lane j of the result is the sum of the
// lanes of v_j. Lanes are first folded in halves down to the group size (4 or 8); then each level
// interleaves pairs of vectors and adds, so the shuffles are shared by the group instead of spent
// per row as SumOfLanes would. Every v_j goes through the same tree of additions, so a row's sum
// does not depend on its place in the group or on the rest being zero padding.
template <class D>
HWY_INLINE hn::Vec<D> add_halves(D d, hn::Vec<hn::Twice<D>> v) {
  return hn::Add(hn::LowerHalf(d, v), hn::UpperHalf(d, v));
}

// Groups of 4 lanes: (lane 0 + lane 2) + (lane 1 + lane 3).
template <class D>
HWY_INLINE auto sum_lanes_x4(D d, hn::Vec<D> v0, hn::Vec<D> v1, hn::Vec<D> v2, hn::Vec<D> v3) {
  if constexpr (hn::MaxLanes(d) > 4) {
    const hn::Half<D> dh;
    return sum_lanes_x4(dh, add_halves(dh, v0), add_halves(dh, v1), add_halves(dh, v2),
                        add_halves(dh, v3));
  } else {
    static_assert(hn::MaxLanes(d) == 4);
    const auto t01 = hn::Add(hn::InterleaveLower(d, v0, v1), hn::InterleaveUpper(d, v0, v1));
    const auto t23 = hn::Add(hn::InterleaveLower(d, v2, v3), hn::InterleaveUpper(d, v2, v3));
    return hn::Add(hn::ConcatLowerLower(d, t23, t01), hn::ConcatUpperUpper(d, t23, t01));
  }
}

// Groups of 8 lanes (two 128-bit blocks): the 4-lane tree within each block, then block 0 +
// block 1.
template <class D>
HWY_INLINE auto sum_lanes_x8(D d, hn::Vec<D> v0, hn::Vec<D> v1, hn::Vec<D> v2, hn::Vec<D> v3,
                             hn::Vec<D> v4, hn::Vec<D> v5, hn::Vec<D> v6, hn::Vec<D> v7) {
  if constexpr (hn::MaxLanes(d) > 8) {
    const hn::Half<D> dh;
    return sum_lanes_x8(dh, add_halves(dh, v0), add_halves(dh, v1), add_halves(dh, v2),
                        add_halves(dh, v3), add_halves(dh, v4), add_halves(dh, v5),
                        add_halves(dh, v6), add_halves(dh, v7));
  } else {
    static_assert(hn::MaxLanes(d) == 8);
    // Within each block: [a0 + a2, b0 + b2, a1 + a3, b1 + b3] for the pair (a, b).
    const auto pairs = [d](hn::Vec<D> a, hn::Vec<D> b) HWY_ATTR {
      return hn::Add(hn::InterleaveLower(d, a, b), hn::InterleaveUpper(d, a, b));
    };
    // Within each block: the four rows' sums of that block's lanes.
    const hn::RepartitionToWide<D> dw;
    const auto quads = [d, dw](hn::Vec<D> ab, hn::Vec<D> ce) HWY_ATTR {
      const auto lo = hn::InterleaveLower(dw, hn::BitCast(dw, ab), hn::BitCast(dw, ce));
      const auto hi = hn::InterleaveUpper(dw, hn::BitCast(dw, ab), hn::BitCast(dw, ce));
      return hn::Add(hn::BitCast(d, lo), hn::BitCast(d, hi));
    };
    const auto q0123 = quads(pairs(v0, v1), pairs(v2, v3));
    const auto q4567 = quads(pairs(v4, v5), pairs(v6, v7));
    return hn::Add(hn::ConcatLowerLower(d, q4567, q0123), hn::ConcatUpperUpper(d, q4567, q0123));
  }
}
#endif

// ------------------------------------------------------------------------------------------------
// matmul
//
// q8_0/q4_0 weights are decoded to f32 lanes (exactly) and multiplied with the f32 activations;
// unlike llama.cpp, x is not quantized to q8, so the only rounding is that of the f32 sums.

// Weight rows whose dots are finished together by one sum_lanes_x8 (or x4 where vectors have 4
// lanes): that many independent FMA chains, enough to cover the FMA latency at batch 1.
// Batch rows that share one pass over a group of weight rows: kRowGroup x kBatchTile accumulators
// must fit in the registers (32 with AVX-512, 16 otherwise) next to the weights.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
constexpr size_t kRowGroup = 8;
constexpr size_t kBatchTile = 2;
#elif HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
constexpr size_t kRowGroup = 8;
constexpr size_t kBatchTile = 1;
#else
constexpr size_t kRowGroup = 4;
constexpr size_t kBatchTile = 2;
#endif

// out[g] = the sum of the lanes of v[g], g < kRowGroup, by sum_lanes_x8/x4 where there is one.
template <class D>
HWY_INLINE void store_row_sums(D d, const hn::Vec<D>* v, float* HWY_RESTRICT out) {
#if HWY_TARGET == HWY_SCALAR || HWY_HAVE_SCALABLE
  for (size_t g = 0; g < kRowGroup; ++g) out[g] = hn::GetLane(hn::SumOfLanes(d, v[g]));
#else
  if constexpr (kRowGroup == 8) {
    hn::StoreU(sum_lanes_x8(d, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]),
               hn::CappedTag<float, 8>(), out);
  } else {
    hn::StoreU(sum_lanes_x4(d, v[0], v[1], v[2], v[3]), hn::CappedTag<float, 4>(), out);
  }
#endif
}

// y[b, r + g] for g < kRowGroup, b < kRows: weight rows `rows[g]` (a group may repeat a row to pad
// itself; the extra sums are dropped) times x rows b, n_cols apart; y rows are y_stride apart.
// A (batch row, weight row) dot is lane-wise FMAs over the columns, the same tree of lane sums for
// every row of a group, then the scalar tail in column order: its bits do not depend on which
// rows share its group or tile, so neither the batch size nor the thread count changes them.
// (Arrays of vectors: fine on fixed-size targets; SVE/RVV would need named variables.)
template <TensorType kType, size_t kRows>
HWY_INLINE void group_dots(const uint8_t* const* rows, size_t n_valid, const float* HWY_RESTRICT x,
                           size_t n_cols, float* HWY_RESTRICT y, size_t y_stride) {
  static_assert(kRows >= 1 && kRows <= kBatchTile);
  using D = std::conditional_t<is_block_type(kType), DBlock, DF>;
  const D d;
  const size_t n_lanes = hn::Lanes(d);
  hn::Vec<D> acc[kRows][kRowGroup];
  for (size_t b = 0; b < kRows; ++b) {
    for (size_t g = 0; g < kRowGroup; ++g) acc[b][g] = hn::Zero(d);
  }
  const auto fma_group = [&](const hn::Vec<D>* w, size_t col) HWY_ATTR {
    for (size_t b = 0; b < kRows; ++b) {
      const auto xv = hn::LoadU(d, x + b * n_cols + col);
      for (size_t g = 0; g < kRowGroup; ++g) acc[b][g] = hn::MulAdd(w[g], xv, acc[b][g]);
    }
  };

  size_t col = 0;
  if constexpr (is_block_type(kType)) {
    HWY_ALIGN float w_block[kRowGroup][quant::kBlockElems];  // one decoded block per row
    for (; col < n_cols; col += quant::kBlockElems) {
      const size_t block_offset = col / quant::kBlockElems * block_bytes(kType);
      for (size_t g = 0; g < kRowGroup; ++g)
        decode_block<kType>(rows[g] + block_offset, w_block[g]);
      for (size_t j = 0; j < quant::kBlockElems; j += n_lanes) {
        hn::Vec<D> w[kRowGroup];
        for (size_t g = 0; g < kRowGroup; ++g) w[g] = hn::Load(d, w_block[g] + j);
        fma_group(w, col + j);
      }
    }
  } else {
    for (; col + n_lanes <= n_cols; col += n_lanes) {
      hn::Vec<D> w[kRowGroup];
      for (size_t g = 0; g < kRowGroup; ++g) w[g] = load_dense<kType>(d, rows[g], col);
      fma_group(w, col);
    }
  }

  for (size_t b = 0; b < kRows; ++b) {
    float dots[kRowGroup];
    store_row_sums(d, acc[b], dots);
    const float* xb = x + b * n_cols;
    for (size_t g = 0; g < n_valid; ++g) {
      if constexpr (!is_block_type(kType)) {
        for (size_t c = col; c < n_cols; ++c) dots[g] += dense_at<kType>(rows[g], c) * xb[c];
      }
      y[b * y_stride + g] = dots[g];
    }
  }
}

// Rows [row_begin, row_end) of y for every batch row. A group of weight rows is read from memory
// once and then served from L1 to each tile of batch rows.
template <TensorType kType>
void matmul_rows(const MatView& w, const float* x, size_t n_batch, float* y, size_t row_begin,
                 size_t row_end) {
  const auto* data = static_cast<const uint8_t*>(w.data);
  for (size_t r = row_begin; r < row_end; r += kRowGroup) {
    const size_t n_valid = std::min(kRowGroup, row_end - r);
    const uint8_t* rows[kRowGroup];
    for (size_t g = 0; g < kRowGroup; ++g) {
      rows[g] = data + (r + std::min(g, n_valid - 1)) * w.row_bytes;
    }
    for (size_t b0 = 0; b0 < n_batch; b0 += kBatchTile) {
      const float* xb = x + b0 * w.n_cols;
      float* yb = y + b0 * w.n_rows + r;
      const size_t n_tile = std::min(kBatchTile, n_batch - b0);
      if (n_tile == kBatchTile) {
        group_dots<kType, kBatchTile>(rows, n_valid, xb, w.n_cols, yb, w.n_rows);
      } else if constexpr (kBatchTile == 4) {
        if (n_tile == 3) {
          group_dots<kType, 3>(rows, n_valid, xb, w.n_cols, yb, w.n_rows);
        } else if (n_tile == 2) {
          group_dots<kType, 2>(rows, n_valid, xb, w.n_cols, yb, w.n_rows);
        } else {
          group_dots<kType, 1>(rows, n_valid, xb, w.n_cols, yb, w.n_rows);
        }
      } else {
        group_dots<kType, 1>(rows, n_valid, xb, w.n_cols, yb, w.n_rows);
      }
    }
  }
}

// Each pool thread takes one contiguous chunk of rows: consecutive rows are adjacent in memory,
// and a chunk per thread leaves nothing to hand out per row.
// Small matrices (all of stories260K's at batch 1) run on the caller: waking the pool would cost
// more than the rows. Chunks are whole groups of rows.
template <TensorType kType>
void matmul_pooled(const MatView& w, const float* x, size_t n_batch, float* y, ThreadPool& pool) {
  if (!pool.worth_parallel(w.n_rows * w.n_cols * n_batch)) {
    return matmul_rows<kType>(w, x, n_batch, y, 0, w.n_rows);
  }
  constexpr size_t kMinRowsPerTask = 16;
  const size_t n_tasks =
      std::min(pool.n_threads(), (w.n_rows + kMinRowsPerTask - 1) / kMinRowsPerTask);
  const size_t n_groups = (w.n_rows + kRowGroup - 1) / kRowGroup;
  const size_t rows_per_task = (n_groups + n_tasks - 1) / n_tasks * kRowGroup;
  pool.run(n_tasks, [&](size_t task) HWY_ATTR {
    const size_t begin = std::min(w.n_rows, task * rows_per_task);
    const size_t end = std::min(w.n_rows, begin + rows_per_task);
    if (begin < end) matmul_rows<kType>(w, x, n_batch, y, begin, end);
  });
}

void matmul_simd(const MatView& w, const float* x, size_t n_batch, float* y, ThreadPool& pool) {
  switch (w.type) {
    case TensorType::kF32:
      return matmul_pooled<TensorType::kF32>(w, x, n_batch, y, pool);
    case TensorType::kF16:
      return matmul_pooled<TensorType::kF16>(w, x, n_batch, y, pool);
    case TensorType::kBF16:
      return matmul_pooled<TensorType::kBF16>(w, x, n_batch, y, pool);
    case TensorType::kQ8_0:
      return matmul_pooled<TensorType::kQ8_0>(w, x, n_batch, y, pool);
    case TensorType::kQ4_0:
      return matmul_pooled<TensorType::kQ4_0>(w, x, n_batch, y, pool);
  }
}

// ------------------------------------------------------------------------------------------------
// Element-wise ops

// Runs body(vector of lanes [i, i + Lanes)) -> vector over x[0, n) in place. The last n % Lanes
// elements go through a zero-padded buffer, so the tail sees exactly the same math.
template <class Body>
HWY_INLINE void map_in_place(float* x, size_t n, const Body& body) {
  const DF d;
  const size_t n_lanes = hn::Lanes(d);
  size_t i = 0;
  for (; i + n_lanes <= n; i += n_lanes) hn::StoreU(body(hn::LoadU(d, x + i), i), d, x + i);
  if (i < n) {
    HWY_ALIGN float pad[HWY_LANES(float)] = {};
    std::copy(x + i, x + n, pad);
    hn::Store(body(hn::Load(d, pad), i), d, pad);
    std::copy(pad, pad + (n - i), x + i);
  }
}

void rmsnorm_simd(const float* x, const float* weight, size_t n, float eps, float* out) {
  if (n == 0) return;
  const DF d;
  const size_t n_lanes = hn::Lanes(d);
  auto sum_sq = hn::Zero(d);
  size_t i = 0;
  for (; i + n_lanes <= n; i += n_lanes) {
    const auto v = hn::LoadU(d, x + i);
    sum_sq = hn::MulAdd(v, v, sum_sq);
  }
  float total = hn::GetLane(hn::SumOfLanes(d, sum_sq));
  for (size_t j = i; j < n; ++j) total += x[j] * x[j];
  const float scale = 1.0f / std::sqrt(total / static_cast<float>(n) + eps);
  const auto vscale = hn::Set(d, scale);
  for (i = 0; i + n_lanes <= n; i += n_lanes) {
    const auto v = hn::Mul(hn::LoadU(d, x + i), vscale);
    hn::StoreU(hn::Mul(v, hn::LoadU(d, weight + i)), d, out + i);
  }
  for (; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

// exp(x) for x <= 0, within 2 ulp; 0 below -87 (where exp(x) < 2^-125, nothing next to the 1 that
// a softmax's max contributes). Half the work of hn::Exp, which handles any sign and range: the
// attention of a long cache takes one exp per cached token and head.
template <class D>
HWY_INLINE hn::Vec<D> exp_nonpositive(D d, hn::Vec<D> x) {
  const hn::RebindToSigned<D> di;
  // t = 1.5 * 2^23 + round(x / ln 2): the integer lands in the low mantissa bits of t.
  const auto kRound = hn::Set(d, 0x1.8p23f);
  const auto t = hn::MulAdd(x, hn::Set(d, 1.44269504088896341f), kRound);
  const auto k = hn::Sub(t, kRound);
  // r = x - k ln 2 in [-ln 2 / 2, ln 2 / 2], with ln 2 split so that k * hi is exact.
  auto r = hn::MulAdd(k, hn::Set(d, -0.693145751953125f), x);
  r = hn::MulAdd(k, hn::Set(d, -1.428606765330187045e-6f), r);
  // exp(r) by its Taylor polynomial of degree 6: the remainder r^7 / 7! < 1.2e-7 relative.
  auto p = hn::Set(d, 1.0f / 720.0f);
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f / 120.0f));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f / 24.0f));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f / 6.0f));
  p = hn::MulAdd(p, r, hn::Set(d, 0.5f));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f));
  // Times 2^k: k added to the exponent field (k >= -126 and p >= 0.7: the result stays normal).
  const auto two_k = hn::ShiftLeft<23>(hn::BitCast(di, t));
  const auto scaled = hn::BitCast(d, hn::Add(hn::BitCast(di, p), two_k));
  return hn::IfThenZeroElse(hn::Lt(x, hn::Set(d, -87.0f)), scaled);
}

// x = exp(x - max(x)) in place, n >= 1; returns the sum. Subtracting the max keeps every exponent
// <= 0: no overflow, and the largest term is 1, so the sum is >= 1. kFast: exp_nonpositive
// (attention), else hn::Exp (softmax, whose tests hold it to 1 ulp).
template <bool kFast = false>
float exp_shifted_in_place(float* x, size_t n) {
  const DF d;
  const size_t n_lanes = hn::Lanes(d);
  float max = x[0];
  size_t i = 0;
  if (n >= n_lanes) {
    auto vmax = hn::LoadU(d, x);
    for (i = n_lanes; i + n_lanes <= n; i += n_lanes) vmax = hn::Max(vmax, hn::LoadU(d, x + i));
    max = hn::GetLane(hn::MaxOfLanes(d, vmax));
  }
  for (; i < n; ++i) max = std::max(max, x[i]);

  const auto vmax = hn::Set(d, max);
  auto sum = hn::Zero(d);
  map_in_place(x, n, [&](hn::Vec<DF> v, size_t begin) HWY_ATTR {
    const auto shifted = hn::Sub(v, vmax);
    const auto e = kFast ? exp_nonpositive(d, shifted) : hn::Exp(d, shifted);
    // Padding lanes beyond n must not count.
    sum = hn::Add(sum, hn::IfThenElseZero(hn::FirstN(d, n - begin), e));
    return e;
  });
  return hn::GetLane(hn::SumOfLanes(d, sum));
}

void softmax_simd(float* x, size_t n) {
  if (n == 0) return;
  const DF d;
  const auto inv_sum = hn::Set(d, 1.0f / exp_shifted_in_place(x, n));
  map_in_place(x, n, [&](hn::Vec<DF> v, size_t) HWY_ATTR { return hn::Mul(v, inv_sum); });
}

void silu_mul_simd(float* gate, const float* up, size_t n) {
  const DF d;
  const auto one = hn::Set(d, 1.0f);
  // hn::Exp is only valid up to 104; exp(100) is already inf in f32, so g / (1 + exp(-g)) is
  // unchanged by the clamp: it becomes -0 for g <= -100 as with std::exp.
  const auto max_exp_arg = hn::Set(d, 100.0f);
  map_in_place(gate, n, [&](hn::Vec<DF> g, size_t begin) HWY_ATTR {
    const auto silu = hn::Div(g, hn::Add(one, hn::Exp(d, hn::Min(hn::Neg(g), max_exp_arg))));
    if (begin + hn::Lanes(d) <= n) return hn::Mul(silu, hn::LoadU(d, up + begin));
    // The padded tail: read only the valid part of `up`.
    HWY_ALIGN float up_pad[HWY_LANES(float)] = {};
    std::copy(up + begin, up + n, up_pad);
    return hn::Mul(silu, hn::Load(d, up_pad));
  });
}

void add_simd(const float* x, float* y, size_t n) {
  const DF d;
  const size_t n_lanes = hn::Lanes(d);
  size_t i = 0;
  for (; i + n_lanes <= n; i += n_lanes) {
    hn::StoreU(hn::Add(hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, y + i);
  }
  for (; i < n; ++i) y[i] += x[i];
}

template <TensorType kType>
void dequantize_dense(const uint8_t* src, float* dst, size_t n) {
  const DF d;
  const size_t n_lanes = hn::Lanes(d);
  size_t i = 0;
  for (; i + n_lanes <= n; i += n_lanes) hn::StoreU(load_dense<kType>(d, src, i), d, dst + i);
  for (; i < n; ++i) dst[i] = dense_at<kType>(src, i);
}

void dequantize_row_simd(TensorType type, const void* src, float* dst, size_t n) {
  const auto* in = static_cast<const uint8_t*>(src);
  switch (type) {
    case TensorType::kF32:
      return dequantize_dense<TensorType::kF32>(in, dst, n);
    case TensorType::kF16:
      return dequantize_dense<TensorType::kF16>(in, dst, n);
    case TensorType::kBF16:
      return dequantize_dense<TensorType::kBF16>(in, dst, n);
    case TensorType::kQ8_0:
      for (size_t b = 0; b < n / quant::kBlockElems; ++b) {
        decode_block<TensorType::kQ8_0>(in + b * sizeof(quant::BlockQ8_0),
                                        dst + b * quant::kBlockElems);
      }
      return;
    case TensorType::kQ4_0:
      for (size_t b = 0; b < n / quant::kBlockElems; ++b) {
        decode_block<TensorType::kQ4_0>(in + b * sizeof(quant::BlockQ4_0),
                                        dst + b * quant::kBlockElems);
      }
      return;
  }
}

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
  for (size_t r = 0; r < n_rows; r += kGroup) {
    const size_t n_valid = std::min(kGroup, n_rows - r);
    for (size_t h = 0; h < n_heads; ++h) {
      const float* q = run.q + h * head_dim;
      const auto q_rest = q_tail(q);
      const auto row = [&](size_t j) HWY_ATTR {
        return dot_lanes<kType, kOneVector>(d, q, q_rest, keys + (r + j) * layout.row_bytes,
                                            head_dim);
      };
      // A partial group is padded with zero rows.
      const auto row_or_zero = [&](size_t j)
                                   HWY_ATTR { return j < n_valid ? row(j) : hn::Zero(d); };
      hn::Vec<decltype(dg)> sums;
      if constexpr (kGroup == 8) {
        sums = n_valid == kGroup
                   ? sum_lanes_x8(d, row(0), row(1), row(2), row(3), row(4), row(5), row(6), row(7))
                   : sum_lanes_x8(d, row(0), row_or_zero(1), row_or_zero(2), row_or_zero(3),
                                  row_or_zero(4), row_or_zero(5), row_or_zero(6), row_or_zero(7));
      } else {
        sums = n_valid == kGroup
                   ? sum_lanes_x4(d, row(0), row(1), row(2), row(3))
                   : sum_lanes_x4(d, row(0), row_or_zero(1), row_or_zero(2), row_or_zero(3));
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

// out_h[col, col + n_valid) = inv_sum_h * sum_n w_h[n] * v_n[col, col + n_valid) for one or two
// query heads h (kTwo), n_valid <= Lanes; w_h = weights + h * stride. Row n goes into partial sum
// n % 4: four independent FMA chains per head instead of one that waits out the FMA latency on
// every row, in an order fixed by n alone. Both heads share each value row's load.
template <TensorType kType, bool kPartial, bool kTwo, class D>
HWY_INLINE void accumulate_values(D d, const KvLayout& layout, std::span<const KvRun> runs,
                                  const float* HWY_RESTRICT weights, size_t stride, size_t col,
                                  size_t n_valid, const float* inv_sum, float* HWY_RESTRICT out) {
  const auto load = [&](const uint8_t* row) HWY_ATTR {
    if constexpr (kPartial) return load_kv_tail<kType>(d, row, col, n_valid);
    return load_dense<kType>(d, row, col);
  };
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);  // head 0
  auto b0 = hn::Zero(d), b1 = hn::Zero(d), b2 = hn::Zero(d), b3 = hn::Zero(d);  // head 1
  size_t n = 0;  // index of the run's first row among all rows
  for (const KvRun& run : runs) {
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
    size_t r = 0;
    for (; r < run.n_rows && (n + r) % 4 != 0; ++r) add_row(r);
    const size_t row_bytes = layout.row_bytes;
    for (; r + 4 <= run.n_rows; r += 4) {
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
    for (; r < run.n_rows; ++r) add_row(r);
    n += run.n_rows;
  }
  const auto store = [&](hn::Vec<D> sum, float* dst) HWY_ATTR {
    if constexpr (kPartial) {
      HWY_ALIGN float buf[HWY_LANES(float)];
      hn::Store(sum, d, buf);
      std::copy(buf, buf + n_valid, dst + col);
    } else {
      hn::StoreU(sum, d, dst + col);
    }
  };
  store(hn::Mul(hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)), hn::Set(d, inv_sum[0])), out);
  if constexpr (kTwo) {
    store(hn::Mul(hn::Add(hn::Add(b0, b1), hn::Add(b2, b3)), hn::Set(d, inv_sum[1])),
          out + layout.head_dim);
  }
}

template <TensorType kType, class D>
void attention_typed(D d, const KvLayout& layout, std::span<const KvRun> runs, size_t n_heads,
                     float scale, float* scores, float* out) {
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
  // Softmax, its normalization folded into the weighted sum: one pass over the scores less.
  // Heads go in pairs that share each value row's load.
  const size_t n_lanes = hn::Lanes(d);
  for (size_t h = 0; h < n_heads; h += 2) {
    float inv_sum[2] = {1.0f / exp_shifted_in_place<true>(scores + h * n_rows, n_rows), 0.0f};
    if (h + 1 < n_heads) {
      inv_sum[1] = 1.0f / exp_shifted_in_place<true>(scores + (h + 1) * n_rows, n_rows);
    }
    const float* w = scores + h * n_rows;
    float* out_h = out + h * head_dim;
    const auto columns = [&](auto two) HWY_ATTR {
      constexpr bool kTwo = decltype(two)::value;
      size_t col = 0;
      for (; col + n_lanes <= head_dim; col += n_lanes) {
        accumulate_values<kType, false, kTwo>(d, layout, runs, w, n_rows, col, n_lanes, inv_sum,
                                              out_h);
      }
      if (col < head_dim) {
        accumulate_values<kType, true, kTwo>(d, layout, runs, w, n_rows, col, head_dim - col,
                                             inv_sum, out_h);
      }
    };
    if (h + 1 < n_heads) {
      columns(std::true_type());
    } else {
      columns(std::false_type());
    }
  }
}

template <class D>
void attention_vectors(D d, const KvLayout& layout, std::span<const KvRun> runs, size_t n_heads,
                       float scale, float* scores, float* out) {
  if (layout.type == TensorType::kF16) {
    attention_typed<TensorType::kF16>(d, layout, runs, n_heads, scale, scores, out);
  } else {
    attention_typed<TensorType::kF32>(d, layout, runs, n_heads, scale, scores, out);
  }
}

void attention_simd(const KvLayout& layout, std::span<const KvRun> runs, size_t n_heads,
                    float scale, float* scores, float* out) {
  // The widest vector that divides a row: full vectors for head_dim 64 or 128, 8 lanes for the
  // 8-float rows of stories260K on AVX-512; padded tails only for odd sizes.
  if (layout.head_dim % hn::Lanes(DF()) == 0) {
    attention_vectors(DF(), layout, runs, n_heads, scale, scores, out);
  } else if (layout.head_dim % 8 == 0) {
    attention_vectors(hn::CappedTag<float, 8>(), layout, runs, n_heads, scale, scores, out);
  } else {
    attention_vectors(hn::CappedTag<float, 4>(), layout, runs, n_heads, scale, scores, out);
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

const char* target_name_simd() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace sllm::ops
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sllm::ops {

HWY_EXPORT(matmul_simd);
HWY_EXPORT(rmsnorm_simd);
HWY_EXPORT(softmax_simd);
HWY_EXPORT(silu_mul_simd);
HWY_EXPORT(add_simd);
HWY_EXPORT(dequantize_row_simd);
HWY_EXPORT(dot_kv_simd);
HWY_EXPORT(axpy_kv_simd);
HWY_EXPORT(attention_simd);
HWY_EXPORT(store_kv_simd);
HWY_EXPORT(target_name_simd);

namespace {

[[maybe_unused]] bool is_kv_type(TensorType type) {
  return type == TensorType::kF32 || type == TensorType::kF16;
}

}  // namespace

void matmul(const MatView& w, const float* x, size_t n_batch, float* y, ThreadPool& pool) {
  if (w.n_rows == 0 || n_batch == 0) return;
  assert(w.n_cols % (*tensor_type_traits(static_cast<uint32_t>(w.type))).block_elems == 0);
  HWY_DYNAMIC_DISPATCH(matmul_simd)(w, x, n_batch, y, pool);
}

void rmsnorm(const float* x, const float* weight, size_t n, float eps, float* out) {
  HWY_DYNAMIC_DISPATCH(rmsnorm_simd)(x, weight, n, eps, out);
}

void softmax(float* x, size_t n) { HWY_DYNAMIC_DISPATCH(softmax_simd)(x, n); }

void silu_mul(float* gate, const float* up, size_t n) {
  HWY_DYNAMIC_DISPATCH(silu_mul_simd)(gate, up, n);
}

void add(const float* x, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(add_simd)(x, y, n); }

void dequantize_row(TensorType type, const void* src, float* dst, size_t n) {
  assert(n % (*tensor_type_traits(static_cast<uint32_t>(type))).block_elems == 0);
  HWY_DYNAMIC_DISPATCH(dequantize_row_simd)(type, src, dst, n);
}

float dot_kv(const float* a, const void* k, TensorType kv_type, size_t n) {
  assert(is_kv_type(kv_type));
  return HWY_DYNAMIC_DISPATCH(dot_kv_simd)(a, k, kv_type, n);
}

void axpy_kv(float a, const void* v, TensorType kv_type, float* y, size_t n) {
  assert(is_kv_type(kv_type));
  HWY_DYNAMIC_DISPATCH(axpy_kv_simd)(a, v, kv_type, y, n);
}

void attention(const KvLayout& layout, std::span<const KvRun> runs, size_t n_heads, float scale,
               float* scores, float* out) {
  assert(is_kv_type(layout.type) && layout.head_dim > 0 && n_heads > 0);
  HWY_DYNAMIC_DISPATCH(attention_simd)(layout, runs, n_heads, scale, scores, out);
}

void store_kv(const float* src, void* dst, TensorType kv_type, size_t n) {
  assert(is_kv_type(kv_type));
  HWY_DYNAMIC_DISPATCH(store_kv_simd)(src, dst, kv_type, n);
}

const char* simd_target_name() { return HWY_DYNAMIC_DISPATCH(target_name_simd)(); }

}  // namespace sllm::ops
#endif  // HWY_ONCE
