// `streamingllm chat`: one conversation that never ends and never grows.
//
// Input, one user turn each: the lines typed at a terminal (libedit: line editing and history),
// the lines of stdin when it is not a terminal, or every turn of a --prompts file (MT-Bench
// JSON lines). Replies stream to stdout; the header and the final figures go to stderr.
#include <editline/readline.h>
#include <fmt/core.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>

#include "cli_options.h"
#include "commands.h"
#include "interrupt.h"
#include "output.h"

namespace sllm::cli {

namespace {

struct ChatArgs {
  ModelArgs model;
  SamplingArgs sampling;
  CacheArgs cache;
  std::string system;
  std::string template_name;
  bool keep_system = false;
  std::vector<std::string> stops;
  int64_t max_reply = 1024;
  std::string prompts_path;
  std::string session_path;
  CLI::App* cmd = nullptr;

  bool given(const char* flag) const { return cmd->count(flag) > 0; }
};

// Where the user turns come from.
class TurnSource {
 public:
  virtual ~TurnSource() = default;
  // The next turn, or nullopt at the end (EOF, Ctrl-D, Ctrl-C at the prompt).
  virtual std::optional<std::string> next() = 0;
  // Whether the turn should be echoed ("USER: ...") because nobody typed it on this screen.
  virtual bool echo() const = 0;
  // Where the last turn came from, for error messages: "line 2", "turn 3".
  virtual std::string where() const = 0;
};

class PromptFileSource final : public TurnSource {
 public:
  explicit PromptFileSource(std::vector<std::string> turns) : turns_(std::move(turns)) {}
  std::optional<std::string> next() override {
    if (next_ == turns_.size() || interrupted().load()) return std::nullopt;
    return turns_[next_++];
  }
  bool echo() const override { return true; }
  std::string where() const override { return fmt::format("turn {}", next_); }

 private:
  std::vector<std::string> turns_;
  size_t next_ = 0;
};

class StdinSource final : public TurnSource {
 public:
  std::optional<std::string> next() override {
    std::string line;
    while (!interrupted().load() && std::getline(std::cin, line)) {
      ++n_lines_;
      if (line.find_first_not_of(" \t\r") != std::string::npos) return line;
    }
    return std::nullopt;
  }
  bool echo() const override { return true; }
  std::string where() const override { return fmt::format("line {}", n_lines_); }

 private:
  uint64_t n_lines_ = 0;
};

class TerminalSource final : public TurnSource {
 public:
  TerminalSource() {
    rl_catch_signals = 0;  // our SIGINT handler stays in charge (see install_sigint_handler)
    rl_inhibit_completion = 1;
  }
  std::optional<std::string> next() override {
    for (;;) {
      interrupted() = false;
      char* line = readline("> ");
      if (line == nullptr) {  // Ctrl-D, or Ctrl-C at the prompt
        out("\n");
        return std::nullopt;
      }
      std::string text(line);
      std::free(line);
      if (text.find_first_not_of(" \t") == std::string::npos) continue;
      add_history(text.c_str());
      return text;
    }
  }
  bool echo() const override { return false; }
  std::string where() const override { return "this line"; }
};

// A resumed session keeps the options it was saved with: a flag that says otherwise is an error.
template <typename T>
Status same_as_saved(const ChatArgs& a, const char* flag, const T& given, const T& saved) {
  if (!a.given(flag) || given == saved) return {};
  return Error(ErrorCode::kInvalidInput,
               fmt::format("{} {} differs from the session file's {} (a resumed session keeps "
                           "its options: drop the flag or start a new session)",
                           flag, given, saved));
}

Status check_flags_against(const ChatArgs& a, const ChatOptions& saved, const ModelInfo& model) {
  SLLM_RETURN_IF_ERROR(same_as_saved(a, "--template", a.template_name, saved.template_name));
  SLLM_RETURN_IF_ERROR(same_as_saved(a, "--system", a.system, saved.system));
  SLLM_RETURN_IF_ERROR(same_as_saved(a, "--keep-system", a.keep_system, saved.keep_system));
  SLLM_ASSIGN_OR_RETURN(CacheOptions s, a.cache.to_options(model));
  SLLM_RETURN_IF_ERROR(same_as_saved(a, "--policy", std::string(policy_name(s.policy)),
                                     std::string(policy_name(saved.cache.policy))));
  SLLM_RETURN_IF_ERROR(same_as_saved(a, "--sinks", s.n_sinks, saved.cache.n_sinks));
  SLLM_RETURN_IF_ERROR(same_as_saved(a, "--window", s.window, saved.cache.window));
  SLLM_RETURN_IF_ERROR(same_as_saved(a, "--ctx-size", s.window, saved.cache.window));
  SLLM_RETURN_IF_ERROR(same_as_saved(a, "--kv-type", a.cache.kv_type,
                                     std::string(kv_type_name(saved.cache.kv_type))));
  const SamplingOptions& g = a.sampling.options;
  const SamplingOptions& o = saved.sampling;
  SLLM_RETURN_IF_ERROR(same_as_saved(a, "--temp", g.temperature, o.temperature));
  SLLM_RETURN_IF_ERROR(same_as_saved(a, "--top-k", g.top_k, o.top_k));
  SLLM_RETURN_IF_ERROR(same_as_saved(a, "--top-p", g.top_p, o.top_p));
  SLLM_RETURN_IF_ERROR(same_as_saved(a, "--min-p", g.min_p, o.min_p));
  SLLM_RETURN_IF_ERROR(same_as_saved(a, "--repeat-penalty", g.repeat_penalty, o.repeat_penalty));
  SLLM_RETURN_IF_ERROR(same_as_saved(a, "--repeat-last-n", g.repeat_last_n, o.repeat_last_n));
  SLLM_RETURN_IF_ERROR(same_as_saved(a, "--seed", g.seed, o.seed));
  return {};
}

Result<ChatOptions> options_from_flags(const ChatArgs& a, const Model& model) {
  ChatOptions o;
  if (a.given("--template")) {
    o.template_name = a.template_name;
  } else {
    const ChatTemplateChoice choice = choose_chat_template(model.info().chat_template);
    if (!choice.note.empty()) {
      fmt::print(stderr, "note: {}; --template NAME picks another\n", choice.note);
    }
    o.template_name = choice.name;
  }
  o.system = a.system;
  o.keep_system = a.keep_system;
  SLLM_ASSIGN_OR_RETURN(o.cache, a.cache.to_options(model.info()));
  SLLM_ASSIGN_OR_RETURN(o.sampling, a.sampling.to_options());
  return o;
}

// The --session file, checked and locked for the whole chat before any work, so that an unusable
// path is reported at once and a second chat on the same file refuses instead of racing.
Result<std::optional<SessionLock>> open_session_path(const ChatArgs& a) {
  if (a.session_path.empty()) {
    if (!a.given("--session")) return std::optional<SessionLock>();
    return Error(ErrorCode::kInvalidInput, "--session needs a file path, got an empty string");
  }
  Result<SessionLock> lock = SessionLock::acquire(a.session_path);
  if (!lock.ok()) return lock.error().with_context("--session");
  return std::optional<SessionLock>(std::move(*lock));
}

// The flag errors that need no model, reported before any work starts.
Status check_flags(const ChatArgs& a) {
  if (a.keep_system && a.system.empty()) {
    return Error(ErrorCode::kInvalidInput, "--keep-system needs --system TEXT");
  }
  if (a.keep_system && a.cache.policy != "streaming") {
    return Error(ErrorCode::kInvalidInput, "--keep-system needs --policy streaming");
  }
  for (const std::string& stop : a.stops) {
    if (stop.empty()) return Error(ErrorCode::kInvalidInput, "--stop: the text must not be empty");
  }
  return a.cache.check();
}

int chat(const ChatArgs& a) {
  SLLM_CLI_CHECK(check_flags(a));
  SLLM_CLI_ASSIGN(std::optional<SessionLock> session_path, open_session_path(a));
  // Worker threads inherit a mask with SIGINT blocked, so that Ctrl-C reaches the main thread
  // (and interrupts its read at the prompt).
  sigset_t sigint_only, previous;
  sigemptyset(&sigint_only);
  sigaddset(&sigint_only, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigint_only, &previous);
  auto loaded = a.model.load();
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  SLLM_CLI_ASSIGN(std::shared_ptr<Model> model, std::move(loaded));
  const bool resume = session_path.has_value() && session_path->exists();
  std::unique_ptr<Chat> chat;
  if (resume) {
    SLLM_CLI_ASSIGN(chat, Chat::load(model, a.session_path, a.cache.batch));
    SLLM_CLI_CHECK(check_flags_against(a, chat->options(), model->info()));
  } else {
    SLLM_CLI_ASSIGN(ChatOptions options, options_from_flags(a, *model));
    SLLM_CLI_ASSIGN(chat, Chat::create(model, options));
  }
  const size_t cache_bytes_at_start = chat->cache_bytes();
  fmt::print(stderr, "streamingllm chat: {} | template {} | cache {} tokens, {} bytes ({}){}\n",
             a.model.path, chat->options().template_name, chat->cache_tokens(),
             cache_bytes_at_start, describe_cache(chat->cache_options()),
             chat->n_pinned() > 0
                 ? fmt::format(" | system prompt pinned: {} tokens", chat->n_pinned())
                 : "");
  if (resume) {
    fmt::print(stderr, "resumed {}: {} turns, stream at {} tokens\n", a.session_path,
               chat->n_turns(), chat->n_seen());
  }

  std::unique_ptr<TurnSource> source;
  if (!a.prompts_path.empty()) {
    SLLM_CLI_ASSIGN(std::vector<std::string> turns, read_chat_prompts(a.prompts_path));
    source = std::make_unique<PromptFileSource>(std::move(turns));
  } else if (isatty(STDIN_FILENO)) {
    fmt::print(stderr, "Ctrl-C stops a reply; Ctrl-D or Ctrl-C at the prompt quits.\n");
    source = std::make_unique<TerminalSource>();
  } else {
    source = std::make_unique<StdinSource>();
  }

  StopOptions reply_options;
  reply_options.max_tokens = a.max_reply;
  reply_options.stop_strings = a.stops;
  reply_options.interrupt = &interrupted();
  install_sigint_handler();
  uint64_t n_turns = 0, n_prompt_tokens = 0, n_reply_tokens = 0, n_skipped = 0;
  double reply_seconds = 0;
  const auto start = std::chrono::steady_clock::now();
  while (std::optional<std::string> turn = source->next()) {
    // A turn the chat refuses (invalid UTF-8, ...) changes nothing: it is reported and skipped.
    // (Checked before the echo, so that stdout shows only the turns that were answered.)
    if (Status valid = chat->check_turn(*turn); !valid.ok()) {
      fmt::print(stderr, "error: {}: {}, skipped\n", source->where(), valid.error().message());
      ++n_skipped;
      continue;
    }
    if (source->echo()) out("USER: {}\n\nASSISTANT: ", *turn);
    // No reset of the interrupt flag here: every source returns a turn only with it clear, and a
    // Ctrl-C from here on must stop this reply.
    auto reply = chat->send(*turn, reply_options, [](std::string_view text) { out("{}", text); });
    out("\n\n");
    if (!reply.ok()) return report(reply.error());
    ++n_turns;
    n_prompt_tokens += reply->prompt_tokens.size();
    n_reply_tokens += reply->tokens.size();
    reply_seconds += reply->generate_seconds;
    if (!a.session_path.empty()) {
      SLLM_CLI_CHECK(chat->save(a.session_path));
    }
  }
  restore_sigint();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print(stderr,
             "streamingllm chat: {} turns in {:.2f} s | prompt {} tokens | replies {} tokens "
             "({:.1f} tok/s) | stream {} tokens | cache {} bytes (at start {}) | peak RSS {:.1f} "
             "MiB\n",
             n_turns, seconds, n_prompt_tokens, n_reply_tokens,
             reply_seconds > 0 ? static_cast<double>(n_reply_tokens) / reply_seconds : 0.0,
             chat->n_seen(), chat->cache_bytes(), cache_bytes_at_start,
             static_cast<double>(peak_rss_bytes()) / (1024.0 * 1024.0));
  if (n_skipped > 0) fmt::print(stderr, "streamingllm chat: {} turn(s) skipped\n", n_skipped);
  return 0;
}

}  // namespace

Command add_chat(CLI::App& app) {
  auto a = std::make_shared<ChatArgs>();
  CLI::App* cmd = app.add_subcommand(
      "chat", "Chat in one endless conversation (attention sinks + window, never reset)");
  a->cmd = cmd;
  a->model.add(*cmd);
  cmd->add_option("--system", a->system, "System message");
  const std::vector<std::string> templates = chat_template_names();
  cmd->add_option("--template", a->template_name,
                  "Chat template (default: recognised from the model's tokenizer.chat_template)")
      ->check(CLI::IsMember(templates));
  cmd->add_flag("--keep-system", a->keep_system,
                "Pin the system message as attention sinks, so it is never evicted");
  cmd->add_option("--stop", a->stops, "End a reply when its text contains this (repeatable)");
  add_number(*cmd, "--max-reply", a->max_reply, {int64_t{-1}, std::numeric_limits<int64_t>::max()},
             "Longest reply in tokens; -1 = no limit");
  cmd->add_option("--prompts", a->prompts_path,
                  "Batch mode: every turn of an MT-Bench style JSONL file, in one conversation")
      ->check(CLI::ExistingFile);
  cmd->add_option("--session", a->session_path,
                  "Save the conversation's state here after every turn; resume from it if it "
                  "exists");
  a->sampling.add(*cmd);
  a->cache.add(*cmd);
  return [a] { return chat(*a); };
}

}  // namespace sllm::cli
