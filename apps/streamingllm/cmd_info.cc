// `streamingllm info`: what a model file holds.
#include <fmt/core.h>

#include "cli_options.h"
#include "commands.h"
#include "output.h"

namespace sllm::cli {

namespace {

std::string end_tokens_line(const std::vector<SpecialToken>& tokens) {
  if (tokens.empty()) return "none";
  std::string line;
  for (const SpecialToken& t : tokens) {
    line += fmt::format("{}{} '{}'", line.empty() ? "" : ", ", t.id, t.text);
  }
  return line;
}

// A quantized cache type's bytes, or "n/a" where the head_dim does not allow its blocks of 32.
std::string kv_bytes_or_why(size_t bytes) {
  return bytes > 0 ? std::to_string(bytes) : std::string("n/a");
}

std::string chat_template_line(const std::string& jinja) {
  if (jinja.empty()) return "none";
  const ChatTemplateChoice choice = choose_chat_template(jinja);
  return choice.note.empty() ? "present (" + choice.name + ")"
                             : "present (not recognised: chat uses " + choice.name + ")";
}

void print_vocabulary(const std::string& tokenizer_model, const std::string& pre, size_t n_tokens,
                      TokenId bos, TokenId eos, const std::vector<SpecialToken>& end_tokens,
                      const std::string& chat_template) {
  out("tokenizer:      {} ({} tokens, bos {}, eos {})\n", tokenizer_model, n_tokens, bos, eos);
  out("pre-tokenizer:  {}\n", pre);
  out("end tokens:     {}\n", end_tokens_line(end_tokens));
  out("chat template:  {}\n", chat_template_line(chat_template));
}

int info(const std::string& path) {
  // The vocabulary first: a tokenizer-only file has nothing else to describe.
  SLLM_CLI_ASSIGN(const VocabularyInfo v, Vocabulary::describe(path));
  if (v.n_tensors == 0) {
    out("file:           {} (GGUF v{}, no tensors, {} metadata keys)\n", path, v.gguf_version,
        v.n_metadata);
    out("weights:        none (a tokenizer-only file)\n");
    print_vocabulary(v.tokenizer_model, v.pre_tokenizer, v.n_tokens, v.bos, v.eos,
                     v.end_of_generation, v.chat_template);
    return 0;
  }
  SLLM_CLI_ASSIGN(auto model, Model::load(path));
  const ModelInfo& c = model->info();
  std::string type_list;
  for (const auto& [name, n] : c.tensor_types)
    type_list += fmt::format("{}{} x{}", type_list.empty() ? "" : ", ", name, n);
  out("file:           {} (GGUF v{}, {} tensors, {} metadata keys)\n", path, c.gguf_version,
      c.n_tensors, c.n_metadata);
  out("architecture:   {}{}\n", c.architecture, c.name.empty() ? "" : " (" + c.name + ")");
  out("family:         {} ({})\n", c.family, c.blocks);
  out("parameters:     {}\n", c.n_params);
  out("tensor types:   {}\n", type_list);
  out("dims:           dim {}, layers {}, heads {}, kv heads {}, head dim {}, ffn {}\n", c.dim,
      c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim);
  if (c.rope_dims == 0) {
    out("rope:           none\n");  // MPT: ALiBi (its family parameters follow)
  } else {
    out("rope:           {} dims, base {}, {}{}\n", c.rope_dims, c.rope_freq_base, c.rope_layout,
        c.rope_scaling.empty() ? "" : ", " + c.rope_scaling);
  }
  for (const auto& [name, value] : c.family_params) {
    out("{:<15} {}\n", name + ":", value);  // a space even after a long name
  }
  out("context:        {} (training length the file states)\n", c.n_ctx_train);
  print_vocabulary(c.tokenizer_model, c.pre_tokenizer, c.n_tokens, c.bos, c.eos,
                   c.end_of_generation, c.chat_template);
  out("kv bytes/token: {} (f32), {} (f16), {} (q8_0), {} (q4_0)\n", c.kv_bytes_per_token_f32,
      c.kv_bytes_per_token_f16, kv_bytes_or_why(c.kv_bytes_per_token_q8_0),
      kv_bytes_or_why(c.kv_bytes_per_token_q4_0));
  if (c.n_local_layers > 0) {
    out("local layers:   {} of {} keep at most {} tokens (their sliding window)\n",
        c.n_local_layers, c.n_layers, c.sliding_window);
  }
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
