// `streamingllm serve`: an OpenAI-compatible HTTP server over the public library API.
//
// Endpoints: POST /v1/chat/completions, POST /v1/completions (JSON, or Server-Sent Events with
// "stream": true), GET /v1/models, GET /health, GET /metrics (Prometheus text).
//
// Every chat is an endless conversation on a streaming cache of fixed size (conversations.h says
// how a request finds its conversation). One decoding thread takes the requests in arrival order;
// two requests on one session at once: the second gets 409 (the client knows its own order, the
// server would only guess it).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "api_json.h"
#include "streamingllm/chat.h"
#include "streamingllm/model.h"

namespace sllm::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (see Server::port())
  // Every conversation's cache; its sampling are the defaults of requests that name no value.
  ChatOptions chat;
  size_t max_sessions = 64;  // conversations with a cache in memory at once
  // 0 = none; else at most floor(memory_budget / session_bytes()) conversations are live, the
  // least recently used idle one evicted beyond it (to session_dir when given).
  size_t memory_budget = 0;
  std::string session_dir;  // "" = none: conversations live in memory only
  std::string api_key;      // "" = none; else every endpoint but /health needs the bearer key
  size_t max_body_bytes = size_t{8} << 20;
  RequestLimits limits;
  size_t n_http_threads = 64;  // connections served at once (a streaming reply holds one)
  // Receives one line per request ("POST /v1/chat/completions 200"); empty = quiet.
  std::function<void(std::string_view line)> log;
};

class Server {
 public:
  static Result<std::unique_ptr<Server>> create(std::shared_ptr<const Model> model,
                                                ServerOptions options);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port and serves on a background thread until stop().
  Status start();
  int port() const;  // the bound port (after start())
  // Stops listening, interrupts the replies in progress, finishes their requests (each
  // conversation is on disk after its request) and returns.
  void stop();
  // Blocks until stop() was called from another thread (or a signal handler's thread).
  void wait();

  const std::string& model_id() const;  // the name /v1/models lists
  size_t session_cache_bytes() const;   // K/V bytes of one conversation, fixed
  // Every byte one live conversation holds, fixed: its chat's (Chat::memory_bytes: the K/V
  // cache, the activations and logits of a batch, the sampler's buffers). The history hash and
  // id (some 100 bytes) and the text of a request in flight are not counted.
  size_t session_bytes() const;
  size_t max_live_sessions() const;  // --max-sessions, lowered to what --memory-budget admits
  size_t n_sessions_on_disk() const;

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sllm::server
