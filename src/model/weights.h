// Typed, shape-checked views of a GGUF file's tensors (after zeux/calm's tensors_get).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/ops.h"
#include "streamingllm/error.h"

namespace sllm {

// A weight matrix [n_rows, n_cols] (GGUF dims {n_cols, n_rows}), any supported type.
Result<ops::MatView> get_matrix(const GgufFile& gguf, const std::string& name, size_t n_rows,
                                size_t n_cols);

// A vector of n elements, converted to f32 (norm weights and biases are small).
Result<std::vector<float>> get_vector(const GgufFile& gguf, const std::string& name, size_t n);

}  // namespace sllm
