// The server's parts, shared by server.cc (lifecycle, small endpoints) and generate.cc (the
// two generation endpoints). Not part of the server's interface.
#pragma once

#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "conversations.h"
#include "server.h"
#include "streamingllm/batch.h"
#include "streamingllm/stream.h"

namespace sllm::server {

// The one decoding thread (worker.cc). It loops over every active request: each step runs the
// jobs posted since the last one (requests joining the batch, or anything else that must run
// between forward passes), then one Batch::step() that feeds every generating request its next
// token and every request still prefilling a chunk of its prompt, then hands each finished
// request its result. A request whose interrupt is set leaves within one step.
class Worker {
 public:
  explicit Worker(std::shared_ptr<const Model> model, const BatchOptions& options = {});
  ~Worker();  // finishes the jobs still queued and the requests in the batch, then joins
  // Runs `job` on the decoding thread, between two steps, in the order posted.
  void post(std::function<void()> job);
  // A request joining the batch: `join` runs on the decoding thread between two steps and adds
  // one member (its id), or returns nullopt having finished the request itself; `done` then
  // receives the member's result on the decoding thread.
  using JoinFn = std::function<std::optional<uint64_t>(Batch& batch)>;
  using DoneFn = std::function<void(BatchResult result)>;
  void post_member(JoinFn join, DoneFn done);
  size_t queue_depth() const;   // posted and not yet started
  size_t active() const;        // requests in the batch
  size_t peak_active() const;   // the most requests in one step
  uint64_t steps() const;       // steps run
  double step_seconds() const;  // wall seconds in steps

 private:
  void run();
  std::unique_ptr<Batch> batch_;
  std::map<uint64_t, DoneFn> done_;  // decoding thread only
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::atomic<size_t> active_{0};
  std::atomic<size_t> peak_active_{0};
  std::atomic<uint64_t> steps_{0};
  std::atomic<uint64_t> step_nanos_{0};
  bool stopping_ = false;
  std::thread thread_;
};

// How a generation ended, for the response and the metrics.
struct Outcome {
  std::optional<ApiError> error;
  std::string text;
  StopReason stop = StopReason::kEndOfGeneration;
  uint64_t prompt_tokens_fed = 0;
  uint64_t cached_tokens = 0;  // the conversation's tokens before the request, not fed again
  uint64_t completion_tokens = 0;
  double generate_seconds = 0;
  bool replied = false;  // the reply's generation ran (its text is the conversation's new reply)
};
const char* finish_reason(StopReason stop);

// One generation request between its handler thread and the decoding thread: the text as it
// comes, then the outcome.
struct RequestState {
  std::atomic<bool> interrupt{false};
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> pieces;
  bool done = false;
  Outcome outcome;

  void push(std::string_view text);
  void finish(Outcome o);
  void wait_done();
};

struct Metrics {
  std::mutex mu;
  std::map<int, uint64_t> requests_by_status;
  std::atomic<uint64_t> prompt_tokens_fed{0};
  std::atomic<uint64_t> prompt_tokens_cached{0};
  std::atomic<uint64_t> completion_tokens{0};
  std::atomic<uint64_t> interrupted{0};  // generations stopped by a client that left (or stop())
  double generate_seconds = 0;           // under mu
  void count(int status);
  void add(const Outcome& o);
};

struct Server::Impl {
  std::shared_ptr<const Model> model;
  ServerOptions options;
  std::string model_id;
  size_t session_bytes = 0;  // Server::session_bytes()
  size_t cache_bytes = 0;    // Server::session_cache_bytes()
  size_t max_live = 0;       // Server::max_live_sessions()
  std::unique_ptr<ConversationStore> store;
  Metrics metrics;
  httplib::Server http;
  int port = 0;
  int listen_fd = -1;  // the listening socket, as httplib created it (routes(): socket options)
  std::thread listener;
  std::atomic<bool> listener_done{false};
  std::mutex active_mu;
  std::set<RequestState*> active;  // requests in progress, interrupted by stop()
  bool stopping = false;           // under active_mu
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopped = false;  // stop() has finished
  std::atomic<uint64_t> next_id{1};
  // Last: destroyed first, so that its queued jobs still find everything above.
  std::unique_ptr<Worker> worker;

  void routes();
  void handle_chat(const httplib::Request& req, httplib::Response& res);
  void handle_completion(const httplib::Request& req, httplib::Response& res);
  void register_request(RequestState* st);
  void unregister_request(RequestState* st);
  std::string new_request_id(const char* prefix);
};

// Writes an OpenAI-style error body with its status.
void send_error(httplib::Response& res, const ApiError& error);
nlohmann::json usage_json(const Outcome& o);

}  // namespace sllm::server
