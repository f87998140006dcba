// `streamingllm ppl`: perplexity of a long text fed as one stream, for one or several policies.
#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>

#include "cli_options.h"
#include "commands.h"
#include "output.h"

namespace sllm::cli {

namespace {

struct PplArgs {
  ModelArgs model;
  std::vector<std::string> files;
  size_t n_tokens = 0;  // 0: the whole stream
  std::string csv;
  std::string summary;
  std::string compare;  // "dense,window,streaming,recompute"
  size_t cache = 1024;  // --compare: total cache tokens of every policy
  size_t segment = 0;   // 0: a multiple of 1024 giving at most 8 segments
  CacheArgs cache_args;
  CLI::Option* cache_opt = nullptr;
  CLI::Option* policy_opt = nullptr;
  CLI::Option* csv_opt = nullptr;
  CLI::Option* summary_opt = nullptr;
};

// A one-line progress bar on stderr, only when stderr is a terminal.
class Progress {
 public:
  Progress(std::string label, size_t total)
      : label_(std::move(label)),
        total_(total),
        tty_(::isatty(2) == 1),
        start_(std::chrono::steady_clock::now()) {}
  void update(size_t done, double ppl) {
    if (!tty_) return;
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = s > 0 ? static_cast<double>(done) / s : 0;
    const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : 0;
    const size_t width = 30, filled = total_ ? width * done / total_ : width;
    fmt::print(stderr, "\r{:<10} [{}{}] {}/{} tokens  {:.0f} tok/s  ETA {:.0f} s  ppl {:.3f}   ",
               label_, std::string(filled, '#'), std::string(width - filled, '.'), done, total_,
               rate, eta, ppl);
  }
  void done() {
    if (tty_) fmt::print(stderr, "\n");
  }

 private:
  std::string label_;
  size_t total_;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
};

// Per-token NLL and the perplexity over a range of it.
struct PerplexityResult {
  std::vector<double> nll;  // nll[i] = -log p(tokens[i+1] | tokens[0..i])
  double ppl() const { return ppl(0, nll.size()); }
  double ppl(size_t begin, size_t end) const {  // exp(mean nll[begin, end))
    end = std::min(end, nll.size());
    if (begin >= end) return std::nan("");
    double sum = 0;
    for (size_t i = begin; i < end; ++i) sum += nll[i];
    return std::exp(sum / static_cast<double>(end - begin));
  }
};

struct Run {
  std::string label;
  CacheOptions options;
  PerplexityResult result;
  double seconds = 0;
  // Tokens per second once the cache is full, when each token costs what it will cost forever
  // (recompute re-runs fewer tokens while its window fills). NaN when the stream never fills it.
  double full_tok_s = std::nan("");
};

// Tokens a policy's cache holds when full; 0 for dense, whose cost grows with every token.
size_t cache_capacity(const CacheOptions& o) {
  return o.policy == CachePolicy::kDense ? 0 : o.n_sinks + o.window;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
  return out;
}

// One run per policy. Without --compare or --cache the cache flags mean what they mean for `run`;
// with either, --cache is the total cache size of every policy, so that streaming (S sinks +
// cache - S window), window and recompute hold the same number of tokens.
Result<std::vector<Run>> plan_runs(const PplArgs& a, const ModelInfo& model, size_t n_stream) {
  auto invalid = [](const std::string& msg) { return Error(ErrorCode::kInvalidInput, msg); };
  std::vector<Run> runs;
  if (a.compare.empty() && a.cache_opt->count() == 0) {
    SLLM_ASSIGN_OR_RETURN(CacheOptions o, a.cache_args.to_options(model));
    // Dense: unless a limit was given, allow the whole stream.
    if (o.policy == CachePolicy::kDense && a.cache_args.ctx_opt->count() == 0) {
      SLLM_ASSIGN_OR_RETURN(CacheOptions whole, CacheOptions::for_policy(o.policy, n_stream));
      o.window = whole.window;
    }
    runs.push_back({policy_name(o.policy), o, {}, 0, std::nan("")});
    return runs;
  }
  if (!a.compare.empty() && a.policy_opt->count() > 0) {
    return invalid("--policy and --compare exclude each other");
  }
  if (a.cache_args.window_opt->count() > 0 || a.cache_args.ctx_opt->count() > 0) {
    return invalid("with --compare or --cache, set the cache size with --cache only");
  }
  const std::vector<std::string> names =
      a.compare.empty() ? std::vector<std::string>{a.cache_args.policy} : split(a.compare);
  const bool any_streaming = std::find(names.begin(), names.end(), "streaming") != names.end();
  if (a.cache_args.sinks_opt->count() > 0 && !any_streaming) {
    return invalid("--sinks applies to --policy streaming only");
  }
  if (any_streaming && a.cache_args.n_sinks >= a.cache) {
    return invalid(fmt::format("--sinks {} leaves no room for a window in a cache of {}",
                               a.cache_args.n_sinks, a.cache));
  }
  for (const std::string& name : names) {
    SLLM_ASSIGN_OR_RETURN(CachePolicy p, parse_policy(name));
    SLLM_ASSIGN_OR_RETURN(CacheOptions o,
                          CacheOptions::for_policy(p, p == CachePolicy::kDense ? n_stream : a.cache,
                                                   a.cache_args.n_sinks));
    o.max_batch = a.cache_args.batch;
    SLLM_ASSIGN_OR_RETURN(o.kv_type, parse_kv_type(a.cache_args.kv_type));
    runs.push_back({name, o, {}, 0, std::nan("")});
  }
  return runs;
}

// One row per run, for scripts (scripts/reproduce.sh): the table's numbers at full precision.
Status write_summary(const std::string& path, const std::vector<Run>& runs, size_t n_scored) {
  std::string out;
  out += "policy,sinks,window,n_scored,seconds,tok_per_s,full_tok_per_s,ppl\n";
  for (const Run& run : runs) {
    out += fmt::format(
        "{},{},{},{},{:.3f},{:.2f},{},{:.6f}\n", run.label, run.options.n_sinks, run.options.window,
        n_scored, run.seconds, static_cast<double>(n_scored) / run.seconds,
        std::isnan(run.full_tok_s) ? std::string("") : fmt::format("{:.2f}", run.full_tok_s),
        run.result.ppl());
  }
  return write_output_file(path, out);
}

// index,token,nll_<policy>... per scored token.
Status write_csv(const std::string& path, const std::vector<Run>& runs,
                 const std::vector<TokenId>& stream) {
  std::string out = "index,token";
  for (const Run& run : runs) out += ",nll_" + run.label;
  out += "\n";
  for (size_t i = 0; i + 1 < stream.size(); ++i) {
    out += fmt::format("{},{}", i + 1, stream[i + 1]);
    for (const Run& run : runs) out += fmt::format(",{:.6f}", run.result.nll[i]);
    out += "\n";
  }
  return write_output_file(path, out);
}

int ppl(const PplArgs& a) {
  if (a.cache == 0) return report(Error(ErrorCode::kInvalidInput, "--cache must be at least 1"));
  // Unusable output paths and conflicting flags are reported before any work.
  if (a.csv_opt->count() > 0) SLLM_CLI_CHECK(check_output_path("--csv", a.csv));
  if (a.summary_opt->count() > 0) SLLM_CLI_CHECK(check_output_path("--summary", a.summary));
  {
    // The same plan as below for a stand-in model and stream: only the flags are checked here.
    const auto flags_ok = plan_runs(a, ModelInfo{}, 2);
    if (!flags_ok.ok()) return report(flags_ok.error());
  }
  SLLM_CLI_ASSIGN(auto model, a.model.load());
  // Scoring BOS -> first token alone says nothing about a text: ask for two tokens of text.
  const size_t n_bos = model->info().bos >= 0 ? 1 : 0;
  if (a.n_tokens > 0 && a.n_tokens < n_bos + 2) {
    return report(Error(ErrorCode::kInvalidInput,
                        fmt::format("--tokens {} leaves fewer than 2 tokens of text (the stream "
                                    "starts with BOS)",
                                    a.n_tokens)));
  }
  SLLM_CLI_ASSIGN(std::vector<TokenId> stream, model->tokenize_files(a.files, a.n_tokens));
  if (stream.size() < n_bos + 2) {
    return report(Error(ErrorCode::kInvalidInput,
                        fmt::format("the text is {} token(s) long; perplexity needs at least 2",
                                    stream.size() - n_bos)));
  }
  SLLM_CLI_ASSIGN(std::vector<Run> runs, plan_runs(a, model->info(), stream.size()));
  out("stream: {} tokens ({}{} of text from {} file(s))\n", stream.size(), n_bos ? "BOS + " : "",
      stream.size() - n_bos, a.files.size());
  using Clock = std::chrono::steady_clock;
  const size_t n_scored = stream.size() - 1;
  for (Run& run : runs) {
    Progress progress(run.label, n_scored);
    const size_t capacity = cache_capacity(run.options);
    const auto start = Clock::now();
    auto full_start = start;
    size_t full_done = 0;  // tokens scored when the cache was first seen full; 0: not yet
    double nll_sum = 0;    // over the tokens scored so far: the running perplexity
    size_t n_summed = 0;
    SLLM_CLI_ASSIGN(run.result.nll,
                    perplexity(model, stream, run.options, [&](std::span<const double> nll) {
                      const size_t done = nll.size();
                      if (capacity > 0 && full_done == 0 && done >= capacity) {
                        full_start = Clock::now();
                        full_done = done;
                      }
                      for (size_t i = n_summed; i < done; ++i) nll_sum += nll[i];
                      n_summed = done;
                      progress.update(done, std::exp(nll_sum / static_cast<double>(done)));
                    }));
    progress.done();
    const auto end = Clock::now();
    run.seconds = std::chrono::duration<double>(end - start).count();
    if (full_done > 0 && full_done < n_scored) {
      run.full_tok_s = static_cast<double>(n_scored - full_done) /
                       std::chrono::duration<double>(end - full_start).count();
    }
  }

  // Table: one row per policy; overall and per-segment perplexity.
  constexpr size_t kMaxSegments = 8;
  const size_t segment = a.segment > 0
                             ? a.segment
                             : 1024 * std::max<size_t>(1, (n_scored + 1024 * kMaxSegments - 1) /
                                                              (1024 * kMaxSegments));
  std::string header = fmt::format("{:<10} {:>14} {:>10} {:>10} {:>10}", "policy", "cache", "tok/s",
                                   "full tok/s", "ppl");
  for (size_t s = 0; s < n_scored; s += segment) {
    header += fmt::format(" {:>12}", fmt::format("{}-{}", s, std::min(n_scored, s + segment)));
  }
  out("{}\n", header);
  for (const Run& run : runs) {
    const CacheOptions& o = run.options;
    std::string cache = o.policy == CachePolicy::kStreaming
                            ? fmt::format("{}+{}", o.n_sinks, o.window)
                        : o.policy == CachePolicy::kDense ? std::string("all")
                                                          : std::to_string(o.window);
    std::string line = fmt::format(
        "{:<10} {:>14} {:>10.1f} {:>10} {:>10.3f}", run.label, cache,
        static_cast<double>(n_scored) / run.seconds,
        std::isnan(run.full_tok_s) ? std::string("-") : fmt::format("{:.1f}", run.full_tok_s),
        run.result.ppl());
    for (size_t s = 0; s < n_scored; s += segment) {
      line += fmt::format(" {:>12.3f}", run.result.ppl(s, s + segment));
    }
    out("{}\n", line);
  }

  if (a.csv_opt->count() > 0) SLLM_CLI_CHECK(write_csv(a.csv, runs, stream));
  if (a.summary_opt->count() > 0) SLLM_CLI_CHECK(write_summary(a.summary, runs, n_scored));
  return 0;
}

}  // namespace

Command add_ppl(CLI::App& app) {
  auto a = std::make_shared<PplArgs>();
  CLI::App* cmd = app.add_subcommand("ppl", "Perplexity of a text fed as one endless stream");
  a->model.add(*cmd);
  cmd->add_option("-f,--file", a->files, "Text file(s), concatenated into one stream (BOS once)")
      ->required()
      ->check(CLI::ExistingFile);
  add_number(*cmd, "--tokens", a->n_tokens, {size_t{0}, kMaxTokensFlag},
             "Use only the first N tokens of the stream (0 = all)");
  a->csv_opt = cmd->add_option("--csv", a->csv,
                               "Write index,token,nll_<policy>... per scored token to this file");
  a->summary_opt =
      cmd->add_option("--summary", a->summary,
                      "Write policy,sinks,window,n_scored,seconds,tok_per_s,full_tok_per_s,ppl per "
                      "policy to this file");
  cmd->add_option(
      "--compare", a->compare,
      "Run several policies over the same stream, e.g. dense,window,streaming,recompute");
  a->cache_opt = add_number(*cmd, "--cache", a->cache, {size_t{1}, kMaxTokensFlag},
                            "Cache size in tokens of every policy (streaming: sinks + window)");
  add_number(*cmd, "--segment", a->segment, {size_t{1}, kMaxTokensFlag},
             "Tokens per segment in the table (default: a multiple of 1024, at most 8 segments)")
      ->default_str("");
  a->cache_args.add(*cmd);
  a->policy_opt = cmd->get_option("--policy");
  return [a] { return ppl(*a); };
}

}  // namespace sllm::cli
