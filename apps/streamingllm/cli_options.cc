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

void ModelArgs::add(CLI::App& cmd) {
  cmd.add_option("-m,--model", path, "Model file (GGUF)")->required()->check(CLI::ExistingFile);
  cmd.add_option("-t,--threads", n_threads, "Threads (0 = all cores)")->capture_default_str();
}

size_t ModelArgs::threads() const {
  return n_threads > 0 ? n_threads : std::max(1u, std::thread::hardware_concurrency());
}

void SamplingArgs::add(CLI::App& cmd) {
  cmd.add_option("--temp", options.temperature, "Temperature; 0 = greedy")->capture_default_str();
  cmd.add_option("--top-k", options.top_k, "Keep the k most likely tokens; 0 = off")
      ->capture_default_str();
  cmd.add_option("--top-p", options.top_p, "Nucleus sampling; 1 = off")->capture_default_str();
  cmd.add_option("--min-p", options.min_p, "Drop tokens below min-p x the top probability; 0 = off")
      ->capture_default_str();
  cmd.add_option("--repeat-penalty", options.repeat_penalty, "Repetition penalty; 1 = off")
      ->capture_default_str();
  cmd.add_option("--repeat-last-n", options.repeat_last_n, "Tokens the penalty looks back over")
      ->capture_default_str();
  cmd.add_option("-s,--seed", options.seed, "Random seed")->capture_default_str();
}

Result<SamplerOptions> SamplingArgs::to_options() const {
  SLLM_RETURN_IF_ERROR(options.validate());
  return options;
}

void CacheArgs::add(CLI::App& cmd) {
  cmd.add_option("--policy", policy, "KV cache policy: streaming, window, dense or recompute")
      ->capture_default_str()
      ->check(CLI::IsMember({"streaming", "window", "dense", "recompute"}));
  sinks_opt =
      cmd.add_option("--sinks", n_sinks, "Attention sinks kept (streaming)")->capture_default_str();
  window_opt = cmd.add_option("--window", window,
                              "Recent tokens kept (default: 1020 for streaming, 1024 otherwise)");
  ctx_opt = cmd.add_option("-c,--ctx-size", ctx_size,
                           "Context limit of dense attention (default: the model's)");
  cmd.add_option("--kv-type", kv_type, "KV cache element type: f32 or f16")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "f16"}));
  cmd.add_option("-b,--batch", batch, "Tokens per forward pass when feeding prompts")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{4096}));
}

Result<SessionOptions> CacheArgs::to_options(const ModelConfig& config) const {
  SessionOptions o;
  SLLM_ASSIGN_OR_RETURN(o.policy, parse_policy(policy));
  auto invalid = [](const std::string& msg) { return Error(ErrorCode::kInvalidInput, msg); };
  if (sinks_opt->count() > 0 && o.policy != CachePolicy::kStreaming) {
    return invalid("--sinks applies to --policy streaming only");
  }
  if (ctx_opt->count() > 0 && o.policy != CachePolicy::kDense) {
    return invalid("--ctx-size applies to --policy dense only (use --window)");
  }
  if (window_opt->count() > 0 && o.policy == CachePolicy::kDense) {
    return invalid("--window does not apply to --policy dense (use --ctx-size)");
  }
  if (window_opt->count() > 0 && window == 0) return invalid("--window must be at least 1");
  o.n_sinks = o.policy == CachePolicy::kStreaming ? n_sinks : 0;
  if (o.policy == CachePolicy::kDense) {
    o.window = ctx_size > 0 ? ctx_size : (config.n_ctx_train > 0 ? config.n_ctx_train : 4096);
  } else if (window > 0) {
    o.window = window;
  } else {
    o.window = o.policy == CachePolicy::kStreaming && n_sinks < 1024 ? 1024 - n_sinks : 1024;
  }
  o.kv_type = kv_type == "f16" ? TensorType::kF16 : TensorType::kF32;
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

std::string describe_cache(const SessionOptions& o) {
  const char* kv = o.kv_type == TensorType::kF16 ? "f16" : "f32";
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
