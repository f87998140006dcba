// The public API's promises about threads (include/streamingllm/model.h, options.h), on a model
// whose pool has two threads: streams of one model used from two threads at once take turns and
// each gets what it gets alone; an interrupt set by another thread ends a generation and a feed.
// Labelled `threads`: the `tsan` preset runs them under ThreadSanitizer.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "api_model.h"
#include "streamingllm/streamingllm.h"

namespace sllm {
namespace {

std::shared_ptr<const Model> two_thread_model() { return test::stories_model(2); }

struct Output {
  std::vector<TokenId> tokens;
  std::string text;
};

// A streaming cache smaller than the run, so that eviction happens on both threads too.
Output generate(const std::shared_ptr<const Model>& model, const std::string& prompt,
                uint64_t seed) {
  CacheOptions cache;
  cache.n_sinks = 4;
  cache.window = 24;
  SamplingOptions sampling;
  sampling.temperature = 0.8f;
  sampling.seed = seed;
  auto s = Stream::create(model, cache, sampling);
  EXPECT_TRUE(s.ok()) << s.error().message();
  if (!s.ok()) return {};
  auto fed = (*s)->feed_text(prompt, /*add_bos=*/true);
  EXPECT_TRUE(fed.ok()) << fed.error().message();
  StopOptions stop;
  stop.max_tokens = 40;
  stop.at_end_of_generation = false;
  Output r;
  auto g = (*s)->generate(stop, [&](std::string_view t) { r.text += t; });
  EXPECT_TRUE(g.ok()) << g.error().message();
  if (g.ok()) r.tokens = g->tokens;
  return r;
}

TEST(ApiThreads, TwoStreamsOfOneModelOnTwoThreadsEachEqualAlone) {
  const auto model = two_thread_model();
  ASSERT_NE(model, nullptr);
  ASSERT_EQ(model->n_threads(), 2u);
  const std::string prompts[2] = {"Once upon a time", "Lily and Tom went to the park."};
  const Output alone[2] = {generate(model, prompts[0], 1), generate(model, prompts[1], 2)};
  ASSERT_EQ(alone[0].tokens.size(), 40u);
  ASSERT_EQ(alone[1].tokens.size(), 40u);
  for (int round = 0; round < 2; ++round) {
    Output together[2];
    std::thread a([&] { together[0] = generate(model, prompts[0], 1); });
    std::thread b([&] { together[1] = generate(model, prompts[1], 2); });
    a.join();
    b.join();
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(together[i].tokens, alone[i].tokens) << "stream " << i << ", round " << round;
      EXPECT_EQ(together[i].text, alone[i].text) << "stream " << i << ", round " << round;
    }
  }
}

TEST(ApiThreads, AnInterruptFromAnotherThreadEndsTheGeneration) {
  const auto model = two_thread_model();
  ASSERT_NE(model, nullptr);
  auto s = Stream::create(model, CacheOptions{}, SamplingOptions{});
  ASSERT_TRUE(s.ok()) << s.error().message();
  ASSERT_TRUE((*s)->feed_text("Once upon a time", true).ok());
  std::atomic<bool> interrupt{false};
  std::atomic<int> n_pieces{0};  // tokens generated so far
  StopOptions stop;
  stop.interrupt = &interrupt;
  stop.at_end_of_generation = false;
  stop.max_tokens = 100000;  // far more than it can make before the interrupt
  std::thread setter([&] {
    while (n_pieces.load() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    interrupt = true;
  });
  auto g = (*s)->generate(stop, {}, [&](TokenId) { ++n_pieces; });
  setter.join();
  ASSERT_TRUE(g.ok()) << g.error().message();
  EXPECT_EQ(g->stop, StopReason::kInterrupted);
  EXPECT_GE(g->tokens.size(), 3u);
  EXPECT_LT(g->tokens.size(), 100000u);
  // The stream goes on after an interrupt.
  StopOptions more;
  more.max_tokens = 5;
  more.at_end_of_generation = false;
  auto g2 = (*s)->generate(more);
  ASSERT_TRUE(g2.ok()) << g2.error().message();
  EXPECT_EQ(g2->tokens.size(), 5u);
}

}  // namespace
}  // namespace sllm
