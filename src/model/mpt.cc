// The MPT family (llama.cpp src/models/mpt.cpp): ALiBi instead of any rotary embedding,
// LayerNorms, fused QKV optionally clipped to [-clamp_kqv, clamp_kqv], a GELU MLP; every bias
// (norms, QKV, attn_output, FFN) is optional, as MPT's no_bias option drops them all.
//
// ALiBi adds -slope_h * (query position - key position) to head h's scaled scores. The slopes
// are ggml_soft_max_ext's: with n = the largest power of two <= n_heads, m0 = 2^(-max_bias / n)
// and m1 = 2^(-max_bias / 2 / n), head h < n has m0^(h + 1), the others m1^(2 (h - n) + 1). The
// positions are the cache's (cache/kv_cache.h): the in-cache distance under the streaming cache.
#include <cmath>
#include <cstdio>
#include <string>

#include "gguf/gguf.h"
#include "model/config.h"
#include "model/family.h"

namespace sllm {

namespace {

// An optional f32 key, finite and >= 0; 0 when absent.
Result<float> get_non_negative(const GgufFile& gguf, const std::string& key) {
  if (gguf.find(key) == nullptr) return 0.0f;
  SLLM_ASSIGN_OR_RETURN(const float x, gguf.get_f32(key));
  if (!std::isfinite(x) || x < 0.0f) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", static_cast<double>(x));
    return Error(ErrorCode::kFormat, gguf.path() + ": metadata '" + key + "' = " + buf +
                                         " is not a finite number >= 0");
  }
  return x;
}

std::string number(float x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", static_cast<double>(x));
  return buf;
}

Status configure_mpt(const GgufFile& gguf, ModelConfig& c) {
  // Parts of llama.cpp's MPT graph that no converted model we know of uses: refused by name
  // rather than ignored.
  for (const std::string name : {"position_embd.weight", "blk.0.attn_q_norm.weight",
                                 "blk.0.attn_k_norm.weight", "blk.0.ffn.act.scales"}) {
    if (gguf.find_tensor(name) != nullptr) {
      return Error(ErrorCode::kUnsupported,
                   gguf.path() + ": mpt tensor '" + name +
                       "' is not supported (learned position embeddings, q/k LayerNorm and AWQ "
                       "activation scales are not implemented)");
    }
  }
  SLLM_ASSIGN_OR_RETURN(c.clamp_kqv, get_non_negative(gguf, "mpt.attention.clamp_kqv"));
  SLLM_ASSIGN_OR_RETURN(const float max_bias,
                        get_non_negative(gguf, "mpt.attention.max_alibi_bias"));
  // No rotary embedding at all: positions enter through the ALiBi bias only.
  c.rope.rope_dim = 0;
  c.rope.freq_mul.clear();
  c.rope.mscale = 1.0f;
  c.rope_scaling.clear();
  c.alibi_slopes.clear();
  if (max_bias > 0.0f) {
    const auto n_heads = static_cast<uint32_t>(c.n_heads);
    uint32_t n_log2 = 1;
    while (n_log2 * 2 <= n_heads) n_log2 *= 2;
    const float m0 = std::pow(2.0f, -max_bias / static_cast<float>(n_log2));
    const float m1 = std::pow(2.0f, -(max_bias / 2.0f) / static_cast<float>(n_log2));
    for (uint32_t h = 0; h < n_heads; ++h) {
      c.alibi_slopes.push_back(h < n_log2 ? std::pow(m0, static_cast<float>(h + 1))
                                          : std::pow(m1, static_cast<float>(2 * (h - n_log2) + 1)));
    }
  }
  c.family_params.emplace_back("alibi max bias", max_bias > 0.0f ? number(max_bias) : "0 (none)");
  if (!c.alibi_slopes.empty()) {
    std::string slopes;
    for (const float m : c.alibi_slopes) slopes += (slopes.empty() ? "" : ", ") + number(m);
    c.family_params.emplace_back("alibi slopes", slopes);
  }
  c.family_params.emplace_back("clamp kqv", c.clamp_kqv > 0.0f ? number(c.clamp_kqv) : "none");
  return {};
}

}  // namespace

extern const Family kMptFamily{.arch = "mpt",
                               .title = "MPT",
                               .rope_layout = RopeLayout::kAdjacentPairs,  // unused: no rope
                               .norm = NormKind::kLayer,
                               .fused_qkv = true,
                               .ffn = FfnKind::kGeluMlp,
                               .biases_if_present = true,
                               .configure = configure_mpt};

}  // namespace sllm
