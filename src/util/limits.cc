#include "util/limits.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <string>

namespace sllm {

uint64_t memory_limit_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_bytes = ::sysconf(_SC_PAGESIZE);
  uint64_t limit = pages > 0 && page_bytes > 0
                       ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_bytes)
                       : ~uint64_t{0};
  for (int resource : {RLIMIT_AS, RLIMIT_DATA}) {
    rlimit rl{};
    if (::getrlimit(resource, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
      limit = std::min<uint64_t>(limit, rl.rlim_cur);
    }
  }
  return limit;
}

Status check_allocation(std::string_view what, uint64_t n_bytes) {
  const uint64_t limit = memory_limit_bytes();
  if (n_bytes <= limit) return {};
  return Error(ErrorCode::kLimit, std::string(what) + " would need " + std::to_string(n_bytes) +
                                      " bytes, more than the " + std::to_string(limit) +
                                      " bytes of memory here");
}

Result<uint64_t> checked_bytes(std::string_view what, std::initializer_list<uint64_t> factors) {
  uint64_t n_bytes = 1;
  for (uint64_t f : factors) {
    const auto product = checked_mul(n_bytes, f);
    if (!product) {
      return Error(ErrorCode::kLimit,
                   std::string(what) + " would need more than 2^64 bytes (its size overflows)");
    }
    n_bytes = *product;
  }
  SLLM_RETURN_IF_ERROR(check_allocation(what, n_bytes));
  return n_bytes;
}

}  // namespace sllm
