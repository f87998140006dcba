// Tensor element types, numbered as in GGUF / ggml (ggml.h `enum ggml_type`).
//
// A type stores blocks of `block_elems` elements in `block_bytes` bytes; a row of n elements
// (n a multiple of block_elems) takes n / block_elems * block_bytes bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace sllm {

enum class TensorType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,  // the K-quants' activation format in llama.cpp; never a weight in a GGUF
  kIQ4_NL = 20,
  kIQ4_XS = 23,
  kBF16 = 30,
  kMXFP4 = 39,
};

struct TensorTypeTraits {
  TensorType type;
  const char* name;  // as llama.cpp prints it: "f32", "q8_0", "q4_K", "iq4_nl", ...
  size_t block_elems;
  size_t block_bytes;
};

// Traits of a type we store in model files, or nullopt for any other ggml type id (q8_K
// included: ggml never writes it to files, so a GGUF tensor of that type is refused too).
std::optional<TensorTypeTraits> tensor_type_traits(uint32_t ggml_type_id);

// Traits of any TensorType enumerator (q8_K included).
TensorTypeTraits traits_of(TensorType type);

// The supported types of model files, in display order (f32, f16, bf16, then the quantizations).
std::span<const TensorTypeTraits> supported_tensor_types();

// ggml's name of any type id it knows ("q4_K", "iq2_xs", ...), also the ones we do not support, so
// that errors can name them; "type N" for ids ggml does not know.
std::string ggml_type_name(uint32_t ggml_type_id);

// Parses a supported type's name as llama.cpp prints it ("f32", "q8_0", "q4_K", "iq4_nl",
// "mxfp4"), case-insensitive.
std::optional<TensorType> parse_tensor_type(const std::string& name);

}  // namespace sllm
