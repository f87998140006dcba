// How far the absolute-position design stays exact: feeds the same tokens with the stream's
// position counter starting at 0 and at 2^k, and prints the largest logit difference.
//
//   position_precision MODEL.gguf TEXT [n_tokens]
#include <fmt/core.h>

#include <cmath>
#include <cstdint>

#include "runtime/engine.h"
#include "runtime/session.h"
#include "util/mapped_file.h"

namespace {

std::vector<float> logits_from(const sllm::Engine& engine, const std::vector<sllm::TokenId>& tokens,
                               uint64_t start_pos) {
  sllm::ThreadPool pool(1);
  sllm::SessionOptions o;
  o.n_sinks = 4;
  o.window = 60;
  o.start_pos = start_pos;
  auto session = sllm::Session::create(engine.model, o, pool);
  std::vector<float> logits;
  if (!session.ok() || !(*session)->feed(tokens, &logits).ok()) std::exit(1);
  return logits;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: {} MODEL.gguf TEXT [n_tokens]\n", argv[0]);
    return 2;
  }
  const size_t n_tokens = argc > 3 ? std::stoul(argv[3]) : 300;
  auto engine = sllm::Engine::load(argv[1]);
  auto text = sllm::read_file(argv[2]);
  if (!engine.ok() || !text.ok()) {
    fmt::print(stderr, "error: {}\n",
               engine.ok() ? text.error().message() : engine.error().message());
    return 1;
  }
  auto ids = (*engine)->tokenizer->encode(text->substr(0, 20 * n_tokens), true, false);
  if (!ids.ok() || ids->size() < n_tokens) return 1;
  ids->resize(n_tokens);
  const auto base = logits_from(**engine, *ids, 0);
  fmt::print(
      "start position | max |logit difference| vs start 0 ({} tokens, 4 sinks + 60 window)\n",
      n_tokens);
  for (int k : {16, 24, 32, 36, 40, 44, 48, 52}) {
    const auto got = logits_from(**engine, *ids, uint64_t{1} << k);
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      worst = std::max(worst, std::abs(static_cast<double>(got[i]) - base[i]));
    }
    fmt::print("2^{:<12} | {:.3g}\n", k, worst);
  }
  return 0;
}
