// How far the absolute-position design stays exact: feeds the same tokens with the stream's
// position counter starting at 0 and at 2^k, and prints the largest logit difference.
//
//   position_precision MODEL.gguf TEXT [n_tokens]
#include <fmt/core.h>

#include <cmath>
#include <cstdint>

#include <memory>
#include <vector>

#include "streamingllm/streamingllm.h"

namespace {

// Every token's logits, [tokens.size(), n_vocab]: the stream is fed one token at a time.
std::vector<float> logits_from(const std::shared_ptr<sllm::Model>& model,
                               const std::vector<sllm::TokenId>& tokens, uint64_t start_pos) {
  sllm::CacheOptions o;
  o.n_sinks = 4;
  o.window = 60;
  o.start_pos = start_pos;
  auto stream = sllm::Stream::create(model, o);
  if (!stream.ok()) std::exit(1);
  std::vector<float> logits;
  for (const sllm::TokenId t : tokens) {
    const sllm::TokenId one[1] = {t};
    if (!(*stream)->feed(one).ok()) std::exit(1);
    const std::span<const float> row = (*stream)->logits();
    logits.insert(logits.end(), row.begin(), row.end());
  }
  return logits;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: {} MODEL.gguf TEXT [n_tokens]\n", argv[0]);
    return 2;
  }
  const size_t n_tokens = argc > 3 ? std::stoul(argv[3]) : 300;
  sllm::Model::LoadOptions load_options;
  load_options.n_threads = 1;
  auto model = sllm::Model::load(argv[1], load_options);
  auto text = sllm::read_file(argv[2]);
  if (!model.ok() || !text.ok()) {
    fmt::print(stderr, "error: {}\n",
               model.ok() ? text.error().message() : model.error().message());
    return 1;
  }
  auto ids = (*model)->tokenize(text->substr(0, 20 * n_tokens), true, false);
  if (!ids.ok() || ids->size() < n_tokens) return 1;
  ids->resize(n_tokens);
  const auto base = logits_from(*model, *ids, 0);
  fmt::print(
      "start position | max |logit difference| vs start 0 ({} tokens, 4 sinks + 60 window)\n",
      n_tokens);
  for (int k : {16, 24, 32, 36, 40, 44, 48, 52}) {
    const auto got = logits_from(*model, *ids, uint64_t{1} << k);
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      worst = std::max(worst, std::abs(static_cast<double>(got[i]) - base[i]));
    }
    fmt::print("2^{:<12} | {:.3g}\n", k, worst);
  }
  return 0;
}
