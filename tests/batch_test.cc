// Batch (include/streamingllm/batch.h): streams and chats advanced together produce exactly what
// each produces alone — the same tokens, text, final logits bit for bit — with eviction mid-batch,
// different cache policies, sizes and KV types per member, members finishing, joining and being
// interrupted, on f32 weights and on the same model quantized to q8_0.
#include <gtest/gtest.h>

#include <unistd.h>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "streamingllm/streamingllm.h"
#include "test_util.h"

namespace sllm {
namespace {

std::shared_ptr<Model> load(const std::string& path, size_t n_threads) {
  Model::LoadOptions o;
  o.n_threads = n_threads;
  auto model = Model::load(path, o);
  EXPECT_TRUE(model.ok()) << model.error().message();
  return model.ok() ? *model : nullptr;
}

const std::vector<std::string>& texts() {
  static const std::vector<std::string> t = {
      "Once upon a time",
      "Lily and Tom went to the park. They saw a big dog with a red ball. The dog ran and",
      "The sun",
      "One day, a little bird sat on a tree. It was sad because it could not fly. A kind girl "
      "came by and said hello. The bird looked at her and",
      "Tim had a toy car",
      "There was a cat who liked to sleep. Every day the cat slept in the sun by the window.",
      "A boy",
      "Mom said we could bake a cake. We got flour, eggs and milk. Then we"};
  return t;
}

// Member i's options: every policy but dense is endless; windows small enough that the prompt
// and the reply evict; f32 and f16 K/V; different seeds and lengths.
struct Config {
  CacheOptions cache;
  SamplingOptions sampling;
  StopOptions stop;
  std::vector<TokenId> prompt;
};

Config config(const Model& model, size_t i) {
  Config c;
  const CachePolicy policies[] = {CachePolicy::kStreaming, CachePolicy::kWindow,
                                  CachePolicy::kStreaming, CachePolicy::kRecompute,
                                  CachePolicy::kDense};
  c.cache.policy = policies[i % 5];
  c.cache.n_sinks = c.cache.policy == CachePolicy::kStreaming ? 1 + i % 4 : 0;
  // Shorter under the sanitizers (still past every window).
  const size_t scale = test::kSanitizedBuild ? 3 : 7;
  c.cache.window = c.cache.policy == CachePolicy::kDense ? 256 : 8 + scale * i;
  c.cache.kv_type = i % 2 == 0 ? KvType::kF32 : KvType::kF16;
  c.cache.max_batch = 8 + 5 * i;  // some prompts need several chunks
  c.sampling.seed = 100 + i;
  c.sampling.temperature = i % 3 == 0 ? 0.0f : 0.9f;
  c.sampling.repeat_penalty = i % 2 == 0 ? 1.0f : 1.1f;
  c.stop.max_tokens =
      test::kSanitizedBuild ? 20 + 4 * static_cast<int64_t>(i) : 30 + 11 * static_cast<int64_t>(i);
  c.stop.at_end_of_generation = false;  // long enough to evict
  auto p = model.tokenize(texts()[i % texts().size()], /*add_bos=*/true);
  EXPECT_TRUE(p.ok());
  c.prompt = *p;
  return c;
}

struct Outcome {
  std::vector<TokenId> tokens;
  std::string text;
  StopReason stop = StopReason::kEndOfGeneration;
  std::vector<float> logits;
  uint64_t n_seen = 0;
};

Outcome alone(std::shared_ptr<const Model> model, const Config& c) {
  auto s = Stream::create(model, c.cache, c.sampling);
  EXPECT_TRUE(s.ok()) << s.error().message();
  Outcome o;
  EXPECT_TRUE((*s)->feed(c.prompt).ok());
  auto g = (*s)->generate(c.stop, [&](std::string_view t) { o.text += t; });
  EXPECT_TRUE(g.ok()) << g.error().message();
  o.tokens = g->tokens;
  o.stop = g->stop;
  o.logits.assign((*s)->logits().begin(), (*s)->logits().end());
  o.n_seen = (*s)->n_seen();
  return o;
}

void expect_same(const Outcome& a, const Outcome& b, size_t member) {
  SCOPED_TRACE("member " + std::to_string(member));
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.text, b.text);
  EXPECT_EQ(a.stop, b.stop);
  EXPECT_EQ(a.n_seen, b.n_seen);
  ASSERT_EQ(a.logits.size(), b.logits.size());
  EXPECT_EQ(0, std::memcmp(a.logits.data(), b.logits.data(), a.logits.size() * sizeof(float)))
      << "logits differ";
}

// Runs members [0, n) together; member `late` (if < n) joins after `join_step` steps.
std::vector<Outcome> together(std::shared_ptr<const Model> model, const std::vector<Config>& cs,
                              const BatchOptions& options, size_t late = SIZE_MAX,
                              size_t join_step = 0) {
  auto batch = Batch::create(model, options);
  EXPECT_TRUE(batch.ok());
  std::vector<std::unique_ptr<Stream>> streams;
  std::vector<Outcome> out(cs.size());
  std::map<uint64_t, size_t> member_of;
  auto add = [&](size_t i) {
    auto id = (*batch)->add(*streams[i], cs[i].prompt, cs[i].stop,
                            [&out, i](std::string_view t) { out[i].text += t; });
    ASSERT_TRUE(id.ok()) << id.error().message();
    member_of[*id] = i;
  };
  for (size_t i = 0; i < cs.size(); ++i) {
    auto s = Stream::create(model, cs[i].cache, cs[i].sampling);
    EXPECT_TRUE(s.ok());
    streams.push_back(std::move(*s));
    if (i != late) add(i);
  }
  size_t n_done = 0;
  for (size_t step = 0; n_done < cs.size(); ++step) {
    if (step == join_step && late < cs.size()) add(late);
    EXPECT_LT(step, 10000u);
    std::vector<BatchResult> results = (*batch)->step();
    EXPECT_LE((*batch)->last_rows(), options.max_rows);
    for (BatchResult& r : results) {
      EXPECT_TRUE(r.status.ok()) << r.status.error().message();
      Outcome& o = out[member_of.at(r.id)];
      o.tokens = r.reply.tokens;
      o.stop = r.reply.stop;
      ++n_done;
    }
  }
  EXPECT_TRUE((*batch)->empty());
  for (size_t i = 0; i < cs.size(); ++i) {
    out[i].logits.assign(streams[i]->logits().begin(), streams[i]->logits().end());
    out[i].n_seen = streams[i]->n_seen();
  }
  return out;
}

void check_equivalence(const std::string& path, size_t n, size_t n_threads,
                       const BatchOptions& options = {}) {
  const auto model = load(path, n_threads);
  ASSERT_NE(model, nullptr);
  std::vector<Config> cs;
  for (size_t i = 0; i < n; ++i) cs.push_back(config(*model, i));
  const std::vector<Outcome> batched = together(model, cs, options);
  for (size_t i = 0; i < n; ++i) {
    const Outcome solo = alone(model, cs[i]);
    // The members evicted: their streams outgrew their caches.
    if (cs[i].cache.policy != CachePolicy::kDense) {
      EXPECT_GT(solo.n_seen, cs[i].cache.n_sinks + cs[i].cache.window) << "member " << i;
    }
    expect_same(solo, batched[i], i);
  }
}

TEST(BatchTest, OneMemberEqualsAlone) { check_equivalence(test::stories_gguf(), 1, 1); }
TEST(BatchTest, ThreeMembersEqualAlone) { check_equivalence(test::stories_gguf(), 3, 2); }
TEST(BatchTest, EightMembersEqualAlone) { check_equivalence(test::stories_gguf(), 8, 1); }

TEST(BatchTest, SmallStepsEqualAlone) {
  // Few rows per pass: prompts go in 3 tokens at a time, and members wait for rows.
  BatchOptions o;
  o.max_rows = 5;
  o.prompt_chunk = 3;
  o.max_prompt_rows = 4;
  check_equivalence(test::stories_gguf(), test::kSanitizedBuild ? 5 : 8, 1, o);
}

TEST(BatchTest, F16AndQuantizedWeightsEqualAlone) {
  // f16 rows and the integer q8_0 / q4_0 kernels (activations quantized per row): batching
  // changes no bits either.
  for (const char* type : {"f16", "q8_0", "q4_0"}) {
    SCOPED_TRACE(type);
    const std::string path =
        ::testing::TempDir() + "sllm_batch_" + std::to_string(::getpid()) + "_" + type + ".gguf";
    ASSERT_TRUE(quantize(test::stories_gguf(), path, type, [](std::string_view) {}).ok());
    check_equivalence(path, test::kSanitizedBuild ? 3 : 8, 1);
    std::filesystem::remove(path);
  }
}

TEST(BatchTest, MemberJoiningMidwayEqualsAlone) {
  const auto model = load(test::stories_gguf(), 1);
  std::vector<Config> cs;
  for (size_t i = 0; i < 4; ++i) cs.push_back(config(*model, i));
  const std::vector<Outcome> batched = together(model, cs, {}, /*late=*/2, /*join_step=*/17);
  for (size_t i = 0; i < cs.size(); ++i) expect_same(alone(model, cs[i]), batched[i], i);
}

TEST(BatchTest, InterruptedMemberLeavesWithinOneStep) {
  const auto model = load(test::stories_gguf(), 1);
  std::vector<Config> cs;
  for (size_t i = 0; i < 3; ++i) cs.push_back(config(*model, i));
  std::atomic<bool> stop_b{false};
  cs[1].stop.interrupt = &stop_b;
  cs[1].stop.max_tokens = -1;  // ends only when interrupted
  auto batch = Batch::create(model);
  ASSERT_TRUE(batch.ok());
  std::vector<std::unique_ptr<Stream>> streams;
  std::map<uint64_t, BatchResult> results;
  std::vector<uint64_t> ids;
  for (const Config& c : cs) {
    auto s = Stream::create(model, c.cache, c.sampling);
    ASSERT_TRUE(s.ok());
    streams.push_back(std::move(*s));
    ids.push_back(*(*batch)->add(*streams.back(), c.prompt, c.stop));
  }
  for (size_t step = 0; results.size() < cs.size(); ++step) {
    ASSERT_LT(step, 1000u);
    if (step == 20) stop_b = true;
    for (BatchResult& r : (*batch)->step()) {
      ASSERT_TRUE(r.status.ok());
      if (r.id == ids[1]) {
        // The token sampled before the interrupt goes in; the one after does not come.
        EXPECT_EQ(step, 20u);
      }
      results[r.id] = std::move(r);
    }
  }
  EXPECT_EQ(results[ids[1]].reply.stop, StopReason::kInterrupted);
  EXPECT_EQ(streams[1]->n_seen(), cs[1].prompt.size() + results[ids[1]].reply.n_tokens);
  for (size_t i : {size_t{0}, size_t{2}}) {
    const Outcome solo = alone(model, cs[i]);
    EXPECT_EQ(results[ids[i]].reply.tokens, solo.tokens) << "member " << i;
  }
}

TEST(BatchTest, InterruptDuringPromptStopsBetweenChunks) {
  const auto model = load(test::stories_gguf(), 1);
  auto tokens = model->tokenize(texts()[3], true);
  ASSERT_TRUE(tokens.ok());
  auto s = Stream::create(model);
  std::atomic<bool> stop{true};  // set before: the first chunk still goes in
  StopOptions o;
  o.interrupt = &stop;
  BatchOptions bo;
  bo.prompt_chunk = 4;
  auto batch = Batch::create(model, bo);
  ASSERT_TRUE((*batch)->add(**s, *tokens, o).ok());
  const auto r = (*batch)->step();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].reply.stop, StopReason::kInterrupted);
  EXPECT_EQ(r[0].reply.n_prompt_tokens, 4u);
  EXPECT_EQ(r[0].reply.n_tokens, 0u);
  EXPECT_EQ((*s)->n_seen(), 4u);
}

TEST(BatchTest, ErrorsEndTheirMemberAlone) {
  const auto model = load(test::stories_gguf(), 1);
  auto batch = Batch::create(model);
  auto a = Stream::create(model);
  auto b = Stream::create(model);
  StopOptions stop;
  stop.max_tokens = 3;
  // Nothing fed, nothing to follow.
  auto id = (*batch)->add(**a, {}, stop);
  ASSERT_TRUE(id.ok());
  auto r = (*batch)->step();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status.error().message(),
            "nothing has been fed yet: generation needs at least one token to follow");
  // An id outside the vocabulary.
  ASSERT_TRUE((*batch)->add(**b, {1, 9999}, stop).ok());
  ASSERT_TRUE((*batch)->add(**a, {1, 403}, stop).ok());
  EXPECT_EQ((*batch)->add(**a, {1}, stop).error().message(),
            "this stream or chat is already in the batch");
  std::vector<BatchResult> all;
  while (!(*batch)->empty()) {
    for (BatchResult& x : (*batch)->step()) all.push_back(std::move(x));
  }
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].status.error().message(),
            "token id 9999 at index 1 is outside the vocabulary of 512");
  EXPECT_TRUE(all[1].status.ok());
  EXPECT_EQ(all[1].reply.n_tokens, 3u);
  EXPECT_EQ(Batch::create(model, BatchOptions{0, 1, 1}).error().message(),
            "a batch needs at least 1 row");
}

// Chats: turns with history exchanges and stop strings, together and alone.
TEST(BatchTest, ChatsEqualAlone) {
  const auto model = load(test::stories_gguf(), 2);
  const size_t n = test::kSanitizedBuild ? 4 : 6;
  auto make = [&](size_t i) {
    ChatOptions o;
    o.cache.window = test::kSanitizedBuild ? 12 + 3 * i : 20 + 9 * i;
    o.cache.n_sinks = 4;
    o.cache.kv_type = i % 2 ? KvType::kF16 : KvType::kF32;
    o.sampling.seed = 7 + i;
    o.system = i % 3 == 0 ? "You tell stories." : "";
    auto chat = Chat::create(model, o);
    EXPECT_TRUE(chat.ok());
    return std::move(*chat);
  };
  auto stop_for = [](size_t i) {
    StopOptions s;
    s.max_tokens =
        test::kSanitizedBuild ? 10 + 2 * static_cast<int64_t>(i) : 25 + 6 * static_cast<int64_t>(i);
    if (i % 2) s.stop_strings = {"the"};
    return s;
  };
  auto history = [](size_t i) {
    std::vector<ChatExchange> h;
    for (size_t k = 0; k < i % 3; ++k) h.push_back({texts()[k + i], texts()[k + 1]});
    return h;
  };
  const int n_turns = 2;
  // Alone.
  std::vector<std::vector<std::string>> solo(n);
  for (size_t i = 0; i < n; ++i) {
    auto chat = make(i);
    for (const ChatExchange& e : history(i)) ASSERT_TRUE(chat->add_turn(e.user, e.reply).ok());
    for (int t = 0; t < n_turns; ++t) {
      std::string streamed;
      auto r = chat->send(texts()[(i + t) % texts().size()], stop_for(i),
                          [&](std::string_view x) { streamed += x; });
      ASSERT_TRUE(r.ok()) << r.error().message();
      EXPECT_EQ(streamed, r->text);
      solo[i].push_back(r->text);
    }
  }
  // Together: every chat's turn t in one batch.
  std::vector<std::unique_ptr<Chat>> chats;
  for (size_t i = 0; i < n; ++i) chats.push_back(make(i));
  auto batch = Batch::create(model);
  for (int t = 0; t < n_turns; ++t) {
    std::map<uint64_t, size_t> member_of;
    std::vector<std::string> streamed(n);
    for (size_t i = 0; i < n; ++i) {
      auto id = (*batch)->add(
          *chats[i], texts()[(i + t) % texts().size()], stop_for(i),
          [&streamed, i](std::string_view x) { streamed[i] += x; },
          t == 0 ? history(i) : std::vector<ChatExchange>{});
      ASSERT_TRUE(id.ok()) << id.error().message();
      member_of[*id] = i;
    }
    while (!(*batch)->empty()) {
      for (BatchResult& r : (*batch)->step()) {
        ASSERT_TRUE(r.status.ok()) << r.status.error().message();
        const size_t i = member_of.at(r.id);
        EXPECT_EQ(r.reply.text, solo[i][t]) << "chat " << i << " turn " << t;
        EXPECT_EQ(streamed[i], r.reply.text);
      }
    }
  }
  for (size_t i = 0; i < n; ++i) EXPECT_EQ(chats[i]->n_turns(), history(i).size() + n_turns);
}

}  // namespace
}  // namespace sllm
