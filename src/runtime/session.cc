#include "runtime/session.h"

#include <algorithm>
#include <cstring>

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

Result<CachePolicy> parse_policy(const std::string& name) {
  for (CachePolicy p : {CachePolicy::kDense, CachePolicy::kWindow, CachePolicy::kStreaming,
                        CachePolicy::kRecompute}) {
    if (name == policy_name(p)) return p;
  }
  return Error(ErrorCode::kInvalidInput, "unknown cache policy '" + name +
                                             "' (expected dense, window, streaming or recompute)");
}

Result<std::unique_ptr<Session>> Session::create(const LlamaModel& model,
                                                 const SessionOptions& options, ThreadPool& pool) {
  if (options.window == 0) {
    return Error(ErrorCode::kInvalidInput, "--window must be at least 1");
  }
  if (options.max_batch == 0) {
    return Error(ErrorCode::kInvalidInput, "the batch size must be at least 1");
  }
  const ModelConfig& c = model.config();
  KvCacheShape shape{c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.rope};
  KvCacheOptions cache_options;
  // Every policy is a sinks + window cache; they differ in S and W and, for recompute, in how
  // often the cache is rebuilt.
  cache_options.n_sinks = options.policy == CachePolicy::kStreaming ? options.n_sinks : 0;
  cache_options.window = options.window;
  cache_options.kv_type = options.kv_type;
  cache_options.start_pos = options.policy == CachePolicy::kRecompute ? 0 : options.start_pos;
  cache_options.max_batch = options.max_batch;
  SLLM_ASSIGN_OR_RETURN(KvCache cache, KvCache::create(shape, cache_options));
  return std::unique_ptr<Session>(new Session(model, options, pool, std::move(cache)));
}

Session::Session(const LlamaModel& model, const SessionOptions& options, ThreadPool& pool,
                 KvCache cache)
    : model_(&model),
      options_(options),
      pool_(&pool),
      cache_(std::move(cache)),
      scratch_(model.config(), options.max_batch),
      last_logits_(model.config().n_vocab),
      batch_logits_(options.max_batch * model.config().n_vocab) {}

void Session::forward_batch(std::span<const TokenId> tokens, float* logits, bool all_logits) {
  cache_.begin_batch(tokens.size());
  const AttendFn attend = [this](size_t layer, size_t, float* q, float* k, const float* v,
                                 float* out) { cache_.attend(layer, q, k, v, out, *pool_); };
  model_->forward(tokens, attend, scratch_, *pool_, logits, all_logits);
  cache_.end_batch();
}

Status Session::feed(std::span<const TokenId> tokens, std::vector<float>* all_logits) {
  const size_t n_vocab = model_->config().n_vocab;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || static_cast<size_t>(tokens[i]) >= n_vocab) {
      return Error(ErrorCode::kInvalidInput,
                   "token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                       " is outside the vocabulary of " + std::to_string(n_vocab));
    }
  }
  if (options_.policy == CachePolicy::kDense && n_seen_ + tokens.size() > options_.window) {
    return Error(ErrorCode::kLimit,
                 "dense attention would exceed its context limit of " +
                     std::to_string(options_.window) + " tokens (" + std::to_string(n_seen_) +
                     " fed, " + std::to_string(tokens.size()) +
                     " more asked); use --policy streaming for an endless stream");
  }
  if (all_logits != nullptr) all_logits->resize(tokens.size() * n_vocab);
  if (options_.policy == CachePolicy::kRecompute) return feed_recompute(tokens, all_logits);

  for (size_t done = 0; done < tokens.size();) {
    const size_t n = std::min(options_.max_batch, tokens.size() - done);
    const bool want_all = all_logits != nullptr;
    float* out = want_all ? all_logits->data() + done * n_vocab : batch_logits_.data();
    forward_batch(tokens.subspan(done, n), out, want_all);
    const float* last = want_all ? out + (n - 1) * n_vocab : out;
    std::memcpy(last_logits_.data(), last, n_vocab * sizeof(float));
    done += n;
    n_seen_ += n;
  }
  return {};
}

// Sliding window with re-computation: the cache is rebuilt from the last W tokens at positions
// 0..W-1 for every new token.
Status Session::feed_recompute(std::span<const TokenId> tokens, std::vector<float>* all_logits) {
  const size_t n_vocab = model_->config().n_vocab;
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
  }
  return {};
}

}  // namespace sllm
