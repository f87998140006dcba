// Saving and restoring a cache's contents (for session files).
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "cache/kv_cache.h"

namespace sllm {

KvCacheContents KvCache::contents() const { return {n_seen_, n_key_writes_, keys_, values_}; }

Status KvCache::restore(const KvCacheContents& contents) {
  if (contents.keys.size() != keys_.size() || contents.values.size() != values_.size()) {
    return Error(ErrorCode::kInvalidInput,
                 "saved cache holds " + std::to_string(contents.keys.size()) + " + " +
                     std::to_string(contents.values.size()) + " bytes of K/V, this cache " +
                     std::to_string(keys_.size()) + " + " + std::to_string(values_.size()));
  }
  std::memcpy(keys_.data(), contents.keys.data(), keys_.size());
  std::memcpy(values_.data(), contents.values.data(), values_.size());
  n_seen_ = contents.n_seen;
  n_key_writes_ = contents.n_key_writes;
  // After n_seen tokens the cache holds the sinks 0..S-1 and the window's last W tokens, each in
  // the slot slot_of() gives it: the map is a function of n_seen alone.
  if (slot_token_.size() > 0) {
    std::memset(slot_token_.data(), 0, slot_token_.size() * sizeof(uint64_t));
  }
  const uint64_t n_sinks = options_.n_sinks;
  const uint64_t window_start =
      std::max(n_sinks, n_seen_ > options_.window ? n_seen_ - options_.window : 0);
  for (size_t layer = 0; layer < shape_.n_layers; ++layer) {
    uint64_t* held = &slot_token_[layer * n_slots_];
    for (uint64_t t = 0; t < std::min(n_sinks, n_seen_); ++t) held[t] = t + 1;
    for (uint64_t t = window_start; t < n_seen_; ++t) held[slot_of(t)] = t + 1;
  }
  return {};
}

}  // namespace sllm
