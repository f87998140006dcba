// `streamingllm info`: what a model file holds.
#include <fmt/core.h>

#include "cli_options.h"
#include "commands.h"
#include "output.h"

namespace sllm::cli {

namespace {

int info(const std::string& path) {
  SLLM_CLI_ASSIGN(auto model, Model::load(path));
  const ModelInfo& c = model->info();
  std::string type_list;
  for (const auto& [name, n] : c.tensor_types)
    type_list += fmt::format("{}{} x{}", type_list.empty() ? "" : ", ", name, n);
  out("file:           {} (GGUF v{}, {} tensors, {} metadata keys)\n", path, c.gguf_version,
      c.n_tensors, c.n_metadata);
  out("architecture:   {}{}\n", c.architecture, c.name.empty() ? "" : " (" + c.name + ")");
  out("parameters:     {}\n", c.n_params);
  out("tensor types:   {}\n", type_list);
  out("dims:           dim {}, layers {}, heads {}, kv heads {}, head dim {}, ffn {}\n", c.dim,
      c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim);
  out("rope:           {} dims, base {}, {}{}\n", c.rope_dims, c.rope_freq_base, c.rope_layout,
      c.rope_scaling.empty() ? "" : ", " + c.rope_scaling);
  out("context:        {} (training length the file states)\n", c.n_ctx_train);
  out("tokenizer:      {} ({} tokens, bos {}, eos {})\n", c.tokenizer_model, c.n_tokens, c.bos,
      c.eos);
  out("chat template:  {}\n", c.chat_template.empty() ? "none" : "present");
  out("kv bytes/token: {} (f32), {} (f16)\n", c.kv_bytes_per_token_f32, c.kv_bytes_per_token_f16);
  out("simd target:    {}\n", c.simd_target);
  return 0;
}

}  // namespace

Command add_info(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("info", "Describe a model file");
  cmd->add_option("-m,--model", *path, "Model file (GGUF)")->required()->check(CLI::ExistingFile);
  return [path] { return info(*path); };
}

}  // namespace sllm::cli
