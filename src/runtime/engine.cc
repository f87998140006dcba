#include "runtime/engine.h"

#include <utility>

namespace sllm {

Result<std::unique_ptr<Engine>> Engine::load(const std::string& gguf_path, GeluKind gelu) {
  SLLM_ASSIGN_OR_RETURN(GgufFile gguf, GgufFile::open(gguf_path));
  return from_gguf(std::move(gguf), gelu);
}

Result<std::unique_ptr<Engine>> Engine::from_gguf(GgufFile gguf, GeluKind gelu) {
  auto engine = std::make_unique<Engine>();
  engine->gguf = std::move(gguf);
  const std::string& gguf_path = engine->gguf.path();
  SLLM_ASSIGN_OR_RETURN(engine->model, TransformerModel::load(engine->gguf, gelu));
  SLLM_ASSIGN_OR_RETURN(Vocab vocab, vocab_from_gguf(engine->gguf));
  if (vocab.n_tokens() != engine->model.config().n_vocab) {
    return Error(ErrorCode::kFormat, gguf_path + ": the tokenizer has " +
                                         std::to_string(vocab.n_tokens()) +
                                         " tokens but token_embd.weight has " +
                                         std::to_string(engine->model.config().n_vocab) + " rows");
  }
  SLLM_ASSIGN_OR_RETURN(engine->tokenizer, make_tokenizer(std::move(vocab)));
  return engine;
}

}  // namespace sllm
