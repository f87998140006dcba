// `streamingllm run`: generate text from a prompt on an endless stream.
#include <fmt/core.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <thread>

#include "cli_options.h"
#include "commands.h"
#include "output.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "util/mapped_file.h"

namespace sllm::cli {

namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void on_sigint(int) {
  if (g_interrupted.exchange(true)) std::_Exit(130);  // a second Ctrl-C ends at once
}

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
  // prefill (generate() checks the flag between batches).
  std::signal(SIGINT, on_sigint);
  SLLM_CLI_ASSIGN(auto engine, Engine::load(a.model.path));
  SLLM_CLI_ASSIGN(SessionOptions session_options, a.cache.to_options(engine->model.config()));
  SLLM_CLI_ASSIGN(SamplerOptions sampler_options, a.sampling.to_options());
  std::string prompt = a.prompt;
  if (!a.prompt_file.empty()) {
    SLLM_CLI_ASSIGN(prompt, read_file(a.prompt_file));
  }
  const Tokenizer& tok = *engine->tokenizer;
  SLLM_CLI_ASSIGN(std::vector<TokenId> tokens, tok.encode(prompt, true, true));
  if (tokens.empty()) tokens.push_back(tok.vocab().bos);

  ThreadPool pool(a.model.threads());
  SLLM_CLI_ASSIGN(auto session, Session::create(engine->model, session_options, pool));
  Sampler sampler(sampler_options, engine->model.config().n_vocab);
  fmt::print(stderr, "streamingllm: {} | policy {} | cache {} tokens, {} bytes ({}) | {} threads\n",
             a.model.path, policy_name(session_options.policy), session->cache_tokens(),
             session->cache_bytes(), describe_cache(session_options), pool.n_threads());

  StreamDecoder decoder(tok);
  std::string echo;  // one write, not one per token: a long prompt echoes at once
  for (TokenId t : tokens) echo += decoder.push(t);
  write_stdout(echo);

  GenerateOptions gen;
  gen.n_predict = a.n_predict;
  gen.stop_at_eos = !a.ignore_eos;
  auto stats = generate(
      *session, sampler, tokens, gen, tok.vocab().eos,
      [&](TokenId id) { out("{}", decoder.push(id)); }, &g_interrupted);
  std::signal(SIGINT, SIG_DFL);
  out("{}\n", decoder.flush());
  if (!stats.ok()) return report(stats.error());
  fmt::print(stderr,
             "\nstreamingllm: prompt {} tokens in {:.2f} s | generated {} tokens in {:.2f} s "
             "({:.1f} tok/s) | stream {} tokens | cache {} bytes{}\n",
             stats->n_prompt_tokens, stats->prompt_seconds, stats->n_generated,
             stats->generate_seconds,
             stats->generate_seconds > 0
                 ? static_cast<double>(stats->n_generated) / stats->generate_seconds
                 : 0.0,
             session->n_seen(), session->cache_bytes(), stats->interrupted ? " | interrupted" : "");
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
  cmd->add_flag("--ignore-eos", a->ignore_eos, "Keep generating after end-of-sequence");
  a->sampling.add(*cmd);
  a->cache.add(*cmd);
  return [a] { return run(*a); };
}

}  // namespace sllm::cli
