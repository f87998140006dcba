// `streamingllm run`: generate text from a prompt on an endless stream.
#include <fmt/core.h>

#include <chrono>
#include <cstdio>

#include "cli_options.h"
#include "commands.h"
#include "interrupt.h"
#include "output.h"

namespace sllm::cli {

namespace {

struct RunArgs {
  ModelArgs model;
  std::string prompt;
  std::string prompt_file;
  int64_t n_predict = 256;
  bool ignore_eos = false;
  SamplingArgs sampling;
  CacheArgs cache;
  CLI::Option* prompt_opt = nullptr;
  CLI::Option* file_opt = nullptr;
};

int run(const RunArgs& a) {
  SLLM_CLI_CHECK(exclusive(a.prompt_opt, a.file_opt));
  SLLM_CLI_CHECK(a.cache.check());
  // From the start: a Ctrl-C while a long prompt is read and tokenized stops the run before its
  // prefill (feed() checks the flag between batches).
  install_sigint_handler();
  SLLM_CLI_ASSIGN(std::shared_ptr<Model> model, a.model.load());
  SLLM_CLI_ASSIGN(CacheOptions cache_options, a.cache.to_options(model->info()));
  SLLM_CLI_ASSIGN(SamplingOptions sampling_options, a.sampling.to_options());
  std::string prompt = a.prompt;
  if (!a.prompt_file.empty()) {
    SLLM_CLI_ASSIGN(prompt, read_file(a.prompt_file));
  }
  SLLM_CLI_ASSIGN(std::vector<TokenId> tokens, model->tokenize(prompt, true, true));
  if (tokens.empty()) tokens.push_back(model->info().bos);

  SLLM_CLI_ASSIGN(auto stream, Stream::create(model, cache_options, sampling_options));
  fmt::print(stderr, "streamingllm: {} | policy {} | cache {} tokens, {} bytes ({}) | {} threads\n",
             a.model.path, policy_name(cache_options.policy), stream->cache_tokens(),
             stream->cache_bytes(), describe_cache(cache_options), model->n_threads());

  // The prompt is echoed as one write (not one per token), then the generated text as it comes.
  const std::atomic<bool>& stop_flag = interrupted();
  Generation gen;
  using Clock = std::chrono::steady_clock;
  const auto prompt_start = Clock::now();
  auto fed = stream->feed(tokens, &stop_flag, [](std::string_view text) { write_stdout(text); });
  gen.n_prompt_tokens = fed.ok() ? *fed : 0;
  gen.prompt_seconds = std::chrono::duration<double>(Clock::now() - prompt_start).count();
  bool was_interrupted = fed.ok() && *fed < tokens.size();
  Status status;
  if (!fed.ok()) {
    status = fed.error();
  } else if (!was_interrupted) {
    StopOptions stop;
    stop.max_tokens = a.n_predict;
    stop.at_end_of_generation = !a.ignore_eos;
    stop.interrupt = &stop_flag;
    stop.keep_output = false;  // -n -1 streams forever in constant memory
    auto result = stream->generate(stop, [](std::string_view text) { write_stdout(text); });
    if (result.ok()) {
      result->n_prompt_tokens = gen.n_prompt_tokens;
      result->prompt_seconds = gen.prompt_seconds;
      gen = std::move(*result);
      was_interrupted = gen.stop == StopReason::kInterrupted;
    } else {
      status = result.error();
    }
  }
  restore_sigint();
  out("\n");
  if (!status.ok()) return report(status.error());
  fmt::print(
      stderr,
      "\nstreamingllm: prompt {} tokens in {:.2f} s | generated {} tokens in {:.2f} s "
      "({:.1f} tok/s) | stream {} tokens | cache {} bytes{}\n",
      gen.n_prompt_tokens, gen.prompt_seconds, gen.n_tokens, gen.generate_seconds,
      gen.generate_seconds > 0 ? static_cast<double>(gen.n_tokens) / gen.generate_seconds : 0.0,
      stream->n_seen(), stream->cache_bytes(), was_interrupted ? " | interrupted" : "");
  return 0;
}

}  // namespace

Command add_run(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "Generate text from a prompt on an endless stream");
  a->model.add(*cmd);
  a->prompt_opt =
      cmd->add_option("-p,--prompt", a->prompt, "Prompt text (default: empty, start from BOS)");
  a->file_opt = cmd->add_option("-f,--file", a->prompt_file, "Read the prompt from a file")
                    ->check(CLI::ExistingFile);
  add_number(*cmd, "-n,--n-predict", a->n_predict,
             {int64_t{-1}, std::numeric_limits<int64_t>::max()},
             "Tokens to generate; -1 = until Ctrl-C");
  cmd->add_flag("--ignore-eos", a->ignore_eos,
                "Keep generating after an end-of-generation token (EOS, <|eot_id|>, ...)");
  a->sampling.add(*cmd);
  a->cache.add(*cmd);
  return [a] { return run(*a); };
}

}  // namespace sllm::cli
