#include "kernels/rope.h"

#include <cassert>
#include <cmath>

namespace sllm {

RopeAngles::RopeAngles(const RopeSpec& spec)
    : spec_(spec), inv_freq_(spec.rope_dim / 2), cos_(spec.rope_dim / 2), sin_(spec.rope_dim / 2) {
  assert(spec.rope_dim % 2 == 0 && spec.rope_dim <= spec.head_dim);
  assert(spec.freq_mul.empty() || spec.freq_mul.size() == spec.rope_dim / 2);
  for (size_t i = 0; i < inv_freq_.size(); ++i) {
    inv_freq_[i] = std::pow(spec.freq_base,
                            -2.0 * static_cast<double>(i) / static_cast<double>(spec.rope_dim));
    if (!spec.freq_mul.empty()) inv_freq_[i] *= spec.freq_mul[i];
  }
  // Folded into inv_freq_: the cache's size check counts inv_freq_, cos_ and sin_ per angle set.
  spec_.freq_mul = std::vector<double>();
  set_position(0);
}

void RopeAngles::set_position(uint64_t pos) {
  pos_ = pos;
  // Only differences of positions matter, so inv_freq's own rounding is harmless: every position
  // uses the same frequency. What must be exact is pos * inv_freq. It is rounded once in long
  // double (x86: 64-bit mantissa) and glibc's sinl/cosl reduce their argument exactly, so the
  // angle error is about pos * 2^-64 radians: logits at 2^48 equal those at 0 within 4e-5, where
  // a double product drifts from 2^40 on (measured: bench/position_precision, docs/design.md).
  const long double p = static_cast<long double>(pos);
  for (size_t i = 0; i < inv_freq_.size(); ++i) {
    const long double angle = p * inv_freq_[i];
    cos_[i] = static_cast<float>(std::cos(angle)) * spec_.mscale;
    sin_[i] = static_cast<float>(std::sin(angle)) * spec_.mscale;
  }
}

void RopeAngles::rotate(float* x, size_t n_heads) const {
  const size_t n_pairs = cos_.size();
  // Adjacent pairs (x[2i], x[2i+1]) or half-split pairs (x[i], x[i + rope_dim/2]).
  const size_t stride = spec_.layout == RopeLayout::kAdjacentPairs ? 2 : 1;
  const size_t other = spec_.layout == RopeLayout::kAdjacentPairs ? 1 : n_pairs;
  for (size_t h = 0; h < n_heads; ++h) {
    float* head = x + h * spec_.head_dim;
    for (size_t i = 0; i < n_pairs; ++i) {
      float* a = head + i * stride;
      float* b = a + other;
      const float x0 = *a, x1 = *b;
      *a = x0 * cos_[i] - x1 * sin_[i];
      *b = x0 * sin_[i] + x1 * cos_[i];
    }
  }
}

}  // namespace sllm
