// `streamingllm convert`, `quantize` and `make-model`: write GGUF files.
#include <fmt/core.h>

#include <limits>

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
  cmd->add_option("--type", a->type,
                  "Weight type: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_K q3_K q4_K q5_K q6_K "
                  "iq4_nl iq4_xs mxfp4, or llama.cpp's mixes Q4_K_M Q5_K_M")
      ->required()
      ->check(CLI::IsMember(
          {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_K", "q3_K", "q4_K",
           "q5_K", "q6_K", "iq4_nl", "iq4_xs", "mxfp4", "Q4_K_M", "Q5_K_M"},
          CLI::ignore_case));
  return [a] {
    SLLM_CLI_CHECK(quantize(a->in, a->out, a->type));
    fmt::print(stderr, "wrote {}\n", a->out);
    return 0;
  };
}

Command add_make_model(CLI::App& app) {
  auto o = std::make_shared<MakeModelOptions>();
  auto out = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "make-model", "Write a small GGUF with random weights and a real tokenizer (for tests)");
  cmd->add_option("--arch", o->arch, "Architecture: " + make_model_architectures())
      ->capture_default_str();
  cmd->add_option("--vocab", o->vocab, "Vocabulary GGUF whose tokenizer.* keys are copied")
      ->required()
      ->check(CLI::ExistingFile);
  add_number(*cmd, "--n-embd", o->n_embd, {size_t{1}, size_t{1} << 16}, "Embedding length");
  add_number(*cmd, "--n-layer", o->n_layer, {size_t{1}, size_t{1024}}, "Blocks");
  add_number(*cmd, "--n-head", o->n_head, {size_t{1}, size_t{1024}}, "Attention heads");
  add_number(*cmd, "--n-head-kv", o->n_head_kv, {size_t{0}, size_t{1024}},
             "Key/value heads (0: --n-head)");
  add_number(*cmd, "--n-ff", o->n_ff, {size_t{0}, size_t{1} << 18},
             "Feed-forward length (0: about 8/3 n-embd)");
  add_number(*cmd, "--ctx", o->n_ctx, {size_t{1}, size_t{1} << 24}, "context_length");
  add_number(*cmd, "--rope-base", o->rope_base, {1.0, 1e12, true}, "rope.freq_base");
  cmd->add_option("--rope-scaling", o->rope_scaling,
                  "none, linear, yarn, llama3 (the rope_freqs factors of Llama 3.1) or longrope "
                  "(phi3: Phi-3.5's long and short factors)")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "linear", "yarn", "llama3", "longrope"}));
  add_number(*cmd, "--rope-factor", o->rope_factor, {1.0f, 1024.0f}, "Rope scaling factor");
  add_number(*cmd, "--sliding-window", o->sliding_window, {size_t{1}, size_t{1} << 24},
             "gemma2, gemma3: the local layers' window (attention.sliding_window)");
  add_number(*cmd, "--seed", o->seed, {uint64_t{0}, std::numeric_limits<uint64_t>::max()},
             "Random seed (same seed, same bytes)");
  cmd->add_option("--type", o->type,
                  "Weight matrices: f32 or f16, or any quantize --type (encoded as generated: "
                  "the bytes of the f32 file quantized)")
      ->capture_default_str()
      ->check(CLI::IsMember(
          {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_K", "q3_K", "q4_K",
           "q5_K", "q6_K", "iq4_nl", "iq4_xs", "mxfp4", "Q4_K_M", "Q5_K_M"},
          CLI::ignore_case));
  cmd->add_option("-o,--output", *out, "Output GGUF")->required();
  return [o, out] {
    SLLM_CLI_CHECK(make_model(*o, *out));
    fmt::print(stderr, "wrote {}\n", *out);
    return 0;
  };
}

}  // namespace sllm::cli
