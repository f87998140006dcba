#include "model/family.h"

namespace sllm {

// Defined in the family files.
extern const Family kLlamaFamily, kMistralFamily, kQwen2Family, kQwen3Family, kPhi3Family,
    kGptNeoxFamily, kGemma2Family, kGemma3Family, kFalconFamily, kMptFamily;

namespace {
constexpr const Family* kFamilies[] = {
    &kLlamaFamily,   &kMistralFamily, &kQwen2Family,  &kQwen3Family,  &kPhi3Family,
    &kGptNeoxFamily, &kGemma2Family,  &kGemma3Family, &kFalconFamily, &kMptFamily};
}  // namespace

size_t Family::tensors_per_block() const {
  const size_t per_norm = norm == NormKind::kLayer && !biases_if_present ? 2 : 1;
  const size_t norms = (shared_norm ? 1 : 2) * per_norm + (post_norms ? 2 : 0);
  const size_t attn = (fused_qkv ? 2 : 4) + (qkv_bias ? (fused_qkv ? 1 : 3) : 0) +
                      (out_bias ? 1 : 0) + (head_norm ? 2 : 0);
  const size_t ffn_tensors =
      (ffn == FfnKind::kSwiGluFused || ffn == FfnKind::kGeluMlp ? 2 : 3) + (ffn_bias ? 2 : 0);
  return norms + attn + ffn_tensors;
}

std::string Family::blocks() const {
  std::string s = norm == NormKind::kRms ? "RMSNorm" : "LayerNorm";
  s += fused_qkv ? ", fused QKV" : ", separate Q/K/V";
  if (qkv_bias) s += " with biases";
  if (biases_if_present) s += ", biases where present";
  if (head_norm) s += ", q/k head RMSNorm";
  if (post_norms) s += ", post-attention/FFN RMSNorms";
  if (scaled_embd) s += ", embedding x sqrt(dim)";
  switch (ffn) {
    case FfnKind::kSwiGlu:
      s += ", SwiGLU";
      break;
    case FfnKind::kSwiGluFused:
      s += ", SwiGLU (fused gate/up)";
      break;
    case FfnKind::kGeGluTanh:
      s += ", GeGLU (tanh)";
      break;
    case FfnKind::kGeluMlp:
      s += ", GELU MLP";
      break;
  }
  return s;
}

const Family* find_family(std::string_view arch) {
  for (const Family* f : kFamilies) {
    if (f->arch == arch) return f;
  }
  return nullptr;
}

std::string supported_architectures() {
  std::string s;
  for (const Family* f : kFamilies) s += (s.empty() ? "" : ", ") + std::string(f->arch);
  return s;
}

}  // namespace sllm
