// Offline re-encoding of a GGUF's weight matrices (to any type streamingllm reads, or llama.cpp's
// Q4_K_M / Q5_K_M mixes), like llama.cpp's llama-quantize without an importance matrix.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "streamingllm/error.h"
#include "util/tensor_type.h"

namespace sllm {

// Receives one line per decision the user should know about (a matrix kept in a wider type,
// a requantization). Tools print it to stderr; tests collect it.
using QuantizeLog = std::function<void(const std::string& line)>;

// Writes `out` (atomically): `in`'s metadata with general.file_type set to llama.cpp's LLAMA_FTYPE
// for `type`, and its tensors with every 2-D "*.weight" matrix encoded as `type`. Other tensors
// (1-D norms, ...) are copied unchanged. A matrix whose row length is not a multiple of the
// type's block size is written as f16 instead, and `log` says so. Matrices stored in another
// type are decoded to f32 first; an empty `log` prints to stderr.
Status quantize_gguf(const std::string& in, const std::string& out, TensorType type,
                     const QuantizeLog& log = {});

// llama.cpp's mixes (llama-quant.cpp llama_tensor_get_type for a dense model): the base K-quant
// everywhere, q6_K for output.weight (the token embedding when it is tied), for the attn_v /
// attn_qkv and ffn_down matrices of the layers use_more_bits picks (the first and last eighth and
// every third between), then llama.cpp's fallbacks for rows the block does not divide.
enum class QuantMix {
  kQ4_K_M,  // base q4_K, LLAMA_FTYPE_MOSTLY_Q4_K_M
  kQ5_K_M,  // base q5_K, LLAMA_FTYPE_MOSTLY_Q5_K_M
};

// "q4_k_m" / "Q4_K_M", "q5_k_m" (case-insensitive), or nullopt.
std::optional<QuantMix> parse_quant_mix(const std::string& name);

// quantize_gguf with the types `mix` picks per tensor.
Status quantize_gguf_mix(const std::string& in, const std::string& out, QuantMix mix,
                         const QuantizeLog& log = {});

// The type quantize gives each tensor, for writers that encode matrices as they make them
// (make-model --type): the same choices as quantize_gguf / quantize_gguf_mix, so that such a
// file equals the f32 file quantized afterwards, byte for byte.
class QuantizePlan {
 public:
  // `type_name`: a quantize type or mix name. A mix needs the layer count and every tensor's
  // name (which layers hold attention values, whether output.weight exists).
  static Result<QuantizePlan> create(const std::string& type_name, uint32_t n_layer,
                                     const std::vector<std::string>& tensor_names);
  uint32_t file_type() const { return file_type_; }  // llama.cpp's LLAMA_FTYPE
  // The type of tensor `name` [dims] stored as `source` (tensors that are no 2-D "*.weight"
  // keep it); `log` receives what quantize would log for it.
  TensorType type_for(const std::string& name, const std::vector<uint64_t>& dims, TensorType source,
                      const QuantizeLog& log = {}) const;

 private:
  std::optional<QuantMix> mix_;
  TensorType type_ = TensorType::kF32;
  int n_layer_ = 0, n_attn_v_ = 0;
  bool tied_embeddings_ = true;
  uint32_t file_type_ = 0;
};

}  // namespace sllm
