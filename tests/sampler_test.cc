#include "sampling/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace sllm {
namespace {

// Options with every filter off: a plain draw from softmax(logits / temperature).
SamplerOptions plain_options(float temperature, uint64_t seed = 1) {
  SamplerOptions options;
  options.temperature = temperature;
  options.top_k = 0;
  options.top_p = 1.0f;
  options.min_p = 0.0f;
  options.seed = seed;
  return options;
}

// Draws n_draws tokens from a fresh copy of `logits` each time (sample() modifies its input).
std::vector<int> draw_counts(Sampler& sampler, const std::vector<float>& logits, int n_draws) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < n_draws; ++i) {
    std::vector<float> scratch = logits;
    ++counts[static_cast<size_t>(sampler.sample(scratch))];
  }
  return counts;
}

std::vector<double> softmax(const std::vector<float>& logits, double temperature) {
  double max_logit = logits[0];
  for (float l : logits) max_logit = std::max(max_logit, static_cast<double>(l));
  std::vector<double> p;
  double sum = 0.0;
  for (float l : logits) {
    p.push_back(std::exp((l - max_logit) / temperature));
    sum += p.back();
  }
  for (double& x : p) x /= sum;
  return p;
}

// Each count is a binomial(n, p_i): it must lie within 5 standard deviations of n * p_i
// (false-failure rate ~6e-7 per token).
void expect_counts_match(const std::vector<int>& counts, const std::vector<double>& p, int n) {
  for (size_t i = 0; i < p.size(); ++i) {
    const double mean = n * p[i];
    const double sigma = std::sqrt(n * p[i] * (1.0 - p[i]));
    EXPECT_NEAR(counts[i], mean, 5.0 * sigma + 1e-9) << "token " << i << ", p " << p[i];
  }
}

// Pseudo-random logits in [-4, 4), reproducible.
std::vector<float> random_logits(size_t n, uint64_t seed) {
  Rng rng = Rng::from_seed(seed);
  std::vector<float> logits(n);
  for (float& l : logits) l = static_cast<float>(rng.next_double() * 8.0 - 4.0);
  return logits;
}

TEST(RngTest, MatchesReferenceSplitmixAndXoshiro) {
  // splitmix64 from 0: the reference vectors of Vigna's splitmix64.c.
  Rng rng = Rng::from_seed(0);
  EXPECT_EQ(rng.s[0], 0xe220a8397b1dcdafULL);
  EXPECT_EQ(rng.s[1], 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(rng.s[2], 0x06c45d188009454fULL);
  EXPECT_EQ(rng.s[3], 0xf88bb8a8724c81ecULL);
  // xoshiro256** outputs from that state (computed with an independent Python transcription of
  // xoshiro256starstar.c): the token stream for a seed is the same on every platform.
  EXPECT_EQ(rng.next_u64(), 0x99ec5f36cb75f2b4ULL);
  EXPECT_EQ(rng.next_u64(), 0xbf6e1f784956452aULL);
  EXPECT_EQ(rng.next_u64(), 0x1a5f849d4933e6e0ULL);
}

TEST(RngTest, DoublesAreInUnitInterval) {
  Rng rng = Rng::from_seed(7);
  double sum = 0.0;
  for (int i = 0; i < 10000; ++i) {
    const double u = rng.next_double();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  // Mean of 10000 uniforms: 0.5 +- 5 * sqrt(1/12 / 10000).
  EXPECT_NEAR(sum / 10000, 0.5, 5 * std::sqrt(1.0 / 12 / 10000));
}

TEST(SamplerTest, GreedyPicksArgmaxAndLowestIdOnTies) {
  Sampler sampler(plain_options(0.0f), 5);
  std::vector<float> logits = {0.5f, 3.0f, -1.0f, 2.9f, 0.0f};
  EXPECT_EQ(sampler.sample(logits), 1);
  std::vector<float> tied = {1.0f, 4.0f, 2.0f, 4.0f, 4.0f};
  EXPECT_EQ(sampler.sample(tied), 1);
  std::vector<float> negative = {-5.0f, -3.0f, -4.0f, -3.5f, -9.0f};
  EXPECT_EQ(sampler.sample(negative), 1);
}

TEST(SamplerTest, GreedyDoesNotAdvanceTheRng) {
  Sampler sampler(plain_options(0.0f), 4);
  const std::string before = sampler.save_state();
  std::vector<float> logits = {0.0f, 1.0f, 2.0f, 3.0f};
  sampler.sample(logits);
  EXPECT_EQ(sampler.save_state(), before);
}

TEST(SamplerTest, TopKOneIsGreedyAtAnyTemperature) {
  for (float temperature : {0.1f, 0.8f, 1.0f, 5.0f, 100.0f}) {
    SamplerOptions options;  // default top-p and min-p stay on: they must not change the result
    options.temperature = temperature;
    options.top_k = 1;
    options.seed = static_cast<uint64_t>(temperature * 1000);
    Sampler sampler(options, 100);
    Sampler greedy(plain_options(0.0f), 100);
    for (uint64_t trial = 0; trial < 20; ++trial) {
      std::vector<float> logits = random_logits(100, trial);
      std::vector<float> copy = logits;
      EXPECT_EQ(sampler.sample(logits), greedy.sample(copy)) << "temperature " << temperature;
    }
  }
}

TEST(SamplerTest, TinyTopPKeepsOnlyTheMostLikelyToken) {
  SamplerOptions options = plain_options(1.0f);
  options.top_p = 1e-6f;
  Sampler sampler(options, 4);
  // softmax ~ {0.24, 0.26, 0.24, 0.26}: without top-p every token would appear about 500 times.
  const std::vector<float> logits = {1.0f, 1.1f, 1.0f, 1.1f};
  const std::vector<int> counts = draw_counts(sampler, logits, 2000);
  EXPECT_EQ(counts, (std::vector<int>{0, 2000, 0, 0}));  // ties: the lower id is "the" max
}

TEST(SamplerTest, TopPKeepsThePrefixThatCrossesTheMass) {
  // p = {0.5, 0.3, 0.15, 0.05}. top_p 0.7: 0.5 < 0.7 <= 0.8, so tokens 0 and 1 survive, and the
  // draw follows the renormalised {0.5, 0.3} / 0.8.
  SamplerOptions options = plain_options(1.0f, 3);
  options.top_p = 0.7f;
  Sampler sampler(options, 4);
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f),
                                     std::log(0.05f)};
  const int n = 20000;
  const std::vector<int> counts = draw_counts(sampler, logits, n);
  expect_counts_match(counts, {0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0}, n);
}

TEST(SamplerTest, MinPDropsTokensBelowTheFractionOfTheMax) {
  // p = {0.5, 0.3, 0.15, 0.05}, min_p 0.25: the threshold is 0.25 * 0.5 = 0.125, so token 3
  // (0.05) goes and token 2 (0.15) stays; survivors are drawn from {0.5, 0.3, 0.15} / 0.95.
  SamplerOptions options = plain_options(1.0f, 5);
  options.min_p = 0.25f;
  Sampler sampler(options, 4);
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f),
                                     std::log(0.05f)};
  const int n = 20000;
  const std::vector<int> counts = draw_counts(sampler, logits, n);
  EXPECT_EQ(counts[3], 0);
  expect_counts_match(counts, {0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0}, n);

  // min_p 0.35: threshold 0.175 now drops token 2 as well.
  options.min_p = 0.35f;
  Sampler stricter(options, 4);
  const std::vector<int> strict_counts = draw_counts(stricter, logits, n);
  EXPECT_EQ(strict_counts[2], 0);
  EXPECT_EQ(strict_counts[3], 0);
  expect_counts_match(strict_counts, {0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0}, n);
}

TEST(SamplerTest, RepeatPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  SamplerOptions options = plain_options(0.0f);
  options.repeat_penalty = 1.5f;
  options.repeat_last_n = 2;
  Sampler sampler(options, 4);

  std::vector<float> logits = {2.0f, 1.8f, -1.0f, -1.2f};
  EXPECT_EQ(sampler.sample(logits), 0);  // empty history: no penalty
  EXPECT_EQ(logits[0], 2.0f);

  sampler.accept(0);
  sampler.accept(0);  // counted once: the penalty is not applied per occurrence
  logits = {2.0f, 1.8f, -1.0f, -1.2f};
  EXPECT_EQ(sampler.sample(logits), 1);  // 2.0 / 1.5 = 1.33 < 1.8
  EXPECT_EQ(logits[0], 2.0f / 1.5f);
  EXPECT_EQ(logits[1], 1.8f);

  // A negative logit is multiplied: -1.0 * 1.5 = -1.5 < -1.2, so token 3 wins.
  sampler.accept(2);
  logits = {-9.0f, -9.0f, -1.0f, -1.2f};
  EXPECT_EQ(sampler.sample(logits), 3);
  EXPECT_EQ(logits[2], -1.5f);

  // The history is a ring of repeat_last_n = 2: after two more tokens, 2 is forgotten.
  sampler.accept(1);
  sampler.accept(1);
  logits = {-9.0f, -9.0f, -1.0f, -1.2f};
  EXPECT_EQ(sampler.sample(logits), 2);
}

TEST(SamplerTest, SameSeedSameTokensDifferentSeedDifferentTokens) {
  const std::vector<float> logits = random_logits(32, 99);
  auto run = [&](uint64_t seed) {
    SamplerOptions options;  // the defaults: top-k, top-p and min-p all active
    options.temperature = 1.5f;
    options.seed = seed;
    Sampler sampler(options, logits.size());
    std::vector<int32_t> tokens;
    for (int i = 0; i < 200; ++i) {
      std::vector<float> scratch = logits;
      tokens.push_back(sampler.sample(scratch));
    }
    return tokens;
  };
  EXPECT_EQ(run(1234), run(1234));
  EXPECT_NE(run(1234), run(1235));
}

TEST(SamplerTest, SaveAndLoadMidStreamContinuesIdentically) {
  SamplerOptions options;
  options.temperature = 1.2f;
  options.repeat_penalty = 1.3f;
  options.repeat_last_n = 8;
  options.seed = 77;
  const size_t n_vocab = 64;
  // Logits depend on the step, as a model's would.
  auto step = [&](Sampler& sampler, int i) {
    std::vector<float> logits = random_logits(n_vocab, static_cast<uint64_t>(i % 5));
    const int32_t token = sampler.sample(logits);
    sampler.accept(token);
    return token;
  };

  Sampler original(options, n_vocab);
  for (int i = 0; i < 37; ++i) step(original, i);  // 37 > 8: the ring has wrapped
  const std::string state = original.save_state();
  std::vector<int32_t> expected;
  for (int i = 37; i < 100; ++i) expected.push_back(step(original, i));

  SamplerOptions other_seed = options;
  other_seed.seed = 1;
  Sampler resumed(other_seed, n_vocab);
  ASSERT_TRUE(resumed.load_state(state).ok());
  EXPECT_EQ(resumed.save_state(), state);
  std::vector<int32_t> actual;
  for (int i = 37; i < 100; ++i) actual.push_back(step(resumed, i));
  EXPECT_EQ(actual, expected);
}

TEST(SamplerTest, DrawsFollowSoftmaxAtTemperature) {
  const std::vector<float> logits = {1.0f, 0.0f, 2.0f, -1.0f, 0.5f, 1.5f};
  const int n = 100000;
  for (float temperature : {1.0f, 0.5f}) {
    Sampler sampler(plain_options(temperature, 2024), logits.size());
    const std::vector<int> counts = draw_counts(sampler, logits, n);
    SCOPED_TRACE(temperature);
    expect_counts_match(counts, softmax(logits, temperature), n);
  }
}

TEST(SamplerOptionsTest, DefaultsAreValid) { EXPECT_TRUE(SamplerOptions{}.validate().ok()); }

TEST(SamplerOptionsTest, RejectsInvalidValuesWithMessages) {
  auto message = [](auto mutate) {
    SamplerOptions options;
    mutate(options);
    const Status status = options.validate();
    EXPECT_FALSE(status.ok());
    if (status.ok()) return std::string();
    EXPECT_EQ(status.error().code(), ErrorCode::kInvalidInput);
    return status.error().message();
  };
  EXPECT_EQ(message([](SamplerOptions& o) { o.temperature = -0.5f; }),
            "sampler options: temperature must be >= 0 (0 = greedy), got -0.5");
  EXPECT_EQ(message([](SamplerOptions& o) { o.temperature = NAN; }),
            "sampler options: temperature must be >= 0 (0 = greedy), got nan");
  EXPECT_EQ(message([](SamplerOptions& o) { o.top_k = -1; }),
            "sampler options: top_k must be >= 0 (0 = off), got -1");
  EXPECT_EQ(message([](SamplerOptions& o) { o.top_p = 0.0f; }),
            "sampler options: top_p must be in (0, 1] (1 = off), got 0");
  EXPECT_EQ(message([](SamplerOptions& o) { o.top_p = 1.5f; }),
            "sampler options: top_p must be in (0, 1] (1 = off), got 1.5");
  EXPECT_EQ(message([](SamplerOptions& o) { o.min_p = -0.1f; }),
            "sampler options: min_p must be in [0, 1] (0 = off), got -0.1");
  EXPECT_EQ(message([](SamplerOptions& o) { o.min_p = 2.0f; }),
            "sampler options: min_p must be in [0, 1] (0 = off), got 2");
  EXPECT_EQ(message([](SamplerOptions& o) { o.repeat_penalty = 0.0f; }),
            "sampler options: repeat_penalty must be > 0 (1 = off), got 0");
  EXPECT_EQ(message([](SamplerOptions& o) { o.repeat_last_n = -64; }),
            "sampler options: repeat_last_n must be >= 0 (0 = off), got -64");
}

TEST(SamplerStateTest, RejectsCorruptStateAndStaysUnchanged) {
  SamplerOptions options = plain_options(1.0f, 11);
  options.repeat_last_n = 3;
  Sampler sampler(options, 10);
  sampler.accept(4);
  const std::string good = sampler.save_state();
  EXPECT_EQ(good.substr(0, good.find('\n')), "sllm-sampler-state v1");

  const std::string rng = "rng 0000000000000001 0000000000000002 0000000000000003 0000000000000004";
  auto error_of = [&](const std::string& state) {
    const Status status = sampler.load_state(state);
    EXPECT_FALSE(status.ok()) << state;
    if (status.ok()) return std::string();
    EXPECT_EQ(status.error().code(), ErrorCode::kFormat);
    return status.error().message();
  };
  EXPECT_EQ(error_of(""), "sampler state: does not start with 'sllm-sampler-state'");
  EXPECT_EQ(error_of("sllm-sampler-state v2\n" + rng + "\nhistory 0\n"),
            "sampler state: version 'v2' is not supported (expected 'v1')");
  EXPECT_EQ(error_of("sllm-sampler-state v1\nrng 1 2\n"),
            "sampler state: expected 'rng' with 4 words, then 'history'");
  EXPECT_EQ(error_of("sllm-sampler-state v1\nrng 000000000000000g 0000000000000002 "
                     "0000000000000003 0000000000000004\nhistory 0\n"),
            "sampler state: rng word 0 '000000000000000g' is not 16 hex digits");
  EXPECT_EQ(error_of("sllm-sampler-state v1\nrng 0000000000000000 0000000000000000 "
                     "0000000000000000 0000000000000000\nhistory 0\n"),
            "sampler state: rng state is all zero (xoshiro256** would only ever return 0)");
  EXPECT_EQ(error_of("sllm-sampler-state v1\n" + rng + "\nhistory -1\n"),
            "sampler state: history length '-1' is not a number");
  EXPECT_EQ(error_of("sllm-sampler-state v1\n" + rng + "\nhistory 4 1 2 3 4\n"),
            "sampler state: history holds 4 tokens but repeat_last_n is 3");
  EXPECT_EQ(error_of("sllm-sampler-state v1\n" + rng + "\nhistory 2 1\n"),
            "sampler state: history announces 2 tokens but 1 follow");
  EXPECT_EQ(error_of("sllm-sampler-state v1\n" + rng + "\nhistory 2 1 10\n"),
            "sampler state: history token 1 '10' is not an id below n_vocab 10");

  EXPECT_EQ(sampler.save_state(), good);  // failed loads changed nothing
  ASSERT_TRUE(sampler.load_state("sllm-sampler-state v1\n" + rng + "\nhistory 2 9 0\n").ok());
  EXPECT_EQ(sampler.save_state(), "sllm-sampler-state v1\n" + rng + "\nhistory 2 9 0\n");
}

}  // namespace
}  // namespace sllm
