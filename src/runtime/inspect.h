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
#include "model/transformer.h"
#include "streamingllm/error.h"
#include "streamingllm/inspect.h"
#include "util/thread_pool.h"

namespace sllm {

// AttentionMassOptions and AttentionMass are the public API's (include/streamingllm/inspect.h).

// Dense causal attention that records, per layer and head, the softmax weight each query puts on
// the first max_k tokens of the stream. Pass attend() to TransformerModel::forward as the AttendFn:
// it rotates q and k at the tokens' stream positions, keeps every key and value and writes the
// attention output, so the model computes what it computes with a dense cache (in f32, with
// plain loops: this is a measurement, not a hot path; O(n^2) over the stream).
class AttentionProbe {
 public:
  // n_ctx: the stream's length, which chooses the rope where the model has two (long-rope).
  AttentionProbe(const ModelConfig& config, const AttentionMassOptions& options, size_t n_ctx = 0);

  // The AttendFn contract (model/transformer.h): batches of consecutive tokens, layers in order.
  void attend(size_t layer, size_t n_tokens, float* q, float* k, const float* v, float* out);

  // Tokens that have been through every layer.
  size_t n_seen() const { return n_seen_.back(); }
  AttentionMass result() const;

 private:
  ModelConfig config_;
  AttentionMassOptions options_;
  RopeAngles rope_;
  RopeAngles local_rope_;                   // sliding-window layers' (Gemma)
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
Result<AttentionMass> measure_attention_mass(const TransformerModel& model,
                                             std::span<const TokenId> tokens,
                                             const AttentionMassOptions& options, ThreadPool& pool);

}  // namespace sllm
