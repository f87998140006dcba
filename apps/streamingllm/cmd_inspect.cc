// `streamingllm inspect attention`: does a model have attention sinks, and in which layers?
// (StreamingLLM, Figure 2: the mean attention each layer and head puts on the first tokens.)
#include <fmt/core.h>

#include "cli_options.h"
#include "commands.h"
#include "output.h"

namespace sllm::cli {

namespace {

struct InspectAttentionArgs {
  ModelArgs model;
  std::vector<std::string> files;
  size_t n_tokens = 512;
  AttentionMassOptions options;
  bool per_head = false;
  std::string csv;
  CLI::Option* csv_opt = nullptr;
};

std::string mass_row(const std::string& label, const AttentionMass& m, size_t layer, size_t head,
                     bool layer_mean) {
  std::string line = fmt::format("{:<10}", label);
  for (size_t k = 1; k <= m.max_k; ++k) {
    line +=
        fmt::format(" {:>7.4f}", layer_mean ? m.layer_mass(layer, k) : m.head_mass(layer, head, k));
  }
  const double first = layer_mean ? m.layer_mass(layer, 1) : m.head_mass(layer, head, 1);
  return line + fmt::format(" {:>10.1f}x", first / m.uniform_mass(1));
}

Status write_csv(const std::string& path, const AttentionMass& m) {
  // head is "mean" for the mean over the layer's heads.
  std::string out = "layer,head,k,mass,uniform\n";
  for (size_t l = 0; l < m.n_layers; ++l) {
    for (size_t h = 0; h <= m.n_heads; ++h) {
      const bool mean = h == m.n_heads;
      for (size_t k = 1; k <= m.max_k; ++k) {
        out += fmt::format("{},{},{},{:.6f},{:.6f}\n", l, mean ? "mean" : std::to_string(h), k,
                           mean ? m.layer_mass(l, k) : m.head_mass(l, h, k), m.uniform_mass(k));
      }
    }
  }
  return write_output_file(path, out);
}

int inspect_attention(const InspectAttentionArgs& a) {
  if (a.csv_opt->count() > 0) SLLM_CLI_CHECK(check_output_path("--csv", a.csv));
  SLLM_CLI_ASSIGN(auto model, a.model.load());
  SLLM_CLI_ASSIGN(std::vector<TokenId> stream, model->tokenize_files(a.files, a.n_tokens));
  SLLM_CLI_ASSIGN(AttentionMass m, measure_attention_mass(*model, stream, a.options));

  fmt::print(
      "attention mass on the first k tokens of a {}-token stream, mean over the {} queries at "
      "positions {}..{}\n",
      stream.size(), m.n_queries, m.first_query_pos, m.first_query_pos + m.n_queries - 1);
  std::string header = fmt::format("{:<10}", a.per_head ? "layer.head" : "layer");
  for (size_t k = 1; k <= m.max_k; ++k) header += fmt::format(" {:>7}", fmt::format("k={}", k));
  out("{} {:>11}\n", header, "k=1/uniform");
  for (size_t l = 0; l < m.n_layers; ++l) {
    if (a.per_head) {
      for (size_t h = 0; h < m.n_heads; ++h) {
        out("{}\n", mass_row(fmt::format("{}.{}", l, h), m, l, h, false));
      }
    }
    out("{}\n",
        mass_row(a.per_head ? fmt::format("{}.mean", l) : std::to_string(l), m, l, 0, true));
  }
  std::string uniform = fmt::format("{:<10}", "uniform");
  for (size_t k = 1; k <= m.max_k; ++k) uniform += fmt::format(" {:>7.4f}", m.uniform_mass(k));
  out("{}\n", uniform);
  if (a.csv_opt->count() > 0) SLLM_CLI_CHECK(write_csv(a.csv, m));
  return 0;
}

}  // namespace

Command add_inspect(CLI::App& app) {
  auto a = std::make_shared<InspectAttentionArgs>();
  CLI::App* cmd = app.add_subcommand("inspect", "Look inside a model");
  cmd->require_subcommand(1);
  CLI::App* att = cmd->add_subcommand(
      "attention",
      "Mean attention each layer (and head) puts on the first k tokens vs a uniform share: "
      "attention sinks show as many times the uniform share (StreamingLLM, Figure 2)");
  a->model.add(*att);
  att->add_option("-f,--file", a->files, "Text file(s), concatenated into one stream (BOS once)")
      ->required()
      ->check(CLI::ExistingFile);
  add_number(*att, "--tokens", a->n_tokens, {size_t{0}, kMaxTokensFlag},
             "Stream length; attention is dense, so keep it within the model's training length "
             "(0 = the whole text)");
  add_number(*att, "--max-k", a->options.max_k, {size_t{1}, size_t{64}},
             "Report the mass on the first 1..K tokens");
  add_number(*att, "--min-query", a->options.min_query_pos, {size_t{0}, kMaxTokensFlag},
             "Average only queries at positions >= this (earlier ones see few tokens, so their "
             "first k hold a large share under any attention)");
  att->add_flag("--per-head", a->per_head, "One row per head, not only the mean of each layer");
  a->csv_opt =
      att->add_option("--csv", a->csv, "Write layer,head,k,mass,uniform rows to this file");
  return [a] { return inspect_attention(*a); };
}

}  // namespace sllm::cli
