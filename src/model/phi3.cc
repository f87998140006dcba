// The Phi-3 family (llama.cpp src/models/phi3.cpp): the Llama block with NeoX rope, q, k and v
// in one fused attn_qkv, and gate and up in one ffn_up of 2 * n_ff rows (gate first).
#include <string>

#include "gguf/gguf.h"
#include "model/config.h"
#include "model/family.h"

namespace sllm {

namespace {

// Phi-3.5 / Phi-4's long-rope factors switch with the context size (llama.cpp picks the long
// ones when the context exceeds the original one): not supported yet, so refused by name rather
// than silently ignored.
Status configure_phi3(const GgufFile& gguf, ModelConfig&) {
  for (const char* name : {"rope_factors_long.weight", "rope_factors_short.weight"}) {
    if (gguf.find_tensor(name) != nullptr) {
      return Error(ErrorCode::kUnsupported,
                   gguf.path() + ": phi3 long-rope factors (tensor '" + name +
                       "') are not supported; supported: phi3 files without "
                       "rope_factors_long.weight / rope_factors_short.weight");
    }
  }
  return {};
}

}  // namespace

extern const Family kPhi3Family{.arch = "phi3",
                                .title = "Phi-3",
                                .rope_layout = RopeLayout::kHalfSplit,
                                .fused_qkv = true,
                                .ffn = FfnKind::kSwiGluFused,
                                .configure = configure_phi3};

}  // namespace sllm
