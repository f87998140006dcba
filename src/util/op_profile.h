// Where a forward pass spends its time: wall time, calls and weight bytes per phase, kept by the
// caller of a forward pass that asks for it (ForwardScratch::profile) and left null otherwise, so
// that an unprofiled pass does no timing at all. For `streamingllm bench`'s profile of a decoded
// token (weight bytes / time per phase, against the machine's read bandwidth).
//
// Phases are timed on the calling thread around whole operations; a matmul's time includes the
// pool's threads working on it. One OpProfile belongs to one stream, used by one thread at a time.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sllm {

enum class Phase : uint8_t {
  kEmbed,      // token rows of the embedding table
  kNorm,       // every norm, the final one included
  kQkv,        // Q, K, V projections (with biases and head norms)
  kAttention,  // positions, K/V stores and attention over the cache
  kOutProj,    // the attention's output projection
  kFfn,        // the feed-forward block
  kResidual,   // residual additions
  kLmHead,     // the output projection to the vocabulary (and a final soft-cap)
};
inline constexpr size_t kNumPhases = 8;

constexpr std::string_view phase_name(Phase p) {
  constexpr std::array<std::string_view, kNumPhases> kNames{
      "embedding", "norms", "qkv", "attention", "attn_output", "ffn", "residual", "lm_head"};
  return kNames[static_cast<size_t>(p)];
}

struct PhaseTotal {
  uint64_t calls = 0;
  uint64_t ns = 0;
  uint64_t weight_bytes = 0;  // bytes of weight matrices the phase's calls read
};

struct OpProfile {
  std::array<PhaseTotal, kNumPhases> phases{};
};

// Adds its lifetime to `phase` of `profile`, with `weight_bytes`; does nothing when profile is
// null.
class PhaseTimer {
 public:
  PhaseTimer(OpProfile* profile, Phase phase, uint64_t weight_bytes = 0)
      : total_(profile != nullptr ? &profile->phases[static_cast<size_t>(phase)] : nullptr),
        weight_bytes_(weight_bytes) {
    if (total_ != nullptr) t0_ = Clock::now();
  }
  ~PhaseTimer() {
    if (total_ == nullptr) return;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0_);
    total_->ns += static_cast<uint64_t>(ns.count());
    total_->calls += 1;
    total_->weight_bytes += weight_bytes_;
  }
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

 private:
  using Clock = std::chrono::steady_clock;
  PhaseTotal* total_;
  uint64_t weight_bytes_;
  Clock::time_point t0_{};
};

}  // namespace sllm
