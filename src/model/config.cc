#include "model/config.h"

#include <string_view>

#include "gguf/gguf.h"

namespace sllm {

namespace {

struct ArchInfo {
  std::string_view name;
  RopeLayout rope_layout;  // as llama.cpp's llama_model_rope_type() assigns it
  bool qkv_bias;
};

// Architectures whose math is the Llama block (RMSNorm, RoPE, GQA, SwiGLU).
constexpr ArchInfo kArchs[] = {
    {"llama", RopeLayout::kAdjacentPairs, false},
    {"mistral", RopeLayout::kAdjacentPairs, false},
    {"qwen2", RopeLayout::kHalfSplit, true},
};

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

}  // namespace

Result<ModelConfig> config_from_gguf(const GgufFile& gguf) {
  ModelConfig c;
  SLLM_ASSIGN_OR_RETURN(c.architecture, gguf.get_string("general.architecture"));
  const ArchInfo* arch = nullptr;
  for (const auto& a : kArchs) {
    if (a.name == c.architecture) arch = &a;
  }
  if (arch == nullptr) {
    return Error(ErrorCode::kUnsupported,
                 gguf.path() + ": architecture '" + c.architecture +
                     "' is not supported (supported: llama, mistral, qwen2)");
  }
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
  c.head_dim = c.dim / c.n_heads;
  if (gguf.find(p + "attention.key_length") != nullptr) {
    SLLM_ASSIGN_OR_RETURN(c.head_dim, get_size(gguf, p + "attention.key_length"));
  }
  if (c.head_dim % 2 != 0) {
    return bad(gguf, "head dimension " + std::to_string(c.head_dim) + " is odd");
  }
  if (gguf.find(p + "context_length") != nullptr) {
    SLLM_ASSIGN_OR_RETURN(c.n_ctx_train, get_size(gguf, p + "context_length"));
  }
  if (gguf.find(p + "attention.layer_norm_rms_epsilon") != nullptr) {
    SLLM_ASSIGN_OR_RETURN(c.rms_eps, gguf.get_f32(p + "attention.layer_norm_rms_epsilon"));
  }
  if (!(c.rms_eps > 0.0f)) return bad(gguf, "layer_norm_rms_epsilon must be positive");

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
  if (gguf.find(p + "rope.freq_base") != nullptr) {
    SLLM_ASSIGN_OR_RETURN(float base, gguf.get_f32(p + "rope.freq_base"));
    if (!(base > 1.0f)) return bad(gguf, "rope.freq_base must be greater than 1");
    c.rope.freq_base = base;
  }
  c.rope.layout = arch->rope_layout;
  c.qkv_bias = arch->qkv_bias;

  const GgufTensorInfo* embd = gguf.find_tensor("token_embd.weight");
  if (embd == nullptr) return bad(gguf, "missing tensor 'token_embd.weight'");
  if (embd->dims.size() != 2 || embd->dims[0] != c.dim) {
    return bad(gguf, "tensor 'token_embd.weight' must be [" + std::to_string(c.dim) + ", n_vocab]");
  }
  c.n_vocab = static_cast<size_t>(embd->dims[1]);
  return c;
}

}  // namespace sllm
