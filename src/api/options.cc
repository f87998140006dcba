// The public options' checks, and the one mapping from a policy and a cache size to S and W.
#include <string>

#include "streamingllm/options.h"
#include "util/limits.h"

namespace sllm {

namespace {
Error invalid(const std::string& message) { return Error(ErrorCode::kInvalidInput, message); }
}  // namespace

const char* kv_type_name(KvType type) {
  switch (type) {
    case KvType::kF16:
      return "f16";
    case KvType::kQ8_0:
      return "q8_0";
    case KvType::kQ4_0:
      return "q4_0";
    case KvType::kF32:
      break;
  }
  return "f32";
}

Result<KvType> parse_kv_type(std::string_view name) {
  for (KvType type : {KvType::kF32, KvType::kF16, KvType::kQ8_0, KvType::kQ4_0}) {
    if (name == kv_type_name(type)) return type;
  }
  return invalid("unknown KV cache type '" + std::string(name) +
                 "' (expected f32, f16, q8_0 or q4_0)");
}

Result<CacheOptions> CacheOptions::for_policy(CachePolicy policy, size_t cache_tokens,
                                              size_t n_sinks) {
  if (cache_tokens == 0) return invalid("a cache must hold at least 1 token");
  CacheOptions o;
  o.policy = policy;
  o.n_sinks = 0;
  o.window = cache_tokens;
  if (policy == CachePolicy::kStreaming) {
    if (n_sinks >= cache_tokens) {
      return invalid(std::to_string(n_sinks) + " sinks leave no room for a window in a cache of " +
                     std::to_string(cache_tokens) + " tokens");
    }
    o.n_sinks = n_sinks;
    o.window = cache_tokens - n_sinks;
  }
  return o;
}

Status CacheOptions::validate() const {
  if (window == 0) return invalid("the window must hold at least 1 token");
  if (policy != CachePolicy::kStreaming && n_sinks != 0) {
    return invalid(std::string("attention sinks apply to the streaming policy only, not ") +
                   policy_name(policy));
  }
  if (!checked_add(n_sinks, window)) {
    return Error(ErrorCode::kLimit, std::to_string(n_sinks) + " sinks + a window of " +
                                        std::to_string(window) + " tokens overflows");
  }
  if (max_batch == 0) return invalid("the batch size must be at least 1");
  if (kv_type != KvType::kF32 && kv_type != KvType::kF16 && kv_type != KvType::kQ8_0 &&
      kv_type != KvType::kQ4_0) {
    return invalid("the KV cache type must be f32, f16, q8_0 or q4_0");
  }
  return {};
}

}  // namespace sllm
