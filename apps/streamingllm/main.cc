// streamingllm: run language models on endless streams (StreamingLLM: attention sinks + window).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <map>
#include <string>

#include "commands.h"

int main(int argc, char** argv) {
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

  if (argc > 1 && argv[1][0] != '-' && commands.count(argv[1]) == 0) {
    std::string names;
    for (const auto& [name, cmd] : commands) names += (names.empty() ? "" : ", ") + name;
    std::fprintf(stderr, "error: unknown command '%s' (commands: %s)\n", argv[1], names.c_str());
    return 1;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (CLI::App* sub : app.get_subcommands()) return commands.at(sub->get_name())();
  return 1;
}
