#include "model/llama.h"

#include <string>

#include "model/weights.h"
#include "util/limits.h"

namespace sllm {

Result<uint64_t> ForwardScratch::bytes_needed(const ModelConfig& c, size_t max_batch) {
  // Sizes from a validated config are below 2^31 each: the per-token sum cannot overflow.
  const uint64_t per_token_floats = 3 * uint64_t{c.dim} + 2 * uint64_t{c.q_dim()} +
                                    2 * uint64_t{c.kv_dim()} + 2 * uint64_t{c.ffn_dim};
  return checked_bytes("the activations of a batch of " + std::to_string(max_batch) + " tokens",
                       {max_batch, per_token_floats, sizeof(float)});
}

ForwardScratch::ForwardScratch(const ModelConfig& c, size_t max_batch_tokens)
    : max_batch(max_batch_tokens),
      x(max_batch * c.dim),
      xn(max_batch * c.dim),
      q(max_batch * c.q_dim()),
      k(max_batch * c.kv_dim()),
      v(max_batch * c.kv_dim()),
      att(max_batch * c.q_dim()),
      proj(max_batch * c.dim),
      gate(max_batch * c.ffn_dim),
      up(max_batch * c.ffn_dim) {}

Result<LlamaModel> LlamaModel::load(const GgufFile& gguf) {
  LlamaModel m;
  SLLM_ASSIGN_OR_RETURN(m.config_, config_from_gguf(gguf));
  const ModelConfig& c = m.config_;
  SLLM_ASSIGN_OR_RETURN(m.token_embd_, get_matrix(gguf, "token_embd.weight", c.n_vocab, c.dim));
  // config_from_gguf() checked n_layers against the file's tensors; each layer is added only once
  // its tensors are found, so a bad count costs nothing.
  for (size_t i = 0; i < c.n_layers; ++i) {
    Layer& l = m.layers_.emplace_back();
    const std::string p = "blk." + std::to_string(i) + ".";
    SLLM_ASSIGN_OR_RETURN(l.attn_norm, get_vector(gguf, p + "attn_norm.weight", c.dim));
    SLLM_ASSIGN_OR_RETURN(l.wq, get_matrix(gguf, p + "attn_q.weight", c.q_dim(), c.dim));
    SLLM_ASSIGN_OR_RETURN(l.wk, get_matrix(gguf, p + "attn_k.weight", c.kv_dim(), c.dim));
    SLLM_ASSIGN_OR_RETURN(l.wv, get_matrix(gguf, p + "attn_v.weight", c.kv_dim(), c.dim));
    SLLM_ASSIGN_OR_RETURN(l.wo, get_matrix(gguf, p + "attn_output.weight", c.dim, c.q_dim()));
    if (c.qkv_bias) {
      SLLM_ASSIGN_OR_RETURN(l.bq, get_vector(gguf, p + "attn_q.bias", c.q_dim()));
      SLLM_ASSIGN_OR_RETURN(l.bk, get_vector(gguf, p + "attn_k.bias", c.kv_dim()));
      SLLM_ASSIGN_OR_RETURN(l.bv, get_vector(gguf, p + "attn_v.bias", c.kv_dim()));
    }
    SLLM_ASSIGN_OR_RETURN(l.ffn_norm, get_vector(gguf, p + "ffn_norm.weight", c.dim));
    SLLM_ASSIGN_OR_RETURN(l.w_gate, get_matrix(gguf, p + "ffn_gate.weight", c.ffn_dim, c.dim));
    SLLM_ASSIGN_OR_RETURN(l.w_up, get_matrix(gguf, p + "ffn_up.weight", c.ffn_dim, c.dim));
    SLLM_ASSIGN_OR_RETURN(l.w_down, get_matrix(gguf, p + "ffn_down.weight", c.dim, c.ffn_dim));
  }
  SLLM_ASSIGN_OR_RETURN(m.output_norm_, get_vector(gguf, "output_norm.weight", c.dim));
  if (gguf.find_tensor("output.weight") != nullptr) {
    SLLM_ASSIGN_OR_RETURN(m.output_, get_matrix(gguf, "output.weight", c.n_vocab, c.dim));
  } else {
    m.output_ = m.token_embd_;  // tied embeddings
  }
  return m;
}

namespace {
void add_bias(const std::vector<float>& bias, float* y, size_t n_tokens) {
  if (bias.empty()) return;
  for (size_t t = 0; t < n_tokens; ++t) ops::add(bias.data(), y + t * bias.size(), bias.size());
}
}  // namespace

void LlamaModel::forward(std::span<const TokenId> tokens, const AttendFn& attend, ForwardScratch& s,
                         ThreadPool& pool, float* logits, bool all_logits) const {
  const ModelConfig& c = config_;
  const size_t n = tokens.size();
  const size_t dim = c.dim;

  for (size_t t = 0; t < n; ++t) {
    const auto* row = static_cast<const uint8_t*>(token_embd_.data) +
                      static_cast<size_t>(tokens[t]) * token_embd_.row_bytes;
    ops::dequantize_row(token_embd_.type, row, &s.x[t * dim], dim);
  }

  for (size_t li = 0; li < c.n_layers; ++li) {
    const Layer& l = layers_[li];
    // Attention block: x += Wo · attend(rope(Wq·h), rope(Wk·h), Wv·h), h = rmsnorm(x).
    for (size_t t = 0; t < n; ++t) {
      ops::rmsnorm(&s.x[t * dim], l.attn_norm.data(), dim, c.rms_eps, &s.xn[t * dim]);
    }
    ops::matmul(l.wq, s.xn.data(), n, s.q.data(), pool);
    ops::matmul(l.wk, s.xn.data(), n, s.k.data(), pool);
    ops::matmul(l.wv, s.xn.data(), n, s.v.data(), pool);
    add_bias(l.bq, s.q.data(), n);
    add_bias(l.bk, s.k.data(), n);
    add_bias(l.bv, s.v.data(), n);
    attend(li, n, s.q.data(), s.k.data(), s.v.data(), s.att.data());
    ops::matmul(l.wo, s.att.data(), n, s.proj.data(), pool);
    ops::add(s.proj.data(), s.x.data(), n * dim);

    // Feed-forward block (SwiGLU): x += W_down · (silu(W_gate·h) * W_up·h), h = rmsnorm(x).
    for (size_t t = 0; t < n; ++t) {
      ops::rmsnorm(&s.x[t * dim], l.ffn_norm.data(), dim, c.rms_eps, &s.xn[t * dim]);
    }
    ops::matmul(l.w_gate, s.xn.data(), n, s.gate.data(), pool);
    ops::matmul(l.w_up, s.xn.data(), n, s.up.data(), pool);
    ops::silu_mul(s.gate.data(), s.up.data(), n * c.ffn_dim);
    ops::matmul(l.w_down, s.gate.data(), n, s.proj.data(), pool);
    ops::add(s.proj.data(), s.x.data(), n * dim);
  }

  const size_t first = all_logits ? 0 : n - 1;
  for (size_t t = first; t < n; ++t) {
    ops::rmsnorm(&s.x[t * dim], output_norm_.data(), dim, c.rms_eps, &s.xn[(t - first) * dim]);
  }
  ops::matmul(output_, s.xn.data(), n - first, logits, pool);
}

}  // namespace sllm
