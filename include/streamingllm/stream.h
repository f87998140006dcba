// A Stream: one endless sequence of tokens through a model under a cache policy, with its own
// sampler. Feed it tokens or text, let it generate, save it and load it back exactly.
//
//   auto model = sllm::Model::load("model.gguf");
//   auto stream = sllm::Stream::create(*model);  // *model: the shared_ptr; 4 sinks + 1020 window
//   (*stream)->feed_text("Once upon a time", /*add_bos=*/true);
//   sllm::StopOptions stop;
//   stop.max_tokens = 64;
//   (*stream)->generate(stop, [](std::string_view piece) { std::cout << piece; });
//
// With the streaming policy a stream never ends, never grows and never slows down; tokens that
// left the window are forgotten (the model sees the sinks and the last `window` tokens).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "streamingllm/error.h"
#include "streamingllm/model.h"
#include "streamingllm/options.h"

namespace sllm {

enum class StopReason {
  kEndOfGeneration,  // the model sampled one of its end-of-generation tokens
  kStopString,       // the text reached one of StopOptions::stop_strings
  kMaxTokens,        // StopOptions::max_tokens were generated
  kInterrupted,      // StopOptions::interrupt was set
};
// "end of generation", "stop string", "max tokens", "interrupted".
const char* stop_reason_name(StopReason reason);

struct Generation {
  std::string text;             // everything on_text received, in order (if keep_output)
  std::vector<TokenId> tokens;  // generated and fed (if keep_output); an end-of-generation token
                                // is not among them
  uint64_t n_tokens = 0;        // generated and fed
  StopReason stop = StopReason::kEndOfGeneration;
  TokenId end_token = -1;        // kEndOfGeneration: the token sampled (and not fed)
  uint64_t n_prompt_tokens = 0;  // fed before generating (by the call that generated)
  double prompt_seconds = 0;
  double generate_seconds = 0;
};

// Receives generated text as it becomes final: whole UTF-8 characters, never a piece that may
// still turn out to be the start of a stop string.
using TextFn = std::function<void(std::string_view text)>;
// The wall time of one phase of a stream's forward passes (Stream::profile()).
struct PhaseTime {
  // "embedding", "norms", "qkv", "attention" (positions, K/V stores, attention over the cache),
  // "attn_output", "ffn", "residual", "lm_head"
  std::string phase;
  uint64_t calls = 0;
  double seconds = 0;
  uint64_t weight_bytes = 0;  // bytes of weight matrices those calls read
};

// Receives every generated token id, in order, after it was fed.
using TokenFn = std::function<void(TokenId token)>;

class Stream {
 public:
  // The stream keeps a reference to the model.
  static Result<std::unique_ptr<Stream>> create(std::shared_ptr<const Model> model,
                                                const CacheOptions& cache = {},
                                                const SamplingOptions& sampling = {});
  // A stream saved by save(), on the model it was saved with (checked by a fingerprint of the
  // whole file), continuing exactly where it stopped.
  static Result<std::unique_ptr<Stream>> load(std::shared_ptr<const Model> model,
                                              const std::string& path);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Feeds tokens in order (the prompt, or anything). Afterwards logits() are the last token's.
  // Returns how many were fed: all of them, or fewer when `interrupt` was set between two
  // chunks of max_batch tokens. Ids outside the vocabulary feed nothing and are an error.
  // on_text receives the fed tokens' text as the stream decodes it (to echo a prompt exactly as
  // generated text would read).
  Result<size_t> feed(std::span<const TokenId> tokens, const std::atomic<bool>* interrupt = nullptr,
                      const TextFn& on_text = {});
  // Model::tokenize() then feed().
  Result<size_t> feed_text(std::string_view text, bool add_bos, bool parse_special = false,
                           const std::atomic<bool>* interrupt = nullptr,
                           const TextFn& on_text = {});

  // Samples a token from the current logits, feeds it, and repeats until a stop. Needs at least
  // one token fed before.
  Result<Generation> generate(const StopOptions& stop, const TextFn& on_text = {},
                              const TokenFn& on_token = {});

  // Writes the whole state (K/V, position, sampler) atomically, with a fingerprint of the model.
  Status save(const std::string& path) const;
  // Forgets everything: as freshly created, with the sampler reseeded.
  void reset();

  uint64_t n_seen() const;     // tokens fed since creation or reset()
  size_t cache_bytes() const;  // bytes of K/V storage, fixed at creation
  // Every byte the stream holds at its largest, fixed at creation: the K/V cache, the
  // activations and logits of a batch of max_batch tokens, the sampler's buffers.
  size_t memory_bytes() const;
  size_t cache_tokens() const;            // tokens the cache holds when full
  std::span<const float> logits() const;  // [n_vocab] after the last token fed
  const CacheOptions& cache_options() const;
  const SamplingOptions& sampling_options() const;
  const Model& model() const;

  // Profiling: while on, each forward pass of this stream adds the wall time of its phases to
  // profile(); turning it on starts from zero. Off by default, and then nothing is timed. The
  // time a token takes beyond its phases is sampling and bookkeeping.
  void set_profiling(bool on);
  std::vector<PhaseTime> profile() const;  // every phase, in a pass's order; empty when off

  struct Impl;

 private:
  friend class Batch;
  explicit Stream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Called as perplexity() goes, with the number of tokens scored so far.
using ProgressFn = std::function<void(size_t n_scored)>;

// Streaming perplexity: feeds `tokens` through a fresh stream of `cache` and returns the
// negative log-likelihood of each token given all before it, as the cache lets the model see
// them: nll[i] = -log p(tokens[i + 1] | tokens[0..i]), tokens.size() - 1 entries. Chunked feeding
// is exact, so this equals feeding one token at a time.
Result<std::vector<double>> perplexity(std::shared_ptr<const Model> model,
                                       std::span<const TokenId> tokens,
                                       const CacheOptions& cache = {},
                                       const ProgressFn& progress = {});

// Called as perplexity() goes, with the NLL of every token scored so far (a running perplexity
// for a progress display). The span is valid during the call only.
using NllProgressFn = std::function<void(std::span<const double> nll_so_far)>;
// perplexity() reporting the scores so far instead of their count.
Result<std::vector<double>> perplexity(std::shared_ptr<const Model> model,
                                       std::span<const TokenId> tokens, const CacheOptions& cache,
                                       const NllProgressFn& progress);

}  // namespace sllm
