// streamingllm: run language models on endless streams (StreamingLLM: attention sinks + window).
#include <CLI/CLI.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <map>
#include <new>
#include <string>

#include "commands.h"
#include "output.h"

namespace {

int run_main(int argc, char** argv) {
  CLI::App app{"streamingllm: run LLMs on endless streams with attention sinks (StreamingLLM)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "streamingllm 0.1.0");

  std::map<std::string, sllm::cli::Command> commands;
  auto add = [&](sllm::cli::Command (*add_fn)(CLI::App&)) {
    const size_t before = app.get_subcommands({}).size();
    sllm::cli::Command cmd = add_fn(app);
    commands[app.get_subcommands({})[before]->get_name()] = std::move(cmd);
  };
  add(sllm::cli::add_run);
  add(sllm::cli::add_tokenize);
  add(sllm::cli::add_info);
  add(sllm::cli::add_convert);
  add(sllm::cli::add_quantize);
  add(sllm::cli::add_ppl);
  add(sllm::cli::add_bench);
  add(sllm::cli::add_inspect);
  add(sllm::cli::add_chat);
  add(sllm::cli::add_serve);
  add(sllm::cli::add_make_model);

  if (argc > 1 && argv[1][0] != '-' && commands.count(argv[1]) == 0) {
    std::string names;
    for (const auto& [name, cmd] : commands) names += (names.empty() ? "" : ", ") + name;
    std::fprintf(stderr, "error: unknown command '%s' (commands: %s)\n", argv[1], names.c_str());
    return 1;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help, --version: printed to std::cout
      app.exit(e);
      if (!std::cout.flush()) {
        throw sllm::cli::OutputError(std::string("cannot write to standard output: ") +
                                     std::strerror(errno));
      }
      return 0;
    }
    // CLI11 says "--n-predict: At Most 1 required but received 2" for a flag given twice.
    const std::string what = e.what();
    const size_t at = what.find(": At Most 1 required but received ");
    if (at != std::string::npos) {
      std::fprintf(stderr, "error: %s is given more than once; give it once\n",
                   what.substr(0, at).c_str());
    } else {
      std::fprintf(stderr, "error: %s\n", what.c_str());
    }
    return 1;
  }
  for (CLI::App* sub : app.get_subcommands()) {
    const int code = commands.at(sub->get_name())();
    sllm::cli::write_stdout("");  // nothing may be left unwritten in stdio's buffer
    return code;
  }
  return 1;
}

}  // namespace

// Every error ends here as "error: ..." on stderr and exit code 1, never as an abort.
int main(int argc, char** argv) {
  // A closed pipe is an error that write_stdout() reports (EPIPE), also when the parent left
  // SIGPIPE at its default: the command then ends with a message, not silently by a signal.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return run_main(argc, argv);
  } catch (const sllm::cli::OutputError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  } catch (const std::bad_alloc& e) {
    std::fprintf(stderr, "error: out of memory (%s): an allocation failed\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "error: unexpected exception\n");
  }
  return 1;
}
