// Subcommands of the streamingllm CLI. Each adds itself to the app and returns the function
// that runs it (exit code). Errors go to stderr; stdout carries only the command's output.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "streamingllm/error.h"

namespace sllm::cli {

using Command = std::function<int()>;

Command add_run(CLI::App& app);
Command add_tokenize(CLI::App& app);
Command add_info(CLI::App& app);
Command add_convert(CLI::App& app);
Command add_quantize(CLI::App& app);
Command add_ppl(CLI::App& app);
Command add_bench(CLI::App& app);
Command add_inspect(CLI::App& app);
Command add_chat(CLI::App& app);
Command add_serve(CLI::App& app);
Command add_make_model(CLI::App& app);

// Prints "error: <message>" to stderr and returns the exit code for it.
int report(const Error& error);

}  // namespace sllm::cli
