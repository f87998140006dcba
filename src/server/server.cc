#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "page.h"
#include "server_impl.h"

namespace sllm::server {

using nlohmann::json;

const char* finish_reason(StopReason stop) {
  return stop == StopReason::kMaxTokens ? "length" : "stop";
}

void RequestState::push(std::string_view text) {
  {
    std::lock_guard<std::mutex> lock(mu);
    pieces.emplace_back(text);
  }
  cv.notify_all();
}

void RequestState::finish(Outcome o) {
  {
    std::lock_guard<std::mutex> lock(mu);
    outcome = std::move(o);
    done = true;
  }
  cv.notify_all();
}

void RequestState::wait_done() {
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
}

void Metrics::count(int status) {
  std::lock_guard<std::mutex> lock(mu);
  ++requests_by_status[status];
}

void Metrics::add(const Outcome& o) {
  prompt_tokens_fed += o.prompt_tokens_fed;
  prompt_tokens_cached += o.cached_tokens;
  completion_tokens += o.completion_tokens;
  if (!o.error && o.stop == StopReason::kInterrupted) ++interrupted;
  std::lock_guard<std::mutex> lock(mu);
  generate_seconds += o.generate_seconds;
}

void send_error(httplib::Response& res, const ApiError& error) {
  res.status = error.status;
  res.set_content(error_json(error).dump(), "application/json");
}

json usage_json(const Outcome& o) {
  const uint64_t prompt = o.cached_tokens + o.prompt_tokens_fed;
  return {{"prompt_tokens", prompt},
          {"completion_tokens", o.completion_tokens},
          {"total_tokens", prompt + o.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", o.cached_tokens}}}};
}

void Server::Impl::register_request(RequestState* st) {
  std::lock_guard<std::mutex> lock(active_mu);
  active.insert(st);
  if (stopping) st->interrupt = true;
}

void Server::Impl::unregister_request(RequestState* st) {
  std::lock_guard<std::mutex> lock(active_mu);
  active.erase(st);
}

std::string Server::Impl::new_request_id(const char* prefix) {
  return std::string(prefix) + std::to_string(next_id++);
}

namespace {

// An error status that no handler gave a body to (httplib's own 400, 404, 413): the same JSON
// shape as every other error.
ApiError default_error(const httplib::Request& req, int status, size_t max_body_bytes) {
  switch (status) {
    case 404:
      return {404, "no endpoint " + req.method + " " + req.path, "invalid_request_error",
              "not_found"};
    case 413:
      return {413,
              "the request body is larger than this server's limit of " +
                  std::to_string(max_body_bytes) + " bytes",
              "invalid_request_error", "body_too_large"};
    case 405:
      return {405, "method " + req.method + " not allowed on " + req.path, "invalid_request_error",
              "method_not_allowed"};
    default:
      return {status, "bad request (HTTP " + std::to_string(status) + ")",
              status >= 500 ? "server_error" : "invalid_request_error", "http_error"};
  }
}

void prometheus(std::ostringstream& out, const char* name, const char* type, const char* help,
                double value) {
  out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n"
      << name << " ";
  // Counts and byte sizes exactly (the stream's default 6 digits would print 1.23457e+08).
  if (value == std::floor(value) && std::fabs(value) < 9007199254740992.0) {
    out << static_cast<int64_t>(value);
  } else {
    out << value;
  }
  out << "\n";
}

}  // namespace

void Server::Impl::routes() {
  http.set_payload_max_length(options.max_body_bytes);
  // httplib's default also sets SO_REUSEPORT, which lets a second server bind the same port
  // and silently take half of the connections: address reuse only.
  // The socket is kept for start(), which enlarges its listen backlog.
  http.set_socket_options([this](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof(yes));
    listen_fd = sock;
  });
  const size_t n_threads = options.n_http_threads;
  http.new_task_queue = [n_threads] { return new httplib::ThreadPool(n_threads); };

  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    // The page holds no secret; it asks for the key when the API answers 401.
    if (options.api_key.empty() || req.path == "/health" || req.path == "/") {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    if (req.get_header_value("Authorization") == "Bearer " + options.api_key) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    send_error(res, {401,
                     req.has_header("Authorization")
                         ? "invalid API key"
                         : "missing API key: send the header 'Authorization: Bearer KEY'",
                     "invalid_request_error", "invalid_api_key"});
    return httplib::Server::HandlerResponse::Handled;
  });
  http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (res.body.empty() && !res.content_provider_) {
      send_error(res, default_error(req, res.status, options.max_body_bytes));
    }
  });
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        send_error(res, {500, "internal error: " + what, "server_error", "internal_error"});
      });
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics.count(res.status);
    if (options.log) options.log(req.method + " " + req.path + " " + std::to_string(res.status));
  });

  http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  http.Get("/", [](const httplib::Request&, httplib::Response& res) {
    const std::string_view page = chat_page();
    res.set_content(page.data(), page.size(), "text/html; charset=utf-8");
  });
  // A conversation's state for the chat page: tokens seen, and the fixed bytes it holds.
  http.Get(R"(/v1/sessions/([A-Za-z0-9_-]{1,64}))",
           [this](const httplib::Request& req, httplib::Response& res) {
             const std::string id = req.matches[1];
             const std::optional<ConversationInfo> c = store->info(id);
             if (!c) {
               return send_error(res, {404, "unknown session id '" + id + "'",
                                       "invalid_request_error", "session_not_found"});
             }
             const json body = {{"id", id},
                                {"object", "session"},
                                {"tokens_seen", c->n_seen},
                                {"cache_bytes", cache_bytes},
                                {"session_bytes", session_bytes},
                                {"live", c->live},
                                {"on_disk", c->on_disk},
                                {"busy", c->busy}};
             res.set_content(body.dump(), "application/json");
           });
  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    const json body = {
        {"object", "list"},
        {"data",
         {{{"id", model_id}, {"object", "model"}, {"created", 0}, {"owned_by", "streamingllm"}}}}};
    res.set_content(body.dump(), "application/json");
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    std::ostringstream out;
    out << "# HELP sllm_requests_total HTTP requests answered, by status code.\n"
        << "# TYPE sllm_requests_total counter\n";
    {
      std::lock_guard<std::mutex> lock(metrics.mu);
      for (const auto& [status, n] : metrics.requests_by_status) {
        out << "sllm_requests_total{status=\"" << status << "\"} " << n << "\n";
      }
    }
    const double completion = static_cast<double>(metrics.completion_tokens.load());
    prometheus(out, "sllm_prompt_tokens_total", "counter", "Prompt tokens fed to the model.",
               static_cast<double>(metrics.prompt_tokens_fed.load()));
    prometheus(out, "sllm_prompt_tokens_cached_total", "counter",
               "Prompt tokens of held conversations, not fed again.",
               static_cast<double>(metrics.prompt_tokens_cached.load()));
    prometheus(out, "sllm_completion_tokens_total", "counter", "Tokens generated.", completion);
    prometheus(out, "sllm_generations_interrupted_total", "counter",
               "Generations stopped early because the client left or the server stopped.",
               static_cast<double>(metrics.interrupted.load()));
    // Generations overlap in the batch: the rate is per second of the decoding thread's steps.
    const double step_seconds = worker->step_seconds();
    prometheus(out, "sllm_decode_tokens_per_second", "gauge",
               "Tokens generated per second of batched decoding (all requests), since start.",
               step_seconds > 0 ? completion / step_seconds : 0.0);
    prometheus(out, "sllm_decode_steps_total", "counter",
               "Forward passes of the decoding thread (one per step, for every active request).",
               static_cast<double>(worker->steps()));
    prometheus(out, "sllm_requests_decoding", "gauge",
               "Requests in the decoding batch (prefilling or generating).",
               static_cast<double>(worker->active()));
    prometheus(out, "sllm_decode_batch_peak", "gauge",
               "The most requests that shared one decoding step, since start.",
               static_cast<double>(worker->peak_active()));
    prometheus(out, "sllm_sessions_live", "gauge", "Conversations with a cache in memory.",
               static_cast<double>(store->n_live()));
    prometheus(out, "sllm_sessions_on_disk", "gauge",
               "Conversations written to the session directory.",
               static_cast<double>(store->n_on_disk()));
    prometheus(out, "sllm_sessions_evicted_total", "counter",
               "Conversations whose cache was dropped to make room for another (kept on disk "
               "with --session-dir, else forgotten).",
               static_cast<double>(store->n_evicted()));
    prometheus(out, "sllm_sessions_restored_total", "counter",
               "Conversations read back from the session directory by a request.",
               static_cast<double>(store->n_restored()));
    prometheus(out, "sllm_sessions_max", "gauge",
               "Conversations that may be live at once (--max-sessions, or fewer: what "
               "--memory-budget admits).",
               static_cast<double>(max_live));
    prometheus(out, "sllm_session_bytes", "gauge",
               "Bytes one live conversation holds, fixed: K/V cache, batch activations and "
               "logits, sampler buffers.",
               static_cast<double>(session_bytes));
    prometheus(out, "sllm_memory_budget_bytes", "gauge",
               "--memory-budget (0: none); sllm_sessions_max is at most it / sllm_session_bytes.",
               static_cast<double>(options.memory_budget));
    prometheus(out, "sllm_session_cache_bytes", "gauge", "K/V cache bytes of one conversation.",
               static_cast<double>(options.chat.cache.capacity() > 0
                                       ? model->info().kv_cache_bytes(options.chat.cache.kv_type,
                                                                      options.chat.cache.capacity())
                                       : 0));
    prometheus(out, "sllm_cache_bytes", "gauge", "K/V cache bytes of the live conversations.",
               static_cast<double>(store->cache_bytes()));
    prometheus(out, "sllm_queue_depth", "gauge", "Requests waiting for the decoding thread.",
               static_cast<double>(worker->queue_depth()));
    res.set_content(out.str(), "text/plain; version=0.0.4");
  });
  http.Post("/v1/chat/completions",
            [this](const httplib::Request& req, httplib::Response& res) { handle_chat(req, res); });
  http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_completion(req, res);
  });
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { stop(); }

Result<std::unique_ptr<Server>> Server::create(std::shared_ptr<const Model> model,
                                               ServerOptions options) {
  if (model == nullptr) return Error(ErrorCode::kInvalidInput, "no model given");
  SLLM_RETURN_IF_ERROR(options.chat.cache.validate());
  SLLM_RETURN_IF_ERROR(options.chat.sampling.validate());
  if (options.max_sessions == 0) {
    return Error(ErrorCode::kInvalidInput, "--max-sessions must be at least 1");
  }
  if (options.chat.template_name.empty()) {
    options.chat.template_name = choose_chat_template(model->info().chat_template).name;
  }
  auto impl = std::make_unique<Impl>();
  impl->model_id = std::filesystem::path(model->info().path).stem().string();
  // What one conversation costs, from a chat made the way every conversation is (its buffers
  // are sized at creation, so the probe's are every conversation's).
  {
    SLLM_ASSIGN_OR_RETURN(std::unique_ptr<Chat> probe, Chat::create(model, options.chat));
    impl->session_bytes = probe->memory_bytes();
    impl->cache_bytes = probe->cache_bytes();
  }
  ConversationStore::Options store_options;
  store_options.model = model;
  store_options.chat = options.chat;
  store_options.max_live = options.max_sessions;
  if (options.memory_budget > 0) {
    const size_t admitted = options.memory_budget / impl->session_bytes;
    if (admitted == 0) {
      return Error(ErrorCode::kInvalidInput,
                   "--memory-budget " + std::to_string(options.memory_budget) +
                       " bytes is less than one session's " + std::to_string(impl->session_bytes) +
                       " bytes (K/V cache " +
                       std::to_string(model->info().kv_cache_bytes(options.chat.cache.kv_type,
                                                                   options.chat.cache.capacity())) +
                       " bytes, the rest activations, logits and sampler buffers)");
    }
    if (admitted < store_options.max_live) {
      store_options.max_live = admitted;
      store_options.max_live_option = "--memory-budget";
    }
  }
  impl->max_live = store_options.max_live;
  store_options.dir = options.session_dir;
  SLLM_ASSIGN_OR_RETURN(impl->store, ConversationStore::open(std::move(store_options)));
  impl->model = std::move(model);
  impl->options = std::move(options);
  impl->worker = std::make_unique<Worker>(impl->model);
  impl->routes();
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Status Server::start() {
  Impl& s = *impl_;
  if (s.options.port == 0) {
    s.port = s.http.bind_to_any_port(s.options.host);
    if (s.port < 0) {
      return Error(ErrorCode::kIo, "cannot bind to " + s.options.host + " (any port)");
    }
  } else {
    if (!s.http.bind_to_port(s.options.host, s.options.port)) {
      return Error(ErrorCode::kIo, "cannot bind to " + s.options.host + ":" +
                                       std::to_string(s.options.port) +
                                       " (in use, or not an address of this machine)");
    }
    s.port = s.options.port;
  }
  // Debian's httplib listens with a backlog of 5: a burst of more new connections than that (32
  // clients at once) overflowed the accept queue, and some clients' requests failed unanswered.
  // A second listen() on a listening socket sets its backlog (capped by net.core.somaxconn).
  if (s.listen_fd >= 0 && ::listen(s.listen_fd, SOMAXCONN) != 0) {
    return Error(ErrorCode::kIo,
                 std::string("cannot set the listen backlog: ") + std::strerror(errno));
  }
  s.listener = std::thread([&s] {
    s.http.listen_after_bind();
    s.listener_done = true;
  });
  // httplib's stop() does nothing until the listener runs: a stop() right after start() would
  // be lost and the listener never joined.
  while (!s.http.is_running() && !s.listener_done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return {};
}

int Server::port() const { return impl_->port; }

void Server::stop() {
  Impl& s = *impl_;
  {
    std::unique_lock<std::mutex> lock(s.active_mu);
    if (s.stopping) {  // stopping on another thread: done when it is
      lock.unlock();
      wait();
      return;
    }
    s.stopping = true;
    for (RequestState* st : s.active) st->interrupt = true;
  }
  s.http.stop();  // the connection threads finish their requests and are joined
  if (s.listener.joinable()) s.listener.join();
  {
    std::lock_guard<std::mutex> lock(s.stop_mu);
    s.stopped = true;
  }
  s.stop_cv.notify_all();
}

void Server::wait() {
  std::unique_lock<std::mutex> lock(impl_->stop_mu);
  impl_->stop_cv.wait(lock, [&] { return impl_->stopped; });
}

const std::string& Server::model_id() const { return impl_->model_id; }

size_t Server::session_cache_bytes() const {
  const CacheOptions& c = impl_->options.chat.cache;
  return impl_->model->info().kv_cache_bytes(c.kv_type, c.capacity());
}

size_t Server::session_bytes() const { return impl_->session_bytes; }
size_t Server::max_live_sessions() const { return impl_->max_live; }

size_t Server::n_sessions_on_disk() const { return impl_->store->n_on_disk(); }

}  // namespace sllm::server
