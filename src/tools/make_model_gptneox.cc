// make-model's "gptneox": Pythia-style files, tensors and keys as llama.cpp's
// convert_hf_to_gguf.py writes them (llama.cpp src/models/gptneox.cpp loads them): LayerNorms
// with biases, fused QKV with bias, partial rotary (a quarter of each head, as Pythia's
// rotary_pct 0.25), a GELU MLP with biases, parallel residual.
#include <algorithm>
#include <cmath>

#include "tools/make_model.h"

namespace sllm::make_model_detail {

// Scales as build_llama_like's; the biases small, the LayerNorm gains around 1.
Status build_gptneox(ModelBuilder& b) {
  const MakeModelOptions& o = b.options();
  const ModelShape& s = b.shape();
  const std::string p = "gptneox.";
  const auto u32 = [](size_t v) { return GgufValue::u32(static_cast<uint32_t>(v)); };
  const size_t rope_dims = std::max<size_t>(2, s.head_dim / 4 / 2 * 2);
  b.set("general.alignment", GgufValue::u32(32));
  b.set(p + "vocab_size", u32(s.n_vocab));
  b.set(p + "context_length", u32(o.n_ctx));
  b.set(p + "embedding_length", u32(o.n_embd));
  b.set(p + "block_count", u32(o.n_layer));
  b.set(p + "feed_forward_length", u32(o.n_ff));
  b.set(p + "rope.dimension_count", u32(rope_dims));
  b.set(p + "attention.head_count", u32(o.n_head));
  b.set(p + "attention.head_count_kv", u32(o.n_head_kv));
  b.set(p + "attention.layer_norm_epsilon", GgufValue::f32(1e-5f));
  b.set(p + "rope.freq_base", GgufValue::f32(static_cast<float>(o.rope_base)));
  b.set(p + "use_parallel_residual", GgufValue::boolean(true));

  const auto [d, q_dim, kv_dim, in_std, ff_std] = widths(b);
  SLLM_RETURN_IF_ERROR(b.matrix("token_embd.weight", s.n_vocab, d, 1.0f));
  for (size_t l = 0; l < o.n_layer; ++l) {
    const std::string blk = "blk." + std::to_string(l) + ".";
    SLLM_RETURN_IF_ERROR(b.layer_norm(blk + "attn_norm"));
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "attn_qkv.weight", q_dim + 2 * kv_dim, d, 1.3f * in_std));
    SLLM_RETURN_IF_ERROR(b.vector(blk + "attn_qkv.bias", q_dim + 2 * kv_dim, 0.0f, 0.3f));
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "attn_output.weight", d, q_dim,
                                  1.0f / std::sqrt(static_cast<float>(q_dim))));
    SLLM_RETURN_IF_ERROR(b.vector(blk + "attn_output.bias", d, 0.0f, 0.1f));
    SLLM_RETURN_IF_ERROR(b.layer_norm(blk + "ffn_norm"));
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "ffn_up.weight", o.n_ff, d, in_std));
    SLLM_RETURN_IF_ERROR(b.vector(blk + "ffn_up.bias", o.n_ff, 0.0f, 0.3f));
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "ffn_down.weight", d, o.n_ff, ff_std));
    SLLM_RETURN_IF_ERROR(b.vector(blk + "ffn_down.bias", d, 0.0f, 0.1f));
  }
  SLLM_RETURN_IF_ERROR(b.layer_norm("output_norm"));
  return b.matrix("output.weight", s.n_vocab, d, 12.0f * in_std);
}

}  // namespace sllm::make_model_detail
