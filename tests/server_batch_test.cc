// The server's batched decoding over real HTTP on loopback: concurrent conversations share the
// decoding thread's steps and each still answers exactly as it would alone; a client that hangs
// up leaves the batch while the others go on unchanged.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "server_test_util.h"

namespace sllm::server_test {
namespace {

// Issue 13's acceptance size: 32 clients x 20 turns at once (8 x 5 under ASan and TSan).
constexpr size_t kClients = test::kSanitizedBuild ? 8 : 32;
constexpr size_t kTurnsPerClient = test::kSanitizedBuild ? 5 : 20;

// Enough HTTP threads for every client below at once.
std::unique_ptr<Server> start_many() {
  ServerOptions o = options();
  o.n_http_threads = kClients + 8;
  return start(std::move(o));
}

// The body of a 200 reply (null otherwise, as a failure).
json post_ok(int port, const std::string& path, const json& body) {
  const Reply r = post(port, path, body);
  EXPECT_EQ(r.status, 200) << r.body.dump();
  return r.status == 200 ? r.body : json(nullptr);
}

const std::vector<std::string> kClientTurns = {"Once upon a time there was a cat.",
                                               "What did the cat do?",
                                               "Then a big dog came to the park.",
                                               "Tell me about the sun.",
                                               "Why was Lily sad?",
                                               "The boy found a red ball.",
                                               "Where did the bird go?"};

// Shorter under ASan and TSan.
constexpr int kMaxTokens = test::kSanitizedBuild ? 12 : 24;
constexpr int kLongTokens = test::kSanitizedBuild ? 300 : 3000;

// Client c's conversation: its own seed and turns.
uint64_t seed_of(size_t c) { return 100 + c; }
std::string turn_of(size_t c, size_t t) { return kClientTurns[(c + 2 * t) % kClientTurns.size()]; }

using ServerBatchTest = ServerTest;  // SIGPIPE ignored

// kClients clients x kTurnsPerClient turns, each on its own session, at once: every request
// succeeds and every conversation's replies are those of the same conversation run alone through
// the library.
TEST_F(ServerBatchTest, ConcurrentSessionsEachEqualTheConversationAlone) {
  std::vector<std::vector<std::string>> expected(kClients);
  for (size_t c = 0; c < kClients; ++c) {
    ChatOptions o;
    o.cache = small_cache();
    o.sampling.temperature = 0.9f;
    o.sampling.seed = seed_of(c);
    auto chat = Chat::create(stories(), o);
    ASSERT_TRUE(chat.ok());
    StopOptions stop;
    stop.max_tokens = kMaxTokens;
    for (size_t t = 0; t < kTurnsPerClient; ++t) {
      auto r = (*chat)->send(turn_of(c, t), stop);
      ASSERT_TRUE(r.ok());
      expected[c].push_back(r->text);
    }
  }
  auto s = start_many();
  ASSERT_NE(s, nullptr);
  std::vector<std::vector<std::string>> got(kClients);
  std::vector<std::thread> clients;
  for (size_t c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      std::string session;
      for (size_t t = 0; t < kTurnsPerClient; ++t) {
        json body = {{"messages", {{{"role", "user"}, {"content", turn_of(c, t)}}}},
                     {"temperature", 0.9},
                     {"seed", seed_of(c)},
                     {"max_tokens", kMaxTokens}};
        if (t > 0) body["session_id"] = session;
        const json r = post_ok(s->port(), "/v1/chat/completions", body);
        if (!r.is_object() || !r.contains("choices")) return;
        session = r.at("session_id");
        got[c].push_back(r.at("choices").at(0).at("message").at("content"));
      }
    });
  }
  for (std::thread& t : clients) t.join();
  for (size_t c = 0; c < kClients; ++c) EXPECT_EQ(got[c], expected[c]) << "client " << c;
  // They did share steps.
  EXPECT_GT(metric(s->port(), "sllm_decode_batch_peak"), 1);
  EXPECT_EQ(metric(s->port(), "sllm_requests_decoding"), 0);
}

// A client that hangs up mid-stream leaves the batch (its slot is free) while another request
// generates on; that one's reply is unchanged by the departure.
TEST_F(ServerBatchTest, HangUpLeavesTheBatchAndTheOthersGoOn) {
  auto s = start_many();
  ASSERT_NE(s, nullptr);
  // The reply that keeps going, and what it is alone.
  const json long_body = {{"prompt", "Once upon a time"},
                          {"seed", 3},
                          {"max_tokens", kLongTokens},
                          {"ignore_eos", true}};
  SamplingOptions sampling;
  sampling.seed = 3;
  auto stream = Stream::create(stories(), small_cache(), sampling);
  ASSERT_TRUE(stream.ok());
  ASSERT_TRUE((*stream)->feed_text("Once upon a time", true).ok());
  StopOptions stop;
  stop.max_tokens = kLongTokens;
  stop.at_end_of_generation = false;
  auto alone = (*stream)->generate(stop);
  ASSERT_TRUE(alone.ok());

  json long_reply;
  std::thread other([&] { long_reply = post_ok(s->port(), "/v1/completions", long_body); });
  // The one that leaves: a streamed completion that would run for 16384 tokens hangs up after
  // three events.
  int n_events = 0;
  (void)post_stream(s->port(), "/v1/completions",
                    {{"prompt", "The sun"}, {"max_tokens", 16384}, {"ignore_eos", true}},
                    [&](const json&) { return ++n_events < 3; });
  double interrupted = 0;
  for (int i = 0; i < 1000 && interrupted == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    interrupted = metric(s->port(), "sllm_generations_interrupted_total");
  }
  EXPECT_EQ(interrupted, 1);
  other.join();
  ASSERT_TRUE(long_reply.is_object());
  EXPECT_EQ(long_reply.at("choices").at(0).at("text"), alone->text);
  EXPECT_LT(metric(s->port(), "sllm_completion_tokens_total"), 16384);
  EXPECT_EQ(metric(s->port(), "sllm_requests_decoding"), 0);
}

}  // namespace
}  // namespace sllm::server_test
