// SIMD kernels of ops.h, the elementwise family: rmsnorm, softmax, silu_mul, add and
// dequantize_row, the per-vector ops between the matmuls of a layer.
//
// Highway's foreach_target.h compiles this file once per target; the public functions at the
// bottom pick the best target the CPU supports, once per call, through HWY_DYNAMIC_DISPATCH. The
// padded-tail map, the exp pieces and the element decoders are shared with the other kernel files
// through ops-inl.h.
#include "kernels/ops.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>

#include "kernels/quant.h"
#include "util/tensor_type.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/elementwise.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// After foreach_target.h: these are re-included for each target.
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "kernels/ops-inl.h"

HWY_BEFORE_NAMESPACE();
namespace sllm::ops {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

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
    default:
      // No SIMD decoder yet (K-quants, q4_1, q5_*, iq4_*, mxfp4): the scalar reference.
      return quant::dequantize_row_ref(type, src, dst, n);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace sllm::ops
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sllm::ops {

HWY_EXPORT(rmsnorm_simd);
HWY_EXPORT(softmax_simd);
HWY_EXPORT(silu_mul_simd);
HWY_EXPORT(add_simd);
HWY_EXPORT(dequantize_row_simd);

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

}  // namespace sllm::ops
#endif  // HWY_ONCE
