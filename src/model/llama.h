// The Llama family (llama, mistral, qwen2): RMSNorm, RoPE, grouped-query attention, SwiGLU.
//
// The model owns no KV cache and knows nothing about cache policies: for each layer it computes
// Q, K, V of a batch of consecutive stream tokens and hands them to an AttendFn, which applies
// positions, stores K/V and returns the attention output.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/ops.h"
#include "model/config.h"
#include "streamingllm/error.h"
#include "util/thread_pool.h"
#include "util/token.h"

namespace sllm {

// q: [n_tokens, n_heads * head_dim], k and v: [n_tokens, n_kv_heads * head_dim], all unrotated;
// the callee may rotate q and k in place. out: [n_tokens, n_heads * head_dim].
using AttendFn = std::function<void(size_t layer, size_t n_tokens, float* q, float* k,
                                    const float* v, float* out)>;

// Activations for batches of up to max_batch tokens; allocated once, reused every call.
struct ForwardScratch {
  // Bytes the constructor allocates, checked (overflow, machine memory) before it is called.
  static Result<uint64_t> bytes_needed(const ModelConfig& config, size_t max_batch);
  ForwardScratch(const ModelConfig& config, size_t max_batch);
  size_t max_batch;
  std::vector<float> x;     // [max_batch, dim] residual stream
  std::vector<float> xn;    // [max_batch, dim] normed input of a sub-block
  std::vector<float> q;     // [max_batch, q_dim]
  std::vector<float> k, v;  // [max_batch, kv_dim]
  std::vector<float> att;   // [max_batch, q_dim] attention output
  std::vector<float> proj;  // [max_batch, dim] output of wo / w_down
  std::vector<float> gate;  // [max_batch, ffn_dim]
  std::vector<float> up;    // [max_batch, ffn_dim]
};

class LlamaModel {
 public:
  // Views the weights in `gguf`, which must outlive the model.
  static Result<LlamaModel> load(const GgufFile& gguf);

  const ModelConfig& config() const { return config_; }

  // Runs tokens[0..n) (consecutive in the stream, n <= scratch.max_batch) through the model.
  // logits: [n_tokens, n_vocab] if all_logits, else [n_vocab] for the last token only.
  void forward(std::span<const TokenId> tokens, const AttendFn& attend, ForwardScratch& scratch,
               ThreadPool& pool, float* logits, bool all_logits) const;

 private:
  struct Layer {
    std::vector<float> attn_norm;   // [dim]
    ops::MatView wq, wk, wv, wo;    // [q_dim, dim], [kv_dim, dim] x2, [dim, q_dim]
    std::vector<float> bq, bk, bv;  // qwen2 only: [q_dim], [kv_dim], [kv_dim]
    std::vector<float> ffn_norm;    // [dim]
    ops::MatView w_gate, w_up;      // [ffn_dim, dim]
    ops::MatView w_down;            // [dim, ffn_dim]
  };

  ModelConfig config_;
  ops::MatView token_embd_;  // [n_vocab, dim]
  std::vector<Layer> layers_;
  std::vector<float> output_norm_;  // [dim]
  ops::MatView output_;             // [n_vocab, dim]; token_embd_ when tied
};

}  // namespace sllm
