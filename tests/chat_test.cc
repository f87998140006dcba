// Streaming multi-round chat (issue 5) on the real stories260K model: the conversation driver,
// session files and the `chat` command in batch mode. The terminal mode is in chat_tty_test.cc.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "chat/prompt_file.h"
#include "cli_runner.h"
#include "engine_fixture.h"
#include "runtime/chat_session.h"
#include "runtime/session_file.h"
#include "stories_golden.h"

namespace sllm {
namespace {

using test::stories;

ChatOptions chat_options(size_t n_sinks, size_t window, float temperature, uint64_t seed) {
  ChatOptions o;
  o.template_name = "plain";
  o.cache.n_sinks = n_sinks;
  o.cache.window = window;
  o.sampling.temperature = temperature;
  o.sampling.seed = seed;
  return o;
}

std::unique_ptr<ChatSession> make_chat(const ChatOptions& options, ThreadPool& pool) {
  auto chat = ChatSession::create(stories().model, *stories().tokenizer, options, pool);
  if (!chat.ok()) throw std::runtime_error(chat.error().message());
  return std::move(chat).value();
}

ChatReply send(ChatSession& chat, const std::string& text, int64_t max_tokens,
               std::vector<std::string> stops = {}, std::string* shown = nullptr) {
  StopOptions options;
  options.max_tokens = max_tokens;
  options.stop_strings = std::move(stops);
  auto reply = chat.send(text, options, [&](std::string_view piece) {
    if (shown != nullptr) shown->append(piece);
  });
  if (!reply.ok()) throw std::runtime_error(reply.error().message());
  return std::move(reply).value();
}

std::vector<TokenId> encode(const std::string& text, bool add_bos) {
  auto ids = stories().tokenizer->encode(text, add_bos, true);
  if (!ids.ok()) throw std::runtime_error(ids.error().message());
  return std::move(ids).value();
}

const std::vector<std::string>& mt_bench_turns() {
  static const std::vector<std::string> turns = [] {
    auto t = read_prompt_turns(test::shared_path("data/chat/mt_bench_questions.jsonl"));
    if (!t.ok()) throw std::runtime_error(t.error().message());
    return std::move(t).value();
  }();
  return turns;
}

// A base model under the plain template continues the user's text: from "Once upon a time" the
// greedy reply is llama2.c's known-good story.
TEST(ChatSessionTest, PlainTemplateContinuesTheKnownGoodStory) {
  ThreadPool pool(2);
  auto chat = make_chat(chat_options(4, 1020, 0.0f, 1), pool);
  const ChatReply reply = send(*chat, "Once upon a time", 100);
  const std::vector<TokenId> bos_once_upon_a_time = {1, 403, 407, 261, 378};
  EXPECT_EQ(reply.prompt_tokens, bos_once_upon_a_time);
  ASSERT_EQ(reply.tokens.size(), 100u);
  EXPECT_EQ(reply.stop, StopReason::kMaxTokens);
  EXPECT_TRUE(std::equal(test::kStoriesFirstGreedyIds.begin() + 4,
                         test::kStoriesFirstGreedyIds.end(), reply.tokens.begin()));
  const std::string golden_rest = std::string(test::kStoriesGreedyText).substr(16);
  EXPECT_GT(reply.text.size(), 200u);
  EXPECT_EQ(golden_rest.substr(0, reply.text.size()), reply.text);
}

// Acceptance 2: one user turn of five windows is answered, with the tokens of feeding the same
// tokens one by one.
TEST(ChatSessionTest, TurnOfFiveWindowsIsAnsweredAsIfFedOneByOne) {
  constexpr size_t kWindow = 32;
  constexpr int64_t kReply = 32;
  auto text = read_file(test::shared_path("data/text/tinystories_val_head.txt"));
  ASSERT_TRUE(text.ok());
  const std::string turn = text->substr(0, 700);  // about 180 tokens
  const std::string turn2 = "One day";
  ThreadPool pool(2);

  ChatOptions options = chat_options(4, kWindow, 0.8f, 7);
  options.cache.max_batch = 64;
  auto chunked = make_chat(options, pool);
  const size_t cache_bytes = chunked->session().cache_bytes();
  const ChatReply r1 = send(*chunked, turn, kReply);
  const ChatReply r2 = send(*chunked, turn2, kReply);
  ASSERT_GE(r1.prompt_tokens.size(), 5 * kWindow);
  EXPECT_EQ(r1.tokens.size(), static_cast<size_t>(kReply));
  EXPECT_EQ(chunked->session().cache_bytes(), cache_bytes);
  EXPECT_EQ(chunked->session().n_seen(), r1.prompt_tokens.size() + r1.tokens.size() +
                                             r2.prompt_tokens.size() + r2.tokens.size());

  // The same chat with one token per forward pass.
  options.cache.max_batch = 1;
  auto one_by_one = make_chat(options, pool);
  EXPECT_EQ(send(*one_by_one, turn, kReply).tokens, r1.tokens);
  EXPECT_EQ(send(*one_by_one, turn2, kReply).tokens, r2.tokens);

  // And without the chat driver: a bare session fed BOS + the text token by token, sampled by
  // hand with the same sampler options.
  ASSERT_EQ(r1.prompt_tokens, encode(turn, true));
  options.cache.max_batch = 1;
  auto session = test::make_session(options.cache, pool);
  Sampler sampler(options.sampling, stories().model.config().n_vocab);
  std::vector<TokenId> expected;
  auto feed = [&](TokenId t) {
    const TokenId one[1] = {t};
    ASSERT_TRUE(session->feed(one).ok());
  };
  for (TokenId t : r1.prompt_tokens) {
    feed(t);
    sampler.accept(t);
  }
  std::vector<float> logits(stories().model.config().n_vocab);
  while (expected.size() < static_cast<size_t>(kReply)) {
    std::copy(session->last_logits().begin(), session->last_logits().end(), logits.begin());
    const TokenId next = sampler.sample(logits);
    sampler.accept(next);
    ASSERT_GT(next, 2) << "the reference run met a stop token; pick another seed";
    feed(next);
    expected.push_back(next);
  }
  EXPECT_EQ(r1.tokens, expected);
}

TEST(ChatSessionTest, StopStringEndsTheReplyAndIsNeverShown) {
  ThreadPool pool(1);
  const ChatOptions options = chat_options(4, 256, 0.0f, 1);
  std::string shown;
  auto chat = make_chat(options, pool);
  const ChatReply reply = send(*chat, "Once upon a time", 100, {"park", "girl"}, &shown);
  EXPECT_EQ(reply.stop, StopReason::kStopString);
  EXPECT_EQ(reply.text, ", there was a little ");  // "girl" comes before "park"
  EXPECT_EQ(shown, reply.text);

  // A stop string that never comes holds nothing back in the end.
  shown.clear();
  auto plain = make_chat(options, pool);
  auto held = make_chat(options, pool);
  const ChatReply without = send(*plain, "Once upon a time", 60);
  const ChatReply with = send(*held, "Once upon a time", 60, {"Lily's cat"}, &shown);
  EXPECT_EQ(with.stop, StopReason::kMaxTokens);
  EXPECT_EQ(with.text, without.text);
  EXPECT_EQ(shown, without.text);

  StopOptions empty_stop;
  empty_stop.stop_strings = {""};
  auto bad = chat->send("x", empty_stop, [](std::string_view) {});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "a stop string must not be empty");
}

TEST(ChatSessionTest, MaxTokensAndInterruptKeepTheConversation) {
  ThreadPool pool(1);
  auto chat = make_chat(chat_options(4, 256, 0.8f, 3), pool);
  EXPECT_EQ(send(*chat, "Once upon a time", 7).tokens.size(), 7u);
  EXPECT_EQ(send(*chat, "The cat", 0).tokens.size(), 0u);

  std::atomic<bool> interrupt{true};
  StopOptions options;
  options.interrupt = &interrupt;
  const uint64_t n_seen = chat->session().n_seen();
  auto reply = chat->send("The dog", options, [](std::string_view) {});
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->stop, StopReason::kInterrupted);
  EXPECT_TRUE(reply->tokens.empty());
  // The turn itself was fed; the conversation goes on.
  EXPECT_EQ(chat->session().n_seen(), n_seen + reply->prompt_tokens.size());
  EXPECT_EQ(send(*chat, "They played", 5).tokens.size(), 5u);
  EXPECT_EQ(chat->n_turns(), 4u);
}

// Issue 8, repro 6: a refused turn (invalid UTF-8, a turn too long for dense attention) changes
// nothing: the next turn gets the reply it would have had without it.
TEST(ChatSessionTest, RefusedTurnLeavesTheChatUnchanged) {
  ThreadPool pool(1);
  auto chat = make_chat(chat_options(4, 256, 0.8f, 3), pool);
  auto clean = make_chat(chat_options(4, 256, 0.8f, 3), pool);
  send(*chat, "Once upon a time", 6);
  send(*clean, "Once upon a time", 6);
  const uint64_t n_seen = chat->session().n_seen(), n_turns = chat->n_turns();
  const std::string pending = chat->pending();

  EXPECT_FALSE(chat->check_turn("ok \xc3\x28").ok());
  auto bad = chat->send("ok \xc3\x28", StopOptions{}, [](std::string_view) {});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message().rfind("invalid UTF-8 at byte", 0), 0u) << bad.error().message();
  EXPECT_EQ(chat->session().n_seen(), n_seen);
  EXPECT_EQ(chat->n_turns(), n_turns);
  EXPECT_EQ(chat->pending(), pending);
  EXPECT_EQ(send(*chat, "The dog", 8).text, send(*clean, "The dog", 8).text);

  ChatOptions dense_options = chat_options(0, 40, 0.0f, 1);
  dense_options.cache.policy = CachePolicy::kDense;
  auto dense = make_chat(dense_options, pool);
  send(*dense, "Once", 2);
  const uint64_t dense_seen = dense->session().n_seen();
  auto too_long = dense->send(std::string(400, 'a'), StopOptions{}, [](std::string_view) {});
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.error().code(), ErrorCode::kLimit);
  EXPECT_EQ(dense->session().n_seen(), dense_seen);
  EXPECT_EQ(dense->n_turns(), 1u);
}

// An interrupt during a long turn's prefill stops it after the current batch.
TEST(ChatSessionTest, InterruptStopsALongTurnsPrefill) {
  ThreadPool pool(1);
  ChatOptions options = chat_options(4, 60, 0.0f, 1);
  options.cache.max_batch = 16;
  auto chat = make_chat(options, pool);
  std::atomic<bool> interrupt{true};
  StopOptions reply_options;
  reply_options.interrupt = &interrupt;
  std::string turn;
  for (int i = 0; i < 100; ++i) turn += "The cat sat. ";
  auto reply = chat->send(turn, reply_options, [](std::string_view) {});
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->stop, StopReason::kInterrupted);
  EXPECT_EQ(reply->prompt_tokens.size(), 16u);  // one batch
  EXPECT_EQ(chat->session().n_seen(), 16u);
  EXPECT_EQ(chat->n_turns(), 1u);
  interrupt = false;
  EXPECT_EQ(send(*chat, "The dog", 4).tokens.size(), 4u);
}

// stories260K ends a story with BOS (never EOS), as llama2.c's run.c expects: that ends a reply.
TEST(ChatSessionTest, BosEndsAStory) {
  ThreadPool pool(1);
  auto chat = make_chat(chat_options(4, 256, 1.0f, 1), pool);
  const ChatReply reply = send(*chat, "Once upon a time", 3000);
  EXPECT_EQ(reply.stop, StopReason::kEndOfGeneration);
  EXPECT_LT(reply.tokens.size(), 3000u);
  EXPECT_GT(reply.tokens.size(), 20u);
  EXPECT_EQ(chat->pending(), " ");
}

TEST(ChatSessionTest, StopTokensAreThoseTheVocabularyHas) {
  ThreadPool pool(1);
  ChatOptions options = chat_options(4, 64, 0.0f, 1);
  for (const char* name : {"plain", "chatml", "vicuna", "llama3"}) {
    options.template_name = name;
    // stories260K has EOS (2) and BOS (1), but no <|im_end|> or <|eot_id|>.
    const auto chat = make_chat(options, pool);
    EXPECT_EQ(std::vector<TokenId>(chat->stop_tokens().begin(), chat->stop_tokens().end()),
              (std::vector<TokenId>{2, 1}))
        << name;
  }
  options.template_name = "alpaca";
  auto bad = ChatSession::create(stories().model, *stories().tokenizer, options, pool);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message().rfind("unknown chat template 'alpaca'", 0), 0u);
}

// Turn k > 1 is the previous reply's closing and the user turn, encoded together.
TEST(ChatSessionTest, TurnsAfterTheFirstStartWithThePreviousClosing) {
  ThreadPool pool(1);
  ChatOptions options = chat_options(4, 128, 0.0f, 1);
  options.template_name = "vicuna";
  options.system = "A story.";
  auto vicuna = make_chat(options, pool);
  const ChatReply first = send(*vicuna, "Tell me a story", 5);
  EXPECT_EQ(first.prompt_tokens, encode("A story.\n\nUSER: Tell me a story\n\nASSISTANT: ", true));
  EXPECT_EQ(vicuna->pending(), "</s>");  // cut by --max-reply: the closing goes in whole
  const ChatReply second = send(*vicuna, "More", 5);
  EXPECT_EQ(second.prompt_tokens, encode("</s>USER: More\n\nASSISTANT: ", false));
  EXPECT_EQ(second.prompt_tokens.front(), 2);  // </s> is EOS, parsed as a special token

  // plain: the closing space is SentencePiece's dummy prefix, not a second space.
  auto plain = make_chat(chat_options(4, 128, 0.0f, 1), pool);
  send(*plain, "Once upon a time", 5);
  EXPECT_EQ(plain->pending(), " ");
  EXPECT_EQ(send(*plain, "The dog", 5).prompt_tokens, encode("The dog", false));
  EXPECT_NE(encode("The dog", false), encode(" The dog", false));  // no doubled space
}

// --keep-system: BOS + the system message stay in the sink slots however long the chat goes.
TEST(ChatSessionTest, KeepSystemPinsTheOpeningAsSinks) {
  ThreadPool pool(1);
  ChatOptions options = chat_options(4, 32, 0.8f, 5);
  options.system = "Lily and Tom are best friends who love the park.";
  options.keep_system = true;
  auto chat = make_chat(options, pool);
  const std::vector<TokenId> opening = encode(options.system + "\n", true);
  ASSERT_GT(opening.size(), 4u);
  EXPECT_EQ(chat->n_pinned(), opening.size());
  EXPECT_EQ(chat->session().options().n_sinks, opening.size());
  const ChatReply first = send(*chat, "One day", 30);
  EXPECT_TRUE(std::equal(opening.begin(), opening.end(), first.prompt_tokens.begin()));
  for (const char* turn : {"Then", "The sun was hot", "At night"}) send(*chat, turn, 30);
  ASSERT_GT(chat->session().n_seen(), opening.size() + 4 * 32);
  const KvCache& cache = chat->session().cache();
  for (size_t layer = 0; layer < stories().model.config().n_layers; ++layer) {
    for (size_t slot = 0; slot < opening.size(); ++slot) {
      EXPECT_EQ(cache.slot_token(layer, slot), slot) << "layer " << layer;
    }
  }
  // Without it only 4 sinks survive: the system message's later tokens are evicted.
  options.keep_system = false;
  auto unpinned = make_chat(options, pool);
  for (const char* turn : {"One day", "Then", "The sun was hot", "At night"}) {
    send(*unpinned, turn, 30);
  }
  EXPECT_EQ(unpinned->session().options().n_sinks, 4u);
  EXPECT_EQ(unpinned->n_pinned(), 0u);
  EXPECT_EQ(unpinned->session().cache().slot_token(0, 3), 3u);
  EXPECT_GT(unpinned->session().cache().slot_token(0, 4), opening.size());

  options.keep_system = true;
  options.cache.policy = CachePolicy::kWindow;
  auto window = ChatSession::create(stories().model, *stories().tokenizer, options, pool);
  ASSERT_FALSE(window.ok());
  EXPECT_EQ(window.error().message(), "keep_system needs the streaming policy");
}

// Acceptance 1 (a CI-sized part of it): MT-Bench turns through S=4, W=256, memory constant.
TEST(ChatSessionTest, CacheBytesStayConstantOverMtBenchTurns) {
  ThreadPool pool(2);
  auto chat = make_chat(chat_options(4, 256, 0.8f, 11), pool);
  const size_t cache_bytes = chat->session().cache_bytes();
  EXPECT_EQ(cache_bytes, 260u * 1280u);  // slots * (5 layers * 2 * 32 floats * 4 bytes)
  for (size_t i = 0; i < 8; ++i) {
    send(*chat, mt_bench_turns()[i], 16);
    EXPECT_EQ(chat->session().cache_bytes(), cache_bytes);
    EXPECT_EQ(chat->session().cache_tokens(), 260u);
  }
  EXPECT_GT(chat->session().n_seen(), 2 * 260u);
  EXPECT_EQ(chat->n_turns(), 8u);
}

std::string temp_path(const std::string& name) { return test::temp_dir() + "/" + name; }

using test::read_bytes;
using test::write_bytes;

using test::stories_fingerprint;

// Acceptance 4: 6 turns in one run equal 3 turns, save, a new process-like restore, 3 turns.
TEST(SessionFileTest, ResumedChatGivesTheSameTokens) {
  ThreadPool pool(2);
  const ChatOptions options = chat_options(4, 48, 0.8f, 123);
  auto whole = make_chat(options, pool);
  std::vector<std::vector<TokenId>> expected;
  for (size_t i = 0; i < 6; ++i) expected.push_back(send(*whole, mt_bench_turns()[i], 24).tokens);

  const std::string path = temp_path("resume.session");
  const uint64_t fingerprint = stories_fingerprint();
  {
    auto first = make_chat(options, pool);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(send(*first, mt_bench_turns()[i], 24).tokens, expected[i]);
      ASSERT_TRUE(save_session_file(path, *first, fingerprint, "stories260K.gguf").ok());
    }
    ASSERT_GT(first->session().n_seen(), 52u) << "the window must have wrapped before the save";
  }
  auto file = SessionFile::read(path, fingerprint, stories().model.config());
  ASSERT_TRUE(file.ok()) << file.error().message();
  EXPECT_EQ(file->n_turns(), 3u);
  EXPECT_EQ(file->options().sampling.seed, 123u);
  EXPECT_EQ(file->options().cache.window, 48u);
  auto resumed = make_chat(file->options(), pool);
  ASSERT_TRUE(file->restore(*resumed).ok());
  EXPECT_EQ(resumed->n_turns(), 3u);
  for (size_t i = 3; i < 6; ++i) {
    EXPECT_EQ(send(*resumed, mt_bench_turns()[i], 24).tokens, expected[i]) << "turn " << i;
  }
  EXPECT_EQ(resumed->session().n_seen(), whole->session().n_seen());

  // A chat with other options cannot take the state.
  auto other = make_chat(chat_options(4, 64, 0.8f, 123), pool);
  auto mismatch = file->restore(*other);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_EQ(mismatch.error().message(),
            path + ": the chat was not created with the session file's options");
}

// A chat saved in a fixed state, for the damage tests.
const std::vector<uint8_t>& saved_session_bytes() {
  static const std::vector<uint8_t> bytes = [] {
    ThreadPool pool(1);
    auto chat = make_chat(chat_options(4, 16, 0.8f, 9), pool);
    send(*chat, "Once upon a time", 20);
    const std::string path = temp_path("good.session");
    if (!save_session_file(path, *chat, stories_fingerprint(), "stories260K.gguf").ok()) {
      throw std::runtime_error("save failed");
    }
    return read_bytes(path);
  }();
  return bytes;
}

std::string read_error(const std::vector<uint8_t>& bytes) {
  const std::string path = temp_path("damaged.session");
  write_bytes(path, bytes);
  auto file = SessionFile::read(path, stories_fingerprint(), stories().model.config());
  if (file.ok()) return "";
  const std::string& message = file.error().message();
  return message.substr(message.find(": ") + 2);
}

TEST(SessionFileTest, TruncatedFilesAreRejected) {
  const std::vector<uint8_t>& good = saved_session_bytes();
  ASSERT_EQ(read_error(good), "");
  for (size_t n : {size_t{0}, size_t{7}, size_t{31}}) {
    EXPECT_EQ(read_error({good.begin(), good.begin() + static_cast<ptrdiff_t>(n)}),
              "not a streamingllm session file (no SLLMCHAT header)")
        << n;
  }
  const size_t payload = good.size() - 32;
  for (size_t n : {size_t{32}, size_t{100}, good.size() / 2, good.size() - 1}) {
    EXPECT_EQ(read_error({good.begin(), good.begin() + static_cast<ptrdiff_t>(n)}),
              "truncated or damaged session file: the header announces " + std::to_string(payload) +
                  " bytes of payload, the file has " + std::to_string(n - 32))
        << n;
  }
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  EXPECT_NE(read_error(longer).find("truncated or damaged"), std::string::npos);
}

TEST(SessionFileTest, FlippedBitsAreRejected) {
  const std::vector<uint8_t>& good = saved_session_bytes();
  // Every bit of the header and of the first 16 payload bytes, then one bit in every 97 bytes.
  std::vector<size_t> bits;
  for (size_t bit = 0; bit < (32 + 16) * 8; ++bit) bits.push_back(bit);
  for (size_t byte = 96; byte < good.size(); byte += 97) bits.push_back(byte * 8 + byte % 8);
  for (size_t bit : bits) {
    std::vector<uint8_t> damaged = good;
    damaged[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    const std::string error = read_error(damaged);
    EXPECT_NE(error, "") << "bit " << bit << " flipped went unnoticed";
    if (bit >= 32 * 8) {
      EXPECT_EQ(error.rfind("corrupt session file: checksum ", 0), 0u) << bit;
    }
  }
}

// A copy of stories260K with one metadata string set.
std::string stories_copy(const std::string& name, const std::string& key,
                         const std::string& value) {
  GgufWriter w;
  for (const auto& [k, v] : stories().gguf.metadata()) w.set(k, v);
  w.set(key, GgufValue::str(value));
  for (const GgufTensorInfo& t : stories().gguf.tensors()) {
    if (!w.add_tensor(t.name, t.type, t.dims, std::span(t.data, t.n_bytes)).ok()) {
      throw std::runtime_error("add_tensor failed");
    }
  }
  const std::string path = temp_path(name);
  if (!w.write(path).ok()) throw std::runtime_error("write failed");
  return path;
}

// Another model for the fingerprint: its metadata differs.
std::string other_model_path() {
  static const std::string path = stories_copy("other.gguf", "general.name", "not stories260K");
  return path;
}

TEST(SessionFileTest, AnotherModelIsRefused) {
  auto other = Engine::load(other_model_path());
  ASSERT_TRUE(other.ok()) << other.error().message();
  auto other_fingerprint = model_fingerprint((*other)->gguf);
  ASSERT_TRUE(other_fingerprint.ok());
  EXPECT_NE(*other_fingerprint, stories_fingerprint());
  auto again = model_fingerprint(stories().gguf);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, stories_fingerprint());  // deterministic
  auto reloaded = Engine::load(test::stories_gguf());
  ASSERT_TRUE(reloaded.ok());
  auto reloaded_fingerprint = model_fingerprint((*reloaded)->gguf);
  ASSERT_TRUE(reloaded_fingerprint.ok());
  EXPECT_EQ(*reloaded_fingerprint, stories_fingerprint());

  const std::string path = temp_path("stories.session");
  write_bytes(path, saved_session_bytes());
  auto file = SessionFile::read(path, *other_fingerprint, stories().model.config());
  ASSERT_FALSE(file.ok());
  const std::string& message = file.error().message();
  EXPECT_NE(message.find("the session was saved with another model (stories260K.gguf"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("resume it with that model or start a new session"), std::string::npos);
}

// ---- The `chat` command in batch mode ----

const std::string kModel = test::stories_gguf();

std::string write_prompts(const std::string& name, size_t first, size_t n_turns,
                          size_t per_question) {
  std::string jsonl;
  for (size_t i = first; i < first + n_turns; i += per_question) {
    jsonl += "{\"question_id\": " + std::to_string(i) + ", \"turns\": [";
    for (size_t j = i; j < std::min(first + n_turns, i + per_question); ++j) {
      std::string escaped;
      for (char c : mt_bench_turns()[j]) {
        if (c == '"' || c == '\\') escaped += '\\';
        if (c == '\n') {
          escaped += "\\n";
          continue;
        }
        escaped += c;
      }
      jsonl += (j == i ? "\"" : ", \"") + escaped + "\"";
    }
    jsonl += "]}\n";
  }
  const std::string path = temp_path(name);
  write_bytes(path, std::vector<uint8_t>(jsonl.begin(), jsonl.end()));
  return path;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Acceptance 1 in CI size: 6 MT-Bench turns, S=4, W=256, cache bytes printed at the start equal
// those at the end. (bench/chat_rss.sh runs all 160 turns.)
TEST(ChatCliTest, BatchModeOverMtBenchKeepsTheCacheConstant) {
  const std::string prompts = write_prompts("six.jsonl", 0, 6, 2);
  const auto r = test::run_cli("chat -m " + kModel + " --prompts " + prompts +
                               " --sinks 4 --window 256 --max-reply 16 -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(count(r.out, "USER: "), 6u);
  EXPECT_EQ(count(r.out, "\n\nASSISTANT: "), 6u);
  EXPECT_EQ(r.out.rfind("USER: " + mt_bench_turns()[0] + "\n\nASSISTANT: ", 0), 0u);
  EXPECT_NE(r.err.find("template plain | cache 260 tokens, 332800 bytes (4 sinks + 256 window"),
            std::string::npos)
      << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.err, m,
                                std::regex("(\\d+) turns in .* cache (\\d+) bytes "
                                           "\\(at start (\\d+)\\)")))
      << r.err;
  EXPECT_EQ(m[1].str(), "6");
  EXPECT_EQ(m[2].str(), "332800");
  EXPECT_EQ(m[3].str(), "332800");
  EXPECT_NE(r.err.find("note: the model has no tokenizer.chat_template: using the plain template"),
            std::string::npos);
}

// Lines on stdin (not a terminal) are turns too, with the same replies as a prompt file.
TEST(ChatCliTest, StdinLinesEqualAPromptFile) {
  const std::string prompts = write_prompts("four.jsonl", 20, 4, 2);
  const std::string flags = " --window 64 --max-reply 16 --temp 0.8 -s 5 -t 1";
  const auto from_file = test::run_cli("chat -m " + kModel + " --prompts " + prompts + flags);
  ASSERT_EQ(from_file.exit_code, 0) << from_file.err;
  std::string lines;
  for (size_t i = 20; i < 24; ++i) lines += mt_bench_turns()[i] + "\n\n";  // blank lines skipped
  const std::string lines_path = temp_path("four.txt");
  write_bytes(lines_path, std::vector<uint8_t>(lines.begin(), lines.end()));
  const auto from_stdin = test::run_cli("chat -m " + kModel + flags + " < " + lines_path);
  ASSERT_EQ(from_stdin.exit_code, 0) << from_stdin.err;
  EXPECT_EQ(from_stdin.out, from_file.out);
}

// Acceptance 4 through the command: 6 turns at once equal 3 + 3 with --session in between.
TEST(ChatCliTest, SessionResumesAcrossRuns) {
  const std::string flags = " --window 48 --max-reply 24 --temp 0.8 -s 77 -t 1";
  const auto whole = test::run_cli("chat -m " + kModel + " --prompts " +
                                   write_prompts("six.jsonl", 40, 6, 3) + flags);
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  const std::string session = temp_path("cli.session");
  std::filesystem::remove(session);
  const auto first =
      test::run_cli("chat -m " + kModel + " --prompts " + write_prompts("first3.jsonl", 40, 3, 3) +
                    flags + " --session " + session);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(first.err.find("resumed"), std::string::npos);
  // Resumed without repeating the flags: the file has them.
  const std::string second_prompts = write_prompts("last3.jsonl", 43, 3, 3);
  const auto second = test::run_cli("chat -m " + kModel + " --prompts " + second_prompts +
                                    " --max-reply 24 -t 1 --session " + session);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.err.find("resumed " + session + ": 3 turns"), std::string::npos) << second.err;
  EXPECT_EQ(first.out + second.out, whole.out);

  // A flag that contradicts the file is an error, not silently ignored.
  const auto contradicting = test::run_cli("chat -m " + kModel + " --prompts " + second_prompts +
                                           " --window 100 --session " + session);
  EXPECT_EQ(contradicting.exit_code, 1);
  EXPECT_EQ(contradicting.err,
            "error: --window 100 differs from the session file's 48 (a resumed session keeps its "
            "options: drop the flag or start a new session)\n");

  // Damaged or foreign files are refused with the reason.
  std::vector<uint8_t> bytes = read_bytes(session);
  bytes[bytes.size() / 2] ^= 4;
  const std::string damaged = temp_path("cli-damaged.session");
  write_bytes(damaged, bytes);
  const auto corrupt =
      test::run_cli("chat -m " + kModel + " --prompts " + second_prompts + " --session " + damaged);
  EXPECT_EQ(corrupt.exit_code, 1);
  EXPECT_EQ(corrupt.err.rfind("error: " + damaged + ": corrupt session file: checksum ", 0), 0u)
      << corrupt.err;
  const auto foreign = test::run_cli("chat -m " + other_model_path() + " --prompts " +
                                     second_prompts + " --session " + session);
  EXPECT_EQ(foreign.exit_code, 1);
  EXPECT_NE(foreign.err.find("the session was saved with another model (" + kModel),
            std::string::npos)
      << foreign.err;
}

TEST(ChatCliTest, TemplateComesFromTheModel) {
  const std::string args = " --max-reply 2 -t 1 < /dev/null";
  const auto llama2 = test::run_cli(
      "chat -m " +
      stories_copy("llama2.gguf", "tokenizer.chat_template",
                   "{{ bos_token + '[INST] ' + '<<SYS>>\\n' + content.strip() + ' [/INST]' }}") +
      args);
  ASSERT_EQ(llama2.exit_code, 0) << llama2.err;
  EXPECT_NE(llama2.err.find("| template llama2 |"), std::string::npos) << llama2.err;
  EXPECT_EQ(llama2.err.find("note:"), std::string::npos) << llama2.err;

  const std::string unknown =
      stories_copy("alpaca.gguf", "tokenizer.chat_template", "{{ '### Instruction:\\n' }}");
  const auto fallback = test::run_cli("chat -m " + unknown + args);
  ASSERT_EQ(fallback.exit_code, 0) << fallback.err;
  EXPECT_EQ(fallback.err.rfind("note: the model's tokenizer.chat_template is not one we "
                               "recognise: using chatml; --template NAME picks another\n",
                               0),
            0u)
      << fallback.err;
  EXPECT_NE(fallback.err.find("| template chatml |"), std::string::npos);

  const auto forced = test::run_cli("chat -m " + unknown + " --template vicuna" + args);
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_EQ(forced.err.find("note:"), std::string::npos);
  EXPECT_NE(forced.err.find("| template vicuna |"), std::string::npos);
}

TEST(ChatCliTest, BadFlagsAreErrors) {
  const auto keep = test::run_cli("chat -m " + kModel + " --keep-system < /dev/null");
  EXPECT_EQ(keep.exit_code, 1);
  EXPECT_EQ(keep.err, "error: --keep-system needs --system TEXT\n");
  const auto tmpl = test::run_cli("chat -m " + kModel + " --template alpaca < /dev/null");
  EXPECT_NE(tmpl.exit_code, 0);
  EXPECT_NE(tmpl.err.find("alpaca"), std::string::npos);
}

}  // namespace
}  // namespace sllm
