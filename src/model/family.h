// Model families: what distinguishes one `general.architecture` from another, as a choice among
// the shared blocks (model/blocks.h). Each family is a small file of its own (llama.cc, qwen.cc,
// phi3.cc) defining its Family; the transformer (model/transformer.h) runs any of them.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "kernels/rope.h"
#include "streamingllm/error.h"

namespace sllm {

class GgufFile;
struct ModelConfig;

enum class NormKind { kRms, kLayer };  // LayerNorm has a bias and subtracts the mean
enum class FfnKind {
  kSwiGlu,       // down(silu(gate(x)) * up(x)), separate gate and up
  kSwiGluFused,  // the same with gate and up in one ffn_up of 2 * n_ff rows (gate first)
  kGeGluTanh,    // down(gelu_tanh(gate(x)) * up(x))
  kGeluMlp,      // down(gelu(up(x)))
};

struct Family {
  std::string_view arch;   // general.architecture
  std::string_view title;  // for `info`
  RopeLayout rope_layout;  // as llama.cpp's llama_model_rope_type() assigns it
  NormKind norm = NormKind::kRms;
  bool fused_qkv = false;  // one attn_qkv [q_dim + 2 kv_dim, dim] instead of attn_q/k/v
  bool qkv_bias = false;   // biases on q, k, v (or on the fused qkv)
  bool out_bias = false;   // a bias on attn_output
  bool head_norm = false;  // per-head RMSNorm of q and k before rope (attn_q/k_norm)
  FfnKind ffn = FfnKind::kSwiGlu;
  bool long_rope = false;  // reads rope_factors_long / _short (Phi-3.5, Phi-4), as llama.cpp does
  bool ffn_bias = false;   // biases on the FFN's up and down
  // Gemma: the embedding scaled by sqrt(dim), and RMSNorms on the attention and FFN outputs
  // (post_attention_norm, post_ffw_norm) before they join the residual.
  bool scaled_embd = false;
  bool post_norms = false;
  // Every bias (norms, QKV, attn_output, FFN) is loaded when the file has it, none is required
  // (MPT: llama.cpp loads each as optional, for the no_bias option).
  bool biases_if_present = false;
  // One norm, attn_norm, feeds both attention and the FFN (Falcon-7B); a block that also has
  // attn_norm_2 gives attention that one instead (Falcon-40B). No ffn_norm.
  bool shared_norm = false;
  // Family-specific checks and hyper-parameters beyond the shared ones; may be null.
  Status (*configure)(const GgufFile& gguf, ModelConfig& config) = nullptr;

  // Tensors every block has at least: a block_count the file cannot cover is refused early.
  size_t tensors_per_block() const;
  // The blocks in words, for `info`: "RMSNorm, q/k/v biases, SwiGLU".
  std::string blocks() const;
};

// The family of an architecture name, or null.
const Family* find_family(std::string_view arch);
// "llama, mistral, qwen2, ..." for error messages.
std::string supported_architectures();

}  // namespace sllm
