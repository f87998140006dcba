// Open-addressing hash tables for the BPE tokenizer's lookups: a vocabulary has 50k-260k tokens
// and 50k-500k merges, looked up per character and per merge, so node-based maps' cache misses
// dominated both loading and encoding.
#pragma once

#include <bit>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "util/token.h"

namespace sllm {

// Text -> index into a vector of strings that outlives it (empty strings are not indexed). A
// text that occurs more than once maps to its last index, as llama.cpp's token_to_id does.
class TextIndex {
 public:
  void build(const std::vector<std::string>& texts) {
    texts_ = &texts;
    const size_t capacity = std::bit_ceil(texts.size() * 2 + 16);
    slots_.assign(capacity, 0);
    mask_ = capacity - 1;
    for (size_t i = 0; i < texts.size(); ++i) {
      if (texts[i].empty()) continue;
      const uint64_t h = std::hash<std::string_view>{}(texts[i]);
      for (size_t s = h & mask_;; s = (s + 1) & mask_) {
        if (slots_[s] == 0) {
          slots_[s] = pack(h, i);
          break;
        }
        if (tag(slots_[s]) == tag(h) && (*texts_)[index(slots_[s])] == texts[i]) {
          slots_[s] = pack(h, i);
          break;
        }
      }
    }
  }

  // The index of `text`, or -1.
  TokenId find(std::string_view text) const {
    if (slots_.empty() || text.empty()) return -1;
    const uint64_t h = std::hash<std::string_view>{}(text);
    for (size_t s = h & mask_;; s = (s + 1) & mask_) {
      const uint64_t slot = slots_[s];
      if (slot == 0) return -1;
      if (tag(slot) == tag(h) && (*texts_)[index(slot)] == text) {
        return static_cast<TokenId>(index(slot));
      }
    }
  }

 private:
  // A slot: the hash's high 32 bits, then index + 1 (0: empty).
  static uint64_t pack(uint64_t h, size_t i) { return (h & 0xFFFFFFFF00000000u) | (i + 1); }
  static uint64_t tag(uint64_t v) { return v >> 32; }
  static size_t index(uint64_t slot) { return static_cast<size_t>((slot & 0xFFFFFFFFu) - 1); }

  const std::vector<std::string>* texts_ = nullptr;
  std::vector<uint64_t> slots_;
  size_t mask_ = 0;
};

// uint64 key (never ~0) -> Value; the first insertion of a key wins. It does not grow: reserve(n)
// first, then insert at most n keys (the table is then at most half full).
template <typename Value>
class U64Map {
 public:
  void reserve(size_t n) {
    const size_t capacity = std::bit_ceil(n * 2 + 16);
    keys_.assign(capacity, kEmpty);
    values_.assign(capacity, Value{});
    mask_ = capacity - 1;
  }

  void emplace(uint64_t key, const Value& value) {
    for (size_t s = mix(key) & mask_;; s = (s + 1) & mask_) {
      if (keys_[s] == key) return;
      if (keys_[s] == kEmpty) {
        keys_[s] = key;
        values_[s] = value;
        return;
      }
    }
  }

  const Value* find(uint64_t key) const {
    if (keys_.empty()) return nullptr;
    for (size_t s = mix(key) & mask_;; s = (s + 1) & mask_) {
      if (keys_[s] == key) return &values_[s];
      if (keys_[s] == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static size_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }

  std::vector<uint64_t> keys_;
  std::vector<Value> values_;
  size_t mask_ = 0;
};

}  // namespace sllm
