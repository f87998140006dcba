// `streamingllm info`: what a model file holds.
#include <fmt/core.h>

#include <map>

#include "cli_options.h"
#include "commands.h"
#include "kernels/ops.h"
#include "output.h"
#include "runtime/engine.h"

namespace sllm::cli {

namespace {

int info(const std::string& path) {
  SLLM_CLI_ASSIGN(auto engine, Engine::load(path));
  const GgufFile& g = engine->gguf;
  const ModelConfig& c = engine->model.config();
  const Vocab& v = engine->tokenizer->vocab();
  uint64_t n_params = 0;
  std::map<std::string, size_t> types;
  for (const auto& t : g.tensors()) {
    n_params += t.n_elements;
    ++types[ggml_type_name(static_cast<uint32_t>(t.type))];
  }
  std::string type_list;
  for (const auto& [name, n] : types)
    type_list += fmt::format("{}{} x{}", type_list.empty() ? "" : ", ", name, n);

  out("file:           {} (GGUF v{}, {} tensors, {} metadata keys)\n", path, g.version(),
      g.tensors().size(), g.metadata().size());
  out("architecture:   {}{}\n", c.architecture, c.name.empty() ? "" : " (" + c.name + ")");
  out("parameters:     {}\n", n_params);
  out("tensor types:   {}\n", type_list);
  out("dims:           dim {}, layers {}, heads {}, kv heads {}, head dim {}, ffn {}\n", c.dim,
      c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim);
  out("rope:           {} dims, base {}, {}\n", c.rope.rope_dim, c.rope.freq_base,
      c.rope.layout == RopeLayout::kAdjacentPairs ? "adjacent pairs" : "half split (neox)");
  out("context:        {} (training length the file states)\n", c.n_ctx_train);
  out("tokenizer:      {} ({} tokens, bos {}, eos {})\n", v.model, v.n_tokens(), v.bos, v.eos);
  out("chat template:  {}\n", g.find("tokenizer.chat_template") ? "present" : "none");
  out("kv bytes/token: {} (f32), {} (f16)\n", c.n_layers * 2 * c.kv_dim() * 4,
      c.n_layers * 2 * c.kv_dim() * 2);
  out("simd target:    {}\n", ops::simd_target_name());
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
