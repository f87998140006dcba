// The public API (include/streamingllm/), used as a program outside the library would: only
// <streamingllm/...> headers here. Goldens from the real model; equivalence with the internals
// is checked by the tests that look inside (chat_test, ppl_test).
#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "stories_golden.h"
#include "streamingllm/streamingllm.h"
#include "test_util.h"

namespace sllm {
namespace {

std::shared_ptr<Model> stories(size_t n_threads = 1) {
  Model::LoadOptions o;
  o.n_threads = n_threads;
  auto model = Model::load(test::stories_gguf(), o);
  EXPECT_TRUE(model.ok()) << model.error().message();
  return *model;
}

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "sllm_api_" + std::to_string(::getpid()) + "_" + name;
}

TEST(ApiModelTest, InfoDescribesTheFile) {
  const auto model = stories();
  const ModelInfo& info = model->info();
  EXPECT_EQ(info.architecture, "llama");
  EXPECT_EQ(info.n_layers, 5u);
  EXPECT_EQ(info.dim, 64u);
  EXPECT_EQ(info.n_heads, 8u);
  EXPECT_EQ(info.n_kv_heads, 4u);
  EXPECT_EQ(info.n_vocab, 512u);
  EXPECT_EQ(info.bos, 1);
  EXPECT_EQ(info.eos, 2);
  EXPECT_EQ(info.tokenizer_model, "llama");
  // 5 layers x (K + V) x 4 KV heads x head dim 8 x 4 bytes.
  EXPECT_EQ(info.kv_bytes_per_token(KvType::kF32), 5u * 2 * 32 * 4);
  EXPECT_EQ(info.kv_bytes_per_token(KvType::kF16), 5u * 2 * 32 * 2);
  EXPECT_FALSE(info.simd_target.empty());
}

TEST(ApiModelTest, TokenizeAndDetokenize) {
  const auto model = stories();
  auto ids = model->tokenize("Once upon a time", /*add_bos=*/true);
  ASSERT_TRUE(ids.ok());
  ASSERT_GE(ids->size(), 2u);
  EXPECT_EQ((*ids)[0], 1);
  EXPECT_EQ((*ids)[1], 403);  // "▁Once"
  auto text = model->detokenize(std::span(*ids).subspan(1));
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, " Once upon a time");  // SentencePiece's dummy prefix is a space
  EXPECT_EQ(model->token_text(403), "\xe2\x96\x81Once");

  auto bad = model->tokenize("ok \xc3\x28");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("invalid UTF-8 at byte 3"), std::string::npos)
      << bad.error().message();
  const TokenId out_of_range[1] = {512};
  auto bad_ids = model->detokenize(out_of_range);
  ASSERT_FALSE(bad_ids.ok());
  EXPECT_EQ(bad_ids.error().message(), "token id 512 at index 0 is outside the vocabulary of 512");
}

TEST(ApiModelTest, BadFilesAreErrors) {
  auto missing = Model::load("/nonexistent/model.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message(),
            "cannot open '/nonexistent/model.gguf': No such file or directory");
  const std::string cut = temp_path("cut.gguf");
  {
    auto bytes = read_file(test::stories_gguf());
    ASSERT_TRUE(bytes.ok());
    const std::string head = bytes->substr(0, 1000);
    ASSERT_TRUE(write_file_atomic(
                    cut, std::span(reinterpret_cast<const uint8_t*>(head.data()), head.size()))
                    .ok());
  }
  auto truncated = Model::load(cut);
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.error().message().find(cut), std::string::npos);
  std::filesystem::remove(cut);
}

// Acceptance 1 at library level: the known greedy text from BOS under the default streaming
// cache, through Stream::feed + generate.
TEST(ApiStreamTest, GreedyFromBosIsTheKnownText) {
  const auto model = stories();
  SamplingOptions greedy;
  greedy.temperature = 0;
  auto stream = Stream::create(model, CacheOptions{}, greedy);
  ASSERT_TRUE(stream.ok()) << stream.error().message();
  const TokenId bos[1] = {model->info().bos};
  ASSERT_TRUE((*stream)->feed(bos).ok());
  StopOptions stop;
  stop.max_tokens = 256;
  std::string pieces;
  auto g = (*stream)->generate(stop, [&](std::string_view t) { pieces += t; });
  ASSERT_TRUE(g.ok()) << g.error().message();
  EXPECT_EQ(g->text, test::kStoriesGreedyText);
  EXPECT_EQ(pieces, g->text);  // the callback saw exactly the text, in order
  EXPECT_EQ(g->n_tokens, 256u);
  EXPECT_EQ(g->stop, StopReason::kMaxTokens);
  for (size_t i = 0; i < test::kStoriesFirstGreedyIds.size(); ++i) {
    EXPECT_EQ(g->tokens[i], test::kStoriesFirstGreedyIds[i]);
  }
  EXPECT_EQ((*stream)->n_seen(), 257u);
}

// Profiling is off until asked for, changes nothing that is computed (the known greedy text),
// and counts each phase's calls and weight bytes exactly: stories260K (f32) has 5 layers of
// wq [64, 64], wk and wv [32, 64] (4 KV heads of 8), wo [64, 64], w1 and w3 [172, 64], w2 [64,
// 172], and an output head [512, 64].
TEST(ApiStreamTest, ProfileCountsEveryPhaseAndChangesNothing) {
  const auto model = stories();
  SamplingOptions greedy;
  greedy.temperature = 0;
  auto stream = Stream::create(model, CacheOptions{}, greedy);
  ASSERT_TRUE(stream.ok()) << stream.error().message();
  EXPECT_TRUE((*stream)->profile().empty());
  (*stream)->set_profiling(true);
  const TokenId bos[1] = {model->info().bos};
  ASSERT_TRUE((*stream)->feed(bos).ok());
  StopOptions stop;
  stop.max_tokens = 256;
  auto g = (*stream)->generate(stop);
  ASSERT_TRUE(g.ok()) << g.error().message();
  EXPECT_EQ(g->text, test::kStoriesGreedyText);

  // 257 passes of one token: BOS, then each generated token is fed.
  const uint64_t passes = 257, layers = 5, f32 = 4;
  const std::vector<PhaseTime> p = (*stream)->profile();
  std::vector<std::string> names;
  for (const PhaseTime& t : p) names.push_back(t.phase);
  EXPECT_EQ(names, (std::vector<std::string>{"embedding", "norms", "qkv", "attention",
                                             "attn_output", "ffn", "residual", "lm_head"}));
  const auto phase = [&](size_t i) { return p.at(i); };
  EXPECT_EQ(phase(0).calls, passes);
  EXPECT_EQ(phase(0).weight_bytes, passes * 64 * f32);   // one embedding row a token
  EXPECT_EQ(phase(1).calls, passes * (2 * layers + 1));  // two a layer and the final one
  EXPECT_EQ(phase(2).calls, passes * layers);
  EXPECT_EQ(phase(2).weight_bytes, passes * layers * (64 + 32 + 32) * 64 * f32);
  EXPECT_EQ(phase(3).calls, passes * layers);
  EXPECT_EQ(phase(3).weight_bytes, 0u);
  EXPECT_EQ(phase(4).weight_bytes, passes * layers * 64 * 64 * f32);
  EXPECT_EQ(phase(5).weight_bytes, passes * layers * 3 * 172 * 64 * f32);
  EXPECT_EQ(phase(6).calls, passes * layers * 2);
  EXPECT_EQ(phase(7).calls, passes);
  EXPECT_EQ(phase(7).weight_bytes, passes * 512 * 64 * f32);
  for (const PhaseTime& t : p) EXPECT_GT(t.seconds, 0.0) << t.phase;

  // Turning it on again starts from zero; off, there is nothing.
  (*stream)->set_profiling(true);
  for (const PhaseTime& t : (*stream)->profile()) EXPECT_EQ(t.calls, 0u) << t.phase;
  (*stream)->set_profiling(false);
  ASSERT_TRUE((*stream)->feed(bos).ok());
  EXPECT_TRUE((*stream)->profile().empty());
}

// Without keep_output nothing accumulates: same text through the callback.
TEST(ApiStreamTest, EndlessGenerationKeepsNoOutput) {
  const auto model = stories();
  SamplingOptions greedy;
  greedy.temperature = 0;
  auto stream = Stream::create(model, CacheOptions{}, greedy);
  ASSERT_TRUE(stream.ok());
  ASSERT_TRUE((*stream)->feed_text("", /*add_bos=*/true).ok());
  StopOptions stop;
  stop.max_tokens = 256;
  stop.keep_output = false;
  std::string pieces;
  auto g = (*stream)->generate(stop, [&](std::string_view t) { pieces += t; });
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(pieces, test::kStoriesGreedyText);
  EXPECT_TRUE(g->text.empty());
  EXPECT_TRUE(g->tokens.empty());
  EXPECT_EQ(g->n_tokens, 256u);
}

TEST(ApiStreamTest, StopStringsAndInterrupt) {
  const auto model = stories();
  SamplingOptions greedy;
  greedy.temperature = 0;
  auto stream = Stream::create(model, CacheOptions{}, greedy);
  ASSERT_TRUE(stream.ok());
  ASSERT_TRUE((*stream)->feed_text("", true).ok());
  StopOptions stop;
  stop.stop_strings = {"Lily"};
  std::string shown;
  auto g = (*stream)->generate(stop, [&](std::string_view t) { shown += t; });
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->stop, StopReason::kStopString);
  EXPECT_EQ(g->text, "Once upon a time, there was a little girl named ");
  EXPECT_EQ(shown, g->text);

  std::atomic<bool> interrupt{true};
  StopOptions interrupted;
  interrupted.interrupt = &interrupt;
  auto none = (*stream)->generate(interrupted);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->stop, StopReason::kInterrupted);
  EXPECT_EQ(none->n_tokens, 0u);

  StopOptions empty;
  empty.stop_strings = {""};
  auto bad = (*stream)->generate(empty);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(), "a stop string must not be empty");
}

TEST(ApiStreamTest, OptionsAreValidated) {
  const auto model = stories();
  CacheOptions sinks_on_window;
  sinks_on_window.policy = CachePolicy::kWindow;
  auto a = Stream::create(model, sinks_on_window);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().message(), "attention sinks apply to the streaming policy only, not window");
  CacheOptions huge;
  huge.window = size_t{1} << 40;
  auto b = Stream::create(model, huge);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code(), ErrorCode::kLimit);
  SamplingOptions bad_top_p;
  bad_top_p.top_p = 0;
  auto c = Stream::create(model, CacheOptions{}, bad_top_p);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message(), "sampler options: top_p must be in (0, 1] (1 = off), got 0");
  auto none = Stream::create(nullptr);
  ASSERT_FALSE(none.ok());
  auto fresh = Stream::create(model);
  ASSERT_TRUE(fresh.ok());
  auto nothing_fed = (*fresh)->generate(StopOptions{});
  ASSERT_FALSE(nothing_fed.ok());
}

// The one mapping from a policy and a cache size to sinks and window.
TEST(ApiOptionsTest, ForPolicyMapsACacheSize) {
  auto s = CacheOptions::for_policy(CachePolicy::kStreaming, 128, 4);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->n_sinks, 4u);
  EXPECT_EQ(s->window, 124u);
  EXPECT_EQ(s->capacity(), 128u);
  for (CachePolicy p : {CachePolicy::kWindow, CachePolicy::kRecompute, CachePolicy::kDense}) {
    auto o = CacheOptions::for_policy(p, 128);
    ASSERT_TRUE(o.ok());
    EXPECT_EQ(o->n_sinks, 0u) << policy_name(p);
    EXPECT_EQ(o->window, 128u) << policy_name(p);
  }
  auto full = CacheOptions::for_policy(CachePolicy::kStreaming, 4, 4);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().message(), "4 sinks leave no room for a window in a cache of 4 tokens");
  auto p = parse_policy("recompute");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, CachePolicy::kRecompute);
  EXPECT_FALSE(parse_policy("sliding").ok());
}

// perplexity() is a fresh stream fed in chunks: equal to feeding one token at a time through a
// Stream and scoring its logits.
TEST(ApiPerplexityTest, EqualsTokenByTokenScoring) {
  const auto model = stories();
  auto tokens = model->tokenize("Once upon a time, there was a little dog. The dog liked to run.");
  ASSERT_TRUE(tokens.ok());
  auto cache = CacheOptions::for_policy(CachePolicy::kStreaming, 16, 4);
  ASSERT_TRUE(cache.ok());
  size_t last_progress = 0;
  auto nll = perplexity(model, *tokens, *cache, [&](size_t n) { last_progress = n; });
  ASSERT_TRUE(nll.ok()) << nll.error().message();
  ASSERT_EQ(nll->size(), tokens->size() - 1);
  EXPECT_EQ(last_progress, tokens->size() - 1);
  auto stream = Stream::create(model, *cache);
  ASSERT_TRUE(stream.ok());
  for (size_t i = 0; i + 1 < tokens->size(); ++i) {
    ASSERT_TRUE((*stream)->feed(std::span(*tokens).subspan(i, 1)).ok());
    const auto logits = (*stream)->logits();
    double max = logits[0], sum = 0;
    for (float l : logits) max = std::max(max, static_cast<double>(l));
    for (float l : logits) sum += std::exp(static_cast<double>(l) - max);
    const double expected = -(logits[static_cast<size_t>((*tokens)[i + 1])] - max - std::log(sum));
    EXPECT_NEAR((*nll)[i], expected, 1e-5) << "token " << i + 1;
  }
}

// A chat saved and loaded continues exactly as one that never stopped (seeded sampling), and
// its cache never grows.
TEST(ApiChatTest, SaveAndLoadContinueExactly) {
  const auto model = stories();
  ChatOptions options;
  options.cache = *CacheOptions::for_policy(CachePolicy::kStreaming, 48, 4);
  options.sampling.seed = 7;
  StopOptions stop;
  stop.max_tokens = 24;
  const std::vector<std::string> turns = {"Once upon a time", "The dog ran", "She smiled",
                                          "They played", "The end"};
  auto whole = Chat::create(model, options);
  ASSERT_TRUE(whole.ok()) << whole.error().message();
  EXPECT_EQ((*whole)->options().template_name, "plain");  // no chat template in the file
  std::vector<std::string> expected;
  for (const std::string& t : turns) {
    auto r = (*whole)->send(t, stop);
    ASSERT_TRUE(r.ok()) << r.error().message();
    expected.push_back(r->text);
  }
  const size_t bytes = (*whole)->cache_bytes();

  const std::string path = temp_path("chat.session");
  auto first = Chat::create(model, options);
  ASSERT_TRUE(first.ok());
  for (size_t i = 0; i < 2; ++i) ASSERT_EQ((*first)->send(turns[i], stop)->text, expected[i]);
  ASSERT_TRUE((*first)->save(path).ok());
  auto resumed = Chat::load(model, path);
  ASSERT_TRUE(resumed.ok()) << resumed.error().message();
  EXPECT_EQ((*resumed)->n_turns(), 2u);
  for (size_t i = 2; i < turns.size(); ++i) {
    auto r = (*resumed)->send(turns[i], stop);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->text, expected[i]) << "turn " << i;
  }
  EXPECT_EQ((*resumed)->cache_bytes(), bytes);
  EXPECT_GT((*resumed)->n_seen(), 48u);  // the window has wrapped
  std::filesystem::remove(path);

  auto bad = (*resumed)->send("ok \xc3\x28", stop);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ((*resumed)->n_turns(), turns.size());  // a refused turn changes nothing
}

// A stored exchange fed by add_turn is the exchange the chat would have had: when the reply text
// is one the model generated (and renders back to its tokens), the next turn goes on as if the
// chat had generated it. (Not every reply does: the plain template writes a space in front of a
// stored reply, so a reply that began with "," renders as " ," and one token longer.)
TEST(ApiChatTest, AddTurnFeedsAStoredExchangeAsTheChatWouldHave) {
  const auto model = stories();
  ChatOptions options;
  options.cache = *CacheOptions::for_policy(CachePolicy::kStreaming, 48, 4);
  options.sampling.temperature = 0;
  StopOptions stop;
  stop.max_tokens = 20;
  auto generated = Chat::create(model, options);
  ASSERT_TRUE(generated.ok());
  const std::string opening = "Once upon a time there was a cat.";
  auto first = (*generated)->send(opening, stop);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->stop, StopReason::kMaxTokens);
  ASSERT_EQ(first->text.rfind("The cat was", 0), 0u) << first->text;
  auto second = (*generated)->send("The dog ran", stop);
  ASSERT_TRUE(second.ok());

  auto stored = Chat::create(model, options);
  ASSERT_TRUE(stored.ok());
  auto fed = (*stored)->add_turn(opening, first->text);
  ASSERT_TRUE(fed.ok()) << fed.error().message();
  EXPECT_EQ(*fed, first->prompt_tokens.size() + first->n_tokens);
  EXPECT_EQ((*stored)->n_turns(), 1u);
  auto after = (*stored)->send("The dog ran", stop);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->prompt_tokens, second->prompt_tokens);
  EXPECT_EQ(after->tokens, second->tokens);
  EXPECT_EQ(after->text, second->text);
  EXPECT_FALSE((*stored)->add_turn("ok \xc3\x28", "fine").ok());  // invalid UTF-8: refused
  EXPECT_EQ((*stored)->n_turns(), 2u);
}

// set_sampling changes the options from the next reply on and keeps the penalty history: greedy
// with a repetition penalty depends on that history only, so a chat whose options were set again
// (with another seed) answers as the one that was left alone; save() stores the new options.
TEST(ApiChatTest, SetSamplingKeepsThePenaltyHistory) {
  const auto model = stories();
  ChatOptions options;
  options.cache = *CacheOptions::for_policy(CachePolicy::kStreaming, 48, 4);
  options.sampling.temperature = 0;
  options.sampling.repeat_penalty = 1.5f;
  StopOptions stop;
  stop.max_tokens = 24;
  auto left = Chat::create(model, options);
  auto reset = Chat::create(model, options);
  ASSERT_TRUE(left.ok() && reset.ok());
  ASSERT_TRUE((*left)->send("Once upon a time", stop).ok());
  ASSERT_TRUE((*reset)->send("Once upon a time", stop).ok());
  SamplingOptions again = options.sampling;
  again.seed = 99;
  ASSERT_TRUE((*reset)->set_sampling(again).ok());
  EXPECT_EQ((*reset)->options().sampling.seed, 99u);
  auto a = (*left)->send("The dog ran", stop);
  auto b = (*reset)->send("The dog ran", stop);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->tokens, b->tokens);

  SamplingOptions bad = options.sampling;
  bad.top_p = 0;
  EXPECT_FALSE((*reset)->set_sampling(bad).ok());
  EXPECT_EQ((*reset)->options().sampling.seed, 99u);  // unchanged
  const std::string path = temp_path("set_sampling.session");
  ASSERT_TRUE((*reset)->save(path).ok());
  auto loaded = Chat::load(model, path);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  EXPECT_EQ((*loaded)->options().sampling.seed, 99u);
  std::filesystem::remove(path);
}

TEST(ApiInspectTest, AttentionMassHasOneRowPerLayerAndHead) {
  const auto model = stories();
  auto tokens = model->tokenize(
      "Once upon a time, there was a little girl named Lily. She "
      "loved to play outside in the park with her friends.");
  ASSERT_TRUE(tokens.ok());
  auto mass = measure_attention_mass(*model, *tokens);
  ASSERT_TRUE(mass.ok()) << mass.error().message();
  EXPECT_EQ(mass->n_layers, 5u);
  EXPECT_EQ(mass->n_heads, 8u);
  EXPECT_EQ(mass->mass.size(), 5u * 8 * mass->max_k);
  for (size_t k = 1; k <= mass->max_k; ++k) {
    EXPECT_GT(mass->uniform_mass(k), 0.0);
    EXPECT_LT(mass->uniform_mass(k), 1.0);
  }
}

}  // namespace
}  // namespace sllm
