#include "model/transformer.h"

#include <cmath>
#include <string>

#include "model/weights.h"

namespace sllm {

Result<TransformerModel> TransformerModel::load(const GgufFile& gguf, GeluKind gelu) {
  TransformerModel m;
  SLLM_ASSIGN_OR_RETURN(m.config_, config_from_gguf(gguf));
  m.config_.gelu = gelu;
  const ModelConfig& c = m.config_;
  SLLM_ASSIGN_OR_RETURN(m.token_embd_, get_matrix(gguf, "token_embd.weight", c.n_vocab, c.dim));
  // config_from_gguf() checked n_layers against the file's tensors; each layer is added only once
  // its tensors are found, so a bad count costs nothing.
  for (size_t i = 0; i < c.n_layers; ++i) {
    Layer& l = m.layers_.emplace_back();
    const std::string p = "blk." + std::to_string(i) + ".";
    // Falcon (shared_norm): attn_norm feeds the FFN, and attention too unless the block has
    // attn_norm_2 (40B).
    const bool shared = c.family->shared_norm;
    const bool norm_2 = shared && gguf.find_tensor(p + "attn_norm_2.weight") != nullptr;
    SLLM_ASSIGN_OR_RETURN(l.attn_norm,
                          load_norm(gguf, c, p + (norm_2 ? "attn_norm_2" : "attn_norm")));
    SLLM_ASSIGN_OR_RETURN(l.attn, load_attention(gguf, p, c));
    SLLM_ASSIGN_OR_RETURN(l.ffn_norm, load_norm(gguf, c, p + (shared ? "attn_norm" : "ffn_norm")));
    SLLM_ASSIGN_OR_RETURN(l.ffn, load_ffn(gguf, p, c));
    if (c.family->post_norms) {
      SLLM_ASSIGN_OR_RETURN(l.attn_post_norm, load_norm(gguf, c, p + "post_attention_norm"));
      SLLM_ASSIGN_OR_RETURN(l.ffn_post_norm, load_norm(gguf, c, p + "post_ffw_norm"));
    }
  }
  SLLM_ASSIGN_OR_RETURN(m.output_norm_, load_norm(gguf, c, "output_norm"));
  if (gguf.find_tensor("output.weight") != nullptr) {
    SLLM_ASSIGN_OR_RETURN(m.output_, get_matrix(gguf, "output.weight", c.n_vocab, c.dim));
  } else {
    m.output_ = m.token_embd_;  // tied embeddings
  }
  return m;
}

void TransformerModel::run_layers(std::span<const TokenId> tokens, const AttendFn& attend,
                                  ForwardScratch& s, ThreadPool& pool) const {
  const ModelConfig& c = config_;
  const NormKind norm = c.family->norm;
  const size_t n = tokens.size();
  const size_t dim = c.dim;
  OpProfile* const prof = s.profile;

  {
    PhaseTimer timer(prof, Phase::kEmbed, uint64_t{n} * token_embd_.row_bytes);
    for (size_t t = 0; t < n; ++t) {
      const auto* row = static_cast<const uint8_t*>(token_embd_.data) +
                        static_cast<size_t>(tokens[t]) * token_embd_.row_bytes;
      ops::dequantize_row(token_embd_.type, row, &s.x[t * dim], dim);
    }
    if (c.family->scaled_embd) {
      const float scale = std::sqrt(static_cast<float>(dim));
      for (size_t i = 0; i < n * dim; ++i) s.x[i] *= scale;
    }
  }

  for (size_t li = 0; li < c.n_layers; ++li) {
    const Layer& l = layers_[li];
    // Attention: x += Wo · attend(rope(Q), rope(K), V) of h = norm(x).
    {
      PhaseTimer timer(prof, Phase::kNorm);
      apply_norm(l.attn_norm, norm, c.rms_eps, s.x.data(), n, dim, s.xn.data());
      if (c.parallel_residual) {
        // Both sub-blocks read the layer's input: the FFN's norm is taken before x changes.
        apply_norm(l.ffn_norm, norm, c.rms_eps, s.x.data(), n, dim, s.xn2.data());
      }
    }
    {
      PhaseTimer timer(prof, Phase::kQkv, weight_bytes(l.attn));
      project_qkv(l.attn, c, s.xn.data(), n, s, pool);
    }
    {
      PhaseTimer timer(prof, Phase::kAttention);
      attend(li, n, s.q.data(), s.k.data(), s.v.data(), s.att.data());
    }
    {
      PhaseTimer timer(prof, Phase::kOutProj, weight_bytes(l.attn.wo));
      project_out(l.attn, c, n, s, pool);
    }
    if (c.family->post_norms) {
      PhaseTimer timer(prof, Phase::kNorm);
      apply_norm(l.attn_post_norm, norm, c.rms_eps, s.proj.data(), n, dim, s.proj.data());
    }
    {
      PhaseTimer timer(prof, Phase::kResidual);
      ops::add(s.proj.data(), s.x.data(), n * dim);
    }

    // Feed-forward: x += ffn(norm(x)).
    if (!c.parallel_residual) {
      PhaseTimer timer(prof, Phase::kNorm);
      apply_norm(l.ffn_norm, norm, c.rms_eps, s.x.data(), n, dim, s.xn.data());
    }
    {
      PhaseTimer timer(prof, Phase::kFfn, weight_bytes(l.ffn));
      run_ffn(l.ffn, c, c.parallel_residual ? s.xn2.data() : s.xn.data(), n, s, pool);
    }
    if (c.family->post_norms) {
      PhaseTimer timer(prof, Phase::kNorm);
      apply_norm(l.ffn_post_norm, norm, c.rms_eps, s.proj.data(), n, dim, s.proj.data());
    }
    PhaseTimer timer(prof, Phase::kResidual);
    ops::add(s.proj.data(), s.x.data(), n * dim);
  }
}

void TransformerModel::output_logits(ForwardScratch& s, size_t n, ThreadPool& pool,
                                     float* logits) const {
  const ModelConfig& c = config_;
  PhaseTimer timer(s.profile, Phase::kLmHead, weight_bytes(output_));
  ops::matmul(output_, s.xn.data(), n, logits, pool);
  if (c.final_softcap > 0.0f) {
    // As llama.cpp: scaled by 1/cap (a multiplication), tanh, scaled back.
    const float inv = 1.0f / c.final_softcap;
    for (size_t i = 0; i < n * c.n_vocab; ++i) {
      logits[i] = std::tanh(logits[i] * inv) * c.final_softcap;
    }
  }
}

void TransformerModel::forward(std::span<const TokenId> tokens, const AttendFn& attend,
                               ForwardScratch& s, ThreadPool& pool, float* logits,
                               bool all_logits) const {
  run_layers(tokens, attend, s, pool);
  const ModelConfig& c = config_;
  const size_t n = tokens.size();
  const size_t first = all_logits ? 0 : n - 1;
  {
    PhaseTimer timer(s.profile, Phase::kNorm);
    apply_norm(output_norm_, c.family->norm, c.rms_eps, &s.x[first * c.dim], n - first, c.dim,
               s.xn.data());
  }
  output_logits(s, n - first, pool, logits);
}

void TransformerModel::forward_rows(std::span<const TokenId> tokens, const AttendFn& attend,
                                    ForwardScratch& s, ThreadPool& pool, float* logits,
                                    std::span<const size_t> out_rows) const {
  run_layers(tokens, attend, s, pool);
  const ModelConfig& c = config_;
  {
    PhaseTimer timer(s.profile, Phase::kNorm);
    for (size_t i = 0; i < out_rows.size(); ++i) {
      apply_norm(output_norm_, c.family->norm, c.rms_eps, &s.x[out_rows[i] * c.dim], 1, c.dim,
                 &s.xn[i * c.dim]);
    }
  }
  output_logits(s, out_rows.size(), pool, logits);
}

}  // namespace sllm
