// Sizes computed from untrusted input (flags, file headers, session files): overflow-checked
// arithmetic, and the one check every buffer sized from such input passes before it is allocated.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string_view>

#include "streamingllm/error.h"

namespace sllm {

// a * b and a + b, or nullopt when the result does not fit in 64 bits.
inline std::optional<uint64_t> checked_mul(uint64_t a, uint64_t b) {
  uint64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}
inline std::optional<uint64_t> checked_add(uint64_t a, uint64_t b) {
  uint64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// The most memory one process may use here: the machine's physical memory, or less where
// RLIMIT_AS or RLIMIT_DATA says so. A buffer larger than this can never be allocated.
uint64_t memory_limit_bytes();

// The product of `factors` in bytes (the element size among them), refused with a kLimit error
// naming `what` when it overflows 64 bits or exceeds memory_limit_bytes():
//   "the KV cache would need 128000000000 bytes, more than the 25769803776 bytes of memory here"
Result<uint64_t> checked_bytes(std::string_view what, std::initializer_list<uint64_t> factors);

// The same check for a size already computed.
Status check_allocation(std::string_view what, uint64_t n_bytes);

}  // namespace sllm
