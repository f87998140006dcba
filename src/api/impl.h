// The library's side of the public objects (include/streamingllm/): what a Model, a Stream and a
// Chat hold. Only src/api/ sees this header.
#pragma once

#include <memory>
#include <mutex>

#include "runtime/chat_session.h"
#include "runtime/engine.h"
#include "runtime/session.h"
#include "sampling/sampler.h"
#include "streamingllm/chat.h"
#include "streamingllm/model.h"
#include "streamingllm/stream.h"
#include "tokenizer/tokenizer.h"
#include "util/thread_pool.h"

namespace sllm {

struct Model::Impl {
  std::unique_ptr<Engine> engine;  // the mapping, the weights and the tokenizer
  std::unique_ptr<ThreadPool> pool;
  // Streams of one model share its pool, which runs one job at a time: each call that computes
  // holds this mutex.
  mutable std::mutex compute;
  ModelInfo info;
  std::vector<TokenId> end_tokens;  // the vocabulary's end-of-generation set
  mutable std::once_flag fingerprint_once;
  mutable Result<uint64_t> fingerprint = Error(ErrorCode::kInternal, "not computed");

  const Tokenizer& tokenizer() const { return *engine->tokenizer; }
  const TransformerModel& model() const { return engine->model; }
  // The model file's fingerprint for session files, computed on first use.
  Result<uint64_t> file_fingerprint() const;
};

struct Stream::Impl {
  std::shared_ptr<const Model> model;
  std::unique_ptr<Session> session;
  Sampler sampler;
  StreamDecoder decoder;
  CacheOptions cache;
  SamplingOptions sampling;
  std::unique_ptr<OpProfile> profile;  // while profiling

  Impl(std::shared_ptr<const Model> m, std::unique_ptr<Session> s, const SamplingOptions& o)
      : model(std::move(m)),
        session(std::move(s)),
        sampler(o, model->info().n_vocab),
        decoder(model->impl().tokenizer()),
        cache(session->options()),
        sampling(o) {}
};

struct Chat::Impl {
  std::shared_ptr<const Model> model;
  std::unique_ptr<ChatSession> session;
  ChatOptions options;  // template resolved
  std::unique_ptr<Stream> stream_view;
};

}  // namespace sllm
