// Model hyper-parameters, read from GGUF metadata (keys as llama.cpp names them: `<arch>.*`).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kernels/rope.h"
#include "model/family.h"
#include "streamingllm/error.h"

namespace sllm {

class GgufFile;

extern const Family kLlamaFamily;

// llama.cpp's CPU backend computes GELU on f32 through a table of f16 results (GGML_GELU_FP16):
// the input is rounded to f16, then looked up. We follow it by default, because its error (about
// 1e-3 relative) moves log-probabilities by several 1e-3, more than the agreement the peer check
// asks for. But it is a step function: two computations of the same model that differ by 1e-6
// before a GELU (float summation orders) can differ by 1e-3 after it. The smooth tanh-GELU is for
// comparisons that must tell such noise from real differences (the naive streaming reference).
enum class GeluKind { kGgmlTable, kTanh };

struct ModelConfig {
  std::string architecture;              // general.architecture: llama, mistral, qwen2, qwen3, phi3
  const Family* family = &kLlamaFamily;  // the blocks the architecture is made of
  std::string name;                      // general.name, may be empty
  size_t n_vocab = 0;                    // rows of token_embd.weight
  size_t dim = 0;                        // <arch>.embedding_length
  size_t n_layers = 0;                   // <arch>.block_count
  size_t n_heads = 0;                    // <arch>.attention.head_count
  size_t n_kv_heads = 0;   // <arch>.attention.head_count_kv (GQA); defaults to n_heads
  size_t head_dim = 0;     // dim / n_heads (or <arch>.attention.key_length)
  size_t ffn_dim = 0;      // <arch>.feed_forward_length
  size_t n_ctx_train = 0;  // <arch>.context_length (what the GGUF claims; 0 if absent)
  float rms_eps = 1e-5f;  // <arch>.attention.layer_norm_rms_epsilon (layer_norm_epsilon: LayerNorm)
  bool parallel_residual = false;        // x + attn(norm1(x)) + ffn(norm2(x)) (GPT-NeoX's flag)
  GeluKind gelu = GeluKind::kGgmlTable;  // how the GELU MLP and GeGLU compute GELU
  RopeSpec rope;                         // dims, base, layout, scaling (rope_dim 0: no rope)
  // Phi-3.5 / Phi-4 long-rope: `rope` has the short factors (rope_factors_short), this the long
  // ones, which llama.cpp uses when the context is longer than n_ctx_orig. Use rope_for().
  std::optional<RopeSpec> rope_long;
  size_t n_ctx_orig = 0;   // <arch>.rope.scaling.original_context_length, else n_ctx_train
  float clamp_kqv = 0.0f;  // > 0: q, k and v clipped to [-clamp_kqv, clamp_kqv] (MPT's clip_qkv)
  // ALiBi (MPT): the slope of each query head, [n_heads]; empty without ALiBi. Attention adds
  // -slope * (query position - key position) to each scaled score (the cache says which
  // positions: kv_cache.h).
  std::vector<float> alibi_slopes;
  std::string rope_scaling;  // what scales the rope ("" when nothing), for `info`
  // Hyper-parameters only some families have (soft-capping, sliding window, ALiBi, clipping), as
  // (name, value) for `info`; each family's configure() appends its own.
  std::vector<std::pair<std::string, std::string>> family_params;
  // Attention and logits beyond the defaults (Gemma): scores are attn_scale * q.k (0: 1 /
  // sqrt(head_dim)), soft-capped to cap * tanh(s / cap) when attn_softcap > 0; the output logits
  // likewise with final_softcap.
  float attn_scale = 0.0f;
  float attn_softcap = 0.0f;
  float final_softcap = 0.0f;
  // Sliding-window (local) layers (Gemma): local_layers[l] marks one (empty: none); each attends
  // to its last sliding_window tokens only, rotated with local_rope (its own base and scaling).
  std::vector<bool> local_layers;
  size_t sliding_window = 0;
  RopeSpec local_rope;

  // The rope of a cache of n_ctx tokens. A streaming cache's largest distance between a query and
  // a key is its capacity (sinks + window) minus one, however long the stream, so the capacity is
  // what chooses between short and long factors, as the context size does in llama.cpp.
  const RopeSpec& rope_for(size_t n_ctx) const {
    return rope_long && n_ctx > n_ctx_orig ? *rope_long : rope;
  }

  size_t q_dim() const { return n_heads * head_dim; }
  size_t kv_dim() const { return n_kv_heads * head_dim; }
};

// Reads and validates the config. Unsupported architectures are rejected by name.
Result<ModelConfig> config_from_gguf(const GgufFile& gguf);

}  // namespace sllm
