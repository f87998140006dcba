// The Llama family (llama, mistral): RMSNorm, RoPE on adjacent pairs, grouped-query attention,
// SwiGLU. Llama 3's rope_freqs factors and rope scaling are read by the shared config.
#include "model/family.h"

namespace sllm {

extern const Family kLlamaFamily{
    .arch = "llama", .title = "Llama", .rope_layout = RopeLayout::kAdjacentPairs};

extern const Family kMistralFamily{.arch = "mistral",
                                   .title = "Mistral (Llama blocks)",
                                   .rope_layout = RopeLayout::kAdjacentPairs};

}  // namespace sllm
