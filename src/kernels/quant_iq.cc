// Non-linear 4-bit code books: iq4_nl (32-element blocks), iq4_xs (256-element super-blocks with
// 6-bit sub-block scales), both over llama.cpp's kvalues_iq4nl, and mxfp4 (OCP microscaling:
// e2m1 codes with a shared power-of-two scale).
//
// The quantizers follow what ggml_quantize_chunk runs without an importance matrix (ggml-quants.c
// quantize_iq4_nl / quantize_iq4_xs with 7 scale tries, quantize_row_mxfp4_ref), float operation
// for float operation, so the bytes equal llama-quantize's.
#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>
#include <cstring>

#include "kernels/quant.h"
#include "kernels/quant_impl.h"

namespace sllm::quant::detail {
namespace {

constexpr float kGroupMaxEps = 1e-15f;  // ggml's GROUP_MAX_EPS
constexpr int kScaleTries = 7;          // ggml_quantize_chunk's ntry for iq4_nl / iq4_xs

float fl(int v) { return static_cast<float>(v); }

// Index of the code-book value nearest to x (values ascending); on a tie the upper one.
int nearest_value(const int8_t* values, float x) {
  if (x <= fl(values[0])) return 0;
  if (x >= fl(values[15])) return 15;
  int lo = 0;
  int hi = 15;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (x < fl(values[mid])) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return x - fl(values[hi - 1]) < fl(values[hi]) - x ? hi - 1 : hi;
}

// The iq4 scale of one 32-element sub-block: the scale that maps the largest magnitude onto the
// book's extreme, then 2 * kScaleTries + 1 nearby scales, each refitted by weighted least squares
// (weights x^2); the best fit wins. 0 for an all-zero sub-block.
float iq4_subblock_scale(const float* x) {
  const int8_t* values = kIq4nlValues;
  float weight[32];
  float amax = 0.0f;
  float max = 0.0f;
  for (size_t j = 0; j < 32; ++j) {
    weight[j] = x[j] * x[j];
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  if (amax < kGroupMaxEps) return 0.0f;
  auto fit = [&](float id, float* sumqx, float* sumq2) {
    *sumqx = 0.0f;
    *sumq2 = 0.0f;
    for (size_t j = 0; j < 32; ++j) {
      const float q = fl(values[nearest_value(values, id * x[j])]);
      *sumqx += weight[j] * q * x[j];
      *sumq2 += weight[j] * q * q;
    }
  };
  float d = -max / fl(values[0]);
  float sumqx;
  float sumq2;
  fit(1.0f / d, &sumqx, &sumq2);
  d = sumq2 > 0.0f ? sumqx / sumq2 : 0.0f;
  float best = d * sumqx;
  for (int itry = -kScaleTries; itry <= kScaleTries; ++itry) {
    fit(fl(itry + values[0]) / max, &sumqx, &sumq2);
    if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
      d = sumqx / sumq2;
      best = d * sumqx;
    }
  }
  return d;
}

// Packs the codes of 32 elements: byte j holds element j (low nibble) and j + 16 (high).
void pack_nibbles(const uint8_t* L, uint8_t* qs) {
  for (size_t j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>(L[j] | (L[j + 16] << 4));
}

BlockIQ4_NL quantize_iq4_nl(const float* x) {
  BlockIQ4_NL y{};
  const float d = iq4_subblock_scale(x);
  y.d = f32_to_f16(d);
  // The codes are re-picked with the f32 scale the search found (not the stored f16 one).
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  uint8_t L[32];
  for (size_t j = 0; j < 32; ++j)
    L[j] = static_cast<uint8_t>(nearest_value(kIq4nlValues, id * x[j]));
  pack_nibbles(L, y.qs);
  return y;
}

BlockIQ4_XS quantize_iq4_xs(const float* x) {
  BlockIQ4_XS y{};
  constexpr size_t kSub = kSuperBlockElems / 32;
  float scales[kSub];
  float max_scale = 0.0f;
  float amax_scale = 0.0f;
  for (size_t ib = 0; ib < kSub; ++ib) {
    scales[ib] = iq4_subblock_scale(x + 32 * ib);
    if (std::fabs(scales[ib]) > amax_scale) {
      amax_scale = std::fabs(scales[ib]);
      max_scale = scales[ib];
    }
  }
  // The sub-block scales become 6-bit multiples (l - 32) of d; the largest maps to -32.
  const float d = -max_scale / 32.0f;
  y.d = f32_to_f16(d);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (size_t ib = 0; ib < kSub; ++ib) {
    const int l = std::max(-32, std::min(31, nearest_int(id * scales[ib])));
    const float dl = d * fl(l);
    const float idl = dl != 0.0f ? 1.0f / dl : 0.0f;
    uint8_t L[32];
    for (size_t j = 0; j < 32; ++j) {
      L[j] = static_cast<uint8_t>(nearest_value(kIq4nlValues, idl * x[32 * ib + j]));
    }
    pack_nibbles(L, y.qs + 16 * ib);
    const int biased = l + 32;
    y.scales_l[ib / 2] =
        static_cast<uint8_t>(y.scales_l[ib / 2] | ((biased & 0xF) << (4 * (ib % 2))));
    y.scales_h = static_cast<uint16_t>(y.scales_h | ((biased >> 4) << (2 * ib)));
  }
  return y;
}

// e8m0 exponent e as a scale, halved (the code book is doubled): 2^(e - 128); e < 2 gives f32
// subnormals.
float e8m0_half(uint8_t e) {
  const uint32_t bits = e < 2 ? 0x00200000u << e : static_cast<uint32_t>(e - 1) << 23;
  return std::bit_cast<float>(bits);
}

BlockMXFP4 quantize_mxfp4(const float* x) {
  BlockMXFP4 y{};
  float amax = 0.0f;
  for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  // The shared exponent puts max|x| at the top binade of e2m1 (values up to 6 = 12 / 2).
  y.e = amax > 0.0f ? truncate_to_byte(std::floor(std::log2(amax)) - 2.0f + 127.0f) : 0;
  const float d = e8m0_half(y.e);
  auto code = [d](float v) {
    int best = 0;
    float best_err = std::fabs(fl(kFp4Values[0]) * d - v);
    for (int i = 1; i < 16; ++i) {
      const float err = std::fabs(fl(kFp4Values[i]) * d - v);
      if (err < best_err) {
        best = i;
        best_err = err;
      }
    }
    return static_cast<uint8_t>(best);
  };
  uint8_t L[32];
  for (size_t j = 0; j < 32; ++j) L[j] = code(x[j]);
  pack_nibbles(L, y.qs);
  return y;
}

int nibble(const uint8_t* qs, size_t j) { return j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4; }

}  // namespace

void quantize_iq(TensorType type, const float* x, uint8_t* out, size_t n) {
  switch (type) {
    case TensorType::kIQ4_NL:
      for (size_t b = 0; b < n / 32; ++b) store_block(quantize_iq4_nl(x + 32 * b), out + b * 18);
      return;
    case TensorType::kIQ4_XS:
      for (size_t b = 0; b < n / kSuperBlockElems; ++b) {
        store_block(quantize_iq4_xs(x + kSuperBlockElems * b), out + b * sizeof(BlockIQ4_XS));
      }
      return;
    case TensorType::kMXFP4:
      for (size_t b = 0; b < n / 32; ++b) store_block(quantize_mxfp4(x + 32 * b), out + b * 17);
      return;
    default:
      assert(false && "quantize_iq: not an iq type");
  }
}

void dequantize_iq(TensorType type, const uint8_t* in, float* y, size_t n) {
  switch (type) {
    case TensorType::kIQ4_NL:
      for (size_t b = 0; b < n / 32; ++b, y += 32) {
        const auto block = load_block<BlockIQ4_NL>(in + b * sizeof(BlockIQ4_NL));
        const float d = f16_to_f32(block.d);
        for (size_t j = 0; j < 32; ++j) y[j] = d * fl(kIq4nlValues[nibble(block.qs, j)]);
      }
      return;
    case TensorType::kIQ4_XS:
      for (size_t b = 0; b < n / kSuperBlockElems; ++b) {
        const auto block = load_block<BlockIQ4_XS>(in + b * sizeof(BlockIQ4_XS));
        const float d = f16_to_f32(block.d);
        for (size_t ib = 0; ib < kSuperBlockElems / 32; ++ib, y += 32) {
          const int ls = ((block.scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) |
                         (((block.scales_h >> (2 * ib)) & 3) << 4);
          const float dl = d * fl(ls - 32);
          for (size_t j = 0; j < 32; ++j) {
            y[j] = dl * fl(kIq4nlValues[nibble(block.qs + 16 * ib, j)]);
          }
        }
      }
      return;
    case TensorType::kMXFP4:
      for (size_t b = 0; b < n / 32; ++b, y += 32) {
        const auto block = load_block<BlockMXFP4>(in + b * sizeof(BlockMXFP4));
        const float d = e8m0_half(block.e);
        for (size_t j = 0; j < 32; ++j) y[j] = fl(kFp4Values[nibble(block.qs, j)]) * d;
      }
      return;
    default:
      assert(false && "dequantize_iq: not an iq type");
  }
}

}  // namespace sllm::quant::detail
