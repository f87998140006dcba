// A Session runs one endless stream of tokens through a model under a cache policy.
//
// Policies (StreamingLLM paper, Figure 1):
//   dense      every token's K/V; fails with kLimit once the context limit is reached
//   window     the last W tokens only
//   streaming  S attention sinks (the first S tokens) + the last W tokens (the default)
//   recompute  for every token, a fresh forward over the last W tokens at positions 0..W-1:
//              the paper's quality baseline, O(W^2) per token
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cache/kv_cache.h"
#include "model/transformer.h"
#include "streamingllm/error.h"
#include "streamingllm/options.h"
#include "util/thread_pool.h"

namespace sllm {

// The public CacheOptions (policy, sinks, window, KV type, batch, start position).
using SessionOptions = CacheOptions;

// The cache's element type for a KvType (KvType's values are ggml type ids).
inline TensorType tensor_type(KvType type) { return static_cast<TensorType>(type); }

// The cache's shape for a model: its attention, and its sliding-window layers (which keep their
// native window, at most the cache's size, under every policy). n_slots, the cache's capacity,
// chooses the rope where the model has two (ModelConfig::rope_for).
KvCacheShape cache_shape(const ModelConfig& config, size_t n_slots);

// Everything feed() depends on besides the model and the options, as views into a session; for
// session files (runtime/session_file.h).
struct SessionState {
  uint64_t n_seen = 0;
  std::span<const float> last_logits;  // [n_vocab]
  std::span<const TokenId> recent;     // recompute only: the last W tokens
  KvCacheContents cache;
};

class Session;

// One member of a batched feed (Session::feed_batch): its tokens for this pass, and afterwards
// its status.
struct SessionFeed {
  Session* session = nullptr;
  std::span<const TokenId> tokens;  // at most the session's max_batch; may be empty
  Status status;                    // out
};

class Session {
 public:
  // The model and the pool must outlive the session.
  static Result<std::unique_ptr<Session>> create(const TransformerModel& model,
                                                 const SessionOptions& options, ThreadPool& pool);

  // Feeds tokens in order. After it returns, last_logits() are those of the last token.
  // If all_logits is given, it receives [tokens.size(), n_vocab] logits: row i predicts the token
  // after tokens[i]. Tokens are validated first: an id outside the vocabulary feeds nothing.
  Status feed(std::span<const TokenId> tokens, std::vector<float>* all_logits = nullptr);

  // Feeds several distinct sessions of one model and pool in one forward pass: the weights are
  // read once for all of them, each session's rows attend over its own cache, and each ends as
  // if fed its tokens alone (its last_logits and cache bit for bit). scratch must hold the rows
  // of all members (ForwardScratch::max_batch), logits [members, n_vocab]. A member whose tokens
  // are refused (feed()'s errors) is not fed and gets the error in its status; recompute members
  // are fed alone, after the pass.
  static void feed_batch(std::span<SessionFeed> feeds, ForwardScratch& scratch,
                         std::vector<float>& logits);

  // Forgets every token: as freshly created, keeping the memory.
  void reset();

  std::span<const float> last_logits() const { return last_logits_; }
  uint64_t n_seen() const { return n_seen_; }
  size_t cache_bytes() const { return cache_.n_bytes(); }
  size_t cache_tokens() const { return cache_.n_slots(); }
  // Every byte the session holds once it has fed a full batch: the cache, the activations and
  // logits of a batch and, recomputing, the window's tokens. Fixed for its lifetime.
  size_t memory_bytes() const;
  const SessionOptions& options() const { return options_; }
  const KvCache& cache() const { return cache_; }
  const TransformerModel& model() const { return *model_; }
  // Where this session's forward passes add their phases' times (null: not timed).
  void set_profile(OpProfile* profile) { scratch_.profile = profile; }

  // Saving and restoring (session_state.cc). restore() takes a state saved from a session of the
  // same model and options; it checks the sizes and leaves the session unchanged on error.
  SessionState state() const;
  Status restore(const SessionState& state);

 private:
  Session(const TransformerModel& model, const SessionOptions& options, ThreadPool& pool,
          KvCache cache);
  // One batch (<= max_batch tokens) through the model and the cache.
  void forward_batch(std::span<const TokenId> tokens, float* logits, bool all_logits);
  // feed()'s checks of the tokens (ids, the dense limit).
  Status check_feed(std::span<const TokenId> tokens) const;
  // After the tokens' last row's logits were computed: the bookkeeping of a fed batch.
  Status finish_batch(size_t n, const float* last);
  Status feed_recompute(std::span<const TokenId> tokens, std::vector<float>* all_logits);

  const TransformerModel* model_;
  SessionOptions options_;
  ThreadPool* pool_;
  KvCache cache_;
  ForwardScratch scratch_;
  std::vector<float> last_logits_;   // [n_vocab]
  std::vector<float> batch_logits_;  // [max_batch, n_vocab]
  std::vector<TokenId> recent_;      // recompute: the last W tokens, oldest first
  uint64_t n_seen_ = 0;
};

}  // namespace sllm
