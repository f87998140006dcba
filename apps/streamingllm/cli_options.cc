#include "cli_options.h"

#include <fmt/core.h>

#include <sys/resource.h>

#include <fstream>
#include <thread>

#include "commands.h"

namespace sllm::cli {

int report(const Error& error) {
  fmt::print(stderr, "error: {}\n", error.message());
  return 1;
}

Status exclusive(const CLI::Option* a, const CLI::Option* b) {
  if (a->count() == 0 || b->count() == 0) return {};
  return Error(
      ErrorCode::kInvalidInput,
      fmt::format("{} and {} exclude each other: give one of them", a->get_name(), b->get_name()));
}

void ModelArgs::add(CLI::App& cmd) {
  cmd.add_option("-m,--model", path, "Model file (GGUF)")->required()->check(CLI::ExistingFile);
  add_number(cmd, "-t,--threads", n_threads, {size_t{0}, kMaxThreads}, "Threads (0 = all cores)");
}

size_t ModelArgs::threads() const {
  return n_threads > 0 ? n_threads : std::max(1u, std::thread::hardware_concurrency());
}

Result<std::shared_ptr<Model>> ModelArgs::load() const {
  Model::LoadOptions options;
  options.n_threads = threads();
  return Model::load(path, options);
}

void SamplingArgs::add(CLI::App& cmd) {
  SamplingOptions& o = options;
  add_number(cmd, "--temp", o.temperature, {0.0f, 1000.0f}, "Temperature; 0 = greedy");
  add_number(cmd, "--top-k", o.top_k, {0, std::numeric_limits<int32_t>::max()},
             "Keep the k most likely tokens; 0 = off");
  add_number(cmd, "--top-p", o.top_p, {0.0f, 1.0f, /*min_exclusive=*/true},
             "Nucleus sampling; 1 = off");
  add_number(cmd, "--min-p", o.min_p, {0.0f, 1.0f},
             "Drop tokens below min-p x the top probability; 0 = off");
  add_number(cmd, "--repeat-penalty", o.repeat_penalty, {0.0f, 1000.0f, /*min_exclusive=*/true},
             "Repetition penalty; 1 = off");
  // The sampler keeps this many past tokens: bounded so that the flag cannot size a huge buffer.
  add_number(cmd, "--repeat-last-n", o.repeat_last_n, {0, int32_t{1} << 20},
             "Tokens the penalty looks back over; 0 = off");
  add_number(cmd, "-s,--seed", o.seed, {uint64_t{0}, std::numeric_limits<uint64_t>::max()},
             "Random seed");
}

Result<SamplingOptions> SamplingArgs::to_options() const {
  SLLM_RETURN_IF_ERROR(options.validate());
  return options;
}

void CacheArgs::add(CLI::App& cmd) {
  policy_opt =
      cmd.add_option("--policy", policy, "KV cache policy: streaming, window, dense or recompute")
          ->capture_default_str()
          ->check(CLI::IsMember({"streaming", "window", "dense", "recompute"}));
  sinks_opt = add_number(cmd, "--sinks", n_sinks, {size_t{0}, kMaxTokensFlag},
                         "Attention sinks kept (streaming)");
  window_opt = add_number(cmd, "--window", window, {size_t{1}, kMaxTokensFlag},
                          "Recent tokens kept (default: 1020 for streaming, 1024 otherwise)");
  window_opt->default_str("");
  ctx_opt = add_number(cmd, "-c,--ctx-size", ctx_size, {size_t{1}, kMaxTokensFlag},
                       "Context limit of dense attention (default: the model's)");
  ctx_opt->default_str("");
  cmd.add_option("--kv-type", kv_type, "KV cache element type: f32, f16, q8_0 or q4_0")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "f16", "q8_0", "q4_0"}));
  add_number(cmd, "-b,--batch", batch, {size_t{1}, size_t{4096}},
             "Tokens per forward pass when feeding prompts");
}

Status CacheArgs::check() const {
  auto invalid = [](const std::string& msg) { return Error(ErrorCode::kInvalidInput, msg); };
  const bool streaming = policy == "streaming", dense = policy == "dense";
  if (sinks_opt->count() > 0 && !streaming) {
    return invalid("--sinks applies to --policy streaming only");
  }
  if (ctx_opt->count() > 0 && !dense) {
    return invalid("--ctx-size applies to --policy dense only (use --window)");
  }
  if (window_opt->count() > 0 && dense) {
    return invalid("--window does not apply to --policy dense (use --ctx-size)");
  }
  return {};
}

Result<CacheOptions> CacheArgs::to_options(const ModelInfo& model) const {
  SLLM_RETURN_IF_ERROR(check());
  SLLM_ASSIGN_OR_RETURN(const CachePolicy p, parse_policy(policy));
  auto invalid = [](const std::string& msg) { return Error(ErrorCode::kInvalidInput, msg); };
  if (window_opt->count() > 0 && window == 0) return invalid("--window must be at least 1");
  if (n_sinks > std::numeric_limits<size_t>::max() - window) {
    return invalid("--sinks + --window overflows");
  }
  const size_t sinks = p == CachePolicy::kStreaming ? n_sinks : 0;
  size_t cache_tokens = 0;
  if (p == CachePolicy::kDense) {
    cache_tokens = ctx_size > 0 ? ctx_size : (model.n_ctx_train > 0 ? model.n_ctx_train : 4096);
  } else if (window > 0) {
    cache_tokens = sinks + window;
  } else {
    // A cache of 1024 tokens; sinks that fill it get a window of 1024 beside them.
    cache_tokens = sinks < 1024 ? 1024 : sinks + 1024;
  }
  SLLM_ASSIGN_OR_RETURN(CacheOptions o, CacheOptions::for_policy(p, cache_tokens, sinks));
  SLLM_ASSIGN_OR_RETURN(o.kv_type, parse_kv_type(kv_type));
  o.max_batch = batch;
  return o;
}

// Peak resident set size in bytes: VmHWM from /proc/self/status, else getrusage's ru_maxrss.
uint64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // "... kB"
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;  // KiB on Linux
}

std::string describe_cache(const CacheOptions& o) {
  const char* kv = kv_type_name(o.kv_type);
  switch (o.policy) {
    case CachePolicy::kStreaming:
      return fmt::format("{} sinks + {} window, {}", o.n_sinks, o.window, kv);
    case CachePolicy::kWindow:
      return fmt::format("window {}, {}", o.window, kv);
    case CachePolicy::kRecompute:
      return fmt::format("recompute window {}, {}", o.window, kv);
    case CachePolicy::kDense:
      return fmt::format("dense up to {}, {}", o.window, kv);
  }
  return "";
}

}  // namespace sllm::cli
