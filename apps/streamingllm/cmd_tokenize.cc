// `streamingllm tokenize`: print the token ids of a text, space-separated, on one line.
#include <fmt/core.h>

#include "cli_options.h"
#include "commands.h"
#include "output.h"

namespace sllm::cli {

namespace {

struct TokenizeArgs {
  std::string model;
  std::string text;
  std::string file;
  bool bos = false;
  bool special = false;
  CLI::Option* prompt_opt = nullptr;
  CLI::Option* file_opt = nullptr;
};

int tokenize(const TokenizeArgs& a) {
  SLLM_CLI_CHECK(exclusive(a.prompt_opt, a.file_opt));
  // Only the vocabulary is read, so tokenizer-only GGUFs work too.
  SLLM_CLI_ASSIGN(auto vocabulary, Vocabulary::load(a.model));
  std::string text = a.text;
  if (!a.file.empty()) {
    SLLM_CLI_ASSIGN(text, read_file(a.file));
  }
  SLLM_CLI_ASSIGN(std::vector<TokenId> ids, vocabulary->tokenize(text, a.bos, a.special));
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) line += ' ';
    line += std::to_string(ids[i]);
  }
  out("{}\n", line);
  return 0;
}

}  // namespace

Command add_tokenize(CLI::App& app) {
  auto a = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text");
  cmd->add_option("-m,--model", a->model, "Model or vocabulary file (GGUF)")
      ->required()
      ->check(CLI::ExistingFile);
  a->prompt_opt = cmd->add_option("-p,--prompt", a->text, "Text to tokenize");
  a->file_opt = cmd->add_option("-f,--file", a->file, "Tokenize this file's bytes exactly")
                    ->check(CLI::ExistingFile);
  cmd->add_flag("--bos", a->bos, "Prepend the BOS token");
  cmd->add_flag("--special", a->special,
                "Parse control tokens written in the text (<s>, <|im_end|>, ...) into their ids; "
                "without it they are plain text");
  return [a] { return tokenize(*a); };
}

}  // namespace sllm::cli
