#include "cache/kv_cache.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <optional>
#include <span>
#include <string>

#include "cache/kv_quant.h"
#include "kernels/ops.h"
#include "util/limits.h"

namespace sllm {

namespace {

Status check_options(const KvCacheShape& shape, const KvCacheOptions& options) {
  if (options.window == 0) {
    return Error(ErrorCode::kInvalidInput, "the window must hold at least 1 token");
  }
  if (options.max_batch == 0) {
    return Error(ErrorCode::kInvalidInput, "max_batch must be at least 1");
  }
  if (shape.n_layers == 0 || shape.n_kv_heads == 0 || shape.n_heads % shape.n_kv_heads != 0 ||
      shape.head_dim == 0 || shape.rope.rope_dim > shape.head_dim) {
    return Error(ErrorCode::kInvalidInput, "bad attention shape");
  }
  SLLM_RETURN_IF_ERROR(check_kv_type(options.kv_type, shape.head_dim, shape.n_kv_heads));
  if (!shape.local_layers.empty() &&
      (shape.local_layers.size() != shape.n_layers || shape.local_window == 0 ||
       shape.local_rope.rope_dim > shape.head_dim)) {
    return Error(ErrorCode::kInvalidInput, "bad sliding-window layers");
  }
  if (!shape.alibi_slopes.empty() && shape.alibi_slopes.size() != shape.n_heads) {
    return Error(ErrorCode::kInvalidInput, "ALiBi needs one slope per query head");
  }
  return {};
}

bool has_local(const KvCacheShape& shape) {
  for (const bool local : shape.local_layers) {
    if (local) return true;
  }
  return false;
}

// a0 + a1 + ..., or nullopt on overflow.
std::optional<uint64_t> checked_sum(std::initializer_list<std::optional<uint64_t>> terms) {
  uint64_t sum = 0;
  for (const auto& term : terms) {
    if (!term) return std::nullopt;
    const auto next = checked_add(sum, *term);
    if (!next) return std::nullopt;
    sum = *next;
  }
  return sum;
}

std::optional<uint64_t> product(std::initializer_list<uint64_t> factors) {
  uint64_t p = 1;
  for (uint64_t f : factors) {
    const auto next = checked_mul(p, f);
    if (!next) return std::nullopt;
    p = *next;
  }
  return p;
}

}  // namespace

size_t KvCache::layer_slots(const KvCacheShape& shape, const KvCacheOptions& options, size_t l) {
  const size_t n_slots = options.n_sinks + options.window;
  const bool local = !shape.local_layers.empty() && shape.local_layers[l];
  return local ? std::min(shape.local_window, n_slots) : n_slots;
}

Result<uint64_t> KvCache::bytes_needed(const KvCacheShape& shape, const KvCacheOptions& options) {
  SLLM_RETURN_IF_ERROR(check_options(shape, options));
  const std::string tokens = std::to_string(options.n_sinks) + " sink tokens + a window of " +
                             std::to_string(options.window);
  const auto n_slots = checked_add(options.n_sinks, options.window);
  if (!n_slots || *n_slots > std::numeric_limits<size_t>::max()) {
    return Error(ErrorCode::kLimit,
                 "a KV cache of " + tokens + " tokens holds more than 2^64 tokens");
  }
  // Checked: a block type's row is whole blocks, and n_kv_heads * head_dim fits (the product
  // below is checked before the row is used).
  const auto kv_dim = product({shape.n_kv_heads, shape.head_dim});
  if (!kv_dim) {
    return Error(ErrorCode::kLimit, "the KV heads * head_dim of the attention shape overflows");
  }
  const uint64_t row_bytes = kv_bytes(options.kv_type, *kv_dim);
  const std::string what = "the KV cache (" + tokens + " tokens)";
  // The slots of all layers (global: n_slots each, local: their native window).
  uint64_t n_rows = 0;
  for (size_t l = 0; l < shape.n_layers; ++l) {
    const auto next = checked_add(n_rows, layer_slots(shape, options, l));
    if (!next) {
      return Error(ErrorCode::kLimit,
                   what + " would need more than 2^64 bytes (its size overflows)");
    }
    n_rows = *next;
  }
  // K and V, then the slot map and the scores, then what each batch token needs: its K/V, its
  // sink query and two sets of RoPE angles (three with local layers); a block type adds the f32
  // rows attention reads (every slot of a layer and the batch's rows, K and V; checked_add: a
  // window near 2^64 must not wrap).
  SLLM_ASSIGN_OR_RETURN(const uint64_t kv_total, checked_bytes(what, {2, n_rows, row_bytes}));
  const uint64_t n_angle_sets = has_local(shape) ? 3 : 2;
  const auto per_batch_token = checked_sum(
      {product({2, row_bytes}), product({shape.n_heads, shape.head_dim, sizeof(float)}),
       product({n_angle_sets, shape.rope.rope_dim / 2 + 1, sizeof(double) + 2 * sizeof(float)})});
  const auto dequantized_rows = checked_add(*n_slots, options.max_batch);
  const auto dequantized = !is_block_kv(options.kv_type) ? std::optional<uint64_t>(0)
                           : dequantized_rows
                               ? product({2, *dequantized_rows, *kv_dim, sizeof(float)})
                               : std::nullopt;
  const auto total = checked_sum(
      {kv_total, dequantized, product({n_rows, sizeof(uint64_t)}),
       product({shape.n_heads, *n_slots, sizeof(float)}),
       per_batch_token ? product({options.max_batch, *per_batch_token}) : std::nullopt});
  if (!total) {
    return Error(ErrorCode::kLimit, what + " would need more than 2^64 bytes (its size overflows)");
  }
  SLLM_RETURN_IF_ERROR(check_allocation(what, *total));
  return *total;
}

Result<KvCache> KvCache::create(const KvCacheShape& shape, const KvCacheOptions& options) {
  SLLM_ASSIGN_OR_RETURN(const uint64_t n_bytes, bytes_needed(shape, options));
  KvCache cache(shape, options);
  const size_t n_rows = cache.n_rows_;
  if (!cache.keys_.allocated(n_rows * cache.slot_bytes_) ||
      !cache.values_.allocated(n_rows * cache.slot_bytes_) ||
      !cache.slot_token_.allocated(n_rows) ||
      !cache.scores_.allocated(shape.n_heads * cache.n_slots_) ||
      !cache.dequantized_.allocated(cache.dequantized_size())) {
    return Error(ErrorCode::kLimit, "the KV cache could not allocate its " +
                                        std::to_string(n_bytes) + " bytes (out of memory)");
  }
  return cache;
}

std::vector<KvCache::LayerSlots> KvCache::layout_layers(const KvCacheShape& shape,
                                                        const KvCacheOptions& options) {
  std::vector<LayerSlots> layers(shape.n_layers);
  size_t row = 0;
  for (size_t l = 0; l < shape.n_layers; ++l) {
    LayerSlots& ls = layers[l];
    ls.local = !shape.local_layers.empty() && shape.local_layers[l];
    ls.row0 = row;
    ls.n_slots = KvCache::layer_slots(shape, options, l);
    ls.n_sinks = ls.local ? 0 : options.n_sinks;
    ls.window = ls.n_slots - ls.n_sinks;
    row += ls.n_slots;
  }
  return layers;
}

// Only after bytes_needed() has checked every size below.
KvCache::KvCache(const KvCacheShape& shape, const KvCacheOptions& options)
    : shape_(shape),
      options_(options),
      n_slots_(options.n_sinks + options.window),
      kv_dim_(shape.n_kv_heads * shape.head_dim),
      slot_bytes_(static_cast<size_t>(kv_bytes(options.kv_type, kv_dim_))),
      plane_heads_(is_block_kv(options.kv_type) ? shape.n_kv_heads : 1),
      n_planes_(shape.n_kv_heads / plane_heads_),
      plane_bytes_(slot_bytes_ / n_planes_),
      layers_(layout_layers(shape, options)),
      n_rows_(layers_.empty() ? 0 : layers_.back().row0 + layers_.back().n_slots),
      keys_(n_rows_ * slot_bytes_),
      values_(n_rows_ * slot_bytes_),
      slot_token_(n_rows_),
      abs_angles_(options.max_batch, RopeAngles(shape.rope)),
      sink_angles_(options.max_batch, RopeAngles(shape.rope)),
      local_angles_(has_local(shape) ? options.max_batch : 0, RopeAngles(shape.local_rope)),
      batch_k_(options.max_batch * slot_bytes_),
      batch_v_(options.max_batch * slot_bytes_),
      q_sink_(options.max_batch * shape.n_heads * shape.head_dim),
      scores_(shape.n_heads * n_slots_),
      dequantized_(dequantized_size()) {}

size_t KvCache::dequantized_size() const {
  return is_block_kv(options_.kv_type) ? 2 * (n_slots_ + options_.max_batch) * kv_dim_ : 0;
}

size_t KvCache::n_cached() const {
  return static_cast<size_t>(std::min<uint64_t>(n_seen_, n_slots_));
}

void KvCache::gather_row(const ZeroedArray<uint8_t>& kv, const LayerSlots& ls, size_t slot,
                         uint8_t* row) const {
  for (size_t p = 0; p < n_planes_; ++p) {
    std::memcpy(row + p * plane_bytes_, &kv[slot_offset(ls, p, slot)], plane_bytes_);
  }
}

std::vector<uint8_t> KvCache::key_row(size_t layer, size_t slot) const {
  std::vector<uint8_t> row(slot_bytes_);
  gather_row(keys_, layers_[layer], slot, row.data());
  return row;
}

std::vector<uint8_t> KvCache::value_row(size_t layer, size_t slot) const {
  std::vector<uint8_t> row(slot_bytes_);
  gather_row(values_, layers_[layer], slot, row.data());
  return row;
}

void KvCache::clear() {
  n_seen_ = 0;
  if (slot_token_.size() > 0) {
    std::memset(slot_token_.data(), 0, slot_token_.size() * sizeof(uint64_t));
  }
}

void KvCache::begin_batch(size_t n_tokens) {
  assert(n_tokens >= 1 && n_tokens <= options_.max_batch);
  n_batch_ = n_tokens;
  // Angles are computed once per token and shared by all layers.
  for (size_t i = 0; i < n_tokens; ++i) {
    const uint64_t t = n_seen_ + i;
    abs_angles_[i].set_position(options_.start_pos + t);
    sink_angles_[i].set_position(options_.start_pos + cache_pos(t));
    if (!local_angles_.empty()) local_angles_[i].set_position(options_.start_pos + t);
  }
}

void KvCache::end_batch() {
  n_seen_ += n_batch_;
  n_batch_ = 0;
}

void KvCache::attend(size_t layer, float* q, float* k, const float* v, float* out,
                     ThreadPool& pool) {
  const size_t q_dim = shape_.n_heads * shape_.head_dim;
  const uint64_t t0 = n_seen_;
  const LayerSlots& ls = layers_[layer];
  // A local layer's window is contiguous and has no sinks: one rotation, its own rope.
  const std::vector<RopeAngles>& angles = ls.local ? local_angles_ : abs_angles_;
  const auto split_at = [&](size_t i) {
    return !ls.local && sink_angles_[i].position() != abs_angles_[i].position();
  };

  // Rotate this batch's keys once, at their absolute positions, and store them in the cache's
  // element type, so that batch keys and cached keys are read identically.
  const size_t plane_dim = plane_heads_ * shape_.head_dim;
  for (size_t i = 0; i < n_batch_; ++i) {
    angles[i].rotate(k + i * kv_dim_, shape_.n_kv_heads);
    for (size_t p = 0; p < n_planes_; ++p) {
      const size_t at = i * kv_dim_ + p * plane_dim;
      store_kv_row(options_.kv_type, k + at, &batch_k_[batch_offset(p, i)], plane_dim);
      store_kv_row(options_.kv_type, v + at, &batch_v_[batch_offset(p, i)], plane_dim);
    }
  }
  // Queries: at the absolute position for the window, at the in-cache position for the sinks.
  for (size_t i = 0; i < n_batch_; ++i) {
    float* qi = q + i * q_dim;
    if (split_at(i)) {
      std::memcpy(&q_sink_[i * q_dim], qi, q_dim * sizeof(float));
      sink_angles_[i].rotate(&q_sink_[i * q_dim], shape_.n_heads);
    }
    angles[i].rotate(qi, shape_.n_heads);
  }

  // One task per KV head: its query heads are consecutive and attend together (they share the
  // keys and values they read).
  const KvRows rows = kv_rows(layer, pool);
  const size_t n_group = shape_.n_heads / shape_.n_kv_heads;
  const auto run_group = [&](size_t kv_head) {
    const size_t head = kv_head * n_group;
    float* scores = &scores_[head * n_slots_];
    for (size_t i = 0; i < n_batch_; ++i) {
      const float* qi = q + i * q_dim;
      const float* qs = split_at(i) ? &q_sink_[i * q_dim] : qi;
      attend_group(layer, rows, head, i, qi + head * shape_.head_dim, qs + head * shape_.head_dim,
                   out + i * q_dim + head * shape_.head_dim, scores);
    }
  };
  // A short cache is not worth waking the pool for: its heads run here, in the same order.
  const size_t n_visible = static_cast<size_t>(std::min<uint64_t>(t0, ls.n_slots)) + n_batch_;
  if (pool.worth_parallel(2 * n_batch_ * q_dim * n_visible)) {
    pool.run(shape_.n_kv_heads, run_group);
  } else {
    for (size_t kv_head = 0; kv_head < shape_.n_kv_heads; ++kv_head) run_group(kv_head);
  }

  // Keep the batch's K/V: each token goes to its slot once. A window token that a later token of
  // the same batch would displace is never stored (it was only needed by this batch's queries).
  const uint64_t t_end = t0 + n_batch_;
  for (size_t i = 0; i < n_batch_; ++i) {
    const uint64_t t = t0 + i;
    if (t >= ls.n_sinks && t + ls.window < t_end) continue;
    const size_t slot = slot_of(ls, t);
    uint64_t& held = slot_token_[ls.row0 + slot];
    assert(held == 0 || held - 1 < t);  // a slot only ever moves on to a newer token
    held = t + 1;
    for (size_t p = 0; p < n_planes_; ++p) {
      const size_t to = slot_offset(ls, p, slot), from = batch_offset(p, i);
      std::memcpy(&keys_[to], &batch_k_[from], plane_bytes_);
      std::memcpy(&values_[to], &batch_v_[from], plane_bytes_);
    }
    ++n_key_writes_;
  }
}

KvCache::KvRows KvCache::kv_rows(size_t layer, ThreadPool& pool) {
  const LayerSlots& ls = layers_[layer];
  if (!is_block_kv(options_.kv_type)) {
    // A plane per KV head.
    return {&keys_[slot_offset(ls, 0, 0)],
            &values_[slot_offset(ls, 0, 0)],
            batch_k_.data(),
            batch_v_.data(),
            plane_bytes_,
            ls.n_slots * plane_bytes_,
            options_.max_batch * plane_bytes_,
            options_.kv_type};
  }
  // The layer's K and V rows in f32: its held slots, then the batch's rows, decoded once per
  // layer and batch. Slots fill in order (sinks, then the ring), so the ones held are the first
  // min(n_seen, slots) of the layer, contiguous in keys_ (one plane) as in the decoded rows.
  // When whole blocks make up a head (head_dim a multiple of 32) each head's rows are decoded
  // into a plane of their own, [n_kv_heads][n_slots + max_batch][head_dim], for the reasons of
  // the f32/f16 planes; else into rows of all heads, [n_slots + max_batch][kv_dim].
  const size_t n_rows = n_slots_ + options_.max_batch;
  const size_t head_dim = shape_.head_dim;
  const bool planes = head_dim % kKvBlockValues == 0;
  const size_t head_bytes = static_cast<size_t>(kv_bytes(options_.kv_type, head_dim));
  float* k_f32 = dequantized_.data();
  float* v_f32 = k_f32 + n_rows * kv_dim_;
  const size_t n_held = static_cast<size_t>(std::min<uint64_t>(n_seen_, ls.n_slots));
  // Tasks of whole rows, each about kChunk values: enough work per task to be worth a wake-up.
  constexpr size_t kChunk = 16384;
  const size_t rows_per_task = std::max<size_t>(1, kChunk / kv_dim_);
  const size_t n_held_tasks = (n_held + rows_per_task - 1) / rows_per_task;
  const auto decode = [&](size_t task) {
    const bool batch = task >= n_held_tasks;
    const size_t first = (batch ? task - n_held_tasks : task) * rows_per_task;
    const size_t n = std::min(rows_per_task, (batch ? n_batch_ : n_held) - first);
    const size_t from = batch ? batch_offset(0, first) : slot_offset(ls, 0, first);
    const size_t row = (batch ? n_slots_ : 0) + first;  // of the decoded rows
    const uint8_t* k = (batch ? batch_k_.data() : keys_.data()) + from;
    const uint8_t* v = (batch ? batch_v_.data() : values_.data()) + from;
    if (!planes) {
      ops::dequantize_row(options_.kv_type, k, k_f32 + row * kv_dim_, n * kv_dim_);
      ops::dequantize_row(options_.kv_type, v, v_f32 + row * kv_dim_, n * kv_dim_);
      return;
    }
    for (size_t r = 0; r < n; ++r) {
      for (size_t h = 0; h < shape_.n_kv_heads; ++h) {
        const size_t src = r * slot_bytes_ + h * head_bytes;
        const size_t dst = (h * n_rows + row + r) * head_dim;
        ops::dequantize_row(options_.kv_type, k + src, k_f32 + dst, head_dim);
        ops::dequantize_row(options_.kv_type, v + src, v_f32 + dst, head_dim);
      }
    }
  };
  const size_t n_tasks = n_held_tasks + (n_batch_ + rows_per_task - 1) / rows_per_task;
  // About one operation a value: a short cache (stories260K's 256 slots) decodes inline.
  if (n_tasks > 1 && pool.worth_parallel(2 * (n_held + n_batch_) * kv_dim_)) {
    pool.run(n_tasks, decode);
  } else {
    for (size_t task = 0; task < n_tasks; ++task) decode(task);
  }
  const auto bytes = [](const float* p) { return reinterpret_cast<const uint8_t*>(p); };
  const size_t row_floats = planes ? head_dim : kv_dim_;
  const size_t head_stride = (planes ? n_rows * head_dim : head_dim) * sizeof(float);
  return {bytes(k_f32),
          bytes(v_f32),
          bytes(k_f32 + n_slots_ * row_floats),
          bytes(v_f32 + n_slots_ * row_floats),
          row_floats * sizeof(float),
          head_stride,
          head_stride,
          TensorType::kF32};
}

// One query (batch row i) of the query heads that share a KV head, `head` the first of them
// (q, q_sink and out start at its part; scores has room for n_heads / n_kv_heads rows of n_slots):
// scores over the sinks and the window, softmax, weighted values. Keys are visited in stream order
// (sinks, then the window oldest first), so that a cache that never evicted computes exactly what
// dense attention computes, bit for bit.
void KvCache::attend_group(size_t layer, const KvRows& rows, size_t head, size_t i, const float* q,
                           const float* q_sink, float* out, float* scores) const {
  const size_t head_dim = shape_.head_dim;
  const size_t kv_head = head / (shape_.n_heads / shape_.n_kv_heads);
  const uint64_t t0 = n_seen_;
  const uint64_t t = t0 + i;
  const LayerSlots& ls = layers_[layer];
  const uint64_t n_sinks = ls.n_sinks;
  const uint64_t n_sink_seen = std::min<uint64_t>(n_sinks, t + 1);
  // Window: stream indices [lo, t], at most `window` of them, never a sink.
  const uint64_t lo = std::max<uint64_t>(n_sinks, t + 1 > ls.window ? t + 1 - ls.window : 0);

  // The visible tokens in order, as runs of consecutive rows: sinks already cached, sinks in this
  // batch, the cached window from slot_of(lo) up to the ring's end and on from its start, and the
  // window in this batch. Sinks are scored against q_sink. ops::attention's result does not
  // depend on where the runs split, only on the rows and their order.
  ops::KvRun runs[5];
  size_t n_runs = 0;
  // `distance`: the in-cache distance from the query to the run's first row (ALiBi's): c(t) - j
  // for sink j, t - n for window token n.
  const auto add_run = [&](const float* query, bool batch, uint64_t row, uint64_t n_rows,
                           uint64_t distance) {
    if (n_rows == 0) return;
    assert(n_runs < std::size(runs));
    const uint8_t* k = batch ? rows.batch_k : rows.layer_k;
    const uint8_t* v = batch ? rows.batch_v : rows.layer_v;
    const size_t offset = static_cast<size_t>(row) * rows.row_bytes +
                          kv_head * (batch ? rows.batch_head_stride : rows.layer_head_stride);
    runs[n_runs++] = {query, k + offset, v + offset, static_cast<size_t>(n_rows), distance};
  };
  const uint64_t c_t = cache_pos(t);
  const uint64_t n_sinks_cached = std::min(n_sink_seen, t0);
  add_run(q_sink, false, 0, n_sinks_cached, c_t);
  add_run(q_sink, true, 0, n_sink_seen - n_sinks_cached, c_t - n_sinks_cached);
  // Cached part of the window walks the ring from slot_of(lo), wrapping past the last slot.
  const uint64_t n_window_cached = lo < t0 ? std::min(t0, t + 1) - lo : 0;
  const uint64_t first_slot = n_window_cached > 0 ? slot_of(ls, lo) : 0;
  const uint64_t n_before_wrap = std::min<uint64_t>(n_window_cached, ls.n_slots - first_slot);
  add_run(q, false, first_slot, n_before_wrap, t - lo);
  add_run(q, false, n_sinks, n_window_cached - n_before_wrap, t - lo - n_before_wrap);
  const uint64_t first_batch = std::max(lo, t0);  // > t while the sinks are still filling
  add_run(q, true, first_batch - t0, first_batch <= t ? t + 1 - first_batch : 0, t - first_batch);

  const ops::KvLayout layout{rows.type, head_dim, rows.row_bytes, shape_.attn_softcap};
  const float scale =
      shape_.attn_scale > 0.0f ? shape_.attn_scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
  const float* slopes = shape_.alibi_slopes.empty() ? nullptr : &shape_.alibi_slopes[head];
  ops::attention(layout, std::span(runs, n_runs), shape_.n_heads / shape_.n_kv_heads, scale, scores,
                 out, slopes);
}

}  // namespace sllm
