// `streamingllm bench`: an endless stream at full speed. Starting from BOS, it samples a token,
// feeds it back, and repeats N times (EOS is fed like any token), then reports throughput, the
// per-token latency once the cache is full against the latency at the end, and peak memory at
// 10K tokens against the end. With the StreamingLLM cache both must stay flat however long the
// stream: that is the claim this command checks (issue 3: a million tokens, ratio <= 1.05).
// Without --tokens it prints the speed report instead (bench_speed.h).
#include <fmt/core.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "bench_speed.h"
#include "cli_options.h"
#include "commands.h"
#include "output.h"

namespace sllm::cli {

namespace {

struct BenchArgs {
  ModelArgs model;
  uint64_t n_tokens = 1'000'000;
  uint64_t report_every = 0;  // 0: no progress lines
  std::string json_path;
  SamplingArgs sampling;
  CacheArgs cache;
  CLI::Option* json_opt = nullptr;
  CLI::Option* tokens_opt = nullptr;
  SpeedArgs speed;
  std::string caches = "256,512,1024,2048,4096";
};

// A billion tokens is hours of streaming even for the smallest model: the most a run may ask for.
constexpr uint64_t kMaxBenchTokens = 1'000'000'000;

// Tokens per latency window: about a thousand, a power of two so that the first window after a
// 1024-token cache fills is [1024, 2048).
constexpr uint64_t kWindowTokens = 1024;

// Per-token latency over generated tokens [begin, end): each token's wall time (its mean and
// median), and the process's CPU time over the window (read at its two ends only: the clock is a
// system call). On a busy machine the wall time also counts other processes' turns: the median
// ignores the tokens that were preempted, the CPU time ignores all waiting.
struct LatencyWindow {
  std::string label;
  uint64_t begin = 0;
  uint64_t end = 0;
  std::vector<float> wall_us_per_token = {};  // [end - begin], reserved up front
  double cpu_begin = 0;
  double cpu_seconds = 0;

  double wall_us() const {
    double sum = 0;
    for (float us : wall_us_per_token) sum += us;
    return wall_us_per_token.empty() ? 0 : sum / static_cast<double>(wall_us_per_token.size());
  }
  // The token at rank floor(q * n) of the window's wall times, ascending (q = 0.5: the median).
  double wall_quantile_us(double q) const {
    if (wall_us_per_token.empty()) return 0;
    std::vector<float> sorted = wall_us_per_token;
    const auto rank =
        std::min(sorted.size() - 1, static_cast<size_t>(q * static_cast<double>(sorted.size())));
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<ptrdiff_t>(rank), sorted.end());
    return sorted[rank];
  }
  double median_wall_us() const { return wall_quantile_us(0.5); }
  double p99_wall_us() const { return wall_quantile_us(0.99); }
  double cpu_us() const {
    return wall_us_per_token.empty()
               ? 0
               : cpu_seconds / static_cast<double>(wall_us_per_token.size()) * 1e6;
  }
};

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// The windows, fixed in advance so that recording a token costs nothing and no memory grows:
// the first after the cache is full, one ending at each decade from 10K below the end, the last.
std::vector<LatencyWindow> plan_windows(uint64_t n_tokens, uint64_t n_cache_tokens) {
  std::vector<LatencyWindow> windows;
  // Generated token i is fed at stream index i + 1 (after BOS); from i = n_cache_tokens on, every
  // token attends over a full cache.
  const uint64_t full = n_cache_tokens;
  if (full + kWindowTokens <= n_tokens) {
    windows.push_back({fmt::format("cache full: tokens {}..{}", full, full + kWindowTokens), full,
                       full + kWindowTokens});
  }
  for (uint64_t decade = 10'000; decade < n_tokens; decade *= 10) {
    if (decade - kWindowTokens < full + kWindowTokens) continue;
    windows.push_back(
        {fmt::format("around {}: tokens {}..{}", decade, decade - kWindowTokens, decade),
         decade - kWindowTokens, decade});
  }
  if (n_tokens >= kWindowTokens && (windows.empty() || windows.back().end != n_tokens)) {
    windows.push_back({fmt::format("last: tokens {}..{}", n_tokens - kWindowTokens, n_tokens),
                       n_tokens - kWindowTokens, n_tokens});
  }
  return windows;
}

double mib(uint64_t n_bytes) { return static_cast<double>(n_bytes) / (1024.0 * 1024.0); }

// The speed report (no --tokens): the cache flags other than --kv-type would do nothing there.
int bench_speed_report(const BenchArgs& a) {
  SLLM_CLI_CHECK(a.cache.check());
  for (const CLI::Option* o :
       {a.cache.policy_opt, a.cache.sinks_opt, a.cache.window_opt, a.cache.ctx_opt}) {
    if (o != nullptr && o->count() > 0) {
      return report(Error(ErrorCode::kInvalidInput,
                          o->get_name() + " applies to the endless stream (--tokens); the speed "
                                          "report measures its own caches"));
    }
  }
  SpeedArgs s = a.speed;
  s.caches.clear();
  std::string_view rest = a.caches;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string item(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
    size_t value = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (ec != std::errc() || end != item.data() + item.size() || value < 8 || value > (1u << 20)) {
      return report(Error(ErrorCode::kInvalidInput,
                          "--caches: '" + item + "' is not a cache size in [8, 1048576]"));
    }
    s.caches.push_back(value);
  }
  SLLM_CLI_ASSIGN(s.kv_type, parse_kv_type(a.cache.kv_type));
  if (a.json_opt->count() > 0) s.json_path = a.json_path;
  SLLM_CLI_ASSIGN(std::shared_ptr<Model> model, a.model.load());
  return bench_speed(s, a.model.path, model);
}

int bench(const BenchArgs& a) {
  if (a.tokens_opt->count() == 0) return bench_speed_report(a);
  if (a.json_opt->count() > 0) SLLM_CLI_CHECK(check_output_path("--json", a.json_path));
  SLLM_CLI_CHECK(a.cache.check());
  SLLM_CLI_ASSIGN(std::shared_ptr<Model> model, a.model.load());
  SLLM_CLI_ASSIGN(CacheOptions cache_options, a.cache.to_options(model->info()));
  SLLM_CLI_ASSIGN(SamplingOptions sampling_options, a.sampling.to_options());
  const ModelInfo& info = model->info();
  if (info.bos < 0) {
    return report(Error(ErrorCode::kInvalidInput, "the model has no BOS token to start from"));
  }
  SLLM_CLI_ASSIGN(auto stream, Stream::create(model, cache_options, sampling_options));
  const std::string cache = describe_cache(cache_options);
  fmt::print(
      stderr,
      "streamingllm bench: {} | policy {} | cache {} tokens, {} bytes ({}) | {} threads | {}\n",
      a.model.path, policy_name(cache_options.policy), stream->cache_tokens(),
      stream->cache_bytes(), cache, model->n_threads(), info.simd_target);

  std::vector<LatencyWindow> windows = plan_windows(a.n_tokens, stream->cache_tokens());
  for (LatencyWindow& w : windows) w.wall_us_per_token.reserve(w.end - w.begin);
  const uint64_t kRssCheckpoint = 10'000;
  uint64_t rss_at_checkpoint = 0;
  using Clock = std::chrono::steady_clock;

  const TokenId bos[1] = {info.bos};
  SLLM_CLI_CHECK(stream->feed(bos));
  const auto starts_window = [&](uint64_t i) {
    for (const LatencyWindow& w : windows) {
      if (w.begin == i) return true;
    }
    return false;
  };
  // The library's decode loop: EOS is fed like any token, nothing is kept. A token's time runs
  // from the end of the previous token's bookkeeping to its own callback: sampling and feeding.
  StopOptions stop;
  stop.max_tokens = static_cast<int64_t>(a.n_tokens);
  stop.at_end_of_generation = false;
  stop.keep_output = false;
  uint64_t i = 0;  // generated tokens so far
  size_t next_window = 0;
  double cpu_at_t0 = starts_window(0) ? process_cpu_seconds() : 0.0;
  const auto start = Clock::now();
  const double cpu_start = process_cpu_seconds();
  auto last_report = start;
  auto t0 = start;
  auto generated = stream->generate(stop, {}, [&](TokenId) {
    const auto t1 = Clock::now();
    while (next_window < windows.size() && i >= windows[next_window].end) ++next_window;
    for (size_t w = next_window; w < windows.size() && windows[w].begin <= i; ++w) {
      LatencyWindow& window = windows[w];
      if (window.wall_us_per_token.empty()) window.cpu_begin = cpu_at_t0;
      window.wall_us_per_token.push_back(
          static_cast<float>(std::chrono::duration<double, std::micro>(t1 - t0).count()));
      if (window.wall_us_per_token.size() == window.end - window.begin) {
        window.cpu_seconds = process_cpu_seconds() - window.cpu_begin;
      }
    }
    if (i + 1 == kRssCheckpoint) rss_at_checkpoint = peak_rss_bytes();
    if (a.report_every > 0 && (i + 1) % a.report_every == 0) {
      const double since = std::chrono::duration<double>(t1 - last_report).count();
      fmt::print(stderr, "{:>12} tokens | {:>9.1f} tok/s | peak RSS {:.1f} MiB\n", i + 1,
                 static_cast<double>(a.report_every) / since, mib(peak_rss_bytes()));
      last_report = t1;
    }
    ++i;
    cpu_at_t0 = starts_window(i) ? process_cpu_seconds() : 0.0;
    t0 = Clock::now();
  });
  if (!generated.ok()) return report(generated.error());
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu_seconds = process_cpu_seconds() - cpu_start;
  const uint64_t rss_end = peak_rss_bytes();
  const double tokens_per_s = seconds > 0 ? static_cast<double>(a.n_tokens) / seconds : 0.0;

  // The report: stdout, then optionally JSON.
  out("model:        {}\n", a.model.path);
  out("policy:       {} ({}), cache {} tokens, {} bytes\n", policy_name(cache_options.policy),
      cache, stream->cache_tokens(), stream->cache_bytes());
  out("threads:      {} ({})\n", model->n_threads(), info.simd_target);
  fmt::print(
      "generated:    {} tokens in {:.3f} s: {:.1f} tok/s (sampling included); CPU {:.3f} s\n",
      a.n_tokens, seconds, tokens_per_s, cpu_seconds);
  out("latency per token over {} tokens (us):     wall mean  wall median   wall p99   CPU mean\n",
      kWindowTokens);
  out("  (the cache is full from token {} on; before, a token attends over fewer tokens)\n",
      stream->cache_tokens());
  for (const LatencyWindow& w : windows) {
    out("  {:<38} {:10.2f} {:12.2f} {:10.2f} {:10.2f}\n", w.label, w.wall_us(), w.median_wall_us(),
        w.p99_wall_us(), w.cpu_us());
  }
  double wall_ratio = 0, median_ratio = 0, p99_ratio = 0, cpu_ratio = 0;
  if (windows.size() >= 2 && windows.front().wall_us() > 0 && windows.front().cpu_us() > 0) {
    wall_ratio = windows.back().wall_us() / windows.front().wall_us();
    median_ratio = windows.back().median_wall_us() / windows.front().median_wall_us();
    p99_ratio = windows.back().p99_wall_us() / windows.front().p99_wall_us();
    cpu_ratio = windows.back().cpu_us() / windows.front().cpu_us();
    out("  {:<38} {:10.3f} {:12.3f} {:10.3f} {:10.3f}\n", "last / cache full", wall_ratio,
        median_ratio, p99_ratio, cpu_ratio);
  }
  if (rss_at_checkpoint > 0) {
    out("peak RSS:     {:.2f} MiB at {} tokens, {:.2f} MiB at the end ({:+.2f} MiB)\n",
        mib(rss_at_checkpoint), kRssCheckpoint, mib(rss_end),
        mib(rss_end) - mib(rss_at_checkpoint));
  } else {
    out("peak RSS:     {:.2f} MiB at the end\n", mib(rss_end));
  }

  if (a.json_opt->count() > 0) {
    nlohmann::json j;
    j["model"] = a.model.path;
    j["policy"] = policy_name(cache_options.policy);
    j["n_sinks"] = cache_options.n_sinks;
    j["window"] = cache_options.window;
    j["cache_tokens"] = stream->cache_tokens();
    j["cache_bytes"] = stream->cache_bytes();
    j["threads"] = model->n_threads();
    j["simd_target"] = info.simd_target;
    j["n_tokens"] = a.n_tokens;
    j["seconds"] = seconds;
    j["tokens_per_second"] = tokens_per_s;
    j["cpu_seconds"] = cpu_seconds;
    for (const LatencyWindow& w : windows) {
      j["latency_windows"].push_back({{"label", w.label},
                                      {"begin", w.begin},
                                      {"end", w.end},
                                      {"wall_mean_us", w.wall_us()},
                                      {"wall_median_us", w.median_wall_us()},
                                      {"wall_p99_us", w.p99_wall_us()},
                                      {"cpu_mean_us", w.cpu_us()}});
    }
    j["latency_ratio_last_to_cache_full"] = {{"wall_mean", wall_ratio},
                                             {"wall_median", median_ratio},
                                             {"wall_p99", p99_ratio},
                                             {"cpu_mean", cpu_ratio}};
    j["peak_rss_bytes_at_10k"] = rss_at_checkpoint;
    j["peak_rss_bytes_at_end"] = rss_end;
    SLLM_CLI_CHECK(write_output_file(a.json_path, j.dump(2) + "\n"));
  }
  return 0;
}

}  // namespace

Command add_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Generate an endless stream and report tokens/s, per-token latency and memory");
  a->model.add(*cmd);
  a->tokens_opt =
      add_number(*cmd, "--tokens", a->n_tokens, {uint64_t{1}, kMaxBenchTokens},
                 "Endless-stream mode: tokens to generate (EOS is fed back like any token); "
                 "without it, the speed report");
  add_number(*cmd, "--prefill", a->speed.prefill, {size_t{0}, size_t{1} << 16},
             "Speed report: prompt tokens fed in one batch (0: skip)");
  add_number(*cmd, "--decode", a->speed.decode, {size_t{0}, size_t{1} << 20},
             "Speed report: tokens generated per decode measurement (0: skip)");
  add_number(*cmd, "--rounds", a->speed.rounds, {size_t{1}, size_t{1000}},
             "Speed report: repetitions of prefill and decode (medians)");
  cmd->add_option("--caches", a->caches,
                  "Speed report: cache sizes of the streaming vs recompute table (comma-separated)")
      ->capture_default_str();
  add_number(*cmd, "--streaming-tokens", a->speed.streaming_tokens, {size_t{1}, size_t{1} << 20},
             "Speed report: tokens timed per cache size, streaming");
  add_number(*cmd, "--recompute-tokens", a->speed.recompute_tokens, {size_t{0}, size_t{1} << 20},
             "Speed report: tokens timed per cache size, recompute (each costs a prefill; at "
             "most 2 from cache 2048 on)");
  add_number(*cmd, "--full-cache", a->speed.full_cache, {size_t{0}, size_t{1} << 20},
             "Speed report: cache of the full-cache decode measurement (0: skip it)");
  add_number(*cmd, "--profile", a->speed.profile, {0, 1},
             "Speed report: 1 profiles a decode of --decode tokens (time per phase), 0 skips it");
  add_number(*cmd, "--profile-cache", a->speed.profile_cache, {size_t{0}, size_t{1} << 20},
             "Speed report: the profiled decode runs in a full streaming cache of this many tokens "
             "(0: after an 8-token prompt, as the short decode)");
  add_number(*cmd, "--bandwidth-mib", a->speed.bandwidth_mib, {size_t{16}, size_t{1} << 16},
             "Speed report: MiB read by the memory bandwidth probe");
  cmd->add_option("--ids-file", a->speed.ids_file,
                  "Speed report: token ids to feed (whitespace-separated; else pseudo-random)");
  add_number(*cmd, "--report-every", a->report_every, {uint64_t{0}, kMaxBenchTokens},
             "Print tok/s and peak RSS to stderr every K tokens (0 = never)");
  a->json_opt =
      cmd->add_option("--json", a->json_path, "Also write the results as JSON to this file");
  a->sampling.add(*cmd);
  a->cache.add(*cmd);
  return [a] { return bench(*a); };
}

}  // namespace sllm::cli
