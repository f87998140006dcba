// libFuzzer entry point for model loading: a whole GGUF image through what Model::load does after
// mapping it (Engine::from_gguf: the config from metadata for every architecture, the weights
// bound to tensors, the tokenizer from the file's vocabulary). Any input must give an engine or
// an Error. An engine that loads must have the config the forward pass relies on:
//   - n_heads a multiple of n_kv_heads, head_dim even, rope dims even and <= head_dim, q_dim and
//     kv_dim the products, every size non-zero;
//   - token_embd.weight [dim, n_vocab], output.weight (when present) the same, the tokenizer's
//     vocabulary n_vocab tokens, its BOS/EOS and end-of-generation ids inside it;
//   - every block 0..n_layers-1 present (its attn_norm), the per-layer and per-head tables sized
//     by n_layers and n_heads;
//   - a fixed text encodes (when the vocabulary can spell it) to ids inside the vocabulary.
// A small model (weights of at most kMaxForwardParams) then runs one forward step of two tokens
// through a streaming session: it must give n_vocab logits (or, with NaN/Inf weights, the
// session's non-finite-logits error).
//
//   scripts/fuzz.sh 60 model
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "runtime/engine.h"
#include "runtime/session.h"
#include "util/thread_pool.h"

namespace {

constexpr uint64_t kMaxForwardParams = uint64_t{1} << 20;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool has_dims(const sllm::GgufTensorInfo* t, std::vector<uint64_t> dims) {
  return t != nullptr && t->dims == dims;
}

void check_config(const sllm::Engine& engine) {
  const sllm::ModelConfig& c = engine.model.config();
  const sllm::GgufFile& g = engine.gguf;
  check(c.dim > 0 && c.n_layers > 0 && c.n_heads > 0 && c.n_kv_heads > 0 && c.head_dim > 0 &&
        c.ffn_dim > 0 && c.n_vocab > 0);
  check(c.n_heads % c.n_kv_heads == 0);
  check(c.head_dim % 2 == 0);
  check(c.q_dim() == c.n_heads * c.head_dim && c.kv_dim() == c.n_kv_heads * c.head_dim);
  check(c.rope.rope_dim <= c.head_dim && c.rope.rope_dim % 2 == 0);
  check(c.rope.head_dim == c.head_dim);
  check(c.rope.freq_mul.empty() || c.rope.freq_mul.size() == c.rope.rope_dim / 2);
  if (c.rope_long) {
    check(c.rope_long->freq_mul.empty() || c.rope_long->freq_mul.size() == c.rope.rope_dim / 2);
  }
  check(c.rms_eps > 0.0f && c.rms_eps <= 1.0f);
  check(c.alibi_slopes.empty() || c.alibi_slopes.size() == c.n_heads);
  check(c.local_layers.empty() || c.local_layers.size() == c.n_layers);
  bool any_local = false;
  for (const bool local : c.local_layers) any_local = any_local || local;
  check(!any_local || c.sliding_window > 0);
  check(has_dims(g.find_tensor("token_embd.weight"), {c.dim, c.n_vocab}));
  if (const sllm::GgufTensorInfo* out = g.find_tensor("output.weight"); out != nullptr) {
    check(has_dims(out, {c.dim, c.n_vocab}));
  }
  for (size_t l = 0; l < c.n_layers; ++l) {
    check(g.find_tensor("blk." + std::to_string(l) + ".attn_norm.weight") != nullptr);
  }

  const sllm::Vocab& v = engine.tokenizer->vocab();
  check(v.n_tokens() == c.n_vocab);
  const auto inside = [&](sllm::TokenId id) {
    return id == -1 || (id >= 0 && static_cast<size_t>(id) < v.n_tokens());
  };
  check(inside(v.bos) && inside(v.eos) && inside(v.unk) && inside(v.pad));
  for (const sllm::TokenId id : v.eog) check(inside(id) && id >= 0);
  check(v.scores.empty() || v.scores.size() == v.n_tokens());
  check(v.types.empty() || v.types.size() == v.n_tokens());
}

// Whatever a loaded tokenizer encodes is ids inside its vocabulary (the model's embedding rows).
void check_tokenizer(const sllm::Tokenizer& tok) {
  static const std::string kText = "Once upon a time, 12 cats \xC3\xA9t\xC3\xA9 <s>\n";
  sllm::Result<std::vector<sllm::TokenId>> ids = tok.encode(kText, /*add_bos=*/false, false);
  if (!ids.ok()) return;  // a vocabulary that cannot spell the text (no byte tokens): an Error
  for (const sllm::TokenId id : *ids) {
    check(id >= 0 && static_cast<size_t>(id) < tok.vocab().n_tokens());
  }
}

void forward_step(const sllm::Engine& engine) {
  uint64_t n_params = 0;
  for (const sllm::GgufTensorInfo& t : engine.gguf.tensors()) n_params += t.n_elements;
  const sllm::ModelConfig& c = engine.model.config();
  if (n_params > kMaxForwardParams || c.n_layers > 8 || c.n_vocab * c.dim > kMaxForwardParams) {
    return;
  }
  static sllm::ThreadPool pool(1);
  sllm::SessionOptions options;
  options.n_sinks = 1;
  options.window = 3;
  options.max_batch = 2;
  sllm::Result<std::unique_ptr<sllm::Session>> session =
      sllm::Session::create(engine.model, options, pool);
  if (!session.ok()) return;
  const sllm::TokenId last = static_cast<sllm::TokenId>(c.n_vocab - 1);
  const std::vector<sllm::TokenId> tokens = {0, last};
  // Fuzzed weights may hold NaN or Inf: the session refuses such logits with an error; any
  // other refusal of two in-vocabulary tokens is a bug.
  if (sllm::Status fed = (*session)->feed(tokens); !fed.ok()) {
    if (fed.error().message().find("non-finite logits") != std::string::npos) return;
    std::fprintf(stderr, "forward step: %s\n", fed.error().message().c_str());
    __builtin_trap();
  }
  check((*session)->last_logits().size() == c.n_vocab);
  check((*session)->n_seen() == 2);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sllm::Result<sllm::GgufFile> file = sllm::GgufFile::parse({data, size}, "fuzz.gguf");
  if (!file.ok()) return 0;
  sllm::Result<std::unique_ptr<sllm::Engine>> engine = sllm::Engine::from_gguf(std::move(*file));
  if (!engine.ok()) {
    check(!engine.error().message().empty());
    return 0;
  }
  check_config(**engine);
  check_tokenizer(*(*engine)->tokenizer);
  forward_step(**engine);
  return 0;
}
