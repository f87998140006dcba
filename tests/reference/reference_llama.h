// Independent reference implementations of Llama inference and StreamingLLM, for the tests only.
//
// Deliberately simple: double precision everywhere, weights converted to double at load, one
// token and one head at a time, no SIMD, no threads, and none of src/kernels. The engine is
// correct when it agrees with these; these are checked against the known-good greedy output of
// stories260K (tests/reference_test.cc). Failures throw std::runtime_error: this is test code.
//
// Math (Touvron et al. 2023, as in llama2.c run.c):
//   x = embed(token)
//   per layer: h = rmsnorm(x) * attn_norm
//              q, k, v = Wq h, Wk h, Wv h; RoPE on q and k
//              x += Wo attention(q, keys, values)
//              h = rmsnorm(x) * ffn_norm
//              x += Wdown (silu(Wgate h) * Wup h)
//   logits = Wout (rmsnorm(x) * output_norm)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sllm::reference {

// Which dimensions of a head RoPE rotates together.
enum class RopeStyle {
  kAdjacentPairs,  // llama / GPT-J: (x[2i], x[2i+1])
  kHalfSplit,      // GPT-NeoX: (x[i], x[i + rope_dim/2])
};

struct ReferenceConfig {
  size_t dim = 0;  // embedding length
  size_t n_layers = 0;
  size_t n_heads = 0;     // query heads
  size_t n_kv_heads = 0;  // key/value heads; query head h reads kv head h / (n_heads / n_kv_heads)
  size_t head_dim = 0;    // dim / n_heads unless the GGUF says otherwise (attention.key_length)
  size_t ffn_dim = 0;     // feed_forward_length
  size_t vocab_size = 0;  // length of tokenizer.ggml.tokens
  size_t rope_dim = 0;    // leading dimensions of each head that RoPE rotates; <= head_dim
  double rope_base = 10000.0;
  double rms_eps = 1e-5;
  RopeStyle rope_style = RopeStyle::kAdjacentPairs;
  // Rope scaling (linear, YaRN, Llama 3.1's rope_freqs) as llama.cpp applies it: pair i's
  // frequency times rope_freq_mul[i] (empty: 1), cos and sin times rope_mscale. load() does not
  // read them from the file; a test sets them.
  std::vector<double> rope_freq_mul = {};
  double rope_mscale = 1.0;
};

// A row-major matrix: y = W x means y[r] = sum_c W[r][c] x[c].
struct Matrix {
  size_t n_rows = 0;
  size_t n_cols = 0;
  std::vector<double> data;  // [n_rows, n_cols]

  double at(size_t row, size_t col) const { return data[row * n_cols + col]; }
  std::vector<double> apply(const std::vector<double>& x) const;  // x: [n_cols] -> [n_rows]
};

struct ReferenceLayer {
  std::vector<double> attn_norm;  // [dim]
  Matrix wq;                      // [n_heads * head_dim, dim]
  Matrix wk;                      // [n_kv_heads * head_dim, dim]
  Matrix wv;                      // [n_kv_heads * head_dim, dim]
  Matrix wo;                      // [dim, n_heads * head_dim]
  std::vector<double> ffn_norm;   // [dim]
  Matrix w_gate;                  // [ffn_dim, dim]
  Matrix w_up;                    // [ffn_dim, dim]
  Matrix w_down;                  // [dim, ffn_dim]
};

struct ReferenceWeights {
  Matrix token_embd;  // [vocab_size, dim]: row t is the embedding of token t
  std::vector<ReferenceLayer> layers;
  std::vector<double> output_norm;  // [dim]
  Matrix output;                    // [vocab_size, dim]; a copy of token_embd when tied
};

// The unrotated projections of one token in one layer.
struct QkvProjection {
  std::vector<double> q;  // [n_heads * head_dim]
  std::vector<double> k;  // [n_kv_heads * head_dim]
  std::vector<double> v;  // [n_kv_heads * head_dim]
};

// IEEE 754 binary16 to double, exactly (subnormals, infinities and NaN included).
double f16_to_double(uint16_t bits);

// out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i].
std::vector<double> rmsnorm(const std::vector<double>& x, const std::vector<double>& weight,
                            double eps);

// In place: x = exp(x - max) / sum(exp(x - max)).
void softmax(std::vector<double>& x);

// Rotates each of the `n_heads` heads of `x` ([n_heads * head_dim]) to position `pos`: pair i
// (i < rope_dim / 2) turns by the angle pos * rope_base^(-2i / rope_dim) * rope_freq_mul[i] (Su
// et al. 2021) and is scaled by rope_mscale; dimensions >= rope_dim are left as they are.
void rope(std::vector<double>& x, size_t n_heads, uint64_t pos, const ReferenceConfig& config);

class ReferenceLlama {
 public:
  // Loads a llama-architecture GGUF; F32 and F16 tensors only. Throws std::runtime_error naming
  // the file and the key or tensor at fault.
  static ReferenceLlama load(const std::string& gguf_path);

  // Checks every shape against `config` and throws on a mismatch.
  ReferenceLlama(ReferenceConfig config, ReferenceWeights weights);

  const ReferenceConfig& config() const { return config_; }
  const ReferenceWeights& weights() const { return weights_; }

  // Logits [n_tokens][vocab_size] of a causal forward pass over `tokens` at positions
  // first_pos, first_pos + 1, ...
  std::vector<std::vector<double>> forward_dense(const std::vector<int32_t>& tokens,
                                                 uint64_t first_pos = 0) const;

  // The steps of the forward pass, for references that manage their own keys and values.
  std::vector<double> embed(int32_t token) const;  // [dim]
  QkvProjection project_qkv(size_t layer, const std::vector<double>& x) const;
  // Attention of one (rotated) query over n keys (rotated) and values, [n][n_kv_heads *
  // head_dim] each; returns the concatenated heads [n_heads * head_dim].
  std::vector<double> attend(const std::vector<double>& q,
                             const std::vector<std::vector<double>>& keys,
                             const std::vector<std::vector<double>>& values) const;
  // x += Wo attn, then the feed-forward block.
  void finish_layer(size_t layer, const std::vector<double>& attn, std::vector<double>& x) const;
  std::vector<double> logits(const std::vector<double>& x) const;  // [vocab_size]

 private:
  ReferenceConfig config_;
  ReferenceWeights weights_;
};

// StreamingLLM as in the paper's reference code (Xiao et al. 2023, mit-han-lab/streaming-llm):
// the first n_sinks tokens of the stream stay in the cache for good, the last `window` tokens
// roll. Keys are stored unrotated; every step re-rotates each cached key at its position in the
// cache (0..n-1: sinks, then the window in stream order) and the query at n-1. So a token at
// stream index t sits at cache position min(t, n_sinks + window - 1).
// n_sinks = 0 is window attention; n_sinks + window >= the stream length is dense attention.
class NaiveStreamingReference {
 public:
  // `window` counts the current token, so it must be at least 1. `model` must outlive this.
  NaiveStreamingReference(const ReferenceLlama& model, size_t n_sinks, size_t window);

  // Feeds the next token of the stream and returns its logits [vocab_size].
  std::vector<double> step(int32_t token);

  size_t n_cached() const { return keys_.empty() ? 0 : keys_[0].size(); }
  uint64_t n_seen() const { return n_seen_; }

 private:
  const ReferenceLlama& model_;
  size_t n_sinks_;
  size_t window_;
  uint64_t n_seen_ = 0;
  std::vector<std::vector<std::vector<double>>> keys_;    // [n_layers][n_cached][kv_dim], unrotated
  std::vector<std::vector<std::vector<double>>> values_;  // [n_layers][n_cached][kv_dim]
};

// Sliding window with re-computation (the paper's strong but slow baseline): the logits of the
// last token of `stream_so_far` after a fresh dense pass over its last `window` tokens at
// positions 0..window-1.
std::vector<double> recompute_step(const ReferenceLlama& model,
                                   const std::vector<int32_t>& stream_so_far, size_t window);

}  // namespace sllm::reference
