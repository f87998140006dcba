// `streamingllm convert` and `streamingllm quantize`: write GGUF files.
#include <fmt/core.h>

#include "cli_options.h"
#include "commands.h"

namespace sllm::cli {

Command add_convert(CLI::App& app) {
  struct Args {
    std::string checkpoint, tokenizer, out;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("convert", "Convert a llama2.c checkpoint to GGUF");
  cmd->add_option("--llama2c", a->checkpoint, "llama2.c checkpoint (.bin)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--tokenizer", a->tokenizer, "llama2.c tokenizer (tokenizer.bin)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", a->out, "Output GGUF")->required();
  return [a] {
    SLLM_CLI_CHECK(convert_llama2c(a->checkpoint, a->tokenizer, a->out));
    fmt::print(stderr, "wrote {}\n", a->out);
    return 0;
  };
}

Command add_quantize(CLI::App& app) {
  struct Args {
    std::string in, out, type;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("quantize", "Re-encode a GGUF model's weight matrices");
  cmd->add_option("input", a->in, "Input GGUF")->required()->check(CLI::ExistingFile);
  cmd->add_option("output", a->out, "Output GGUF")->required();
  cmd->add_option("--type", a->type, "Weight type: q8_0, q4_0, f16, bf16 or f32")
      ->required()
      ->check(CLI::IsMember({"q8_0", "q4_0", "f16", "bf16", "f32"}));
  return [a] {
    SLLM_CLI_CHECK(quantize(a->in, a->out, a->type));
    fmt::print(stderr, "wrote {}\n", a->out);
    return 0;
  };
}

}  // namespace sllm::cli
