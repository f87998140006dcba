// Rotary position embedding (RoPE, Su et al. 2021).
//
// Pair i of a head (i < rope_dim / 2) is rotated by the angle pos * base^(-2i / rope_dim). The
// frequencies are doubles; the product pos * freq is formed in long double (64-bit mantissa on
// x86) and reduced exactly by sinl/cosl before cos and sin are rounded to float, so that a large
// position is rotated as accurately as a small one (to float precision up to at least 2^48, see
// docs/design.md): the streaming cache rotates keys at their absolute stream position, which
// grows without bound.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sllm {

enum class RopeLayout {
  kAdjacentPairs,  // llama, mistral: pairs (x[2i], x[2i+1])       (llama.cpp LLAMA_ROPE_TYPE_NORM)
  kHalfSplit,      // qwen2, NeoX:    pairs (x[i], x[i + rope_dim/2]) (LLAMA_ROPE_TYPE_NEOX)
};

struct RopeSpec {
  size_t head_dim = 0;
  size_t rope_dim = 0;         // leading dims of each head that are rotated (<= head_dim, even)
  double freq_base = 10000.0;  // theta
  RopeLayout layout = RopeLayout::kAdjacentPairs;
  // Pair i turns at base^(-2i / rope_dim) * freq_mul[i] radians per position (empty: all 1).
  // Linear and YaRN scaling and llama.cpp's rope_freqs factors all come down to such a per-pair
  // multiplier, so every angle stays linear in the position and the cache's relative-position
  // identities hold unchanged.
  std::vector<double> freq_mul{};
  // cos and sin are multiplied by it (YaRN's magnitude scaling; llama.cpp's attn_factor). Queries
  // and keys are both rotated once, so attention scores scale by mscale^2 as in llama.cpp.
  float mscale = 1.0f;
};

// cos/sin of every pair's angle at one position: [rope_dim / 2] each.
class RopeAngles {
 public:
  explicit RopeAngles(const RopeSpec& spec);

  // Recomputes the table for `pos`. Costs rope_dim / 2 sin+cos in long double.
  void set_position(uint64_t pos);
  uint64_t position() const { return pos_; }

  // Rotates n_heads consecutive heads of head_dim floats in place.
  void rotate(float* x, size_t n_heads) const;

 private:
  RopeSpec spec_;
  std::vector<double> inv_freq_;  // [rope_dim / 2]
  std::vector<float> cos_, sin_;  // [rope_dim / 2]
  uint64_t pos_ = 0;
};

}  // namespace sllm
