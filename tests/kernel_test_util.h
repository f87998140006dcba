// Helpers shared by the kernel tests (kernels_test.cc, number_format_test.cc): counts that hit
// every SIMD remainder, misaligned buffers, bit-exact comparisons.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kernels/quant.h"
#include "util/tensor_type.h"

namespace sllm::kernel_test {

inline constexpr float kEps = std::numeric_limits<float>::epsilon();

// k rounding errors of f32, relative: the bound for k roundings (or a sum of k terms).
inline double ulps(size_t k) { return static_cast<double>(k) * kEps; }

// Every count from 0 to 2 * 16 + 3 (16 = f32 lanes of AVX-512, the widest x86 target) hits every
// remainder on every target; then the real widths: stories260K dim 64 and ffn 172, TinyLlama dim
// 2048 and ffn 5632.
inline std::vector<size_t> test_counts() {
  std::vector<size_t> counts;
  for (size_t n = 0; n <= 35; ++n) counts.push_back(n);
  for (size_t n : {64, 172, 2048, 5632}) counts.push_back(n);
  return counts;
}

// Block-format counts: multiples of 32, including the real widths.
inline std::vector<size_t> block_counts() { return {0, 32, 64, 96, 160, 2048, 5632}; }

inline std::vector<float> random_floats(std::mt19937& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// A copy of `values` that starts `offset` elements into its allocation, so that with offset 1 no
// vector load lands on a vector-aligned address.
template <typename T>
class Shifted {
 public:
  Shifted(const std::vector<T>& values, size_t offset) : storage_(values.size() + offset) {
    std::copy(values.begin(), values.end(), storage_.begin() + static_cast<ptrdiff_t>(offset));
    offset_ = offset;
  }
  T* data() { return storage_.data() + offset_; }
  std::vector<T> values() const {
    return std::vector<T>(storage_.begin() + static_cast<ptrdiff_t>(offset_), storage_.end());
  }

 private:
  std::vector<T> storage_;
  size_t offset_ = 0;
};

// Compares floats bit for bit (-0 vs 0 differs, equal NaNs match).
inline std::vector<uint32_t> bit_patterns(const std::vector<float>& values) {
  std::vector<uint32_t> bits(values.size());
  std::transform(values.begin(), values.end(), bits.begin(),
                 [](float f) { return std::bit_cast<uint32_t>(f); });
  return bits;
}

inline bool is_f16_nan(uint16_t h) { return (h & 0x7C00) == 0x7C00 && (h & 0x03FF) != 0; }

// Encodes n floats of `type` into bytes.
inline std::vector<uint8_t> encode(TensorType type, const std::vector<float>& values) {
  const auto traits = *tensor_type_traits(static_cast<uint32_t>(type));
  std::vector<uint8_t> bytes(values.size() / traits.block_elems * traits.block_bytes);
  quant::quantize_row(type, values.data(), bytes.data(), values.size());
  return bytes;
}

}  // namespace sllm::kernel_test
