// `streamingllm bench` end to end on stories260K: the latency windows it plans (the first one only
// once the cache is full), the cache and memory figures in its JSON, and its flag errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
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
    // The 99th percentile of a window's 1024 wall times is at least its median.
    EXPECT_GE(w["wall_p99_us"].get<double>(), w["wall_median_us"].get<double>());
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

// Without --tokens: the speed report, every part of it (tiny sizes: the figures are the
// benchmark's business, not the test's), and its own flag errors.
TEST(BenchCliTest, WithoutTokensPrintsTheSpeedReport) {
  const std::string json_path = temp_dir() + "/speed.json";
  const auto r = run_cli("bench -m " + kModel +
                         " -t 1 --prefill 16 --decode 4 --rounds 2 --caches 16,32 --full-cache 64 "
                         "--streaming-tokens 3 --recompute-tokens 2 --bandwidth-mib 16 --json " +
                         json_path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* line :
       {"read bandwidth: ", "prefill:        16 tokens in one batch: ",
        "decode:         after 8 tokens: ", "decode:         cache full (64 tokens): ",
        "   cache    streaming    recompute  speed-up\n",
        "where a decoded token's time goes (a profiled run of 4 tokens after 8; ",
        "  rest (sampling, bookkeeping) ", "peak RSS:       "}) {
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
  }
  const auto j = nlohmann::json::parse(slurp(json_path));
  EXPECT_EQ(j["file_bytes"].get<uint64_t>(), std::filesystem::file_size(stories_gguf()));
  EXPECT_EQ(j["prefill"]["seconds"].size(), 2u);
  EXPECT_EQ(j["decode_short"]["seconds_per_token"].size(), 2u);
  EXPECT_EQ(j["decode_full"]["seconds_per_token"].size(), 2u);
  ASSERT_EQ(j["latency_by_cache"].size(), 2u);
  EXPECT_EQ(j["latency_by_cache"][0]["cache"], 16);
  EXPECT_EQ(j["latency_by_cache"][1]["cache"], 32);
  for (const auto& row : j["latency_by_cache"]) {
    EXPECT_GT(row["streaming_ms"].get<double>(), 0.0);
    EXPECT_GT(row["recompute_ms"].get<double>(), 0.0);
  }
  EXPECT_GT(j["bandwidth_gbs"]["best"].get<double>(), 0.0);
  EXPECT_GT(j["peak_rss_bytes"].get<uint64_t>(), uint64_t{1} << 20);
  // The profiled decode: 4 passes of one token through 5 layers; the f32 output head [512, 64]
  // read once a token (every phase's counts:
  // ApiStreamTest.ProfileCountsEveryPhaseAndChangesNothing).
  const auto& profile = j["decode_profile"];
  EXPECT_EQ(profile["tokens"], 4);
  ASSERT_EQ(profile["phases"].size(), 8u);
  EXPECT_EQ(profile["phases"][2]["phase"], "qkv");
  EXPECT_EQ(profile["phases"][2]["calls"], 4 * 5);
  EXPECT_EQ(profile["phases"][7]["phase"], "lm_head");
  EXPECT_EQ(profile["phases"][7]["weight_bytes"], 4 * 512 * 64 * 4);
  double phases_s = 0;
  for (const auto& ph : profile["phases"]) phases_s += ph["seconds"].get<double>();
  EXPECT_GT(phases_s, 0.0);
  EXPECT_LE(phases_s, profile["seconds"].get<double>());

  // --profile-cache: the profiled decode in a full streaming cache instead of after 8 tokens.
  const auto full = run_cli("bench -m " + kModel +
                            " -t 1 --prefill 0 --decode 4 --rounds 1 --caches '' --full-cache 0 "
                            "--profile-cache 48 --bandwidth-mib 16 --json " +
                            json_path);
  ASSERT_EQ(full.exit_code, 0) << full.err;
  EXPECT_NE(full.out.find("where a decoded token's time goes (a profiled run of 4 tokens in a full "
                          "48-token cache; "),
            std::string::npos)
      << full.out;
  const auto jf = nlohmann::json::parse(slurp(json_path));
  EXPECT_EQ(jf["decode_profile"]["cache_tokens"], 48);
  EXPECT_EQ(jf["decode_profile"]["tokens"], 4);
  EXPECT_EQ(jf["decode_profile"]["phases"][3]["phase"], "attention");
  EXPECT_EQ(jf["decode_profile"]["phases"][3]["calls"], 4 * 5);
  EXPECT_EQ(j["decode_profile"]["cache_tokens"], 0);

  const std::string ids = temp_dir() + "/ids.txt";
  std::ofstream(ids) << "1 2 512\n";
  const auto bad_id = run_cli("bench -m " + kModel + " --ids-file " + ids);
  EXPECT_EQ(bad_id.exit_code, 1);
  EXPECT_EQ(bad_id.err, "error: " + ids + ": token id 512 is outside the vocabulary of 512\n");
  const auto policy = run_cli("bench -m " + kModel + " --policy window");
  EXPECT_EQ(policy.exit_code, 1);
  EXPECT_EQ(policy.err,
            "error: --policy applies to the endless stream (--tokens); the speed report measures "
            "its own caches\n");
  const auto caches = run_cli("bench -m " + kModel + " --caches 64,,128");
  EXPECT_EQ(caches.err, "error: --caches: '' is not a cache size in [8, 1048576]\n");
}

// --full-cache 0 drops the full-cache decode, --profile 0 the profiled one; recompute times at most
// 2 tokens from cache 2048 on (each one is a prefill of the whole cache: a minute at 4096 on a 1.1B
// model).
TEST(BenchCliTest, SpeedReportFullCacheAndRecomputeTokens) {
  const std::string json_path = temp_dir() + "/speed_caps.json";
#if defined(SLLM_TEST_ASAN)
  const std::string caches = "16,32";  // 2048-token prefills take too long under the sanitizers
#else
  const std::string caches = "16,2048";
#endif
  const auto r =
      run_cli("bench -m " + kModel + " -t 1 --prefill 0 --decode 4 --rounds 1 " +
              "--full-cache 0 --profile 0 --caches " + caches +
              " --streaming-tokens 2 --recompute-tokens 3 --bandwidth-mib 16 --json " + json_path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("cache full"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("where a decoded token's time goes"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(slurp(json_path));
  EXPECT_FALSE(j.contains("decode_full"));
  EXPECT_FALSE(j.contains("decode_profile"));
  EXPECT_EQ(j["decode_short"]["seconds_per_token"].size(), 1u);
  ASSERT_EQ(j["latency_by_cache"].size(), 2u);
  EXPECT_EQ(j["latency_by_cache"][0]["recompute_tokens"], 3);
#if !defined(SLLM_TEST_ASAN)
  EXPECT_EQ(j["latency_by_cache"][1]["recompute_tokens"], 2);
#endif
  EXPECT_GT(j["streaming_largest_over_smallest"].get<double>(), 0.0);
}

}  // namespace
}  // namespace sllm::test
