// `streamingllm serve` over real HTTP on loopback: the server runs in this process on a free
// port, the requests go through httplib::Client, the replies are compared with the library's
// Chat driven directly (same model, cache and seeded sampling).
#include "server_test_util.h"

namespace sllm::server_test {
namespace {

TEST_F(ServerTest, HealthModelsAndMetrics) {
  auto s = start(options());
  const Reply health = request(s->port(), "GET", "/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, json({{"status", "ok"}}));
  const Reply models = request(s->port(), "GET", "/v1/models");
  EXPECT_EQ(models.status, 200);
  EXPECT_EQ(models.body.at("data").at(0).at("id"), "stories260K");
  // One conversation's cache is printed and fixed: sinks + window tokens of K/V.
  EXPECT_EQ(s->session_cache_bytes(),
            stories()->info().kv_cache_bytes(KvType::kF32, small_cache().capacity()));
  EXPECT_EQ(metric(s->port(), "sllm_session_cache_bytes"),
            static_cast<double>(s->session_cache_bytes()));
  EXPECT_EQ(metric(s->port(), "sllm_sessions_live"), 0);
  EXPECT_EQ(post(s->port(), "/v1/chat/completions", chat_body({user(kTurns[0])})).status, 200);
  EXPECT_EQ(metric(s->port(), "sllm_sessions_live"), 1);
  EXPECT_EQ(metric(s->port(), "sllm_cache_bytes"), static_cast<double>(s->session_cache_bytes()));
  const std::string text = request(s->port(), "GET", "/metrics").body.get<std::string>();
  EXPECT_NE(text.find("sllm_requests_total{status=\"200\"} "), std::string::npos) << text;
}

TEST_F(ServerTest, StreamedChatEqualsTheNonStreamedReply) {
  auto s = start(options());
  const json body =
      chat_body({{{"role", "system"}, {"content", "You tell stories."}}, user(kTurns[0])});
  const Reply whole = post(s->port(), "/v1/chat/completions", body);
  ASSERT_EQ(whole.status, 200) << whole.body;
  const Events streamed = post_stream(s->port(), "/v1/chat/completions", body);
  EXPECT_EQ(streamed.status, 200);
  EXPECT_TRUE(streamed.done);
  ASSERT_GE(streamed.events.size(), 3u);
  EXPECT_EQ(streamed.events.front().at("choices").at(0).at("delta").at("role"), "assistant");
  EXPECT_EQ(streamed.events.front().at("object"), "chat.completion.chunk");
  const std::string text = whole.body.at("choices").at(0).at("message").at("content");
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(streamed_text(streamed, "delta"), text);
  const json& last = streamed.events.back();
  EXPECT_EQ(last.at("choices").at(0).at("finish_reason"),
            whole.body.at("choices").at(0).at("finish_reason"));
  EXPECT_EQ(last.at("usage"), whole.body.at("usage"));
  EXPECT_EQ(whole.body.at("usage").at("completion_tokens"), kMaxTokens);  // stories run long

  // The same reply as the library's chat gives.
  ChatOptions ref = reference_options();
  ref.system = "You tell stories.";
  auto chat = Chat::create(stories(), ref);
  ASSERT_TRUE(chat.ok());
  auto reply = (*chat)->send(kTurns[0], reference_stop());
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->text, text);
}

TEST_F(ServerTest, StreamedCompletionEqualsTheNonStreamedOne) {
  auto s = start(options());
  const json body = {{"prompt", "Once upon a time"}, {"seed", 5}, {"max_tokens", 30}};
  const Reply whole = post(s->port(), "/v1/completions", body);
  ASSERT_EQ(whole.status, 200) << whole.body;
  const Events streamed = post_stream(s->port(), "/v1/completions", body);
  EXPECT_TRUE(streamed.done);
  EXPECT_EQ(streamed_text(streamed, "text"), whole.body.at("choices").at(0).at("text"));
  EXPECT_EQ(streamed.events.back().at("usage"), whole.body.at("usage"));

  SamplingOptions sampling;
  sampling.seed = 5;
  auto stream = Stream::create(stories(), small_cache(), sampling);
  ASSERT_TRUE(stream.ok());
  ASSERT_TRUE((*stream)->feed_text("Once upon a time", true).ok());
  StopOptions stop;
  stop.max_tokens = 30;
  auto g = (*stream)->generate(stop);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(whole.body.at("choices").at(0).at("text"), g->text);
  EXPECT_EQ(whole.body.at("usage").at("prompt_tokens"), (*stream)->n_seen() - g->n_tokens);
}

// A session: the client sends only the new message; the replies are those of one chat that was
// never interrupted, turn by turn (far past the 64-token cache).
TEST_F(ServerTest, SessionContinuesAsOneUninterruptedChat) {
  auto s = start(options());
  auto chat = Chat::create(stories(), reference_options());
  ASSERT_TRUE(chat.ok());
  std::string session_id;
  for (size_t t = 0; t < kTurns.size(); ++t) {
    json body = chat_body({user(kTurns[t])});
    httplib::Headers headers;
    if (t == 2) {
      headers.emplace("X-Session-Id", session_id);  // the header works as the field does
    } else if (t > 0) {
      body["session_id"] = session_id;
    }
    const uint64_t seen_before = (*chat)->n_seen();
    auto expected = (*chat)->send(kTurns[t], reference_stop());
    ASSERT_TRUE(expected.ok());
    const Reply r = post(s->port(), "/v1/chat/completions", body, headers);
    ASSERT_EQ(r.status, 200) << r.body;
    if (t == 0) session_id = r.body.at("session_id");
    EXPECT_EQ(r.body.at("session_id"), session_id);
    EXPECT_EQ(r.body.at("choices").at(0).at("message").at("content"), expected->text) << t;
    const json& usage = r.body.at("usage");
    EXPECT_EQ(usage.at("completion_tokens"), expected->n_tokens);
    EXPECT_EQ(usage.at("prompt_tokens_details").at("cached_tokens"), seen_before);
    EXPECT_EQ(fed_tokens(usage), expected->prompt_tokens.size());
  }
  EXPECT_GT((*chat)->n_seen(), small_cache().capacity());
}

// Without a session id, a client that resends the whole history gets the conversation that
// history belongs to: only the new turn is fed, and the reply is the one a fresh conversation
// fed the whole history would give (its draw restarts from the request's seed).
TEST_F(ServerTest, ResentHistoryFeedsOnlyTheNewTurn) {
  auto s = start(options());
  const Reply first = post(s->port(), "/v1/chat/completions", chat_body({user(kTurns[0])}));
  ASSERT_EQ(first.status, 200);
  const std::string a1 = first.body.at("choices").at(0).at("message").at("content");
  const uint64_t seen = first.body.at("usage").at("total_tokens");

  const Reply second = post(s->port(), "/v1/chat/completions",
                            chat_body({user(kTurns[0]), assistant(a1), user(kTurns[1])}));
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(second.body.at("session_id"), first.body.at("session_id"));
  EXPECT_EQ(second.body.at("usage").at("prompt_tokens_details").at("cached_tokens"), seen);

  auto chat = Chat::create(stories(), reference_options());
  ASSERT_TRUE(chat.ok());
  ASSERT_TRUE((*chat)->send(kTurns[0], reference_stop()).ok());
  ASSERT_TRUE((*chat)->set_sampling(reference_options().sampling).ok());
  auto expected = (*chat)->send(kTurns[1], reference_stop());
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(fed_tokens(second.body.at("usage")), expected->prompt_tokens.size());
  EXPECT_LT(fed_tokens(second.body.at("usage")), 20u);  // the new turn only
  EXPECT_EQ(second.body.at("choices").at(0).at("message").at("content"), expected->text);
  EXPECT_EQ(metric(s->port(), "sllm_prompt_tokens_cached_total"), static_cast<double>(seen));

  // A history the server does not hold (the reply edited) starts a fresh conversation.
  const Reply edited = post(s->port(), "/v1/chat/completions",
                            chat_body({user(kTurns[0]), assistant(a1 + "!"), user(kTurns[1])}));
  ASSERT_EQ(edited.status, 200);
  EXPECT_NE(edited.body.at("session_id"), first.body.at("session_id"));
  EXPECT_EQ(edited.body.at("usage").at("prompt_tokens_details").at("cached_tokens"), 0);
}

// A history several times the cache is streamed through a fresh conversation, never refused.
TEST_F(ServerTest, HistoryLongerThanTheCacheIsStreamedThrough) {
  auto s = start(options());
  json messages = json::array();
  messages.push_back({{"role", "system"}, {"content", "Short stories only."}});
  ChatOptions ref = reference_options();
  ref.system = "Short stories only.";
  auto chat = Chat::create(stories(), ref);
  ASSERT_TRUE(chat.ok());
  uint64_t fed = 0;
  for (size_t t = 0; t + 1 < kTurns.size(); ++t) {
    const std::string answer = "The " + std::to_string(t) + " little birds sang a song all day.";
    messages.push_back(user(kTurns[t]));
    messages.push_back(assistant(answer));
    auto n = (*chat)->add_turn(kTurns[t], answer);
    ASSERT_TRUE(n.ok());
    fed += *n;
  }
  messages.push_back(user(kTurns.back()));
  auto expected = (*chat)->send(kTurns.back(), reference_stop());
  ASSERT_TRUE(expected.ok());
  fed += expected->prompt_tokens.size();
  ASSERT_GT(fed, 2 * small_cache().capacity());

  const Reply r = post(s->port(), "/v1/chat/completions", chat_body(messages));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.at("usage").at("prompt_tokens"), fed);
  EXPECT_EQ(r.body.at("usage").at("prompt_tokens_details").at("cached_tokens"), 0);
  EXPECT_EQ(r.body.at("choices").at(0).at("message").at("content"), expected->text);
}

TEST_F(ServerTest, BadInputGetsAnOpenAiErrorAndTheServerGoesOn) {
  auto s = start(options());
  const json ok_messages = json::array({user("Hi")});
  struct Case {
    std::string body;
    int status;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"{\"messages\": [", 400,
       "the request body is not valid JSON: [json.exception.parse_error.101] parse error at line "
       "1, column 15: syntax error while parsing value - unexpected end of input; expected '[', "
       "'{', or a literal"},
      {"[1]", 400, "the request body must be a JSON object, got array"},
      {"{\"messages\": \"hi\"}", 400, "messages must be an array, got string"},
      {"{}", 400, "messages is required"},
      {"{\"messages\": []}", 400, "messages must not be empty"},
      {R"({"messages": [{"role": "tool", "content": "x"}]})", 400,
       "messages[0].role: unknown role 'tool' (expected system, developer, user or assistant)"},
      {R"({"messages": [{"role": "user", "content": 5}]})", 400,
       "messages[0].content must be a string or an array of text parts, got number"},
      {R"({"messages": [{"role": "user", "content": "a\u00e9b"}], "temperature": "hot"})", 400,
       "temperature must be a number, got string"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\xff\"}]}", 400,
       "the request body is not valid UTF-8 (byte 44)"},
      {R"({"messages": [{"role": "user", "content": "\udc00"}]})", 400,
       "the request body is not valid JSON: [json.exception.parse_error.101] parse error at line "
       "1, column 49: syntax error while parsing value - invalid string: surrogate U+DC00..U+DFFF "
       "must follow U+D800..U+DBFF; last read: '\"\\udc00'"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1000000000})", 400,
       "max_tokens must be an integer from 1 to 16384, got 1000000000"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0})", 400,
       "max_tokens must be an integer from 1 to 16384, got 0"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_p": 0})", 400,
       "top_p must be a number in (0, 1], got 0"},
      {R"({"messages": [{"role": "user", "content": "x"}], "stop": [""]})", 400,
       "stop strings must not be empty"},
      {R"({"messages": [{"role": "assistant", "content": "x"}]})", 400,
       "messages[0] has role assistant, expected user (an optional system message first, then "
       "user and assistant messages alternating, the last one from the user)"},
      {R"({"messages": [{"role": "user", "content": "x"}], "session_id": "no-such"})", 404,
       "unknown session id 'no-such'"},
      {R"({"messages": [{"role": "user", "content": "x"}], "session_id": "../etc"})", 400,
       "session_id must be 1 to 64 letters, digits, '-' or '_'"},
      {"{\"messages\": [{\"role\": \"user\", \"content\": \"" + std::string(70000, 'a') + "\"}]}",
       413, "the request body is larger than this server's limit of 65536 bytes"},
  };
  for (const Case& c : cases) {
    const Reply r = request(s->port(), "POST", "/v1/chat/completions", c.body);
    EXPECT_EQ(r.status, c.status) << c.body.substr(0, 80);
    ASSERT_TRUE(r.body.is_object()) << r.body;
    EXPECT_EQ(r.body.at("error").at("message"), c.message) << c.body.substr(0, 80);
    EXPECT_TRUE(r.body.at("error").at("type").is_string());
  }
  const Reply prompt = post(s->port(), "/v1/completions", {{"prompt", 3}});
  EXPECT_EQ(prompt.status, 400);
  EXPECT_EQ(prompt.body.at("error").at("message"),
            "prompt must be a string (or an array of one string), got number");
  const Reply nowhere = request(s->port(), "GET", "/v2/nothing");
  EXPECT_EQ(nowhere.status, 404);
  EXPECT_EQ(nowhere.body.at("error").at("message"), "no endpoint GET /v2/nothing");

  EXPECT_EQ(request(s->port(), "GET", "/health").status, 200);
  const Reply fine = post(s->port(), "/v1/chat/completions", chat_body(ok_messages));
  EXPECT_EQ(fine.status, 200) << fine.body;
}

// A second request on a busy session gets 409; the first one's client hangs up mid-stream and
// the session takes requests again (HangingUpStopsTheGeneration shows the reply stopping).
TEST_F(ServerTest, BusySessionGets409AndAClientThatLeavesStopsItsReply) {
  ServerOptions o = options();
  o.max_sessions = 1;
  auto s = start(o);
  const Reply first = post(s->port(), "/v1/chat/completions", chat_body({user(kTurns[0])}));
  ASSERT_EQ(first.status, 200);
  const std::string id = first.body.at("session_id");
  json body = chat_body({user(kTurns[1])});
  body["session_id"] = id;
  body["max_tokens"] = 16384;
  Reply busy, no_room;
  const Events e = post_stream(s->port(), "/v1/chat/completions", body, [&](const json& ev) {
    if (ev.at("choices").at(0).at("delta").value("content", "").empty()) return true;
    busy = post(s->port(), "/v1/chat/completions", body);
    // The one session slot is taken: a new conversation has no room.
    no_room = post(s->port(), "/v1/chat/completions", chat_body({user(kTurns[2])}));
    return false;  // hang up
  });
  EXPECT_FALSE(e.done);
  EXPECT_EQ(busy.status, 409);
  EXPECT_EQ(busy.body.at("error").at("message"),
            "session '" + id + "' is busy with another request; send the next one when it is done");
  EXPECT_EQ(no_room.status, 429);
  EXPECT_EQ(no_room.body.at("error").at("message"),
            "all 1 sessions are busy (--max-sessions); retry after the Retry-After seconds");
  auto retry = no_room.headers.find("Retry-After");
  ASSERT_NE(retry, no_room.headers.end());
  EXPECT_EQ(retry->second, "1");

  // The session is released once the server noticed; never stuck.
  Reply again;
  body["max_tokens"] = 4;
  for (int i = 0; i < 500; ++i) {
    again = post(s->port(), "/v1/chat/completions", body);
    if (again.status != 409) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(again.status, 200) << again.body;
}

// A client that hangs up stops a generation that would otherwise run for 16384 tokens.
TEST_F(ServerTest, HangingUpStopsTheGeneration) {
  auto s = start(options());
  const json body = {{"prompt", "Once upon a time"}, {"max_tokens", 16384}, {"ignore_eos", true}};
  int n_events = 0;
  const Events e =
      post_stream(s->port(), "/v1/completions", body, [&](const json&) { return ++n_events < 3; });
  EXPECT_FALSE(e.done);
  double interrupted = 0;
  for (int i = 0; i < 500 && interrupted == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    interrupted = metric(s->port(), "sllm_generations_interrupted_total");
  }
  EXPECT_EQ(interrupted, 1);
  EXPECT_LT(metric(s->port(), "sllm_completion_tokens_total"), 16384);
  EXPECT_EQ(request(s->port(), "GET", "/health").status, 200);
}

// With --session-dir a conversation outlives the server: a new server on the directory continues
// it exactly, and an evicted one comes back from disk exactly too.
TEST_F(ServerTest, SessionsResumeExactlyAfterARestartAndAnEviction) {
  const std::string dir = testing::TempDir() + "server_test_sessions";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  ServerOptions o = options();
  o.session_dir = dir;
  o.max_sessions = 1;
  auto chat = Chat::create(stories(), reference_options());
  ASSERT_TRUE(chat.ok());
  std::vector<std::string> expected;
  for (const std::string& turn : kTurns) {
    auto reply = (*chat)->send(turn, reference_stop());
    ASSERT_TRUE(reply.ok());
    expected.push_back(reply->text);
  }
  std::string id;
  {
    auto s = start(o);
    for (size_t t = 0; t < 2; ++t) {
      json body = chat_body({user(kTurns[t])});
      if (t > 0) body["session_id"] = id;
      const Reply r = post(s->port(), "/v1/chat/completions", body);
      ASSERT_EQ(r.status, 200) << r.body;
      id = r.body.at("session_id");
      EXPECT_EQ(r.body.at("choices").at(0).at("message").at("content"), expected[t]);
    }
  }
  auto s = start(o);
  EXPECT_EQ(s->n_sessions_on_disk(), 1u);
  json body = chat_body({user(kTurns[2])});
  body["session_id"] = id;
  Reply r = post(s->port(), "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.at("choices").at(0).at("message").at("content"), expected[2]);

  // Another conversation takes the one slot; the first comes back from disk, exactly.
  const Reply other = post(s->port(), "/v1/chat/completions", chat_body({user("Hello")}));
  ASSERT_EQ(other.status, 200);
  EXPECT_NE(other.body.at("session_id"), id);
  EXPECT_EQ(metric(s->port(), "sllm_sessions_live"), 1);
  EXPECT_EQ(metric(s->port(), "sllm_sessions_on_disk"), 2);
  body = chat_body({user(kTurns[3])});
  body["session_id"] = id;
  r = post(s->port(), "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.at("choices").at(0).at("message").at("content"), expected[3]);
  std::filesystem::remove_all(dir);
}

// Without a directory an evicted conversation is gone: its id is unknown.
TEST_F(ServerTest, EvictedSessionWithoutADirectoryIsUnknown) {
  ServerOptions o = options();
  o.max_sessions = 1;
  auto s = start(o);
  const Reply a = post(s->port(), "/v1/chat/completions", chat_body({user(kTurns[0])}));
  ASSERT_EQ(a.status, 200);
  ASSERT_EQ(post(s->port(), "/v1/chat/completions", chat_body({user(kTurns[1])})).status, 200);
  json body = chat_body({user(kTurns[2])});
  body["session_id"] = a.body.at("session_id");
  const Reply r = post(s->port(), "/v1/chat/completions", body);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body.at("error").at("code"), "session_not_found");
}

TEST_F(ServerTest, APortInUseIsAnError) {
  auto s = start(options());
  ServerOptions o = options();
  o.port = s->port();
  auto second = Server::create(stories(), o);
  ASSERT_TRUE(second.ok());
  const Status started = (*second)->start();
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.error().message(), "cannot bind to 127.0.0.1:" + std::to_string(s->port()) +
                                           " (in use, or not an address of this machine)");
  EXPECT_EQ(request(s->port(), "GET", "/health").status, 200);
}

TEST_F(ServerTest, ApiKeyIsRequiredEverywhereButHealth) {
  ServerOptions o = options();
  o.api_key = "s3cret";
  auto s = start(o);
  const Reply none = request(s->port(), "GET", "/v1/models");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.body.at("error").at("message"),
            "missing API key: send the header 'Authorization: Bearer KEY'");
  EXPECT_EQ(none.body.at("error").at("code"), "invalid_api_key");
  const Reply wrong = post(s->port(), "/v1/chat/completions", chat_body({user("Hi")}),
                           {{"Authorization", "Bearer nope"}});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.body.at("error").at("message"), "invalid API key");
  EXPECT_EQ(request(s->port(), "GET", "/metrics").status, 401);
  EXPECT_EQ(request(s->port(), "GET", "/health").status, 200);
  const Reply right = post(s->port(), "/v1/chat/completions", chat_body({user("Hi")}),
                           {{"Authorization", "Bearer s3cret"}});
  EXPECT_EQ(right.status, 200) << right.body;
}

// The `serve` subcommand itself: it prints its address and the cache bytes of one session,
// serves, writes each conversation to --session-dir, and on SIGTERM finishes and exits 0.
TEST_F(ServerTest, ServeCommandStopsCleanlyOnSigterm) {
  const std::string dir = fresh_dir("server_test_cli");
  ServeProcess serve(dir, dir + "/stderr.txt");
  size_t session_bytes = 0;
  const int port = serve.port(&session_bytes);
  ASSERT_GT(port, 0) << serve.log();
  EXPECT_EQ(session_bytes, stories()->info().kv_cache_bytes(KvType::kF32, 64));
  EXPECT_EQ(request(port, "GET", "/health").status, 200);
  const Reply r = post(port, "/v1/chat/completions", chat_body({user(kTurns[0])}));
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string id = r.body.at("session_id");
  EXPECT_TRUE(std::filesystem::exists(dir + "/" + id + ".session"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/serve.lock"));
  const int status = serve.stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << serve.log();
  const std::string text = serve.log();
  EXPECT_NE(text.find("POST /v1/chat/completions 200\n"), std::string::npos) << text;
  // The access log line of a request is written once its reply is sent, so it may come after
  // the SIGTERM line; what must hold is SIGTERM before "stopped", and "stopped" last.
  const size_t sigterm =
      text.find("streamingllm serve: SIGTERM, finishing the requests in progress\n");
  const std::string stopped = "streamingllm serve: stopped\n";
  EXPECT_NE(sigterm, std::string::npos) << text;
  ASSERT_GE(text.size(), stopped.size()) << text;
  EXPECT_EQ(text.substr(text.size() - stopped.size()), stopped) << text;
  EXPECT_LT(sigterm, text.size() - stopped.size()) << text;
  EXPECT_FALSE(std::filesystem::exists(dir + "/serve.lock"));  // the directory is free again
  std::filesystem::remove_all(dir);
}

// Acceptance 4: killed with SIGKILL after turn 10 (each turn is on disk when its reply is), a
// new server on the directory continues turn 11 exactly as the uninterrupted chat does.
TEST_F(ServerTest, ServeCommandKilledResumesExactly) {
  constexpr size_t kKilledAfter = 10;
  auto turn = [](size_t t) { return kTurns[t % kTurns.size()]; };
  auto chat = Chat::create(stories(), reference_options());
  ASSERT_TRUE(chat.ok());
  std::vector<std::string> expected;
  for (size_t t = 0; t <= kKilledAfter; ++t) {
    auto reply = (*chat)->send(turn(t), reference_stop());
    ASSERT_TRUE(reply.ok());
    expected.push_back(reply->text);
  }
  const std::string dir = fresh_dir("server_test_kill");
  std::string id;
  {
    ServeProcess serve(dir, dir + "/stderr1.txt");
    const int port = serve.port();
    ASSERT_GT(port, 0) << serve.log();
    for (size_t t = 0; t < kKilledAfter; ++t) {
      json body = chat_body({user(turn(t))});
      if (t > 0) body["session_id"] = id;
      const Reply r = post(port, "/v1/chat/completions", body);
      ASSERT_EQ(r.status, 200) << r.body;
      id = r.body.at("session_id");
      EXPECT_EQ(r.body.at("choices").at(0).at("message").at("content"), expected[t]);
    }
    const int status = serve.stop(SIGKILL);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  }
  ServeProcess serve(dir, dir + "/stderr2.txt");
  const int port = serve.port();
  ASSERT_GT(port, 0) << serve.log();  // the dead server's lock does not hold the directory
  EXPECT_NE(serve.log().find("(1 on disk)"), std::string::npos) << serve.log();
  json body = chat_body({user(turn(kKilledAfter))});
  body["session_id"] = id;
  const Reply r = post(port, "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.at("choices").at(0).at("message").at("content"), expected[kKilledAfter]);
  serve.stop(SIGTERM);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sllm::server_test
