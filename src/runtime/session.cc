#include "runtime/session.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <string>

#include "util/limits.h"

namespace sllm {

const char* policy_name(CachePolicy policy) {
  switch (policy) {
    case CachePolicy::kDense:
      return "dense";
    case CachePolicy::kWindow:
      return "window";
    case CachePolicy::kStreaming:
      return "streaming";
    case CachePolicy::kRecompute:
      return "recompute";
  }
  return "?";
}

Result<CachePolicy> parse_policy(std::string_view name) {
  for (CachePolicy p : {CachePolicy::kDense, CachePolicy::kWindow, CachePolicy::kStreaming,
                        CachePolicy::kRecompute}) {
    if (name == policy_name(p)) return p;
  }
  return Error(ErrorCode::kInvalidInput, "unknown cache policy '" + std::string(name) +
                                             "' (expected dense, window, streaming or recompute)");
}

KvCacheShape cache_shape(const ModelConfig& c, size_t n_slots) {
  KvCacheShape shape{c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.rope_for(n_slots)};
  shape.attn_scale = c.attn_scale;
  shape.attn_softcap = c.attn_softcap;
  // Local layers keep their native window under every policy: it is part of the model.
  shape.local_layers = c.local_layers;
  shape.local_window = c.sliding_window;
  shape.local_rope = c.local_rope;
  shape.alibi_slopes = c.alibi_slopes;
  return shape;
}

Result<std::unique_ptr<Session>> Session::create(const TransformerModel& model,
                                                 const SessionOptions& options, ThreadPool& pool) {
  if (options.window == 0) {
    return Error(ErrorCode::kInvalidInput, "the window must hold at least 1 token");
  }
  if (options.max_batch == 0) {
    return Error(ErrorCode::kInvalidInput, "the batch size must be at least 1");
  }
  const ModelConfig& c = model.config();
  KvCacheOptions cache_options;
  // Every policy is a sinks + window cache; they differ in S and W and, for recompute, in how
  // often the cache is rebuilt.
  cache_options.n_sinks = options.policy == CachePolicy::kStreaming ? options.n_sinks : 0;
  cache_options.window = options.window;
  cache_options.kv_type = tensor_type(options.kv_type);
  cache_options.start_pos = options.policy == CachePolicy::kRecompute ? 0 : options.start_pos;
  cache_options.max_batch = options.max_batch;
  const KvCacheShape shape = cache_shape(c, cache_options.n_sinks + cache_options.window);
  // Everything sized from the options, checked together before anything is allocated: the cache,
  // the forward pass's activations and the logits of a batch.
  SLLM_ASSIGN_OR_RETURN(const uint64_t cache_bytes, KvCache::bytes_needed(shape, cache_options));
  SLLM_ASSIGN_OR_RETURN(const uint64_t scratch_bytes,
                        ForwardScratch::bytes_needed(c, options.max_batch));
  const std::string batch_what =
      "the activations and logits of a batch of " + std::to_string(options.max_batch) + " tokens";
  SLLM_ASSIGN_OR_RETURN(const uint64_t logits_bytes,
                        checked_bytes(batch_what, {options.max_batch, c.n_vocab, sizeof(float)}));
  const uint64_t batch_bytes = scratch_bytes + logits_bytes;  // each below the memory size
  const auto total = checked_add(cache_bytes, batch_bytes);
  if (!total) {
    return Error(ErrorCode::kLimit, "the session would need more than 2^64 bytes");
  }
  SLLM_RETURN_IF_ERROR(check_allocation("the session (KV cache " + std::to_string(cache_bytes) +
                                            " bytes, " + batch_what + " " +
                                            std::to_string(batch_bytes) + " bytes)",
                                        *total));
  SLLM_ASSIGN_OR_RETURN(KvCache cache, KvCache::create(shape, cache_options));
  return std::unique_ptr<Session>(new Session(model, options, pool, std::move(cache)));
}

Session::Session(const TransformerModel& model, const SessionOptions& options, ThreadPool& pool,
                 KvCache cache)
    : model_(&model),
      options_(options),
      pool_(&pool),
      cache_(std::move(cache)),
      scratch_(model.config(), options.max_batch),
      last_logits_(model.config().n_vocab),
      batch_logits_(options.max_batch * model.config().n_vocab) {}

namespace {

// Index of the first row of `logits` ([n_rows, n_vocab]) holding a NaN or an infinity, or n_rows.
size_t first_non_finite_row(const float* logits, size_t n_rows, size_t n_vocab) {
  for (size_t row = 0; row < n_rows; ++row) {
    const float* x = logits + row * n_vocab;
    // x - x is 0 for every finite x and NaN otherwise; one branch per row keeps this O(n_vocab).
    float acc = 0.0f;
    for (size_t i = 0; i < n_vocab; ++i) acc += x[i] - x[i];
    if (acc != 0.0f) return row;
  }
  return n_rows;
}

Error non_finite_logits(uint64_t position) {
  return Error(ErrorCode::kInvalidInput,
               "the model produced non-finite logits at stream position " +
                   std::to_string(position) + " (NaN or Inf in its weights?)");
}

}  // namespace

size_t Session::memory_bytes() const {
  size_t n = cache_.n_bytes() + scratch_.n_bytes() +
             (last_logits_.capacity() + batch_logits_.capacity()) * sizeof(float);
  if (options_.policy == CachePolicy::kRecompute) {
    n += (options_.window + options_.max_batch) * sizeof(TokenId);  // recent_ at its largest
  }
  return n;
}

void Session::reset() {
  cache_.clear();
  std::fill(last_logits_.begin(), last_logits_.end(), 0.0f);
  recent_.clear();
  n_seen_ = 0;
}

void Session::forward_batch(std::span<const TokenId> tokens, float* logits, bool all_logits) {
  cache_.begin_batch(tokens.size());
  const AttendFn attend = [this](size_t layer, size_t, float* q, float* k, const float* v,
                                 float* out) { cache_.attend(layer, q, k, v, out, *pool_); };
  model_->forward(tokens, attend, scratch_, *pool_, logits, all_logits);
  cache_.end_batch();
}

Status Session::check_feed(std::span<const TokenId> tokens) const {
  const size_t n_vocab = model_->config().n_vocab;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || static_cast<size_t>(tokens[i]) >= n_vocab) {
      return Error(ErrorCode::kInvalidInput,
                   "token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                       " is outside the vocabulary of " + std::to_string(n_vocab));
    }
  }
  if (options_.policy == CachePolicy::kDense &&
      (tokens.size() > options_.window || n_seen_ > options_.window - tokens.size())) {
    return Error(ErrorCode::kLimit,
                 "dense attention would exceed its context limit of " +
                     std::to_string(options_.window) + " tokens (" + std::to_string(n_seen_) +
                     " fed, " + std::to_string(tokens.size()) +
                     " more asked); the streaming policy runs an endless stream");
  }
  return {};
}

Status Session::finish_batch(size_t n, const float* last) {
  const size_t n_vocab = model_->config().n_vocab;
  std::memcpy(last_logits_.data(), last, n_vocab * sizeof(float));
  n_seen_ += n;
  if (first_non_finite_row(last, 1, n_vocab) < 1) return non_finite_logits(n_seen_ - 1);
  return {};
}

void Session::feed_batch(std::span<SessionFeed> feeds, ForwardScratch& scratch,
                         std::vector<float>& logits) {
  // The members of the pass: rows [offset, offset + n) of the batch are member m's.
  struct Part {
    Session* session;
    size_t offset, n;
  };
  std::vector<Part> parts;
  std::vector<TokenId> tokens;
  std::vector<size_t> out_rows;
  for (SessionFeed& f : feeds) {
    f.status = {};
    if (f.tokens.empty()) continue;
    Session& s = *f.session;
    if (Status st = s.check_feed(f.tokens); !st.ok()) {
      f.status = st;
      continue;
    }
    if (s.options_.policy == CachePolicy::kRecompute || f.tokens.size() > s.options_.max_batch) {
      continue;  // fed alone below
    }
    parts.push_back({&s, tokens.size(), f.tokens.size()});
    tokens.insert(tokens.end(), f.tokens.begin(), f.tokens.end());
    out_rows.push_back(tokens.size() - 1);
  }
  if (!parts.empty()) {
    assert(tokens.size() <= scratch.max_batch);
    const Session& first = *parts[0].session;
    const size_t n_vocab = first.model_->config().n_vocab;
    logits.resize(parts.size() * n_vocab);
    const size_t q_dim = first.model_->config().n_heads * first.model_->config().head_dim;
    const size_t kv_dim = first.model_->config().n_kv_heads * first.model_->config().head_dim;
    for (const Part& p : parts) p.session->cache_.begin_batch(p.n);
    ThreadPool& pool = *first.pool_;
    const AttendFn attend = [&](size_t layer, size_t, float* q, float* k, const float* v,
                                float* out) {
      for (const Part& p : parts) {
        p.session->cache_.attend(layer, q + p.offset * q_dim, k + p.offset * kv_dim,
                                 v + p.offset * kv_dim, out + p.offset * q_dim, pool);
      }
    };
    first.model_->forward_rows(tokens, attend, scratch, pool, logits.data(), out_rows);
    for (const Part& p : parts) p.session->cache_.end_batch();
  }
  size_t part = 0;
  for (SessionFeed& f : feeds) {
    if (f.tokens.empty() || !f.status.ok()) continue;
    Session& s = *f.session;
    if (part < parts.size() && parts[part].session == &s) {
      const size_t n_vocab = s.model_->config().n_vocab;
      f.status = s.finish_batch(f.tokens.size(), logits.data() + part * n_vocab);
      ++part;
    } else {
      f.status = s.feed(f.tokens);
    }
  }
}

Status Session::feed(std::span<const TokenId> tokens, std::vector<float>* all_logits) {
  const size_t n_vocab = model_->config().n_vocab;
  SLLM_RETURN_IF_ERROR(check_feed(tokens));
  if (all_logits != nullptr) {
    const auto n_bytes = checked_bytes("the logits of " + std::to_string(tokens.size()) + " tokens",
                                       {tokens.size(), n_vocab, sizeof(float)});
    if (!n_bytes.ok()) return n_bytes.error();
    all_logits->resize(tokens.size() * n_vocab);
  }
  if (options_.policy == CachePolicy::kRecompute) return feed_recompute(tokens, all_logits);

  for (size_t done = 0; done < tokens.size();) {
    const size_t n = std::min(options_.max_batch, tokens.size() - done);
    const bool want_all = all_logits != nullptr;
    float* out = want_all ? all_logits->data() + done * n_vocab : batch_logits_.data();
    forward_batch(tokens.subspan(done, n), out, want_all);
    const float* last = want_all ? out + (n - 1) * n_vocab : out;
    std::memcpy(last_logits_.data(), last, n_vocab * sizeof(float));
    // A NaN or Inf spreads to every later token: stop at the first batch that shows one.
    const size_t n_rows = want_all ? n : 1;
    const size_t bad_row = first_non_finite_row(want_all ? out : last, n_rows, n_vocab);
    const uint64_t first_position = n_seen_ + (want_all ? 0 : n - 1);
    done += n;
    n_seen_ += n;
    if (bad_row < n_rows) return non_finite_logits(first_position + bad_row);
  }
  return {};
}

// Sliding window with re-computation: the cache is rebuilt from the last W tokens at positions
// 0..W-1 for every new token. A rebuild depends only on the last W tokens, so when only the last
// token's logits are asked for, the tokens before it need none: one rebuild, not one per token.
Status Session::feed_recompute(std::span<const TokenId> tokens, std::vector<float>* all_logits) {
  const size_t n_vocab = model_->config().n_vocab;
  if (all_logits == nullptr && tokens.size() > 1) {
    const size_t skip = tokens.size() - 1;
    const size_t keep = std::min(skip, options_.window);
    recent_.insert(recent_.end(), tokens.end() - 1 - static_cast<std::ptrdiff_t>(keep),
                   tokens.end() - 1);
    if (recent_.size() > options_.window) {
      recent_.erase(recent_.begin(), recent_.end() - static_cast<std::ptrdiff_t>(options_.window));
    }
    n_seen_ += skip;
    tokens = tokens.last(1);
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    recent_.push_back(tokens[i]);
    if (recent_.size() > options_.window) recent_.erase(recent_.begin());
    cache_.clear();
    for (size_t done = 0; done < recent_.size();) {
      const size_t n = std::min(options_.max_batch, recent_.size() - done);
      forward_batch(std::span<const TokenId>(recent_).subspan(done, n), batch_logits_.data(),
                    false);
      done += n;
    }
    std::memcpy(last_logits_.data(), batch_logits_.data(), n_vocab * sizeof(float));
    if (all_logits != nullptr) {
      std::memcpy(all_logits->data() + i * n_vocab, batch_logits_.data(), n_vocab * sizeof(float));
    }
    ++n_seen_;
    if (first_non_finite_row(last_logits_.data(), 1, n_vocab) < 1) {
      return non_finite_logits(n_seen_ - 1);
    }
  }
  return {};
}

}  // namespace sllm
