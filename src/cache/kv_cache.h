// The StreamingLLM KV cache: attention sinks + a rolling window, exact positions in O(1).
//
// StreamingLLM (Xiao et al. 2023) keeps the K/V of the first n_sinks tokens of the stream forever
// (the "attention sinks") plus the last `window` tokens, and gives them positions *inside the
// cache*: sinks at 0..S-1 and the window contiguous after them. With S = 0 this is window
// attention; with S + W >= the stream length it is dense attention.
//
// The reference code stores keys unrotated and re-rotates the whole cache every step. We rotate
// each key once, when it is written, at its absolute stream position, and never touch it again.
// RoPE scores depend only on the difference of the two positions (q_m · k_n = f(x_q, x_k, m - n)),
// so a query of stream index t, whose in-cache position is c(t) = min(t, S + W - 1), is scored
//   - against window keys with the query rotated at its absolute position t: the window is
//     contiguous, so t - n equals the in-cache difference c(t) - c(n);
//   - against sink keys (written at 0..S-1) with the query rotated at c(t).
// That is two query rotations per token and head instead of a pass over the cache. docs/design.md
// has the derivation; tests/cache_test.cc checks it against the re-rotating reference.
//
// ALiBi (MPT: no rope, rope_dim 0) follows the same identity with a bias for the rotation: the
// paper's "contiguous" bias, -slope * (in-cache distance). A window key n is at in-cache
// distance t - n from the query (the window is contiguous), a sink j at c(t) - j. Both are
// differences of stream indices known when the query is scored, so no key is ever rewritten or
// re-biased: the bias is added to each score as it is computed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "cache/zeroed_array.h"
#include "kernels/rope.h"
#include "streamingllm/error.h"
#include "util/tensor_type.h"
#include "util/thread_pool.h"

namespace sllm {

struct KvCacheShape {
  size_t n_layers = 0;
  size_t n_heads = 0;
  size_t n_kv_heads = 0;  // n_heads is a multiple of it (grouped-query attention)
  size_t head_dim = 0;
  RopeSpec rope;
  // Scores are attn_scale * q.k (0: 1 / sqrt(head_dim)); with attn_softcap > 0 each becomes
  // attn_softcap * tanh(score / attn_softcap) (Gemma 2).
  float attn_scale = 0.0f;
  float attn_softcap = 0.0f;
  // Sliding-window (local) layers (Gemma; empty: none): layer l with local_layers[l] keeps its own
  // native window of the last min(local_window, n_sinks + window) tokens, no sinks, each key
  // rotated with local_rope at its absolute position: a native window is contiguous, so its
  // positions are exact and its queries need no second rotation. Global layers are as above.
  std::vector<bool> local_layers{};
  size_t local_window = 0;
  RopeSpec local_rope{};
  std::vector<float> alibi_slopes{};  // [n_heads] ALiBi slopes; empty: no ALiBi
};

struct KvCacheOptions {
  size_t n_sinks = 4;    // first tokens of the stream kept forever (0: window attention)
  size_t window = 1020;  // most recent tokens kept, the current one included (>= 1)
  // Element type of stored K/V: f32, f16, or q8_0 / q4_0 blocks (cache/kv_quant.h).
  TensorType kv_type = TensorType::kF32;
  uint64_t start_pos = 0;  // absolute position of the stream's first token
  size_t max_batch = 64;   // most tokens per attend() call
};

// A cache's contents for session files (runtime/session_file.h), in the files' layout: each
// layer's slots in turn, a slot's KV heads side by side ([layer_slots(l), kv_dim] of kv_type),
// whatever the cache's own layout. The slot map is not part of it: it follows from n_seen.
struct KvCacheContents {
  uint64_t n_seen = 0;
  uint64_t n_key_writes = 0;
  std::span<const uint8_t> keys;
  std::span<const uint8_t> values;
  // What keys and values point into when contents() had to lay them out (else empty: they are
  // views into a file's bytes).
  std::shared_ptr<const std::vector<uint8_t>> storage{};
};

class KvCache {
 public:
  // Checks the shape and options and every size computed from them (overflow, and the total
  // against the machine's memory: a kLimit error says how many bytes were asked for) before
  // allocating. K/V storage is committed page by page as tokens are written, so memory follows
  // the tokens held until the cache is full.
  static Result<KvCache> create(const KvCacheShape& shape, const KvCacheOptions& options);

  // Bytes create() would allocate for this shape and options (K/V, slot map, scores and the
  // per-batch buffers), or the kLimit error it would return.
  static Result<uint64_t> bytes_needed(const KvCacheShape& shape, const KvCacheOptions& options);
  // Slots of layer l: n_sinks + window for a global layer, its native window for a local one.
  // Valid once bytes_needed() accepted the shape and options.
  static size_t layer_slots(const KvCacheShape& shape, const KvCacheOptions& options, size_t l);

  // A batch of n_tokens consecutive stream tokens goes through the model: begin_batch(n), then
  // attend() once per layer in order, then end_batch(). Token i of the batch has stream index
  // n_seen() + i. Each token sees the sinks and its own last `window` tokens, itself included,
  // exactly as if the batch had been fed one token at a time.
  void begin_batch(size_t n_tokens);
  // q: [n_tokens, n_heads * head_dim], k and v: [n_tokens, n_kv_heads * head_dim], unrotated;
  // q and k are rotated in place. out: [n_tokens, n_heads * head_dim].
  void attend(size_t layer, float* q, float* k, const float* v, float* out, ThreadPool& pool);
  void end_batch();

  // Forgets every token; keeps the memory.
  void clear();

  uint64_t n_seen() const { return n_seen_; }  // tokens fed since the start or clear()
  size_t n_sinks() const { return options_.n_sinks; }
  size_t window() const { return options_.window; }
  size_t n_slots() const { return n_slots_; }  // of a global layer: n_sinks + window
  size_t layer_slots(size_t layer) const { return layers_[layer].n_slots; }
  // Tokens whose K/V are held now by a global layer: min(n_seen, n_sinks + window).
  size_t n_cached() const;
  // Bytes of K/V storage: the slots of every layer * 2 * n_kv_heads * head_dim * element size.
  size_t n_bytes() const { return keys_.size() + values_.size(); }
  // Stream index of the token held in a slot (for tests and session files).
  uint64_t slot_token(size_t layer, size_t slot) const {
    // stored + 1 so that 0 (calloc) is empty
    return slot_token_[layers_[layer].row0 + slot] - 1;
  }
  // The K/V bytes of one slot of one layer, its KV heads side by side (slot_bytes() of them; for
  // tests).
  std::vector<uint8_t> key_row(size_t layer, size_t slot) const;
  std::vector<uint8_t> value_row(size_t layer, size_t slot) const;
  size_t slot_bytes() const { return slot_bytes_; }
  // Every key row written so far; each token is written once per layer, never rewritten.
  uint64_t n_key_writes() const { return n_key_writes_; }

  // Session files (kv_cache_state.cc): the contents, and restoring contents saved from a cache of
  // the same shape and options. restore() checks the sizes and rebuilds the slot map from
  // n_seen; on error the cache is unchanged.
  KvCacheContents contents() const;
  Status restore(const KvCacheContents& contents);

 private:
  KvCache(const KvCacheShape& shape, const KvCacheOptions& options);

  // Where a layer's slots start among all rows and how it keeps tokens: n_sinks + a ring of
  // `window` (a local layer: no sinks, its native window).
  struct LayerSlots {
    size_t row0 = 0;
    size_t n_sinks = 0;
    size_t window = 0;
    size_t n_slots = 0;
    bool local = false;
  };
  static std::vector<LayerSlots> layout_layers(const KvCacheShape& shape,
                                               const KvCacheOptions& options);
  // Slot of stream index t in layer l (t must be held): sinks first, then a ring for the window.
  size_t slot_of(const LayerSlots& l, uint64_t t) const {
    return t < l.n_sinks ? t : l.n_sinks + (t - l.n_sinks) % l.window;
  }
  // In-cache position of stream index t once it is the newest token: c(t) = min(t, S + W - 1).
  uint64_t cache_pos(uint64_t t) const { return t < n_slots_ - 1 ? t : n_slots_ - 1; }
  // Storage: each layer's slots are planes of plane_heads_ KV heads, one after the other, each a
  // [layer_slots, plane_heads * head_dim] array of kv_type. f32 and f16 keep a plane per KV head,
  // so that the rows one head attends over are contiguous (at a stride of all heads, four rows
  // of a 64-wide head fill a 4 KiB page: the hardware prefetchers give up at page ends and the
  // cache's sets alias, and a 4096-token cache was read at a third of the speed). q8_0 and q4_0
  // keep one plane (whole 32-value blocks may span heads); attention reads their f32 decoding.
  // Byte offset of plane p of slot `slot` of a layer, and of batch row i's.
  size_t slot_offset(const LayerSlots& ls, size_t plane, size_t slot) const {
    return ls.row0 * slot_bytes_ + (plane * ls.n_slots + slot) * plane_bytes_;
  }
  // Copies a slot's planes into `row`, side by side (slot_bytes_ of them).
  void gather_row(const ZeroedArray<uint8_t>& kv, const LayerSlots& ls, size_t slot,
                  uint8_t* row) const;
  size_t batch_offset(size_t plane, size_t i) const {
    return (plane * options_.max_batch + i) * plane_bytes_;
  }
  // Where attention reads a layer's rows: the cache's own (f32, f16) or their f32 decoding in
  // dequantized_ (q8_0, q4_0). KV head h's row r of the layer is at
  // layer_k + h * layer_head_stride + r * row_bytes, its batch row i at
  // batch_k + h * batch_head_stride + i * row_bytes.
  struct KvRows {
    const uint8_t* layer_k;
    const uint8_t* layer_v;
    const uint8_t* batch_k;
    const uint8_t* batch_v;
    size_t row_bytes;
    size_t layer_head_stride;
    size_t batch_head_stride;
    TensorType type;
  };
  // For a block type this decodes the layer's held rows and the batch's (once per layer and
  // batch, on the pool).
  KvRows kv_rows(size_t layer, ThreadPool& pool);
  size_t dequantized_size() const;  // floats of dequantized_
  // Batch row i for the query heads [head, head + n_heads / n_kv_heads), which share a KV head.
  void attend_group(size_t layer, const KvRows& rows, size_t head, size_t i, const float* q,
                    const float* q_sink, float* out, float* scores) const;

  KvCacheShape shape_;
  KvCacheOptions options_;
  size_t n_slots_;      // n_sinks + window
  size_t kv_dim_;       // n_kv_heads * head_dim
  size_t slot_bytes_;   // bytes of kv_dim values of kv_type
  size_t plane_heads_;  // KV heads per plane: 1, or n_kv_heads for a block type
  size_t n_planes_;     // n_kv_heads / plane_heads_
  size_t plane_bytes_;  // bytes of plane_heads_ * head_dim values of kv_type
  std::vector<LayerSlots> layers_;
  size_t n_rows_;  // slots of all layers

  ZeroedArray<uint8_t> keys_;    // n_rows * slot_bytes in planes, rotated once at write
  ZeroedArray<uint8_t> values_;  // likewise
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // slot_token() of a slot never written
  // [n_rows] stream index held + 1, 0 if none (zero pages need no initialisation)
  ZeroedArray<uint64_t> slot_token_;
  uint64_t n_seen_ = 0;
  uint64_t n_key_writes_ = 0;

  // Per batch (sized for max_batch tokens).
  size_t n_batch_ = 0;
  std::vector<RopeAngles> abs_angles_;      // [max_batch] at start_pos + t
  std::vector<RopeAngles> sink_angles_;     // [max_batch] at start_pos + c(t)
  std::vector<RopeAngles> local_angles_;    // [max_batch] at start_pos + t, local rope (if any)
  std::vector<uint8_t> batch_k_, batch_v_;  // [n_planes][max_batch] planes of kv_type
  std::vector<float> q_sink_;               // [max_batch, n_heads * head_dim]
  ZeroedArray<float> scores_;               // [n_heads, n_slots]: a query sees at most n_slots rows
  // Block types: [K, V][n_slots + max_batch][kv_dim] f32 (see kv_rows()).
  ZeroedArray<float> dequantized_;
};

}  // namespace sllm
