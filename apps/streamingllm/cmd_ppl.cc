// `streamingllm ppl`: perplexity of a long text fed as one stream, for one or several policies.
#include <fmt/core.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

#include "cli_options.h"
#include "commands.h"
#include "runtime/engine.h"
#include "runtime/perplexity.h"
#include "util/mapped_file.h"

namespace sllm::cli {

namespace {

struct PplArgs {
  ModelArgs model;
  std::vector<std::string> files;
  size_t n_tokens = 0;  // 0: the whole stream
  std::string csv;
  std::string compare;  // "dense,window,streaming,recompute"
  size_t cache = 1024;  // --compare: total cache tokens of every policy
  size_t segment = 1024;
  CacheArgs cache_args;
  CLI::Option* cache_opt = nullptr;
};

// BOS once, then every file's tokens in order (the paper concatenates PG19 books the same way).
Result<std::vector<TokenId>> tokenize_files(const Tokenizer& tok,
                                            const std::vector<std::string>& files) {
  std::vector<TokenId> stream;
  if (tok.vocab().bos >= 0) stream.push_back(tok.vocab().bos);
  for (const auto& f : files) {
    SLLM_ASSIGN_OR_RETURN(std::string text, read_file(f));
    if (text.empty()) return Error(ErrorCode::kInvalidInput, "'" + f + "' is empty");
    auto ids = tok.encode(text, false, false);
    if (!ids.ok()) return ids.error().with_context(f);
    stream.insert(stream.end(), ids->begin(), ids->end());
  }
  return stream;
}

// A one-line progress bar on stderr, only when stderr is a terminal.
class Progress {
 public:
  Progress(std::string label, size_t total)
      : label_(std::move(label)),
        total_(total),
        tty_(::isatty(2) == 1),
        start_(std::chrono::steady_clock::now()) {}
  void update(size_t done, const PerplexityResult& r) {
    if (!tty_) return;
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = s > 0 ? static_cast<double>(done) / s : 0;
    const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : 0;
    const size_t width = 30, filled = total_ ? width * done / total_ : width;
    fmt::print(stderr, "\r{:<10} [{}{}] {}/{} tokens  {:.0f} tok/s  ETA {:.0f} s  ppl {:.3f}   ",
               label_, std::string(filled, '#'), std::string(width - filled, '.'), done, total_,
               rate, eta, r.ppl());
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

struct Run {
  std::string label;
  SessionOptions options;
  PerplexityResult result;
  double seconds = 0;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
  return out;
}

Result<std::vector<Run>> plan_runs(const PplArgs& a, const ModelConfig& config, size_t n_stream) {
  std::vector<Run> runs;
  if (a.compare.empty()) {
    SLLM_ASSIGN_OR_RETURN(SessionOptions o, a.cache_args.to_options(config));
    // Dense: unless a limit was given, allow the whole stream.
    if (o.policy == CachePolicy::kDense && a.cache_args.ctx_opt->count() == 0) o.window = n_stream;
    runs.push_back({policy_name(o.policy), o, {}, 0});
    return runs;
  }
  if (a.cache_args.window_opt->count() > 0 || a.cache_args.ctx_opt->count() > 0) {
    return Error(ErrorCode::kInvalidInput, "with --compare, set the cache size with --cache");
  }
  if (a.cache_args.n_sinks >= a.cache) {
    return Error(ErrorCode::kInvalidInput,
                 fmt::format("--sinks {} leaves no room for a window in a cache of {}",
                             a.cache_args.n_sinks, a.cache));
  }
  for (const std::string& name : split(a.compare)) {
    SLLM_ASSIGN_OR_RETURN(CachePolicy p, parse_policy(name));
    SessionOptions o;
    o.policy = p;
    o.max_batch = a.cache_args.batch;
    o.kv_type = a.cache_args.kv_type == "f16" ? TensorType::kF16 : TensorType::kF32;
    o.n_sinks = p == CachePolicy::kStreaming ? a.cache_args.n_sinks : 0;
    o.window = p == CachePolicy::kDense ? n_stream : a.cache - o.n_sinks;
    runs.push_back({name, o, {}, 0});
  }
  return runs;
}

int ppl(const PplArgs& a) {
  if (a.cache == 0) return report(Error(ErrorCode::kInvalidInput, "--cache must be at least 1"));
  SLLM_CLI_ASSIGN(auto engine, Engine::load(a.model.path));
  SLLM_CLI_ASSIGN(std::vector<TokenId> stream, tokenize_files(*engine->tokenizer, a.files));
  if (a.n_tokens > 0 && stream.size() > a.n_tokens) stream.resize(a.n_tokens);
  if (stream.size() < 2) {
    return report(Error(
        ErrorCode::kInvalidInput,
        fmt::format("the text is {} token(s) long; perplexity needs at least 2", stream.size())));
  }
  SLLM_CLI_ASSIGN(std::vector<Run> runs, plan_runs(a, engine->model.config(), stream.size()));
  ThreadPool pool(a.model.threads());
  fmt::print("stream: {} tokens from {} file(s)\n", stream.size(), a.files.size());
  for (Run& run : runs) {
    SLLM_CLI_ASSIGN(auto session, Session::create(engine->model, run.options, pool));
    Progress progress(run.label, stream.size() - 1);
    const auto start = std::chrono::steady_clock::now();
    SLLM_CLI_ASSIGN(run.result, stream_perplexity(*session, stream,
                                                  [&](size_t done, const PerplexityResult& r) {
                                                    progress.update(done, r);
                                                  }));
    progress.done();
    run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  // Table: one row per policy; overall and per-segment perplexity.
  const size_t n_scored = stream.size() - 1;
  std::string header =
      fmt::format("{:<10} {:>14} {:>10} {:>10}", "policy", "cache", "tok/s", "ppl");
  for (size_t s = 0; s < n_scored; s += a.segment) {
    header += fmt::format(" {:>12}", fmt::format("{}-{}", s, std::min(n_scored, s + a.segment)));
  }
  fmt::print("{}\n", header);
  for (const Run& run : runs) {
    const SessionOptions& o = run.options;
    std::string cache = o.policy == CachePolicy::kStreaming
                            ? fmt::format("{}+{}", o.n_sinks, o.window)
                        : o.policy == CachePolicy::kDense ? std::string("all")
                                                          : std::to_string(o.window);
    std::string line = fmt::format("{:<10} {:>14} {:>10.1f} {:>10.3f}", run.label, cache,
                                   static_cast<double>(n_scored) / run.seconds, run.result.ppl());
    for (size_t s = 0; s < n_scored; s += a.segment) {
      line += fmt::format(" {:>12.3f}", run.result.ppl(s, s + a.segment));
    }
    fmt::print("{}\n", line);
  }

  if (!a.csv.empty()) {
    std::ofstream out(a.csv);
    if (!out) return report(Error(ErrorCode::kIo, "cannot write '" + a.csv + "'"));
    out << "index,token";
    for (const Run& run : runs) out << ",nll_" << run.label;
    out << "\n";
    for (size_t i = 0; i < n_scored; ++i) {
      out << i + 1 << ',' << stream[i + 1];
      for (const Run& run : runs) out << ',' << fmt::format("{:.6f}", run.result.nll[i]);
      out << "\n";
    }
    if (!out) return report(Error(ErrorCode::kIo, "cannot write '" + a.csv + "'"));
  }
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
  cmd->add_option("--tokens", a->n_tokens, "Use only the first N tokens of the stream (0 = all)")
      ->capture_default_str();
  cmd->add_option("--csv", a->csv, "Write index,token,nll per scored token to this file");
  cmd->add_option(
      "--compare", a->compare,
      "Run several policies over the same stream, e.g. dense,window,streaming,recompute");
  a->cache_opt =
      cmd->add_option("--cache", a->cache, "--compare: cache size in tokens of every policy")
          ->capture_default_str();
  cmd->add_option("--segment", a->segment, "Tokens per segment in the table")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, std::numeric_limits<size_t>::max()));
  a->cache_args.add(*cmd);
  return [a] { return ppl(*a); };
}

}  // namespace sllm::cli
