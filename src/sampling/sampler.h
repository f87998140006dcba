// Token sampling: repetition penalty, top-k, top-p, min-p, temperature and a seeded draw.
//
// The order of the stages is llama.cpp's (common/sampling.cpp with its default sampler list), so
// that the same options mean the same thing in both engines:
//
//   1. repetition penalty  over the logits of the tokens in the last repeat_last_n accepted tokens
//   2. top-k               keep the k largest logits
//   3. top-p               keep the smallest prefix (by probability) whose mass reaches top_p
//   4. min-p               keep tokens with p >= min_p * p_max
//   5. temperature         divide the logits by the temperature
//   6. softmax + draw      one uniform from the RNG, inverted through the cumulative distribution
//
// top-p and min-p see the probabilities at temperature 1: the temperature only reshapes the
// distribution among the survivors. With temperature == 0 the sampler is greedy: the penalty is
// still applied (as in llama.cpp), then the argmax is returned and the RNG is not advanced.
//
// The sampler's whole state (RNG + penalty history) round-trips through save_state/load_state, so
// that a resumed chat continues with exactly the tokens it would have produced.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "streamingllm/error.h"
#include "streamingllm/options.h"

namespace sllm {

// The public SamplingOptions (include/streamingllm/options.h); validate() is defined here.
using SamplerOptions = SamplingOptions;

// xoshiro256** (Blackman & Vigna 2018): small, fast, and its whole state is four words, which
// makes it trivial to save and restore. Seeded through splitmix64 as its authors recommend.
struct Rng {
  uint64_t s[4] = {};

  static Rng from_seed(uint64_t seed);
  uint64_t next_u64();
  // Uniform in [0, 1) from the top 53 bits: the same value on every platform, unlike
  // std::uniform_real_distribution whose algorithm is implementation-defined.
  double next_double();
};

class Sampler {
 public:
  // `options` must have passed validate() (asserted in debug builds).
  Sampler(SamplerOptions options, size_t n_vocab);

  // Picks the next token from `logits` ([n_vocab], modified in place). Does not record the
  // token: call accept() with whatever token is actually fed to the model.
  int32_t sample(std::span<float> logits);

  // Records a token (prompt or generated) in the repetition-penalty history.
  void accept(int32_t token);

  // The repetition-penalty history, oldest first (at most repeat_last_n tokens).
  std::vector<int32_t> history() const;

  // RNG + history as text; load_state validates it against this sampler's n_vocab and
  // repeat_last_n and leaves the sampler unchanged on error.
  std::string save_state() const;
  Status load_state(std::string_view state);

  const SamplerOptions& options() const { return options_; }
  // Its buffers at their largest: the candidates of a draw and repeat_last_n tokens of history.
  size_t memory_bytes() const {
    return n_vocab_ * sizeof(Candidate) + 2 * history_capacity_ * sizeof(int32_t);
  }
  size_t n_vocab() const { return n_vocab_; }

 private:
  struct Candidate {
    int32_t id;
    float logit;
  };

  void apply_repeat_penalty(std::span<float> logits);
  // Survivors of top-k, top-p and min-p, sorted by logit (descending, ties by id).
  void filter_candidates(std::span<const float> logits);
  int32_t draw();

  SamplerOptions options_;
  size_t n_vocab_;
  Rng rng_;
  // Accepted tokens, oldest first until it holds repeat_last_n of them, then a ring: it grows
  // with the tokens actually seen, so a large repeat_last_n costs nothing up front.
  std::vector<int32_t> history_;
  size_t history_capacity_;            // repeat_last_n
  size_t history_next_ = 0;            // once full: ring slot the next accepted token goes to
  std::vector<Candidate> candidates_;  // [n_vocab] scratch, reused across calls
  std::vector<int32_t> penalized_;     // [<= history size] scratch: distinct tokens in history
};

}  // namespace sllm
