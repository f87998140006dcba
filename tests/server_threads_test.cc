// The server under concurrency (issue 14, for ThreadSanitizer; label `threads`): a model whose
// pool has two threads, more conversations than may be live (so they spill to the session
// directory and come back), clients that hang up mid-stream, and a client that reads /metrics
// and every session's state all along. Every conversation must still answer exactly as the
// library's Chat alone; under the `tsan` preset any unsynchronised access is a report.
#include <atomic>
#include <mutex>

#include "conversations.h"
#include "server_test_util.h"

namespace sllm::server_test {
namespace {

class ServerThreadsTest : public ServerTest {};

std::shared_ptr<const Model> two_thread_stories() { return test::stories_model(2); }

std::vector<std::string> turns_of(size_t client) {
  std::vector<std::string> t;
  for (size_t k = 0; k < 3; ++k) t.push_back(kTurns[(client + k) % kTurns.size()]);
  return t;
}

// A turn on session `id` ("" = a new one), retried while the server answers 429 (no room: the
// other clients hold every live session) or 409.
Reply turn(int port, const std::string& id, const std::string& text) {
  json body = chat_body({user(text)});
  if (!id.empty()) body["session_id"] = id;
  Reply r;
  for (int attempt = 0; attempt < 3000; ++attempt) {
    r = post(port, "/v1/chat/completions", body);
    if (r.status != 429 && r.status != 409) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return r;
}

TEST_F(ServerThreadsTest, SpillingSessionsHangUpsAndMetricsAtOnceEachEqualAlone) {
  ASSERT_NE(two_thread_stories(), nullptr);
  constexpr size_t kClients = 4;
  std::vector<std::vector<std::string>> expected;
  for (size_t c = 0; c < kClients; ++c)
    expected.push_back(reference_replies(two_thread_stories(), turns_of(c)));

  const std::string dir = fresh_dir("server_threads");
  ServerOptions o = options();
  o.session_dir = dir;
  o.max_sessions = 2;  // fewer than the clients: sessions spill and come back
  o.n_http_threads = 12;
  auto created = Server::create(two_thread_stories(), o);
  ASSERT_TRUE(created.ok()) << created.error().message();
  std::unique_ptr<Server> s = std::move(*created);
  ASSERT_TRUE(s->start().ok());
  const int port = s->port();

  std::mutex ids_mu;
  std::vector<std::string> ids;  // for the watcher
  std::atomic<bool> clients_done{false};
  std::vector<std::vector<std::string>> got(kClients);
  std::vector<std::thread> threads;
  for (size_t c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      std::string id;
      for (const std::string& text : turns_of(c)) {
        const Reply r = turn(port, id, text);
        ASSERT_EQ(r.status, 200) << r.body;
        if (id.empty()) {
          id = r.body.at("session_id");
          std::lock_guard<std::mutex> lock(ids_mu);
          ids.push_back(id);
        }
        got[c].push_back(r.body.at("choices").at(0).at("message").at("content"));
      }
    });
  }
  // Streamed completions that hang up after two events: their members leave the batch while the
  // conversations above go on.
  std::atomic<int> n_hung_up{0};
  threads.emplace_back([&] {
    while (!clients_done) {
      json body = {{"prompt", "Once upon a time"}, {"max_tokens", 4096}, {"ignore_eos", true}};
      const Events e = post_stream(port, "/v1/completions", body,
                                   [&](const json&) { return false; });  // after the first
      if (e.status == 200) ++n_hung_up;
    }
  });
  // The watcher: the metrics and every session's state, read while the requests change them.
  std::atomic<int> n_watched{0};
  threads.emplace_back([&] {
    while (!clients_done) {
      EXPECT_GE(metric(port, "sllm_sessions_live"), 0);
      std::vector<std::string> now;
      {
        std::lock_guard<std::mutex> lock(ids_mu);
        now = ids;
      }
      for (const std::string& id : now) {
        const Reply r = request(port, "GET", "/v1/sessions/" + id);
        EXPECT_EQ(r.status, 200) << r.body;
      }
      ++n_watched;
    }
  });
  for (size_t c = 0; c < kClients; ++c) threads[c].join();
  clients_done = true;
  for (size_t t = kClients; t < threads.size(); ++t) threads[t].join();

  for (size_t c = 0; c < kClients; ++c) EXPECT_EQ(got[c], expected[c]) << "client " << c;
  EXPECT_GT(n_hung_up.load(), 0);
  EXPECT_GT(n_watched.load(), 0);
  EXPECT_EQ(metric(port, "sllm_sessions_on_disk"), static_cast<double>(kClients));
  EXPECT_LE(metric(port, "sllm_sessions_live"), 2);
  s.reset();
  std::filesystem::remove_all(dir);
}

// A conversation's state read by GET /v1/sessions/{id} and /metrics (info(), n_on_disk(), under
// the store's lock) while the request that holds it is released (written to the directory)
// on another thread. The only synchronisation between the two threads is the store's lock, so
// under TSan any field that release() writes outside it is a report. (Found by reading:
// release() set `on_disk` before taking the lock. Through the HTTP server the two threads also
// meet on other locks - the decoding thread's queue, the metrics - which hide it from TSan.)
TEST(ConversationStoreThreads, StateReadsDuringAReleaseOnAnotherThread) {
  const std::string dir = fresh_dir("store_threads");
  server::ConversationStore::Options options;
  options.model = two_thread_stories();
  options.chat = reference_options();
  options.max_live = 2;
  options.dir = dir;
  auto store = server::ConversationStore::open(options);
  ASSERT_TRUE(store.ok()) << store.error().message();
  server::Acquired a = (*store)->create("", reference_options().sampling);
  ASSERT_TRUE(std::holds_alternative<std::shared_ptr<server::Conversation>>(a));
  const auto conv = std::get<std::shared_ptr<server::Conversation>>(a);
  ASSERT_TRUE(conv->chat->send(kTurns[0], reference_stop()).ok());

  // The reader reads until it sees the conversation on disk; it and the releasing thread share
  // nothing but the store: n_reads is relaxed, which orders nothing (for TSan either).
  std::atomic<size_t> n_reads{0};
  bool seen_on_disk = false;
  std::thread reader([&] {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!seen_on_disk && std::chrono::steady_clock::now() < until) {
      const std::optional<server::ConversationInfo> info = (*store)->info(conv->id);
      if (info && info->on_disk) {
        EXPECT_FALSE(info->busy);
        EXPECT_EQ((*store)->n_on_disk(), 1u);
        seen_on_disk = true;
      }
      n_reads.fetch_add(1, std::memory_order_relaxed);
    }
  });
  // Released once the reader has read it busy a few times.
  while (n_reads.load(std::memory_order_relaxed) < 3) std::this_thread::yield();
  const Status released = (*store)->release(conv, /*drop=*/false);
  reader.join();
  ASSERT_TRUE(released.ok()) << released.error().message();
  EXPECT_TRUE(seen_on_disk);
  EXPECT_GT(n_reads.load(), 3u);
  EXPECT_TRUE(std::filesystem::exists(dir + "/" + conv->id + ".session"));
  store->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sllm::server_test
