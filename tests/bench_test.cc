// `streamingllm bench` end to end on stories260K: the latency windows it plans (the first one only
// once the cache is full), the cache and memory figures in its JSON, and its flag errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "cli_runner.h"
#include "test_util.h"

namespace sllm::test {
namespace {

const std::string kModel = quote(stories_gguf());

TEST(BenchCliTest, ReportsWindowsAfterTheCacheFillsAndConstantMemory) {
  // 4 sinks + 28 window = 32 slots; 1200 tokens: windows [32, 1056) and [176, 1200).
  const std::string json_path = temp_dir() + "/bench.json";
  const auto r = run_cli("bench -m " + kModel +
                         " --tokens 1200 --sinks 4 --window 28 -t 1 --temp 0 --json " + json_path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("cache full: tokens 32..1056"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("last: tokens 176..1200"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("last / cache full"), std::string::npos) << r.out;

  const auto j = nlohmann::json::parse(slurp(json_path));
  EXPECT_EQ(j["policy"], "streaming");
  EXPECT_EQ(j["n_tokens"], 1200);
  EXPECT_EQ(j["cache_tokens"], 32);
  // 32 slots x 5 layers x (K, V) x 4 KV heads x head_dim 8 x 4 bytes.
  EXPECT_EQ(j["cache_bytes"], 32 * 5 * 2 * 4 * 8 * 4);
  ASSERT_EQ(j["latency_windows"].size(), 2u);
  EXPECT_EQ(j["latency_windows"][0]["begin"], 32);
  EXPECT_EQ(j["latency_windows"][0]["end"], 1056);
  EXPECT_EQ(j["latency_windows"][1]["begin"], 176);
  EXPECT_EQ(j["latency_windows"][1]["end"], 1200);
  for (const auto& w : j["latency_windows"]) {
    EXPECT_GT(w["wall_mean_us"].get<double>(), 0.0);
    EXPECT_GT(w["wall_median_us"].get<double>(), 0.0);
    EXPECT_GT(w["cpu_mean_us"].get<double>(), 0.0);
  }
  EXPECT_GT(j["latency_ratio_last_to_cache_full"]["cpu_mean"].get<double>(), 0.0);
  EXPECT_GT(j["tokens_per_second"].get<double>(), 0.0);
  // Fewer than 10K tokens: no reading at 10K, one at the end.
  EXPECT_EQ(j["peak_rss_bytes_at_10k"], 0);
  EXPECT_GT(j["peak_rss_bytes_at_end"].get<uint64_t>(), uint64_t{1} << 20);
}

TEST(BenchCliTest, DenseStopsAtItsLimitAndBadFlagsAreErrors) {
  const auto dense = run_cli("bench -m " + kModel + " --policy dense -c 100 --tokens 200 -t 1");
  EXPECT_EQ(dense.exit_code, 1);
  EXPECT_NE(dense.err.find("dense attention would exceed its context limit of 100 tokens"),
            std::string::npos)
      << dense.err;

  const auto sinks = run_cli("bench -m " + kModel + " --policy window --sinks 2 --tokens 10");
  EXPECT_EQ(sinks.exit_code, 1);
  EXPECT_NE(sinks.err.find("--sinks applies to --policy streaming only"), std::string::npos)
      << sinks.err;

  const auto zero = run_cli("bench -m " + kModel + " --tokens 0");
  EXPECT_NE(zero.exit_code, 0);
  EXPECT_NE(zero.err.find("--tokens"), std::string::npos) << zero.err;
}

}  // namespace
}  // namespace sllm::test
