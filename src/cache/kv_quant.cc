#include "cache/kv_quant.h"

#include <cassert>
#include <string>

#include "kernels/ops.h"
#include "kernels/quant.h"

namespace sllm {

namespace {

constexpr size_t kBlock = quant::kBlockElems;
static_assert(kBlock == kKvBlockValues);

}  // namespace

bool is_block_kv(TensorType type) { return type == TensorType::kQ8_0 || type == TensorType::kQ4_0; }

uint64_t kv_bytes(TensorType type, uint64_t n) {
  switch (type) {
    case TensorType::kF16:
      return n * 2;
    case TensorType::kQ8_0:
      return n / kBlock * sizeof(quant::BlockQ8_0);
    case TensorType::kQ4_0:
      return n / kBlock * sizeof(quant::BlockQ4_0);
    default:
      return n * 4;
  }
}

Status check_kv_type(TensorType type, size_t head_dim, size_t n_kv_heads) {
  if (type != TensorType::kF32 && type != TensorType::kF16 && !is_block_kv(type)) {
    return Error(ErrorCode::kInvalidInput, "the KV cache type must be f32, f16, q8_0 or q4_0");
  }
  if (!is_block_kv(type) || head_dim == 0) return {};
  const bool whole_blocks = head_dim % kBlock == 0;
  const bool heads_fill_blocks = kBlock % head_dim == 0 && (n_kv_heads * head_dim) % kBlock == 0;
  if (whole_blocks || heads_fill_blocks) return {};
  const std::string name = traits_of(type).name;
  return Error(ErrorCode::kInvalidInput,
               "the " + name +
                   " KV cache stores blocks of 32 values: it needs a head_dim that is "
                   "a multiple of 32 (or divides 32, with the KV heads of a token filling whole "
                   "blocks); this model's head_dim is " +
                   std::to_string(head_dim) + " with " + std::to_string(n_kv_heads) +
                   " KV heads (use --kv-type f16 or f32)");
}

void store_kv_row(TensorType type, const float* src, uint8_t* dst, size_t n) {
  if (is_block_kv(type)) {
    assert(n % kBlock == 0);
    quant::quantize_row(type, src, dst, n);
  } else {
    ops::store_kv(src, dst, type, n);
  }
}

}  // namespace sllm
