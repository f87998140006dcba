// The Gemma 2 and Gemma 3 families (llama.cpp src/models/gemma2.cpp, gemma3.cpp): RMSNorm (the
// converter folds Gemma's "1 + weight" into the stored weights), the embedding scaled by
// sqrt(dim), NeoX rope, GeGLU with tanh-GELU, RMSNorms on the attention and FFN outputs, and
// sliding-window (local) layers interleaved with global ones. Gemma 2 soft-caps the attention
// scores and the output logits; Gemma 3 adds a per-head q/k RMSNorm, may soft-cap the logits,
// and rotates its local layers with their own base (10000 by default) and no rope scaling.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "gguf/gguf.h"
#include "model/config.h"
#include "model/family.h"

namespace sllm {

namespace {

Error bad(const GgufFile& gguf, const std::string& what) {
  return Error(ErrorCode::kFormat, gguf.path() + ": " + what);
}

std::string num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", x);
  return buf;
}

// An optional float key: finite and > 0 when present; `fallback` otherwise.
Result<float> positive_float(const GgufFile& gguf, const std::string& key, float fallback) {
  if (gguf.find(key) == nullptr) return fallback;
  SLLM_ASSIGN_OR_RETURN(const float x, gguf.get_f32(key));
  if (!std::isfinite(x) || x <= 0.0f) {
    return bad(gguf, "metadata '" + key + "' = " + num(x) + " is not a finite number > 0");
  }
  return x;
}

// An optional unsigned key; `fallback` when absent.
Result<uint64_t> optional_u64(const GgufFile& gguf, const std::string& key, uint64_t fallback) {
  if (gguf.find(key) == nullptr) return fallback;
  return gguf.get_u64(key);
}

// The layers and rope of the sliding-window layers, as llama.cpp's set_swa_pattern(pattern):
// layer l is local unless l % pattern == pattern - 1 (pattern 0, or one above block_count:
// every layer is local).
Status configure_swa(const GgufFile& gguf, ModelConfig& c, uint64_t window,
                     uint64_t default_pattern) {
  const std::string p = c.architecture + ".";
  if (window == 0 || window > (uint64_t{1} << 31)) {
    return bad(gguf, "metadata '" + p + "attention.sliding_window' = " + std::to_string(window) +
                         " is out of range (1..2^31)");
  }
  SLLM_ASSIGN_OR_RETURN(
      const uint64_t pattern,
      optional_u64(gguf, p + "attention.sliding_window_pattern", default_pattern));
  c.sliding_window = static_cast<size_t>(window);
  c.local_layers.assign(c.n_layers, false);
  std::string global;
  for (size_t l = 0; l < c.n_layers; ++l) {
    c.local_layers[l] = pattern == 0 || l % pattern < pattern - 1;
    if (c.local_layers[l]) continue;
    if (!global.empty()) global += ',';
    global += std::to_string(l);
  }
  c.family_params.emplace_back("sliding window", std::to_string(window));
  c.family_params.emplace_back("swa pattern", std::to_string(pattern));
  c.family_params.emplace_back("global layers", global.empty() ? "none" : global);
  c.family_params.emplace_back("local rope base", num(c.local_rope.freq_base));
  return {};
}

// llama.cpp takes the attention scale from gemma_pytorch's config: 1/sqrt(head_dim), except
// for the 27B models (recognised by their layer count), which use 1/sqrt(dim / n_heads).
// query_pre_attn_scalar is not read.
void set_attn_scale(ModelConfig& c, size_t layers_27b) {
  const double d = c.n_layers == layers_27b ? static_cast<double>(c.dim / c.n_heads)
                                            : static_cast<double>(c.head_dim);
  c.attn_scale = 1.0f / std::sqrt(static_cast<float>(d));
  c.family_params.emplace_back("attn scale", "1/sqrt(" + num(d) + ")");
}

Status configure_gemma2(const GgufFile& gguf, ModelConfig& c) {
  const std::string p = "gemma2.";
  // Gemma 2's local layers use the global base (unless rope.freq_base_swa says otherwise) and
  // the global rope scaling.
  c.local_rope = c.rope;
  SLLM_ASSIGN_OR_RETURN(const float base_swa, positive_float(gguf, p + "rope.freq_base_swa",
                                                             static_cast<float>(c.rope.freq_base)));
  c.local_rope.freq_base = base_swa;
  SLLM_ASSIGN_OR_RETURN(const uint64_t window,
                        optional_u64(gguf, p + "attention.sliding_window", 4096));
  SLLM_RETURN_IF_ERROR(configure_swa(gguf, c, window, 2));
  SLLM_ASSIGN_OR_RETURN(c.attn_softcap, positive_float(gguf, p + "attn_logit_softcapping", 50.0f));
  SLLM_ASSIGN_OR_RETURN(c.final_softcap,
                        positive_float(gguf, p + "final_logit_softcapping", 30.0f));
  c.family_params.emplace_back("attn softcap", num(c.attn_softcap));
  c.family_params.emplace_back("final softcap", num(c.final_softcap));
  set_attn_scale(c, 46);
  return {};
}

Status configure_gemma3(const GgufFile& gguf, ModelConfig& c) {
  const std::string p = "gemma3.";
  SLLM_ASSIGN_OR_RETURN(const uint64_t window,
                        optional_u64(gguf, p + "attention.sliding_window", 0));
  if (window > 0) {
    // Local layers: their own base, no scaling (the file's rope scaling is for global layers).
    c.local_rope = RopeSpec{.head_dim = c.rope.head_dim,
                            .rope_dim = c.rope.rope_dim,
                            .freq_base = 10000.0,
                            .layout = c.rope.layout};
    SLLM_ASSIGN_OR_RETURN(const float base_swa,
                          positive_float(gguf, p + "rope.freq_base_swa", 10000.0f));
    c.local_rope.freq_base = base_swa;
    SLLM_RETURN_IF_ERROR(configure_swa(gguf, c, window, 6));
  } else {
    c.family_params.emplace_back("sliding window", "none (every layer global)");
  }
  // Optional here, and 0 means none (as in llama.cpp).
  if (const std::string key = p + "final_logit_softcapping"; gguf.find(key) != nullptr) {
    SLLM_ASSIGN_OR_RETURN(c.final_softcap, gguf.get_f32(key));
    if (!std::isfinite(c.final_softcap) || c.final_softcap < 0.0f) {
      return bad(gguf, "metadata '" + key + "' = " + num(c.final_softcap) +
                           " is not a finite number >= 0");
    }
  }
  c.family_params.emplace_back("final softcap",
                               c.final_softcap > 0.0f ? num(c.final_softcap) : "none");
  set_attn_scale(c, 62);
  return {};
}

}  // namespace

extern const Family kGemma2Family{.arch = "gemma2",
                                  .title = "Gemma 2",
                                  .rope_layout = RopeLayout::kHalfSplit,
                                  .ffn = FfnKind::kGeGluTanh,
                                  .scaled_embd = true,
                                  .post_norms = true,
                                  .configure = configure_gemma2};

extern const Family kGemma3Family{.arch = "gemma3",
                                  .title = "Gemma 3",
                                  .rope_layout = RopeLayout::kHalfSplit,
                                  .head_norm = true,
                                  .ffn = FfnKind::kGeGluTanh,
                                  .scaled_embd = true,
                                  .post_norms = true,
                                  .configure = configure_gemma3};

}  // namespace sllm
