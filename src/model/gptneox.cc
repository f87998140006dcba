// The GPT-NeoX family (Pythia; llama.cpp src/models/gptneox.cpp): LayerNorm with bias, fused QKV
// with bias, an output bias, NeoX rope over the first rope.dimension_count dims of each head
// (partial rotary), a GELU MLP with biases, and (gptneox.use_parallel_residual) attention and
// MLP side by side on the layer's input.
#include <cstdint>
#include <string>

#include "gguf/gguf.h"
#include "model/config.h"
#include "model/family.h"

namespace sllm {

namespace {

Status configure_gptneox(const GgufFile& gguf, ModelConfig& c) {
  const std::string key = "gptneox.use_parallel_residual";
  const GgufValue* v = gguf.find(key);
  if (v == nullptr) {
    return Error(ErrorCode::kFormat, gguf.path() + ": missing metadata '" + key + "'");
  }
  SLLM_ASSIGN_OR_RETURN(c.parallel_residual, gguf.get_bool(key));
  return {};
}

}  // namespace

extern const Family kGptNeoxFamily{.arch = "gptneox",
                                   .title = "GPT-NeoX",
                                   .rope_layout = RopeLayout::kHalfSplit,
                                   .norm = NormKind::kLayer,
                                   .fused_qkv = true,
                                   .qkv_bias = true,
                                   .out_bias = true,
                                   .ffn = FfnKind::kGeluMlp,
                                   .ffn_bias = true,
                                   .configure = configure_gptneox};

}  // namespace sllm
