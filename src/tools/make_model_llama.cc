// make-model's Llama-block architectures: llama (Llama 2 / Llama 3 style files), qwen2 (q/k/v
// biases), qwen3 (per-head q/k RMSNorm), phi3 (fused QKV and gate/up); tensors and keys as
// llama.cpp's convert_hf_to_gguf.py writes them (llama.cpp src/models/*.cpp load them).
#include <algorithm>
#include <cmath>
#include <vector>

#include "tools/make_model.h"

namespace sllm::make_model_detail {

// Scales: every projection keeps unit variance (std 1 / sqrt(fan_in)), so activations neither
// vanish nor blow up over the layers; queries and keys a bit larger so that attention is not
// uniform; the output head large enough (logits with standard deviation about 12) that greedy
// decoding has clear top-1 margins, far above the rounding differences between two engines.
Status build_llama_like(ModelBuilder& b, const LlamaLike& arch) {
  const MakeModelOptions& o = b.options();
  const ModelShape& s = b.shape();
  const std::string p = std::string(arch.name) + ".";
  const auto u32 = [](size_t v) { return GgufValue::u32(static_cast<uint32_t>(v)); };
  b.set("general.alignment", GgufValue::u32(32));
  b.set(p + "vocab_size", u32(s.n_vocab));
  b.set(p + "context_length", u32(o.n_ctx));
  b.set(p + "embedding_length", u32(o.n_embd));
  b.set(p + "block_count", u32(o.n_layer));
  b.set(p + "feed_forward_length", u32(o.n_ff));
  b.set(p + "rope.dimension_count", u32(s.head_dim));
  b.set(p + "attention.head_count", u32(o.n_head));
  b.set(p + "attention.head_count_kv", u32(o.n_head_kv));
  b.set(p + "attention.layer_norm_rms_epsilon", GgufValue::f32(1e-5f));
  b.set(p + "rope.freq_base", GgufValue::f32(static_cast<float>(o.rope_base)));
  if (o.rope_scaling == "linear" || o.rope_scaling == "yarn") {
    b.set(p + "rope.scaling.type", GgufValue::str(o.rope_scaling));
    b.set(p + "rope.scaling.factor", GgufValue::f32(o.rope_factor));
  }
  if (o.rope_scaling == "yarn" || o.rope_scaling == "longrope") {
    // context_length is the extended one, as in YaRN-extended models.
    const auto original = static_cast<size_t>(static_cast<float>(o.n_ctx) / o.rope_factor);
    b.set(p + "rope.scaling.original_context_length", u32(original > 0 ? original : 1));
  }

  const auto [d, q_dim, kv_dim, in_std, ff_std] = widths(b);
  if (o.rope_scaling == "llama3") {
    SLLM_RETURN_IF_ERROR(
        b.values("rope_freqs.weight",
                 llama3_rope_factors(s.head_dim, o.rope_base, o.rope_factor, 1.0f, 4.0f, 8192.0f)));
  }
  if (o.rope_scaling == "longrope") {
    // As Phi-3.5's converter writes them: attn_factor sqrt(1 + ln(scale) / ln(original)), and
    // per-pair factors that leave the fast pairs nearly alone and stretch the slow ones (short
    // ones up to 1.5, long ones up to rope_factor; Phi-3.5-mini's run 1.0-1.2 and 1.1-60).
    const float original = std::max(1.0f, std::floor(static_cast<float>(o.n_ctx) / o.rope_factor));
    const float scale = static_cast<float>(o.n_ctx) / original;
    b.set(p + "rope.scaling.attn_factor",
          GgufValue::f32(scale > 1.0f ? std::sqrt(1.0f + std::log(scale) / std::log(original))
                                      : 1.0f));
    const size_t n_pairs = s.head_dim / 2;
    std::vector<float> long_factors(n_pairs), short_factors(n_pairs);
    for (size_t i = 0; i < n_pairs; ++i) {
      const float x = n_pairs > 1 ? static_cast<float>(i) / static_cast<float>(n_pairs - 1) : 0;
      short_factors[i] = 1.0f + 0.5f * x * x;
      long_factors[i] = 1.0f + (o.rope_factor - 1.0f) * x * x;
    }
    SLLM_RETURN_IF_ERROR(b.values("rope_factors_long.weight", long_factors));
    SLLM_RETURN_IF_ERROR(b.values("rope_factors_short.weight", short_factors));
  }
  SLLM_RETURN_IF_ERROR(b.matrix("token_embd.weight", s.n_vocab, d, 1.0f));
  for (size_t l = 0; l < o.n_layer; ++l) {
    const std::string blk = "blk." + std::to_string(l) + ".";
    SLLM_RETURN_IF_ERROR(b.vector(blk + "attn_norm.weight", d, 1.0f, 0.2f));
    if (arch.fused_qkv) {
      // Rows: q, then k, then v; q and k at 1.5x as below (the std of the whole is between).
      SLLM_RETURN_IF_ERROR(b.matrix(blk + "attn_qkv.weight", q_dim + 2 * kv_dim, d, 1.3f * in_std));
    } else {
      SLLM_RETURN_IF_ERROR(b.matrix(blk + "attn_q.weight", q_dim, d, 1.5f * in_std));
      SLLM_RETURN_IF_ERROR(b.matrix(blk + "attn_k.weight", kv_dim, d, 1.5f * in_std));
      SLLM_RETURN_IF_ERROR(b.matrix(blk + "attn_v.weight", kv_dim, d, in_std));
    }
    if (arch.qkv_bias) {
      SLLM_RETURN_IF_ERROR(b.vector(blk + "attn_q.bias", q_dim, 0.0f, 0.5f));
      SLLM_RETURN_IF_ERROR(b.vector(blk + "attn_k.bias", kv_dim, 0.0f, 0.5f));
      SLLM_RETURN_IF_ERROR(b.vector(blk + "attn_v.bias", kv_dim, 0.0f, 0.5f));
    }
    if (arch.head_norm) {
      SLLM_RETURN_IF_ERROR(b.vector(blk + "attn_q_norm.weight", s.head_dim, 1.0f, 0.2f));
      SLLM_RETURN_IF_ERROR(b.vector(blk + "attn_k_norm.weight", s.head_dim, 1.0f, 0.2f));
    }
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "attn_output.weight", d, q_dim,
                                  1.0f / std::sqrt(static_cast<float>(q_dim))));
    SLLM_RETURN_IF_ERROR(b.vector(blk + "ffn_norm.weight", d, 1.0f, 0.2f));
    if (arch.fused_ffn) {
      SLLM_RETURN_IF_ERROR(b.matrix(blk + "ffn_up.weight", 2 * o.n_ff, d, in_std));
      SLLM_RETURN_IF_ERROR(b.matrix(blk + "ffn_down.weight", d, o.n_ff, ff_std));
    } else {
      SLLM_RETURN_IF_ERROR(b.matrix(blk + "ffn_gate.weight", o.n_ff, d, in_std));
      SLLM_RETURN_IF_ERROR(b.matrix(blk + "ffn_down.weight", d, o.n_ff, ff_std));
      SLLM_RETURN_IF_ERROR(b.matrix(blk + "ffn_up.weight", o.n_ff, d, in_std));
    }
  }
  SLLM_RETURN_IF_ERROR(b.vector("output_norm.weight", d, 1.0f, 0.2f));
  return b.matrix("output.weight", s.n_vocab, d, 12.0f * in_std);
}

Status build_llama(ModelBuilder& b) { return build_llama_like(b, {.name = "llama"}); }
Status build_qwen2(ModelBuilder& b) {
  return build_llama_like(b, {.name = "qwen2", .qkv_bias = true});
}
Status build_qwen3(ModelBuilder& b) {
  return build_llama_like(b, {.name = "qwen3", .head_norm = true});
}
Status build_phi3(ModelBuilder& b) {
  return build_llama_like(b, {.name = "phi3", .fused_qkv = true, .fused_ffn = true});
}

}  // namespace sllm::make_model_detail
