// Per-token cost of each cache policy on stories260K, one thread: the time to feed one more token
// to a session whose cache is already full. Policies at a cache of 256 and 1024 tokens; dense at
// several lengths (it holds `len` tokens when timing starts and one more per timed token, 256 of
// them, so it is timed over len..len+256). After the table it prints each policy's time relative
// to streaming at the same cache size: window ~1x (the same work without sinks), dense grows with
// its length, recompute is a whole forward pass over the window per token.
//
//   build/<dir>/bench/policy_bench [--benchmark_filter=dense] [model.gguf]
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "streamingllm/streamingllm.h"

namespace sllm {
namespace {

std::string g_model_path = SLLM_SHARED_DIR "/models/stories260K/stories260K.gguf";

// The model, on one worker thread.
const std::shared_ptr<Model>& model() {
  static const std::shared_ptr<Model> loaded = [] {
    Model::LoadOptions options;
    options.n_threads = 1;
    auto m = Model::load(g_model_path, options);
    if (!m.ok()) {
      std::fprintf(stderr, "error: %s\n", m.error().message().c_str());
      std::exit(1);
    }
    return std::move(m).value();
  }();
  return loaded;
}

// A fixed pseudo-random token stream: the cost of a token does not depend on which it is.
std::vector<TokenId> tokens(size_t n) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<TokenId> id(3, static_cast<TokenId>(model()->info().n_vocab) - 1);
  std::vector<TokenId> out(n);
  for (auto& t : out) t = id(rng);
  return out;
}

// n_cached: tokens held before timing starts (the cache size, or dense's length).
void bm_policy(benchmark::State& state, CachePolicy policy, size_t n_cached) {
  // Dense: room for the timed tokens on top of its length.
  auto options = CacheOptions::for_policy(policy,
                                          policy == CachePolicy::kDense
                                              ? n_cached + static_cast<size_t>(state.max_iterations)
                                              : n_cached,
                                          4);
  if (!options.ok()) {
    state.SkipWithError(options.error().message().c_str());
    return;
  }
  auto session = Stream::create(model(), *options);
  if (!session.ok()) {
    state.SkipWithError(session.error().message().c_str());
    return;
  }
  const std::vector<TokenId> stream = tokens(n_cached + static_cast<size_t>(state.max_iterations));
  // Fill the cache (recompute: its window of recent tokens; that rebuilds the cache once per
  // token, so the fill takes a few seconds at 1024).
  if (!(*session)->feed(std::span(stream).first(n_cached)).ok()) {
    state.SkipWithError("prefill failed");
    return;
  }
  size_t next = n_cached;
  for (auto _ : state) {
    const TokenId one[1] = {stream[next++]};
    if (!(*session)->feed(one).ok()) {
      state.SkipWithError("feed failed");
      return;
    }
    benchmark::DoNotOptimize((*session)->logits().data());
  }
  state.counters["tok/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// The console table, then each run's time over streaming's at the same cache size.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type == Run::RT_Iteration && !run.error_occurred) {
        // The registered name, without the "/iterations:N" suffix.
        order_.push_back(run.run_name.function_name);
        time_[run.run_name.function_name] = run.GetAdjustedCPUTime();
      }
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nper-token time relative to streaming with the same cache (%s, one thread):\n",
                model()->info().simd_target.c_str());
    for (const std::string& name : order_) {
      // Names end in "/cache:N" or "/len:N"; dense at length N compares with streaming at cache N.
      const size_t slash = name.rfind('/');
      const std::string size = name.substr(name.find(':', slash) + 1);
      // Dense longer than any cache compares with the default cache of 1024.
      auto streaming = time_.find("policy/streaming/cache:" + size);
      const bool same_size = streaming != time_.end();
      if (!same_size) streaming = time_.find("policy/streaming/cache:1024");
      if (streaming == time_.end()) continue;
      std::printf("  %-32s %8.2fx%s\n", name.c_str(), time_[name] / streaming->second,
                  same_size ? "" : "  (vs streaming with a cache of 1024)");
    }
  }

 private:
  std::vector<std::string> order_;
  std::map<std::string, double> time_;
};

void register_benchmarks() {
  struct Case {
    const char* name;
    CachePolicy policy;
    size_t n_cached;
    int64_t n_iterations;  // fixed: dense grows by one token per iteration
  };
  const Case cases[] = {
      {"policy/streaming/cache:256", CachePolicy::kStreaming, 256, 2048},
      {"policy/window/cache:256", CachePolicy::kWindow, 256, 2048},
      {"policy/dense/len:256", CachePolicy::kDense, 256, 256},
      {"policy/recompute/cache:256", CachePolicy::kRecompute, 256, 32},
      {"policy/streaming/cache:1024", CachePolicy::kStreaming, 1024, 1024},
      {"policy/window/cache:1024", CachePolicy::kWindow, 1024, 1024},
      {"policy/dense/len:1024", CachePolicy::kDense, 1024, 256},
      {"policy/recompute/cache:1024", CachePolicy::kRecompute, 1024, 8},
      {"policy/dense/len:4096", CachePolicy::kDense, 4096, 256},
  };
  for (const Case& c : cases) {
    benchmark::RegisterBenchmark(c.name, bm_policy, c.policy, c.n_cached)
        ->Iterations(c.n_iterations)
        ->Unit(benchmark::kMicrosecond);
  }
}

}  // namespace
}  // namespace sllm

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (argc == 2) {
    sllm::g_model_path = argv[1];
  } else if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    return 1;
  }
  benchmark::AddCustomContext("simd_target", sllm::model()->info().simd_target);
  sllm::register_benchmarks();
  sllm::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
