// The Qwen families (llama.cpp src/models/qwen2.cpp, qwen3.cpp): the Llama block with NeoX rope
// (half split); qwen2 adds biases on q, k and v, qwen3 an RMSNorm over each head of q and k
// (weights [head_dim], shared by the heads) between the projection and rope.
#include "model/family.h"

namespace sllm {

extern const Family kQwen2Family{
    .arch = "qwen2", .title = "Qwen2", .rope_layout = RopeLayout::kHalfSplit, .qkv_bias = true};

extern const Family kQwen3Family{
    .arch = "qwen3", .title = "Qwen3", .rope_layout = RopeLayout::kHalfSplit, .head_norm = true};

}  // namespace sllm
