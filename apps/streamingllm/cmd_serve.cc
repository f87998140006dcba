// `streamingllm serve`: the OpenAI-compatible HTTP server (src/server/server.h) for one model.
#include <fmt/core.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <signal.h>

#include <thread>

#include "cli_options.h"
#include "commands.h"
#include "server.h"

namespace sllm::cli {

namespace {

struct ServeArgs {
  ModelArgs model;
  SamplingArgs sampling;
  CacheArgs cache;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string template_name;
  size_t max_sessions = 64;
  size_t memory_budget = 0;
  std::string session_dir;
  std::string api_key;
  int64_t max_tokens = 16384;
  size_t max_body_bytes = size_t{8} << 20;
  bool quiet = false;
  CLI::App* cmd = nullptr;
};

int serve(const ServeArgs& a) {
  SLLM_CLI_CHECK(a.cache.check());
#if defined(__GLIBC__)
  // Each connection thread would get a malloc arena of its own and keep the peak of the bodies
  // it parsed: a client resending a 200-turn history grew the RSS by 2 MB every 100 turns
  // (scripts/bench_server_turns.py); with two arenas it stays flat.
  mallopt(M_ARENA_MAX, 2);
#endif
  // SIGINT and SIGTERM go to one thread that stops the server (every thread started from here
  // on inherits the blocked mask), so that a signal never lands in the middle of a request.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  SLLM_CLI_ASSIGN(std::shared_ptr<Model> model, a.model.load());
  server::ServerOptions o;
  o.host = a.host;
  o.port = a.port;
  o.chat.template_name = a.template_name;
  SLLM_CLI_ASSIGN(o.chat.cache, a.cache.to_options(model->info()));
  SLLM_CLI_ASSIGN(o.chat.sampling, a.sampling.to_options());
  o.max_sessions = a.max_sessions;
  o.memory_budget = a.memory_budget;
  o.session_dir = a.session_dir;
  o.api_key = a.api_key;
  o.limits.max_tokens = a.max_tokens;
  o.limits.default_max_tokens = std::min<int64_t>(o.limits.default_max_tokens, a.max_tokens);
  o.max_body_bytes = a.max_body_bytes;
  const CacheOptions cache = o.chat.cache;
  if (!a.quiet) o.log = [](std::string_view line) { fmt::print(stderr, "{}\n", line); };
  SLLM_CLI_ASSIGN(std::unique_ptr<server::Server> server,
                  server::Server::create(model, std::move(o)));
  SLLM_CLI_CHECK(server->start());
  const size_t max_live = server->max_live_sessions();
  fmt::print(stderr,
             "streamingllm serve: {} | http://{}:{} | cache {} per session: {} bytes | each "
             "session holds {} bytes (K/V cache, batch activations and logits, sampler) | at "
             "most {} sessions live ({} bytes{}){}{}\n",
             a.model.path, a.host, server->port(), describe_cache(cache),
             server->session_cache_bytes(), server->session_bytes(), max_live,
             server->session_bytes() * max_live,
             a.memory_budget == 0
                 ? ""
                 : fmt::format(", --memory-budget {} bytes{}", a.memory_budget,
                               max_live < a.max_sessions ? "" : ": --max-sessions is lower"),
             a.session_dir.empty() ? ""
                                   : fmt::format(" | sessions in {} ({} on disk)", a.session_dir,
                                                 server->n_sessions_on_disk()),
             a.api_key.empty() ? "" : " | API key required");
  std::thread stopper([&] {
    int signal = 0;
    sigwait(&stop_signals, &signal);
    fmt::print(stderr, "streamingllm serve: {}, finishing the requests in progress\n",
               signal == SIGTERM ? "SIGTERM" : "SIGINT");
    server->stop();
  });
  server->wait();
  stopper.join();
  fmt::print(stderr, "streamingllm serve: stopped\n");
  return 0;
}

}  // namespace

Command add_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "OpenAI-compatible HTTP server: endless chat sessions at a fixed memory each");
  a->cmd = cmd;
  a->model.add(*cmd);
  cmd->add_option("--host", a->host, "Address to listen on")->capture_default_str();
  add_number(*cmd, "--port", a->port, {0, 65535}, "Port to listen on (0 = any free port)");
  const std::vector<std::string> templates = chat_template_names();
  cmd->add_option("--template", a->template_name,
                  "Chat template (default: recognised from the model's tokenizer.chat_template)")
      ->check(CLI::IsMember(templates));
  add_number(*cmd, "--max-sessions", a->max_sessions, {size_t{1}, size_t{1} << 20},
             "Conversations with a cache in memory at once (the least recently used idle one "
             "is evicted: to --session-dir if given, else forgotten)");
  add_byte_size(*cmd, "--memory-budget", a->memory_budget,
                "Bytes all live sessions may hold together (512M, 2G, ...): at most "
                "floor(budget / one session's bytes, printed at start) are live, the least "
                "recently used idle one evicted beyond it; default: --max-sessions only");
  cmd->add_option("--session-dir", a->session_dir,
                  "Write every conversation here after each request; a restarted server "
                  "resumes them")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--api-key", a->api_key,
                  "Require 'Authorization: Bearer KEY' on every endpoint but /health");
  add_number(*cmd, "--max-tokens", a->max_tokens, {int64_t{1}, int64_t{1} << 30},
             "Largest max_tokens a request may ask for");
  add_number(*cmd, "--max-body", a->max_body_bytes, {size_t{1024}, size_t{1} << 30},
             "Largest request body in bytes (larger: 413)");
  cmd->add_flag("-q,--quiet", a->quiet, "Do not log each request to stderr");
  a->sampling.add(*cmd);
  a->cache.add(*cmd);
  return [a] { return serve(*a); };
}

}  // namespace sllm::cli
