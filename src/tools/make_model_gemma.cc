// make-model's "gemma2" and "gemma3": tensors and keys as llama.cpp's converter writes them
// (conversion/gemma.py; llama.cpp src/models/gemma2.cpp, gemma3.cpp load them). The norms are
// stored as the converter stores them, Gemma's "1 + weight" already added. Gemma 2 ties the output
// head to token_embd (llama.cpp loads no output.weight for it), and so does this Gemma 3.
#include <cmath>

#include "tools/make_model.h"

namespace sllm::make_model_detail {

namespace {

// Scales as build_llama_like's, but for what Gemma adds: the embedding is scaled by sqrt(dim)
// and is also the output head, so it keeps std 1 (logits with std about sqrt(dim)), and the
// post-attention/FFN norms' gains are around 4 so that each sub-block's output is not drowned by
// the scaled embedding in the residual.
Status build_gemma(ModelBuilder& b, bool gemma3) {
  const MakeModelOptions& o = b.options();
  const ModelShape& s = b.shape();
  const std::string p = gemma3 ? "gemma3." : "gemma2.";
  const auto u32 = [](size_t v) { return GgufValue::u32(static_cast<uint32_t>(v)); };
  b.set("general.alignment", GgufValue::u32(32));
  b.set(p + "context_length", u32(o.n_ctx));
  b.set(p + "embedding_length", u32(o.n_embd));
  b.set(p + "block_count", u32(o.n_layer));
  b.set(p + "feed_forward_length", u32(o.n_ff));
  b.set(p + "attention.head_count", u32(o.n_head));
  b.set(p + "attention.head_count_kv", u32(o.n_head_kv));
  b.set(p + "attention.key_length", u32(s.head_dim));
  b.set(p + "attention.value_length", u32(s.head_dim));
  b.set(p + "attention.layer_norm_rms_epsilon", GgufValue::f32(1e-6f));
  b.set(p + "attention.sliding_window", u32(o.sliding_window));
  b.set(p + "rope.freq_base", GgufValue::f32(static_cast<float>(o.rope_base)));
  if (gemma3) {
    // Gemma 3's local layers turn at base 10000 (llama.cpp's default for rope.freq_base_swa);
    // linear scaling, when asked for, applies to the global layers only. No final soft-capping,
    // as Gemma 3's released configs. The layer pattern (llama.cpp's default: 5 local, then 1
    // global) is written shortened to the layer count, so that a small model has a global layer.
    b.set(p + "attention.sliding_window_pattern", u32(o.n_layer < 6 ? o.n_layer : 6));
    if (o.rope_scaling == "linear") {
      b.set(p + "rope.scaling.type", GgufValue::str("linear"));
      b.set(p + "rope.scaling.factor", GgufValue::f32(o.rope_factor));
    }
  } else {
    // A cap of 10 rather than Gemma 2's 50, so that it bends these small models' scores.
    b.set(p + "attn_logit_softcapping", GgufValue::f32(10.0f));
    b.set(p + "final_logit_softcapping", GgufValue::f32(30.0f));
  }

  const auto [d, q_dim, kv_dim, in_std, ff_std] = widths(b);
  SLLM_RETURN_IF_ERROR(b.matrix("token_embd.weight", s.n_vocab, d, 1.0f));
  for (size_t l = 0; l < o.n_layer; ++l) {
    const std::string blk = "blk." + std::to_string(l) + ".";
    SLLM_RETURN_IF_ERROR(b.vector(blk + "attn_norm.weight", d, 1.0f, 0.2f));
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "attn_q.weight", q_dim, d, 1.5f * in_std));
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "attn_k.weight", kv_dim, d, 1.5f * in_std));
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "attn_v.weight", kv_dim, d, in_std));
    if (gemma3) {
      SLLM_RETURN_IF_ERROR(b.vector(blk + "attn_q_norm.weight", s.head_dim, 1.5f, 0.3f));
      SLLM_RETURN_IF_ERROR(b.vector(blk + "attn_k_norm.weight", s.head_dim, 1.5f, 0.3f));
    }
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "attn_output.weight", d, q_dim,
                                  1.0f / std::sqrt(static_cast<float>(q_dim))));
    SLLM_RETURN_IF_ERROR(b.vector(blk + "post_attention_norm.weight", d, 12.0f, 2.0f));
    SLLM_RETURN_IF_ERROR(b.vector(blk + "ffn_norm.weight", d, 1.0f, 0.2f));
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "ffn_gate.weight", o.n_ff, d, in_std));
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "ffn_up.weight", o.n_ff, d, in_std));
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "ffn_down.weight", d, o.n_ff, ff_std));
    SLLM_RETURN_IF_ERROR(b.vector(blk + "post_ffw_norm.weight", d, 12.0f, 2.0f));
  }
  return b.vector("output_norm.weight", d, 1.0f, 0.2f);
}

}  // namespace

Status build_gemma2(ModelBuilder& b) { return build_gemma(b, false); }
Status build_gemma3(ModelBuilder& b) { return build_gemma(b, true); }

}  // namespace sllm::make_model_detail
