// The helpers of the server's tests (server_test.cc, server_session_test.cc): a server on a free
// loopback port, requests through httplib::Client, the library's Chat as the reference, and
// `streamingllm serve` as a child process.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "api_model.h"
#include "server.h"
#include "streamingllm/streamingllm.h"
#include "test_util.h"

namespace sllm::server_test {

using nlohmann::json;
using server::Server;
using server::ServerOptions;

inline std::shared_ptr<const Model> stories() { return test::stories_model(1); }

// A cache far smaller than the conversations below, so that every test streams past it.
inline CacheOptions small_cache() {
  CacheOptions c;
  c.n_sinks = 4;
  c.window = 60;
  return c;
}

inline ServerOptions options() {
  ServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.chat.cache = small_cache();
  o.max_body_bytes = 64 * 1024;
  o.n_http_threads = 8;
  return o;
}

inline std::unique_ptr<Server> start(ServerOptions o) {
  auto s = Server::create(stories(), std::move(o));
  EXPECT_TRUE(s.ok()) << s.error().message();
  if (!s.ok()) return nullptr;
  const Status started = (*s)->start();
  EXPECT_TRUE(started.ok()) << started.error().message();
  return std::move(*s);
}

struct Reply {
  int status = 0;
  json body;
  httplib::Headers headers;
};

inline Reply request(int port, const std::string& method, const std::string& path,
                     const std::string& body = "", const httplib::Headers& headers = {}) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(60, 0);
  httplib::Result res = method == "GET" ? cli.Get(path.c_str(), headers)
                                        : cli.Post(path.c_str(), headers, body, "application/json");
  Reply r;
  if (!res) {
    ADD_FAILURE() << method << " " << path << ": " << httplib::to_string(res.error());
    return r;
  }
  r.status = res->status;
  r.headers = res->headers;
  r.body = json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  if (r.body.is_discarded()) r.body = res->body;  // /metrics: text
  return r;
}

inline Reply post(int port, const std::string& path, const json& body,
                  const httplib::Headers& headers = {}) {
  return request(port, "POST", path, body.dump(), headers);
}

// A streaming request: the events in order; on_event may return false to hang up.
struct Events {
  int status = 0;
  std::vector<json> events;
  bool done = false;  // "data: [DONE]" arrived
};

inline Events post_stream(int port, const std::string& path, json body,
                          const std::function<bool(const json&)>& on_event = {}) {
  body["stream"] = true;
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(60, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  Events out;
  std::string buffer;
  req.response_handler = [&](const httplib::Response& res) {
    out.status = res.status;
    return true;
  };
  req.content_receiver = [&](const char* bytes, size_t n, uint64_t, uint64_t) {
    buffer.append(bytes, n);
    for (size_t end; (end = buffer.find("\n\n")) != std::string::npos;) {
      const std::string event = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      if (event.rfind(":", 0) == 0) continue;  // an SSE comment (keep-alive)
      EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
      const std::string data = event.substr(6);
      if (data == "[DONE]") {
        out.done = true;
        continue;
      }
      EXPECT_FALSE(out.done) << "an event after [DONE]";
      out.events.push_back(json::parse(data));
      if (on_event && !on_event(out.events.back())) return false;
    }
    return true;
  };
  (void)cli.send(req);
  return out;
}

inline std::string streamed_text(const Events& e, const char* field) {
  std::string text;
  for (const json& ev : e.events) {
    const json& choice = ev.at("choices").at(0);
    if (std::string(field) == "delta") {
      text += choice.at("delta").value("content", "");
    } else {
      text += choice.at("text").get<std::string>();
    }
  }
  return text;
}

inline json user(const std::string& text) { return {{"role", "user"}, {"content", text}}; }
inline json assistant(const std::string& text) {
  return {{"role", "assistant"}, {"content", text}};
}

// The sampling of every request below, and the same for the library's Chat.
constexpr uint64_t kSeed = 11;
constexpr int kMaxTokens = 24;
inline json chat_body(std::vector<json> messages) {
  return {{"model", "stories260K"},
          {"messages", std::move(messages)},
          {"temperature", 0.9},
          {"seed", kSeed},
          {"max_tokens", kMaxTokens}};
}
inline ChatOptions reference_options() {
  ChatOptions o;
  o.cache = small_cache();
  o.sampling.temperature = 0.9f;
  o.sampling.seed = kSeed;
  return o;
}
inline StopOptions reference_stop() {
  StopOptions s;
  s.max_tokens = kMaxTokens;
  return s;
}

// The replies of one uninterrupted chat of `model` to `turns`, as the server must give them.
inline std::vector<std::string> reference_replies(const std::shared_ptr<const Model>& model,
                                                  const std::vector<std::string>& turns) {
  auto chat = Chat::create(model, reference_options());
  EXPECT_TRUE(chat.ok());
  std::vector<std::string> out;
  for (const std::string& turn : turns) {
    auto reply = (*chat)->send(turn, reference_stop());
    EXPECT_TRUE(reply.ok());
    out.push_back(reply.ok() ? reply->text : "");
  }
  return out;
}

inline const std::vector<std::string> kTurns = {
    "Once upon a time there was a cat.", "What did the cat do?", "Then a big dog came to the park.",
    "Tell me about the sun.", "Why was Lily sad?"};

inline uint64_t fed_tokens(const json& usage) {
  return usage.at("prompt_tokens").get<uint64_t>() -
         usage.at("prompt_tokens_details").at("cached_tokens").get<uint64_t>();
}

inline double metric(int port, const std::string& name) {
  const Reply r = request(port, "GET", "/metrics");
  const std::string text = r.body.get<std::string>();
  const size_t at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + name.size() + 2));
}

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { std::signal(SIGPIPE, SIG_IGN); }
};

// `streamingllm serve` as a process of its own, its stderr in a file: on stories260K with a
// 4 + 60 cache, one thread, `dir` as its session directory ("" = none), then `extra` arguments.
class ServeProcess {
 public:
  ServeProcess(const std::string& dir, const std::string& log,
               const std::vector<std::string>& extra = {})
      : log_(log) {
    // Built before fork(): the child only execs.
    std::vector<std::string> args = {SLLM_CLI_PATH, "serve", "-m",       test::stories_gguf(),
                                     "--port",      "0",     "--window", "60",
                                     "-t",          "1"};
    if (!dir.empty()) {
      args.push_back("--session-dir");
      args.push_back(dir);
    }
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, STDERR_FILENO);
      execv(SLLM_CLI_PATH, argv.data());
      _exit(127);
    }
  }
  ~ServeProcess() {
    if (pid_ > 0) stop(SIGKILL);
  }
  std::string log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // The port from the line the server prints once it listens (0 if it never did), and the
  // bytes of one session's cache it prints there.
  int port(size_t* session_bytes = nullptr) const {
    const std::regex address(
        R"(http://127\.0\.0\.1:(\d+) \| cache [^|]* per session: (\d+) bytes)");
    std::smatch m;
    std::string text;
    for (int i = 0; i < 3000 && !std::regex_search(text, m, address); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      text = log();
    }
    if (!std::regex_search(text, m, address)) return 0;
    if (session_bytes != nullptr) *session_bytes = std::stoull(m[2]);
    return std::stoi(m[1]);
  }
  // Waits for the process to exit by itself; its wait status (-1 if it is still running after
  // timeout_s).
  int wait_exit(int timeout_s = 60) {
    int status = -1;
    for (int i = 0; i < timeout_s * 100 && pid_ > 0; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }
  // Sends the signal and returns the wait status.
  int stop(int signal) {
    int status = -1;
    if (pid_ > 0 && kill(pid_, signal) == 0) waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
};

inline std::string fresh_dir(const std::string& name) {
  const std::string dir = testing::TempDir() + name + "_" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace sllm::server_test
