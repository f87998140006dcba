#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/ops.h"

namespace sllm {

namespace {

Result<size_t> get_size(const GgufFile& gguf, const std::string& key) {
  SLLM_ASSIGN_OR_RETURN(uint64_t v, gguf.get_u64(key));
  if (v == 0 || v > (uint64_t{1} << 31)) {
    return Error(ErrorCode::kFormat, gguf.path() + ": metadata '" + key +
                                         "' = " + std::to_string(v) + " is out of range");
  }
  return static_cast<size_t>(v);
}

Error bad(const GgufFile& gguf, const std::string& what) {
  return Error(ErrorCode::kFormat, gguf.path() + ": " + what);
}

std::string float_string(float x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", static_cast<double>(x));
  return buf;
}

// A float hyper-parameter, if present: finite and in [lo, hi] (lo excluded when `open_lo`).
Result<bool> get_float(const GgufFile& gguf, const std::string& key, float lo, bool open_lo,
                       float hi, const std::string& range, float* out) {
  if (gguf.find(key) == nullptr) return false;
  SLLM_ASSIGN_OR_RETURN(const float x, gguf.get_f32(key));
  if (!std::isfinite(x) || x < lo || (open_lo && x == lo) || x > hi) {
    return bad(gguf,
               "metadata '" + key + "' = " + float_string(x) + " is not a finite number " + range);
  }
  *out = x;
  return true;
}

// Divides each pair's multiplier by the factor tensor's entry (llama.cpp's rope freq_factors
// divide the frequency): rope_freqs, rope_factors_long / _short.
Status divide_by_factors(const GgufFile& gguf, const GgufTensorInfo& t, std::vector<double>& mul) {
  const size_t n_pairs = mul.size();
  if (t.dims != std::vector<uint64_t>{n_pairs}) {
    return bad(gguf, "tensor '" + t.name + "' must be [" + std::to_string(n_pairs) +
                         "] (rope dimensions / 2)");
  }
  std::vector<float> ff(n_pairs);
  ops::dequantize_row(t.type, t.data, ff.data(), n_pairs);
  for (size_t i = 0; i < n_pairs; ++i) {
    if (!std::isfinite(ff[i]) || ff[i] <= 0.0f) {
      return bad(gguf, "tensor '" + t.name + "' [" + std::to_string(i) +
                           "] = " + float_string(ff[i]) + " is not a finite number > 0");
    }
    mul[i] /= static_cast<double>(ff[i]);
  }
  return {};
}

// llama.cpp's rope scaling (llama_model::load_hparams, llama_context's yarn set-up and ggml's
// rope_yarn), as one multiplier per pair and a magnitude scale: the scaling types "none",
// "linear" and "yarn", the factor, attn_factor, YaRN's ramp between original_context_length's
// correction dims, and the rope_freqs factors tensor (Llama 3.1's llama3 scaling, baked in by the
// converter), which divides each pair's frequency.
Status read_rope_scaling(const GgufFile& gguf, const std::string& p, ModelConfig& c) {
  RopeSpec& rope = c.rope;
  const size_t n_pairs = rope.rope_dim / 2;
  std::string type = "linear";  // llama.cpp's default; with no factor it scales nothing
  if (gguf.find(p + "rope.scaling.type") != nullptr) {
    SLLM_ASSIGN_OR_RETURN(type, gguf.get_string(p + "rope.scaling.type"));
  }
  if (type != "none" && type != "linear" && type != "yarn") {
    return Error(ErrorCode::kUnsupported, gguf.path() + ": metadata '" + p +
                                              "rope.scaling.type' = '" + type +
                                              "' is not supported (supported: none, linear, yarn)");
  }
  float factor = 0.0f;
  std::string factor_key = p + "rope.scaling.factor";
  SLLM_ASSIGN_OR_RETURN(const bool has_factor,
                        get_float(gguf, factor_key, 0.0f, false, 1e6f, "in [0, 1e6]", &factor));
  if (!has_factor) {
    factor_key = p + "rope.scale_linear";
    SLLM_RETURN_IF_ERROR(get_float(gguf, factor_key, 0.0f, false, 1e6f, "in [0, 1e6]", &factor));
  }
  // 0 means none; a factor near 0 (1e-40) would make 1 / factor infinite and every rotation NaN.
  if (factor != 0.0f && factor < 1e-3f) {
    return bad(gguf, "metadata '" + factor_key + "' = " + float_string(factor) +
                         " is neither 0 (none) nor in [0.001, 1e6]");
  }
  float freq_scale = factor == 0.0f ? 1.0f : 1.0f / factor;
  if (type == "none") freq_scale = 1.0f;
  float attn_factor = 1.0f;
  SLLM_RETURN_IF_ERROR(get_float(gguf, p + "rope.scaling.attn_factor", 0.0f, true, 1e6f,
                                 "in (0, 1e6]", &attn_factor));

  c.n_ctx_orig = c.n_ctx_train;
  if (gguf.find(p + "rope.scaling.original_context_length") != nullptr) {
    SLLM_ASSIGN_OR_RETURN(c.n_ctx_orig, get_size(gguf, p + "rope.scaling.original_context_length"));
  }
  const size_t n_ctx_orig = c.n_ctx_orig;

  std::vector<double> mul(n_pairs, static_cast<double>(freq_scale));
  float mscale = attn_factor;
  if (type == "yarn") {
    if (n_ctx_orig == 0) {
      return bad(gguf, "yarn rope scaling needs '" + p +
                           "rope.scaling.original_context_length' or '" + p + "context_length'");
    }
    // ggml_rope_yarn_corr_dims with llama.cpp's beta_fast = 32, beta_slow = 1.
    const auto corr_dim = [&](float n_rot) {
      return static_cast<float>(rope.rope_dim) *
             std::log(static_cast<float>(n_ctx_orig) / (n_rot * 2.0f * 3.14159265358979f)) /
             (2.0f * std::log(static_cast<float>(rope.freq_base)));
    };
    const float low = std::max(0.0f, std::floor(corr_dim(32.0f)));
    const float high = std::min(static_cast<float>(rope.rope_dim - 1), std::ceil(corr_dim(1.0f)));
    for (size_t i = 0; i < n_pairs; ++i) {
      const float y = (static_cast<float>(i) - low) / std::max(0.001f, high - low);
      const float ramp = 1.0f - std::min(1.0f, std::max(0.0f, y));
      mul[i] = static_cast<double>(freq_scale * (1.0f - ramp) + ramp);
    }
    // llama_context divides its attn_factor by ggml's own 1 + 0.1 ln(1 / freq_scale) and ggml
    // multiplies it back; what remains is get_mscale(factor) = 1 + 0.1 ln(factor) when > 1.
    const float f = 1.0f / freq_scale;
    mscale = attn_factor * (f <= 1.0f ? 1.0f : 1.0f + 0.1f * std::log(f));
  }
  // A rope with the factors of `tensor` (none if absent) on top of `mul` and `mscale`.
  const auto with_factors = [&](const char* tensor) -> Result<RopeSpec> {
    RopeSpec r = rope;
    std::vector<double> m = mul;
    if (const GgufTensorInfo* t = gguf.find_tensor(tensor); t != nullptr) {
      SLLM_RETURN_IF_ERROR(divide_by_factors(gguf, *t, m));
    }
    bool all_one = mscale == 1.0f;
    for (const double x : m) all_one = all_one && x == 1.0;
    if (!all_one) {
      r.freq_mul = std::move(m);
      r.mscale = mscale;
    }
    return r;
  };
  // llama.cpp's llama_model::get_rope_factors: rope_freqs if the file has it, else Phi-3's
  // long-rope pair by context size (either may be absent: then no factors on that side).
  const bool long_rope =
      c.family->long_rope && (gguf.find_tensor("rope_factors_long.weight") != nullptr ||
                              gguf.find_tensor("rope_factors_short.weight") != nullptr);
  if (gguf.find_tensor("rope_freqs.weight") != nullptr) {
    SLLM_ASSIGN_OR_RETURN(rope, with_factors("rope_freqs.weight"));
    c.rope_scaling = "rope_freqs factors";
  } else if (long_rope) {
    SLLM_ASSIGN_OR_RETURN(c.rope_long, with_factors("rope_factors_long.weight"));
    SLLM_ASSIGN_OR_RETURN(rope, with_factors("rope_factors_short.weight"));
    c.rope_scaling = "long-rope factors (the long ones above " + std::to_string(n_ctx_orig) +
                     " tokens of cache)";
  } else {
    SLLM_ASSIGN_OR_RETURN(rope, with_factors(""));
  }
  if (type != "none" && (freq_scale != 1.0f || type == "yarn")) {
    c.rope_scaling = (c.rope_scaling.empty() ? "" : c.rope_scaling + " + ") + type + " x" +
                     float_string(1.0f / freq_scale);
  }
  if (mscale != 1.0f && type != "yarn") {
    c.rope_scaling +=
        (c.rope_scaling.empty() ? "" : ", ") + std::string("attn_factor ") + float_string(mscale);
  }
  return {};
}

}  // namespace

Result<ModelConfig> config_from_gguf(const GgufFile& gguf) {
  ModelConfig c;
  SLLM_ASSIGN_OR_RETURN(c.architecture, gguf.get_string("general.architecture"));
  const Family* family = find_family(c.architecture);
  if (family == nullptr) {
    return Error(ErrorCode::kUnsupported,
                 gguf.path() + ": architecture '" + c.architecture +
                     "' is not supported (supported: " + supported_architectures() + ")");
  }
  c.family = family;
  if (auto name = gguf.get_string("general.name"); name.ok()) c.name = *name;

  const std::string p = c.architecture + ".";
  SLLM_ASSIGN_OR_RETURN(c.dim, get_size(gguf, p + "embedding_length"));
  SLLM_ASSIGN_OR_RETURN(c.n_layers, get_size(gguf, p + "block_count"));
  SLLM_ASSIGN_OR_RETURN(c.n_heads, get_size(gguf, p + "attention.head_count"));
  SLLM_ASSIGN_OR_RETURN(c.ffn_dim, get_size(gguf, p + "feed_forward_length"));
  c.n_kv_heads = c.n_heads;
  if (gguf.find(p + "attention.head_count_kv") != nullptr) {
    SLLM_ASSIGN_OR_RETURN(c.n_kv_heads, get_size(gguf, p + "attention.head_count_kv"));
  }
  if (c.n_heads % c.n_kv_heads != 0) {
    return bad(gguf, "head_count " + std::to_string(c.n_heads) +
                         " is not a multiple of head_count_kv " + std::to_string(c.n_kv_heads));
  }
  const uint64_t n_tensors = gguf.tensors().size();
  const uint64_t n_tensors_needed = uint64_t{c.n_layers} * family->tensors_per_block() + 2;
  const std::string last_block = "blk." + std::to_string(c.n_layers - 1) + ".attn_norm.weight";
  // A few tensors short with the last block there: some tensor is missing, and the weights'
  // loader names it (the blocks are bounded by the file's tensor count, so checking them one by
  // one is cheap). Far short, the block count is what is wrong.
  const bool tensor_missing = gguf.find_tensor(last_block) != nullptr && c.n_layers <= n_tensors;
  if (n_tensors_needed > n_tensors && !tensor_missing) {
    return bad(gguf, "block_count " + std::to_string(c.n_layers) +
                         " does not match the file: " + std::to_string(c.n_layers) +
                         " blocks need at least " + std::to_string(n_tensors_needed) +
                         " tensors, the file has " + std::to_string(n_tensors));
  }
  if (gguf.find_tensor(last_block) == nullptr) {
    return bad(gguf, "block_count " + std::to_string(c.n_layers) + " does not match the file: " +
                         "its last block's tensor '" + last_block + "' is missing");
  }
  if (c.n_heads > c.dim) {
    return bad(gguf, "head_count " + std::to_string(c.n_heads) +
                         " is larger than embedding_length " + std::to_string(c.dim));
  }
  c.head_dim = c.dim / c.n_heads;
  if (gguf.find(p + "attention.key_length") != nullptr) {
    SLLM_ASSIGN_OR_RETURN(c.head_dim, get_size(gguf, p + "attention.key_length"));
  }
  if (c.head_dim % 2 != 0) {
    return bad(gguf, "head dimension " + std::to_string(c.head_dim) + " is odd");
  }
  // Each query and key row is [n_heads * head_dim]; the attention tensors' shapes are checked
  // against it when the weights are loaded, and its size must stay far from overflow.
  if (uint64_t{c.n_heads} * c.head_dim > (uint64_t{1} << 31)) {
    return bad(gguf, "head_count " + std::to_string(c.n_heads) + " x head dimension " +
                         std::to_string(c.head_dim) + " is more than 2^31");
  }
  if (gguf.find(p + "context_length") != nullptr) {
    SLLM_ASSIGN_OR_RETURN(c.n_ctx_train, get_size(gguf, p + "context_length"));
  }
  const std::string eps_key = family->norm == NormKind::kRms ? "attention.layer_norm_rms_epsilon"
                                                             : "attention.layer_norm_epsilon";
  SLLM_RETURN_IF_ERROR(get_float(gguf, p + eps_key, 0.0f, true, 1.0f, "in (0, 1]", &c.rms_eps));

  c.rope.head_dim = c.head_dim;
  c.rope.rope_dim = c.head_dim;
  if (gguf.find(p + "rope.dimension_count") != nullptr) {
    SLLM_ASSIGN_OR_RETURN(c.rope.rope_dim, get_size(gguf, p + "rope.dimension_count"));
  }
  if (c.rope.rope_dim > c.head_dim || c.rope.rope_dim % 2 != 0) {
    return bad(gguf, "rope.dimension_count " + std::to_string(c.rope.rope_dim) +
                         " must be even and at most the head dimension " +
                         std::to_string(c.head_dim));
  }
  float freq_base = static_cast<float>(c.rope.freq_base);
  SLLM_ASSIGN_OR_RETURN(const bool has_base,
                        get_float(gguf, p + "rope.freq_base", 1.0f, true,
                                  std::numeric_limits<float>::max(), "> 1", &freq_base));
  if (has_base) c.rope.freq_base = freq_base;
  c.rope.layout = family->rope_layout;
  SLLM_RETURN_IF_ERROR(read_rope_scaling(gguf, p, c));

  const GgufTensorInfo* embd = gguf.find_tensor("token_embd.weight");
  if (embd == nullptr) return bad(gguf, "missing tensor 'token_embd.weight'");
  if (embd->dims.size() != 2 || embd->dims[0] != c.dim) {
    return bad(gguf, "tensor 'token_embd.weight' must be [" + std::to_string(c.dim) + ", n_vocab]");
  }
  if (embd->dims[1] == 0 || embd->dims[1] > static_cast<uint64_t>(INT32_MAX)) {
    return bad(gguf, "tensor 'token_embd.weight' has " + std::to_string(embd->dims[1]) +
                         " rows; the vocabulary must have between 1 and 2^31 - 1 tokens");
  }
  c.n_vocab = static_cast<size_t>(embd->dims[1]);
  if (family->configure != nullptr) SLLM_RETURN_IF_ERROR(family->configure(gguf, c));
  return c;
}

}  // namespace sllm
