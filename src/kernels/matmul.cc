// SIMD kernels of ops.h, the matmul family: weight matrices of every tensor type times a batch of
// f32 activation rows, split across the thread pool. Also simd_target_name().
//
// Highway's foreach_target.h compiles this file once per target (SSE4, AVX2, AVX-512, ... and the
// portable EMU128); the public functions at the bottom pick the best target the CPU supports, once
// per call, through HWY_DYNAMIC_DISPATCH. The element decoders and the transposed row sums it
// shares with the other kernel files are in ops-inl.h. One file per kernel family keeps each
// family's tuning (row groups, batch tiles) next to the code it tunes.
#include "kernels/ops.h"

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "hwy/cache_control.h"
#include "kernels/qdot.h"
#include "kernels/quant.h"
#include "util/tensor_type.h"
#include "util/thread_pool.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// After foreach_target.h: these are re-included for each target.
#include "hwy/highway.h"
#include "kernels/ops-inl.h"

HWY_BEFORE_NAMESPACE();
namespace sllm::ops {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

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
// ahead > 0 (dense types, the first batch tile): each 64-byte line of the group's rows is
// prefetched `ahead` bytes on, where the next group's rows are. A 2048-column f16 row is one
// 4 KiB page, and the hardware prefetchers stop at page ends, so without the hints every row of
// a decode started cold. Into L2 (the next group of f16 rows is 32 KiB, most of L1). TinyLlama
// f16 decode, medians of 3 interleaved runs on a shared machine: 2 threads 13.7 -> 17.9 tok/s,
// 1 thread 8.7 -> 9.2.
template <TensorType kType, size_t kRows>
HWY_INLINE void group_dots(const uint8_t* const* rows, size_t n_valid, const float* HWY_RESTRICT x,
                           size_t n_cols, float* HWY_RESTRICT y, size_t y_stride, size_t ahead) {
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
    constexpr size_t kElemBytes = kType == TensorType::kF32 ? 4 : 2;
    const size_t step_bytes = n_lanes * kElemBytes;  // a power of two: 64 divides or is a multiple
    for (; col + n_lanes <= n_cols; col += n_lanes) {
      if (ahead > 0 && (col * kElemBytes) % 64 < step_bytes) {
        for (size_t g = 0; g < kRowGroup; ++g) {
          const uintptr_t at = reinterpret_cast<uintptr_t>(rows[g]) + col * kElemBytes + ahead;
#if HWY_ARCH_X86
          _mm_prefetch(reinterpret_cast<const char*>(at), _MM_HINT_T1);  // into L2
#else
          hwy::Prefetch(reinterpret_cast<const void*>(at));
#endif
        }
      }
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

// y[b, r + g] for every batch row b and g < n_valid: one group of weight rows times x, tile by
// tile of batch rows, so the group is read from memory once and then served from L1.
// ahead: as group_dots' (0: no prefetch hints), given to the first tile only.
template <TensorType kType>
HWY_INLINE void group_times_batch(const uint8_t* const* rows, size_t n_valid, const MatView& w,
                                  const float* x, size_t n_batch, float* y, size_t r,
                                  size_t ahead) {
  for (size_t b0 = 0; b0 < n_batch; b0 += kBatchTile) {
    const float* xb = x + b0 * w.n_cols;
    float* yb = y + b0 * w.n_rows + r;
    const size_t n_tile = std::min(kBatchTile, n_batch - b0);
    const size_t a = b0 == 0 ? ahead : 0;
    if (n_tile == kBatchTile) {
      group_dots<kType, kBatchTile>(rows, n_valid, xb, w.n_cols, yb, w.n_rows, a);
    } else if constexpr (kBatchTile == 4) {
      if (n_tile == 3) {
        group_dots<kType, 3>(rows, n_valid, xb, w.n_cols, yb, w.n_rows, a);
      } else if (n_tile == 2) {
        group_dots<kType, 2>(rows, n_valid, xb, w.n_cols, yb, w.n_rows, a);
      } else {
        group_dots<kType, 1>(rows, n_valid, xb, w.n_cols, yb, w.n_rows, a);
      }
    } else {
      group_dots<kType, 1>(rows, n_valid, xb, w.n_cols, yb, w.n_rows, a);
    }
  }
}

// Rows [row_begin, row_end) of y for every batch row.
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
    // The next group's rows (past the last one too: a prefetch does not fault).
    const size_t ahead = is_block_type(kType) ? 0 : kRowGroup * w.row_bytes;
    group_times_batch<kType>(rows, n_valid, w, x, n_batch, y, r, ahead);
  }
}

// The types without a SIMD decoder (the K-quants, q4_1, q5_*, iq4_*, mxfp4): each group of weight
// rows is decoded to f32 by the scalar reference once, then multiplied by the f32 kernel. Correct
// for every type; their fast integer kernels are a separate step.
void matmul_rows_decoded(const MatView& w, const float* x, size_t n_batch, float* y,
                         size_t row_begin, size_t row_end) {
  const auto* data = static_cast<const uint8_t*>(w.data);
  std::vector<float> decoded(kRowGroup * w.n_cols);  // [kRowGroup, n_cols]
  for (size_t r = row_begin; r < row_end; r += kRowGroup) {
    const size_t n_valid = std::min(kRowGroup, row_end - r);
    for (size_t g = 0; g < n_valid; ++g) {
      quant::dequantize_row_ref(w.type, data + (r + g) * w.row_bytes, decoded.data() + g * w.n_cols,
                                w.n_cols);
    }
    const uint8_t* rows[kRowGroup];
    for (size_t g = 0; g < kRowGroup; ++g) {
      rows[g] =
          reinterpret_cast<const uint8_t*>(decoded.data() + std::min(g, n_valid - 1) * w.n_cols);
    }
    group_times_batch<TensorType::kF32>(rows, n_valid, w, x, n_batch, y, r, 0);
  }
}

template <TensorType kType, bool kDecoded>
void rows_of(const MatView& w, const float* x, size_t n_batch, float* y, size_t begin, size_t end) {
  if constexpr (kDecoded) {
    matmul_rows_decoded(w, x, n_batch, y, begin, end);
  } else {
    matmul_rows<kType>(w, x, n_batch, y, begin, end);
  }
}

// Each pool thread takes one contiguous chunk of rows: consecutive rows are adjacent in memory,
// and a chunk per thread leaves nothing to hand out per row.
// Small matrices (all of stories260K's at batch 1) run on the caller: waking the pool would cost
// more than the rows. Chunks are whole groups of rows.
template <TensorType kType, bool kDecoded = false>
void matmul_pooled(const MatView& w, const float* x, size_t n_batch, float* y, ThreadPool& pool) {
  if (!pool.worth_parallel(w.n_rows * w.n_cols * n_batch)) {
    return rows_of<kType, kDecoded>(w, x, n_batch, y, 0, w.n_rows);
  }
  constexpr size_t kMinRowsPerTask = 16;
  const size_t n_tasks =
      std::min(pool.n_threads(), (w.n_rows + kMinRowsPerTask - 1) / kMinRowsPerTask);
  const size_t n_groups = (w.n_rows + kRowGroup - 1) / kRowGroup;
  const size_t rows_per_task = (n_groups + n_tasks - 1) / n_tasks * kRowGroup;
  pool.run(n_tasks, [&](size_t task) HWY_ATTR {
    const size_t begin = std::min(w.n_rows, task * rows_per_task);
    const size_t end = std::min(w.n_rows, begin + rows_per_task);
    if (begin < end) rows_of<kType, kDecoded>(w, x, n_batch, y, begin, end);
  });
}

void matmul_simd(const MatView& w, const float* x, size_t n_batch, float* y, ThreadPool& pool) {
  // q8_0 / q4_0 and the K-quants take integer dot products with quantized activations (qdot.cc,
  // qdot_k.cc).
  if (is_kquant_matmul_type(w.type)) return matmul_kquant(w, x, n_batch, y, pool);
  if (is_quantized_matmul_type(w.type)) return matmul_quantized(w, x, n_batch, y, pool);
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
    default:
      return matmul_pooled<TensorType::kF32, true>(w, x, n_batch, y, pool);
  }
}

const char* target_name_simd() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace sllm::ops
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sllm::ops {

HWY_EXPORT(matmul_simd);
HWY_EXPORT(target_name_simd);

void matmul(const MatView& w, const float* x, size_t n_batch, float* y, ThreadPool& pool) {
  if (w.n_rows == 0 || n_batch == 0) return;
  assert(w.n_cols % traits_of(w.type).block_elems == 0);
  HWY_DYNAMIC_DISPATCH(matmul_simd)(w, x, n_batch, y, pool);
}

// Every kernel file is compiled for the same targets and dispatches on the same CPU, so the target
// matmul picks names the one that every kernel runs.
const char* simd_target_name() { return HWY_DYNAMIC_DISPATCH(target_name_simd)(); }

}  // namespace sllm::ops
#endif  // HWY_ONCE
