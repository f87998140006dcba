// Attention sinks, measured (StreamingLLM, Section 3.1 and Figure 2): how much of its attention
// each layer and head puts on the first tokens of a stream.
//
// A model with attention sinks gives the first token(s) far more than a uniform share of its
// attention, whatever those tokens say. Window attention evicts them, the softmax hands their mass
// to the remaining tokens and the model collapses; keeping them (streaming) avoids that. A model
// whose heads give the first tokens about their uniform share has no sink to lose, and window
// attention does not collapse on it.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "kernels/rope.h"
#include "model/llama.h"
#include "streamingllm/error.h"
#include "util/thread_pool.h"

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

// Dense causal attention that records, per layer and head, the softmax weight each query puts on
// the first max_k tokens of the stream. Pass attend() to LlamaModel::forward as the AttendFn: it
// rotates q and k at the tokens' stream positions, keeps every key and value and writes the
// attention output, so the model computes what it computes with a dense cache (in f32, with
// plain loops: this is a measurement, not a hot path; O(n^2) over the stream).
class AttentionProbe {
 public:
  AttentionProbe(const ModelConfig& config, const AttentionMassOptions& options);

  // The AttendFn contract (model/llama.h): batches of consecutive tokens, layers in order.
  void attend(size_t layer, size_t n_tokens, float* q, float* k, const float* v, float* out);

  // Tokens that have been through every layer.
  size_t n_seen() const { return n_seen_.back(); }
  AttentionMass result() const;

 private:
  ModelConfig config_;
  AttentionMassOptions options_;
  RopeAngles rope_;
  std::vector<std::vector<float>> keys_;    // [n_layers][n_seen, kv_dim], rotated at their position
  std::vector<std::vector<float>> values_;  // [n_layers][n_seen, kv_dim]
  std::vector<size_t> n_seen_;              // [n_layers]
  std::vector<double> mass_sum_;            // [n_layers, n_heads, max_k]
  std::vector<double> uniform_sum_;         // [max_k], over layer 0's queries
  size_t n_queries_ = 0;                    // counted in layer 0
  std::vector<float> weights_;              // [n_seen]: one query's softmax
};

// Runs tokens (BOS first, as a stream starts) through the model with an AttentionProbe.
// Needs more than options.min_query_pos tokens.
Result<AttentionMass> measure_attention_mass(const LlamaModel& model,
                                             std::span<const TokenId> tokens,
                                             const AttentionMassOptions& options, ThreadPool& pool);

}  // namespace sllm
