#include "bench_speed.h"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli_options.h"
#include "commands.h"
#include "output.h"

namespace sllm::cli {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The ids fed everywhere: the file's, or SplitMix64 over the vocabulary (fixed, so that two runs
// and the peer, given the same file, feed the same tokens).
Result<std::vector<TokenId>> bench_ids(const SpeedArgs& a, size_t n_vocab, size_t n_needed) {
  std::vector<TokenId> ids;
  if (!a.ids_file.empty()) {
    std::ifstream in(a.ids_file);
    if (!in) return Error(ErrorCode::kIo, a.ids_file + ": cannot open");
    long long id = 0;
    while (in >> id) {
      if (id < 0 || static_cast<size_t>(id) >= n_vocab) {
        return Error(ErrorCode::kInvalidInput, a.ids_file + ": token id " + std::to_string(id) +
                                                   " is outside the vocabulary of " +
                                                   std::to_string(n_vocab));
      }
      ids.push_back(static_cast<TokenId>(id));
    }
    if (!in.eof()) return Error(ErrorCode::kInvalidInput, a.ids_file + ": not a list of ids");
    if (ids.empty()) return Error(ErrorCode::kInvalidInput, a.ids_file + ": no ids");
  } else {
    uint64_t state = 0x5EED;
    for (size_t i = 0; i < n_needed; ++i) {
      uint64_t z = (state += 0x9E3779B97F4A7C15ull);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      ids.push_back(static_cast<TokenId>((z ^ (z >> 31)) % n_vocab));
    }
  }
  // Cycle a short file up to what the measurements need.
  for (size_t i = ids.size(); i < n_needed; ++i) ids.push_back(ids[i % ids.size()]);
  return ids;
}

// STREAM-like read bandwidth: n_threads threads each sum their contiguous share of a buffer far
// larger than any cache; GB/s of the best and the median pass.
struct Bandwidth {
  double best_gbs = 0, median_gbs = 0;
};

Bandwidth measure_bandwidth(size_t n_mib, size_t n_threads, size_t n_passes) {
  const size_t n = n_mib * (size_t{1} << 20) / sizeof(uint64_t);
  std::vector<uint64_t> buffer(n);
  for (size_t i = 0; i < n; ++i) buffer[i] = i;  // touched: every page is resident
  std::vector<double> gbs;
  volatile uint64_t sink = 0;
  for (size_t pass = 0; pass < n_passes; ++pass) {
    std::vector<uint64_t> sums(n_threads * 8, 0);  // a cache line per thread: no false sharing
    std::vector<std::thread> threads;
    const auto t0 = Clock::now();
    for (size_t t = 0; t < n_threads; ++t) {
      threads.emplace_back([&, t] {
        const size_t begin = n * t / n_threads, end = n * (t + 1) / n_threads;
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        size_t i = begin;
        for (; i + 4 <= end; i += 4) {
          s0 += buffer[i];
          s1 += buffer[i + 1];
          s2 += buffer[i + 2];
          s3 += buffer[i + 3];
        }
        for (; i < end; ++i) s0 += buffer[i];
        sums[t * 8] = s0 + s1 + s2 + s3;
      });
    }
    for (std::thread& th : threads) th.join();
    const double s = seconds_since(t0);
    for (size_t t = 0; t < n_threads; ++t) sink = sink + sums[t * 8];
    gbs.push_back(static_cast<double>(n * sizeof(uint64_t)) / s / 1e9);
  }
  return {*std::max_element(gbs.begin(), gbs.end()), median(gbs)};
}

Result<std::unique_ptr<Stream>> make_stream(const std::shared_ptr<Model>& model, CachePolicy policy,
                                            size_t cache_tokens, size_t max_batch, KvType kv) {
  SLLM_ASSIGN_OR_RETURN(CacheOptions o, CacheOptions::for_policy(policy, cache_tokens));
  o.max_batch = max_batch;
  o.kv_type = kv;
  SamplingOptions greedy;
  greedy.temperature = 0;
  return Stream::create(model, o, greedy);
}

// Generates n tokens greedily; the wall time of each (sampling and the forward pass).
Result<std::vector<double>> decode_times(Stream& stream, size_t n) {
  std::vector<double> times;
  times.reserve(n);
  StopOptions stop;
  stop.max_tokens = static_cast<int64_t>(n);
  stop.at_end_of_generation = false;
  stop.keep_output = false;
  auto t0 = Clock::now();
  SLLM_ASSIGN_OR_RETURN(Generation g, stream.generate(stop, {}, [&](TokenId) {
    const auto t1 = Clock::now();
    times.push_back(std::chrono::duration<double>(t1 - t0).count());
    t0 = t1;
  }));
  (void)g;
  return times;
}

double sum(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}

// Where a decoded token's time goes: a separate, profiled decode (Stream::set_profiling) of the
// same length after the same short prompt, or in a full cache of `cache` tokens, so that the timed
// runs above carry no timers.
struct DecodeProfile {
  size_t tokens = 0;
  double seconds = 0;  // the whole decode's wall time
  std::vector<PhaseTime> phases;
};

Result<DecodeProfile> profile_decode(const std::shared_ptr<Model>& model,
                                     std::span<const TokenId> prompt, size_t n, size_t cache,
                                     KvType kv) {
  if (cache == 0) cache = std::max(prompt.size() + n, size_t{1024});
  SLLM_ASSIGN_OR_RETURN(auto s, make_stream(model, CachePolicy::kStreaming, cache, 512, kv));
  SLLM_ASSIGN_OR_RETURN(const size_t fed, s->feed(prompt));
  (void)fed;  // all of them: no interrupt given
  s->set_profiling(true);
  SLLM_ASSIGN_OR_RETURN(const auto t, decode_times(*s, n));
  return DecodeProfile{t.size(), sum(t), s->profile()};
}

}  // namespace

int bench_speed(const SpeedArgs& a, const std::string& model_path,
                const std::shared_ptr<Model>& model) {
  if (!a.json_path.empty()) SLLM_CLI_CHECK(check_output_path("--json", a.json_path));
  const ModelInfo& info = model->info();
  const size_t max_cache =
      a.caches.empty() ? 0 : *std::max_element(a.caches.begin(), a.caches.end());
  const size_t n_needed = std::max({a.prefill, a.full_cache, max_cache, a.profile_cache}) + 8;
  SLLM_CLI_ASSIGN(const std::vector<TokenId> ids, bench_ids(a, info.n_vocab, n_needed));
  std::error_code ec;
  const uint64_t file_bytes = std::filesystem::file_size(model_path, ec);
  const size_t threads = model->n_threads();
  fmt::print(stderr, "streamingllm bench: {} | {} threads | {} | speed report\n", model_path,
             threads, info.simd_target);

  // Prefill: the prompt in one batch into a cache that holds it; medians over the rounds.
  std::vector<double> prefill_s, decode_short_s, decode_full_s;
  const size_t kShortPrompt = 8, kFullCache = a.full_cache;
  for (size_t r = 0; r < a.rounds; ++r) {
    if (a.prefill > 0) {
      SLLM_CLI_ASSIGN(auto s,
                      make_stream(model, CachePolicy::kDense, a.prefill + 8, a.prefill, a.kv_type));
      const auto t0 = Clock::now();
      SLLM_CLI_CHECK(s->feed(std::span(ids).first(a.prefill)));
      prefill_s.push_back(seconds_since(t0));
    }
    if (a.decode > 0) {
      // The short-prompt cache holds the whole decode, as the 1024-token one always did.
      SLLM_CLI_ASSIGN(auto s,
                      make_stream(model, CachePolicy::kStreaming,
                                  std::max(kShortPrompt + a.decode, size_t{1024}), 512, a.kv_type));
      SLLM_CLI_CHECK(s->feed(std::span(ids).first(kShortPrompt)));
      SLLM_CLI_ASSIGN(const auto t, decode_times(*s, a.decode));
      decode_short_s.push_back(sum(t) / static_cast<double>(t.size()));
      if (kFullCache > 0) {
        SLLM_CLI_ASSIGN(auto f,
                        make_stream(model, CachePolicy::kStreaming, kFullCache, 512, a.kv_type));
        SLLM_CLI_CHECK(f->feed(std::span(ids).first(kFullCache)));
        SLLM_CLI_ASSIGN(const auto t_full, decode_times(*f, a.decode));
        decode_full_s.push_back(sum(t_full) / static_cast<double>(t_full.size()));
      }
    }
  }

  // Figure 10: per-token latency once the cache is full, streaming against recompute.
  struct Row {
    size_t cache;
    double streaming_ms, recompute_ms;
    size_t recompute_tokens;
  };
  std::vector<Row> rows;
  for (size_t c : a.caches) {
    Row row{
        c, 0, 0,
        c >= SpeedArgs::kLargeCache ? std::min<size_t>(a.recompute_tokens, 2) : a.recompute_tokens};
    SLLM_CLI_ASSIGN(auto s, make_stream(model, CachePolicy::kStreaming, c, 512, a.kv_type));
    SLLM_CLI_CHECK(s->feed(std::span(ids).first(c)));
    SLLM_CLI_ASSIGN(const auto ts, decode_times(*s, a.streaming_tokens));
    row.streaming_ms = median(ts) * 1e3;
    if (row.recompute_tokens > 0) {
      SLLM_CLI_ASSIGN(auto rc, make_stream(model, CachePolicy::kRecompute, c, 512, a.kv_type));
      SLLM_CLI_CHECK(rc->feed(std::span(ids).first(c)));
      SLLM_CLI_ASSIGN(const auto tr, decode_times(*rc, row.recompute_tokens));
      row.recompute_ms = median(tr) * 1e3;
    }
    rows.push_back(row);
  }
  DecodeProfile profile;
  if (a.decode > 0 && a.profile != 0) {
    const size_t prompt = a.profile_cache > 0 ? a.profile_cache : kShortPrompt;
    SLLM_CLI_ASSIGN(profile, profile_decode(model, std::span(ids).first(prompt), a.decode,
                                            a.profile_cache, a.kv_type));
  }
  // The model's peak, before the probe's buffer adds to it.
  const uint64_t rss = peak_rss_bytes();
  const Bandwidth bw = measure_bandwidth(a.bandwidth_mib, threads, 5);

  const double prefill_tok_s =
      prefill_s.empty() ? 0 : static_cast<double>(a.prefill) / median(prefill_s);
  const double short_tok_s = decode_short_s.empty() ? 0 : 1.0 / median(decode_short_s);
  const double full_tok_s = decode_full_s.empty() ? 0 : 1.0 / median(decode_full_s);
  const auto share = [&](double tok_s) {
    return static_cast<double>(file_bytes) * tok_s / (bw.best_gbs * 1e9);
  };
  std::string types;
  for (const auto& [name, n] : info.tensor_types) {
    types += fmt::format("{}{} x{}", types.empty() ? "" : ", ", name, n);
  }
  out("model:          {} ({} bytes; {})\n", model_path, file_bytes, types);
  out("threads:        {} ({}), kv {}\n", threads, info.simd_target, kv_type_name(a.kv_type));
  out("read bandwidth: {:.1f} GB/s (best of 5 passes over {} MiB; median {:.1f})\n", bw.best_gbs,
      a.bandwidth_mib, bw.median_gbs);
  if (a.prefill > 0) {
    out("prefill:        {} tokens in one batch: {:.1f} tok/s (median of {})\n", a.prefill,
        prefill_tok_s, a.rounds);
  }
  if (a.decode > 0) {
    out("decode:         after {} tokens: {:.2f} tok/s, {:.3f} ms/token; {:.0f}% of the read "
        "bandwidth (file bytes x tok/s)\n",
        kShortPrompt, short_tok_s, 1e3 / short_tok_s, 100 * share(short_tok_s));
  }
  if (a.decode > 0 && kFullCache > 0) {
    out("decode:         cache full ({} tokens): {:.2f} tok/s, {:.3f} ms/token; {:.0f}% of the "
        "read bandwidth\n",
        kFullCache, full_tok_s, 1e3 / full_tok_s, 100 * share(full_tok_s));
  }
  if (!rows.empty()) {
    out("per-token latency with a full cache (ms, median of {} / {} tokens; recompute {} from "
        "cache {} on):\n",
        a.streaming_tokens, a.recompute_tokens, std::min<size_t>(a.recompute_tokens, 2),
        SpeedArgs::kLargeCache);
    out("  {:>6} {:>12} {:>12} {:>9}\n", "cache", "streaming", "recompute", "speed-up");
    for (const Row& r : rows) {
      out("  {:>6} {:>12.3f} {:>12.3f} {:>8.1f}x\n", r.cache, r.streaming_ms, r.recompute_ms,
          r.streaming_ms > 0 ? r.recompute_ms / r.streaming_ms : 0.0);
    }
    out("  streaming at {} / at {}: {:.3f}\n", rows.back().cache, rows.front().cache,
        rows.back().streaming_ms / rows.front().streaming_ms);
  }
  if (profile.tokens > 0) {
    const double per_token = 1e3 / static_cast<double>(profile.tokens);
    out("where a decoded token's time goes (a profiled run of {} tokens {}; weight GB/s "
        "against the {:.1f} GB/s read bandwidth):\n",
        profile.tokens,
        a.profile_cache > 0 ? fmt::format("in a full {}-token cache", a.profile_cache)
                            : fmt::format("after {}", kShortPrompt),
        bw.best_gbs);
    out("  {:<28} {:>10} {:>7} {:>10} {:>8}\n", "phase", "ms/token", "share", "weight MB", "GB/s");
    double phases_s = 0;
    for (const PhaseTime& p : profile.phases) {
      phases_s += p.seconds;
      out("  {:<28} {:>10.3f} {:>6.1f}% {:>10.1f} {:>8}\n", p.phase, p.seconds * per_token,
          100 * p.seconds / profile.seconds,
          static_cast<double>(p.weight_bytes) / 1e6 / static_cast<double>(profile.tokens),
          p.weight_bytes > 0 && p.seconds > 0
              ? fmt::format("{:.1f}", static_cast<double>(p.weight_bytes) / p.seconds / 1e9)
              : "");
    }
    const double rest = std::max(0.0, profile.seconds - phases_s);
    out("  {:<28} {:>10.3f} {:>6.1f}%\n", "rest (sampling, bookkeeping)", rest * per_token,
        100 * rest / profile.seconds);
  }
  out("peak RSS:       {:.1f} MiB\n", static_cast<double>(rss) / (1024.0 * 1024.0));

  if (!a.json_path.empty()) {
    nlohmann::json j;
    j["model"] = model_path;
    j["file_bytes"] = file_bytes;
    j["threads"] = threads;
    j["simd_target"] = info.simd_target;
    j["kv_type"] = kv_type_name(a.kv_type);
    j["bandwidth_gbs"] = {{"best", bw.best_gbs}, {"median", bw.median_gbs}};
    j["prefill"] = {{"tokens", a.prefill}, {"seconds", prefill_s}, {"tok_s", prefill_tok_s}};
    j["decode_short"] = {{"prompt_tokens", kShortPrompt},
                         {"tokens", a.decode},
                         {"seconds_per_token", decode_short_s},
                         {"tok_s", short_tok_s},
                         {"bandwidth_share", share(short_tok_s)}};
    if (kFullCache > 0) {
      j["decode_full"] = {{"cache_tokens", kFullCache},
                          {"tokens", a.decode},
                          {"seconds_per_token", decode_full_s},
                          {"tok_s", full_tok_s},
                          {"bandwidth_share", share(full_tok_s)}};
    }
    for (const Row& r : rows) {
      j["latency_by_cache"].push_back({{"cache", r.cache},
                                       {"streaming_ms", r.streaming_ms},
                                       {"recompute_ms", r.recompute_ms},
                                       {"streaming_tokens", a.streaming_tokens},
                                       {"recompute_tokens", r.recompute_tokens}});
    }
    if (!rows.empty() && rows.front().streaming_ms > 0) {
      // Acceptance 5 of issue 12: the streaming cache's per-token cost stays flat.
      j["streaming_largest_over_smallest"] = rows.back().streaming_ms / rows.front().streaming_ms;
    }
    if (profile.tokens > 0) {
      nlohmann::json phases = nlohmann::json::array();
      for (const PhaseTime& p : profile.phases) {
        phases.push_back({{"phase", p.phase},
                          {"calls", p.calls},
                          {"seconds", p.seconds},
                          {"weight_bytes", p.weight_bytes}});
      }
      j["decode_profile"] = {{"tokens", profile.tokens},
                             {"cache_tokens", a.profile_cache},
                             {"seconds", profile.seconds},
                             {"phases", phases}};
    }
    j["peak_rss_bytes"] = rss;
    SLLM_CLI_CHECK(write_output_file(a.json_path, j.dump(2) + "\n"));
  }
  return 0;
}

}  // namespace sllm::cli
