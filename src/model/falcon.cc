// The Falcon family (llama.cpp src/models/falcon.cpp): LayerNorms with biases, fused QKV without
// bias (converted to q, k, v contiguous: "jploski" layout), NeoX rope over the whole head, a GELU
// MLP without biases, attention and MLP side by side on the layer's input. Falcon-7B has one
// LayerNorm per block (attn_norm) that feeds both, and a single KV head; Falcon-40B adds
// attn_norm_2 for attention (attn_norm then feeds the MLP alone) and has several KV heads.
// llama.cpp tells the two apart by attn_norm_2 alone, block by block, and so do we.
#include <string>

#include "gguf/gguf.h"
#include "model/config.h"
#include "model/family.h"

namespace sllm {

namespace {

Status configure_falcon(const GgufFile& gguf, ModelConfig& c) {
  c.parallel_residual = true;
  const bool two_norms = gguf.find_tensor("blk.0.attn_norm_2.weight") != nullptr;
  c.family_params.emplace_back("norms", two_norms ? "attn_norm_2 for attention, attn_norm for "
                                                    "the MLP (40B style)"
                                                  : "attn_norm for attention and MLP (7B style)");
  return {};
}

}  // namespace

extern const Family kFalconFamily{.arch = "falcon",
                                  .title = "Falcon",
                                  .rope_layout = RopeLayout::kHalfSplit,
                                  .norm = NormKind::kLayer,
                                  .fused_qkv = true,
                                  .ffn = FfnKind::kGeluMlp,
                                  .shared_norm = true,
                                  .configure = configure_falcon};

}  // namespace sllm
