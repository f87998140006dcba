// A decoder-only transformer of any supported family (model/family.h) over the shared blocks
// (model/blocks.h).
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
#include "model/blocks.h"
#include "model/config.h"
#include "streamingllm/error.h"
#include "util/thread_pool.h"
#include "util/token.h"

namespace sllm {

// q: [n_tokens, n_heads * head_dim], k and v: [n_tokens, n_kv_heads * head_dim], all unrotated;
// the callee may rotate q and k in place. out: [n_tokens, n_heads * head_dim].
using AttendFn = std::function<void(size_t layer, size_t n_tokens, float* q, float* k,
                                    const float* v, float* out)>;

class TransformerModel {
 public:
  // Views the weights in `gguf`, which must outlive the model. `gelu` is for tests (GeluKind).
  static Result<TransformerModel> load(const GgufFile& gguf, GeluKind gelu = GeluKind::kGgmlTable);

  const ModelConfig& config() const { return config_; }

  // Runs tokens[0..n) (consecutive in the stream, n <= scratch.max_batch) through the model.
  // logits: [n_tokens, n_vocab] if all_logits, else [n_vocab] for the last token only.
  void forward(std::span<const TokenId> tokens, const AttendFn& attend, ForwardScratch& scratch,
               ThreadPool& pool, float* logits, bool all_logits) const;

 private:
  struct Layer {
    Norm attn_norm, ffn_norm;
    Norm attn_post_norm, ffn_post_norm;  // Family::post_norms only
    AttentionWeights attn;
    FfnWeights ffn;
  };

  ModelConfig config_;
  ops::MatView token_embd_;  // [n_vocab, dim]
  std::vector<Layer> layers_;
  Norm output_norm_;
  ops::MatView output_;  // [n_vocab, dim]; token_embd_ when tied
};

}  // namespace sllm
