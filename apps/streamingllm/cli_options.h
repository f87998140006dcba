// Flags shared by several subcommands, each declared once with its default and help.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "numeric_option.h"
#include "streamingllm/streamingllm.h"

namespace sllm::cli {

// `SLLM_CLI_ASSIGN(decl, expr)`: declares from a Result or reports its error and returns 1.
#define SLLM_CLI_ASSIGN(decl, expr) \
  SLLM_CLI_ASSIGN_IMPL_(SLLM_CONCAT_(sllm_cli_result_, __LINE__), decl, expr)
#define SLLM_CLI_ASSIGN_IMPL_(tmp, decl, expr)            \
  auto tmp = (expr);                                      \
  if (!tmp.ok()) return ::sllm::cli::report(tmp.error()); \
  decl = std::move(tmp).value()

#define SLLM_CLI_CHECK(expr)                                                          \
  do {                                                                                \
    auto sllm_cli_status_ = (expr);                                                   \
    if (!sllm_cli_status_.ok()) return ::sllm::cli::report(sllm_cli_status_.error()); \
  } while (0)

// Worker threads a flag may ask for; more only adds overhead.
inline constexpr size_t kMaxThreads = 1024;

struct ModelArgs {
  std::string path;
  size_t n_threads = 0;  // 0: all hardware threads
  void add(CLI::App& cmd);
  size_t threads() const;
  // Model::load with these threads; errors as the library words them.
  Result<std::shared_ptr<Model>> load() const;
};

struct SamplingArgs {
  SamplingOptions options;
  Result<SamplingOptions> to_options() const;
  void add(CLI::App& cmd);
};

struct CacheArgs {
  std::string policy = "streaming";
  size_t n_sinks = 4;
  size_t window = 0;    // 0: the policy's default (cache of 1024 tokens)
  size_t ctx_size = 0;  // dense only; 0: the model's training context, else 4096
  std::string kv_type = "f32";
  size_t batch = 64;
  CLI::Option* sinks_opt = nullptr;
  CLI::Option* window_opt = nullptr;
  CLI::Option* ctx_opt = nullptr;
  CLI::Option* policy_opt = nullptr;

  void add(CLI::App& cmd);
  // The flag conflicts that need no model (a flag the policy ignores), so that they are reported
  // before any work starts; to_options() checks them again.
  Status check() const;
  // Validates the flags against the policy: a flag that would do nothing is an error. The sizes
  // come from CacheOptions::for_policy (dense defaults to the model's training context).
  Result<CacheOptions> to_options(const ModelInfo& model) const;
};

// Two flags that must not be given together: "--prompt and --file exclude each other".
Status exclusive(const CLI::Option* a, const CLI::Option* b);

// Peak resident set size of this process in bytes (VmHWM, else getrusage's ru_maxrss).
uint64_t peak_rss_bytes();

// "4 sinks + 1020 window, f32" and the like.
std::string describe_cache(const CacheOptions& options);

}  // namespace sllm::cli
