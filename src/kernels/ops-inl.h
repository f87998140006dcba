// Per-target helpers shared by the SIMD kernel files (matmul.cc, elementwise.cc, attention.cc):
// element decoding (f16, bf16, dense rows, q8_0/q4_0 blocks), the f16 store, the transposed row
// sums, and the exp and softmax pieces that both the elementwise softmax and attention use.
//
// Highway's idiom for code shared between files that foreach_target.h compiles once per target
// (as gemma.cpp's ops/*-inl.h): this header has no ordinary include guard but one that toggles
// with HWY_TARGET_TOGGLE, so each kernel file re-includes it for every target and gets the
// helpers compiled in that target's namespace. Include it after "hwy/foreach_target.h".
//
// Every kernel accepts any element count and unaligned pointers: full vectors use LoadU/StoreU,
// and the last n % Lanes elements take a scalar or padded path.

// Not per target: included once.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/quant.h"
#include "util/tensor_type.h"

// Per-target include guard.
#if defined(SLLM_KERNELS_OPS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SLLM_KERNELS_OPS_INL_H_
#undef SLLM_KERNELS_OPS_INL_H_
#else
#define SLLM_KERNELS_OPS_INL_H_
#endif

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
// Exp and softmax pieces (elementwise.cc's softmax and silu_mul, attention.cc's weights)

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

}  // namespace HWY_NAMESPACE
}  // namespace sllm::ops
HWY_AFTER_NAMESPACE();

#endif  // SLLM_KERNELS_OPS_INL_H_
