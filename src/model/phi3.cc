// The Phi-3 family (llama.cpp src/models/phi3.cpp): the Llama block with NeoX rope, q, k and v
// in one fused attn_qkv, and gate and up in one ffn_up of 2 * n_ff rows (gate first). Phi-3.5 /
// Phi-4's long-rope factors (rope_factors_long / _short) are read by the shared config
// (ModelConfig::rope_for).
#include "model/family.h"

namespace sllm {

extern const Family kPhi3Family{.arch = "phi3",
                                .title = "Phi-3",
                                .rope_layout = RopeLayout::kHalfSplit,
                                .fused_qkv = true,
                                .ffn = FfnKind::kSwiGluFused,
                                .long_rope = true};

}  // namespace sllm
