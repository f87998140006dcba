// `streamingllm run`: generate text from a prompt on an endless stream.
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

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
  std::string prompt_ids;
  int64_t n_predict = 256;
  bool ignore_eos = false;
  bool print_ids = false;
  size_t top_logprobs = 0;
  SamplingArgs sampling;
  CacheArgs cache;
  CLI::Option* prompt_opt = nullptr;
  CLI::Option* file_opt = nullptr;
  CLI::Option* ids_opt = nullptr;
  CLI::Option* top_opt = nullptr;
};

// "1 2 3" (spaces and/or commas between the ids) as token ids.
Result<std::vector<TokenId>> parse_ids(std::string_view text) {
  std::vector<TokenId> ids;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ' || text[i] == ',' || text[i] == '\t' || text[i] == '\n') {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && text[j] != ' ' && text[j] != ',' && text[j] != '\t' &&
           text[j] != '\n') {
      ++j;
    }
    const std::string_view word = text.substr(i, j - i);
    const std::optional<int32_t> id = detail::parse_number<int32_t>(word);
    if (!id || *id < 0) {
      return Error(ErrorCode::kInvalidInput, fmt::format("--prompt-ids: '{}' (id {}) is not a "
                                                         "token id (an integer >= 0)",
                                                         word, ids.size()));
    }
    ids.push_back(*id);
    i = j;
  }
  if (ids.empty()) return Error(ErrorCode::kInvalidInput, "--prompt-ids: no token ids given");
  return ids;
}

// The k most likely next tokens and their log-probabilities (log-softmax in double), as
// "id:logprob" pairs, most likely first (ties: the smaller id).
std::string top_logprobs(std::span<const float> logits, size_t k) {
  const double max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (const float l : logits) sum += std::exp(static_cast<double>(l) - max);
  const double log_z = max + std::log(sum);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  k = std::min(k, order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                    [&](int32_t a, int32_t b) {
                      const auto ua = static_cast<size_t>(a), ub = static_cast<size_t>(b);
                      return logits[ua] > logits[ub] || (logits[ua] == logits[ub] && a < b);
                    });
  std::string line;
  for (size_t i = 0; i < k; ++i) {
    const auto id = static_cast<size_t>(order[i]);
    line += fmt::format("{}{}:{:.7f}", i ? " " : "", id, static_cast<double>(logits[id]) - log_z);
  }
  return line;
}

int run(const RunArgs& a) {
  SLLM_CLI_CHECK(exclusive(a.prompt_opt, a.file_opt));
  SLLM_CLI_CHECK(exclusive(a.prompt_opt, a.ids_opt));
  SLLM_CLI_CHECK(exclusive(a.file_opt, a.ids_opt));
  if (a.top_logprobs > 0 && !a.print_ids) {
    return report(Error(ErrorCode::kInvalidInput,
                        "--print-top-logprobs needs --print-ids (it prints after the ids)"));
  }
  SLLM_CLI_CHECK(a.cache.check());
  // From the start: a Ctrl-C while a long prompt is read and tokenized stops the run before its
  // prefill (feed() checks the flag between batches).
  install_sigint_handler();
  SLLM_CLI_ASSIGN(std::shared_ptr<Model> model, a.model.load());
  SLLM_CLI_ASSIGN(CacheOptions cache_options, a.cache.to_options(model->info()));
  SLLM_CLI_ASSIGN(SamplingOptions sampling_options, a.sampling.to_options());
  std::vector<TokenId> tokens;
  if (a.ids_opt->count() > 0) {
    SLLM_CLI_ASSIGN(tokens, parse_ids(a.prompt_ids));
  } else {
    std::string prompt = a.prompt;
    if (!a.prompt_file.empty()) {
      SLLM_CLI_ASSIGN(prompt, read_file(a.prompt_file));
    }
    SLLM_CLI_ASSIGN(tokens, model->tokenize(prompt, true, true));
    if (tokens.empty()) tokens.push_back(model->info().bos);
  }

  SLLM_CLI_ASSIGN(auto stream, Stream::create(model, cache_options, sampling_options));
  fmt::print(stderr, "streamingllm: {} | policy {} | cache {} tokens, {} bytes ({}) | {} threads\n",
             a.model.path, policy_name(cache_options.policy), stream->cache_tokens(),
             stream->cache_bytes(), describe_cache(cache_options), model->n_threads());

  // The prompt is echoed as one write (not one per token), then the generated text as it comes.
  const std::atomic<bool>& stop_flag = interrupted();
  Generation gen;
  using Clock = std::chrono::steady_clock;
  const auto prompt_start = Clock::now();
  // --print-ids: stdout carries the generated ids only (then the top log-probabilities).
  const bool echo = !a.print_ids;
  const auto on_text = [echo](std::string_view text) {
    if (echo) write_stdout(text);
  };
  auto fed = stream->feed(tokens, &stop_flag, on_text);
  std::vector<std::string> top;  // one line per step, while the stream has its logits
  if (fed.ok() && a.top_logprobs > 0) top.push_back(top_logprobs(stream->logits(), a.top_logprobs));
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
    uint64_t n_ids = 0;
    const Stream& s = *stream;
    const auto on_token = [&](TokenId token) {
      if (a.print_ids) write_stdout(fmt::format("{}{}", n_ids++ ? " " : "", token));
      // The token was fed: the logits are the next step's.
      if (a.top_logprobs > 0) top.push_back(top_logprobs(s.logits(), a.top_logprobs));
    };
    auto result = stream->generate(stop, on_text, on_token);
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
  // The line after the last generated token's is that of a step that generated nothing, unless
  // the step sampled an end-of-generation token.
  const size_t n_steps =
      gen.n_tokens + (gen.stop == StopReason::kEndOfGeneration && gen.end_token >= 0 ? 1 : 0);
  for (size_t i = 0; i < top.size() && i < n_steps; ++i) out("{}\n", top[i]);
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
  a->ids_opt = cmd->add_option("--prompt-ids", a->prompt_ids,
                               "Prompt as token ids (\"1 2 3\"), fed as given (no BOS added)");
  cmd->add_flag("--print-ids", a->print_ids,
                "Print the generated token ids (one line, space-separated) instead of the text");
  a->top_opt = add_number(*cmd, "--print-top-logprobs", a->top_logprobs, {size_t{0}, size_t{100}},
                          "With --print-ids: then one line per step of the K most likely tokens "
                          "as id:logprob");
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
