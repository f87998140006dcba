// Attention sinks, measured (StreamingLLM, Section 3.1 and Figure 2): how much of its attention
// each layer and head of a model puts on the first tokens of a stream.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "streamingllm/error.h"
#include "streamingllm/model.h"
#include "streamingllm/options.h"

namespace sllm {

struct AttentionMassOptions {
  size_t max_k = 8;  // measure the mass on the first 1..max_k tokens
  // Queries at positions below this are not averaged. A query at position t attends over t + 1
  // tokens, so the first k of them hold a share of k / (t + 1) even under uniform attention (all
  // of it for t < k): early queries would show a "sink" in any model. Must be >= max_k.
  size_t min_query_pos = 16;
  size_t max_batch = 64;  // tokens per forward pass
};

// Means over the n_queries queries at positions first_query_pos .. first_query_pos+n_queries-1.
struct AttentionMass {
  size_t n_layers = 0;
  size_t n_heads = 0;
  size_t max_k = 0;
  size_t first_query_pos = 0;
  size_t n_queries = 0;
  std::vector<double> mass;     // [n_layers, n_heads, max_k]: [.., k-1] = mean softmax weight
                                // the head puts on stream tokens 0..k-1
  std::vector<double> uniform;  // [max_k]: the same under uniform attention, mean of k / (t + 1)

  // k in 1..max_k.
  double head_mass(size_t layer, size_t head, size_t k) const {
    return mass[(layer * n_heads + head) * max_k + (k - 1)];
  }
  double layer_mass(size_t layer, size_t k) const;  // mean over the layer's heads
  double uniform_mass(size_t k) const { return uniform[k - 1]; }
};

// Runs `tokens` (BOS first, as a stream starts) through the model with dense attention and
// records the attention mass. Needs more than options.min_query_pos tokens. O(n^2).
Result<AttentionMass> measure_attention_mass(const Model& model, std::span<const TokenId> tokens,
                                             const AttentionMassOptions& options = {});

}  // namespace sllm
