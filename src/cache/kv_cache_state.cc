// Saving and restoring a cache's contents (for session files).
#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "cache/kv_cache.h"

namespace sllm {

// The files keep a slot's KV heads side by side; the cache keeps planes of plane_heads_ heads
// (runs of slots). One plane is the files' layout already.
KvCacheContents KvCache::contents() const {
  if (n_planes_ == 1) return {n_seen_, n_key_writes_, keys_, values_};
  auto storage = std::make_shared<std::vector<uint8_t>>(keys_.size() + values_.size());
  uint8_t* keys = storage->data();
  uint8_t* values = keys + keys_.size();
  for (const LayerSlots& ls : layers_) {
    for (size_t slot = 0; slot < ls.n_slots; ++slot) {
      const size_t row = (ls.row0 + slot) * slot_bytes_;
      gather_row(keys_, ls, slot, keys + row);
      gather_row(values_, ls, slot, values + row);
    }
  }
  return {n_seen_, n_key_writes_, std::span<const uint8_t>(keys, keys_.size()),
          std::span<const uint8_t>(values, values_.size()), std::move(storage)};
}

Status KvCache::restore(const KvCacheContents& contents) {
  if (contents.keys.size() != keys_.size() || contents.values.size() != values_.size()) {
    return Error(ErrorCode::kInvalidInput,
                 "saved cache holds " + std::to_string(contents.keys.size()) + " + " +
                     std::to_string(contents.values.size()) + " bytes of K/V, this cache " +
                     std::to_string(keys_.size()) + " + " + std::to_string(values_.size()));
  }
  if (n_planes_ == 1) {
    std::memcpy(keys_.data(), contents.keys.data(), keys_.size());
    std::memcpy(values_.data(), contents.values.data(), values_.size());
  } else {
    for (const LayerSlots& ls : layers_) {
      for (size_t slot = 0; slot < ls.n_slots; ++slot) {
        const size_t row = (ls.row0 + slot) * slot_bytes_;
        for (size_t p = 0; p < n_planes_; ++p) {
          std::memcpy(&keys_[slot_offset(ls, p, slot)], &contents.keys[row + p * plane_bytes_],
                      plane_bytes_);
          std::memcpy(&values_[slot_offset(ls, p, slot)], &contents.values[row + p * plane_bytes_],
                      plane_bytes_);
        }
      }
    }
  }
  n_seen_ = contents.n_seen;
  n_key_writes_ = contents.n_key_writes;
  // After n_seen tokens a layer holds its sinks 0..S-1 and its window's last W tokens, each in
  // the slot slot_of() gives it: the map is a function of n_seen and the layer's slots alone.
  if (slot_token_.size() > 0) {
    std::memset(slot_token_.data(), 0, slot_token_.size() * sizeof(uint64_t));
  }
  for (const LayerSlots& ls : layers_) {
    const uint64_t n_sinks = ls.n_sinks;
    const uint64_t window_start = std::max(n_sinks, n_seen_ > ls.window ? n_seen_ - ls.window : 0);
    uint64_t* held = &slot_token_[ls.row0];
    for (uint64_t t = 0; t < std::min(n_sinks, n_seen_); ++t) held[t] = t + 1;
    for (uint64_t t = window_start; t < n_seen_; ++t) held[slot_of(ls, t)] = t + 1;
  }
  return {};
}

}  // namespace sllm
