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

  // forward() with the logits of the rows `out_rows` only (ascending, each < tokens.size()):
  // logits is [out_rows.size(), n_vocab]. For a batch of several streams: `tokens` is their
  // rows one stream after the other and the AttendFn routes each stream's rows to its own cache.
  // Every op but attention works row by row, and the matmul's sums do not depend on the other
  // rows of the batch (kernels/matmul.cc, qdot.cc), so each row's result is the one it gets fed
  // alone.
  void forward_rows(std::span<const TokenId> tokens, const AttendFn& attend,
                    ForwardScratch& scratch, ThreadPool& pool, float* logits,
                    std::span<const size_t> out_rows) const;

 private:
  void run_layers(std::span<const TokenId> tokens, const AttendFn& attend, ForwardScratch& s,
                  ThreadPool& pool) const;
  // Logits of the n normed rows in s.xn.
  void output_logits(ForwardScratch& s, size_t n, ThreadPool& pool, float* logits) const;

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
