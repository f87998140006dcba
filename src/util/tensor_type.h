// Tensor element types, numbered as in GGUF / ggml (ggml.h `enum ggml_type`).
//
// A type stores blocks of `block_elems` elements in `block_bytes` bytes; a row of n elements
// (n a multiple of block_elems) takes n / block_elems * block_bytes bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace sllm {

enum class TensorType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ8_0 = 8,
  kBF16 = 30,
};

struct TensorTypeTraits {
  TensorType type;
  const char* name;  // as llama.cpp prints it: "f32", "q8_0", ...
  size_t block_elems;
  size_t block_bytes;
};

// Traits of a supported type, or nullopt for any other ggml type id.
std::optional<TensorTypeTraits> tensor_type_traits(uint32_t ggml_type_id);

// ggml's name of any type id it knows ("q4_K", "iq2_xs", ...), also the ones we do not support, so
// that errors can name them; "type N" for ids ggml does not know.
std::string ggml_type_name(uint32_t ggml_type_id);

// Parses "f32", "f16", "bf16", "q8_0", "q4_0" (case-insensitive).
std::optional<TensorType> parse_tensor_type(const std::string& name);

}  // namespace sllm
