// make-model's "falcon" and "mpt": tensors and keys as llama.cpp's converter writes them
// (conversion/falcon.py, conversion/mpt.py; llama.cpp src/models/falcon.cpp and mpt.cpp load
// them).
//
// falcon: one KV head (--n-head-kv 1) writes a Falcon-7B-style file, one LayerNorm (attn_norm)
// per block; more KV heads a Falcon-40B-style one, with attn_norm_2 for attention. LayerNorms
// with biases, fused QKV (q, k, v contiguous, the converter's "jploski" layout), no biases on the
// matrices, GELU MLP.
//
// mpt: as MPT-7B (no_bias: no bias anywhere, LayerNorms included), ALiBi with max bias 8, and
// clip_qkv 1.5, which clips about a quarter of the q, k, v entries so that clipping is exercised.
#include <cmath>

#include "tools/make_model.h"

namespace sllm::make_model_detail {

namespace {

const auto u32 = [](size_t v) { return GgufValue::u32(static_cast<uint32_t>(v)); };

void common_keys(ModelBuilder& b, const std::string& p) {
  const MakeModelOptions& o = b.options();
  b.set("general.alignment", GgufValue::u32(32));
  b.set(p + "context_length", u32(o.n_ctx));
  b.set(p + "embedding_length", u32(o.n_embd));
  b.set(p + "feed_forward_length", u32(o.n_ff));
  b.set(p + "block_count", u32(o.n_layer));
  b.set(p + "attention.head_count", u32(o.n_head));
  b.set(p + "attention.head_count_kv", u32(o.n_head_kv));
  b.set(p + "attention.layer_norm_epsilon", GgufValue::f32(1e-5f));
}

}  // namespace

Status build_falcon(ModelBuilder& b) {
  const MakeModelOptions& o = b.options();
  const ModelShape& s = b.shape();
  const std::string p = "falcon.";
  common_keys(b, p);
  b.set(p + "rope.freq_base", GgufValue::f32(static_cast<float>(o.rope_base)));
  b.set(p + "tensor_data_layout", GgufValue::str("jploski"));

  const auto [d, q_dim, kv_dim, in_std, ff_std] = widths(b);
  SLLM_RETURN_IF_ERROR(b.matrix("token_embd.weight", s.n_vocab, d, 1.0f));
  for (size_t l = 0; l < o.n_layer; ++l) {
    const std::string blk = "blk." + std::to_string(l) + ".";
    SLLM_RETURN_IF_ERROR(b.layer_norm(blk + "attn_norm"));
    if (o.n_head_kv > 1) SLLM_RETURN_IF_ERROR(b.layer_norm(blk + "attn_norm_2"));
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "attn_qkv.weight", q_dim + 2 * kv_dim, d, 1.3f * in_std));
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "attn_output.weight", d, q_dim,
                                  1.0f / std::sqrt(static_cast<float>(q_dim))));
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "ffn_up.weight", o.n_ff, d, in_std));
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "ffn_down.weight", d, o.n_ff, ff_std));
  }
  SLLM_RETURN_IF_ERROR(b.layer_norm("output_norm"));
  return b.matrix("output.weight", s.n_vocab, d, 12.0f * in_std);
}

Status build_mpt(ModelBuilder& b) {
  const MakeModelOptions& o = b.options();
  const ModelShape& s = b.shape();
  const std::string p = "mpt.";
  common_keys(b, p);
  b.set(p + "attention.clamp_kqv", GgufValue::f32(1.5f));
  b.set(p + "attention.max_alibi_bias", GgufValue::f32(8.0f));

  const auto [d, q_dim, kv_dim, in_std, ff_std] = widths(b);
  SLLM_RETURN_IF_ERROR(b.matrix("token_embd.weight", s.n_vocab, d, 1.0f));
  for (size_t l = 0; l < o.n_layer; ++l) {
    const std::string blk = "blk." + std::to_string(l) + ".";
    SLLM_RETURN_IF_ERROR(b.vector(blk + "attn_norm.weight", d, 1.0f, 0.2f));
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "attn_qkv.weight", q_dim + 2 * kv_dim, d, 1.3f * in_std));
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "attn_output.weight", d, q_dim,
                                  1.0f / std::sqrt(static_cast<float>(q_dim))));
    SLLM_RETURN_IF_ERROR(b.vector(blk + "ffn_norm.weight", d, 1.0f, 0.2f));
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "ffn_up.weight", o.n_ff, d, in_std));
    SLLM_RETURN_IF_ERROR(b.matrix(blk + "ffn_down.weight", d, o.n_ff, ff_std));
  }
  SLLM_RETURN_IF_ERROR(b.vector("output_norm.weight", d, 1.0f, 0.2f));
  return b.matrix("output.weight", s.n_vocab, d, 12.0f * in_std);
}

}  // namespace sllm::make_model_detail
