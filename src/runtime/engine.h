// A loaded model file: the mapping, the model's weight views and its tokenizer, kept together so
// that nothing outlives the mapping it points into.
#pragma once

#include <memory>
#include <string>

#include "gguf/gguf.h"
#include "model/transformer.h"
#include "streamingllm/error.h"
#include "tokenizer/tokenizer.h"

namespace sllm {

struct Engine {
  // `gelu` is for tests (model/config.h).
  static Result<std::unique_ptr<Engine>> load(const std::string& gguf_path,
                                              GeluKind gelu = GeluKind::kGgmlTable);
  // What load() does after mapping: the model and tokenizer of a GGUF already opened or parsed
  // (GgufFile::parse: the bytes must outlive the engine). Errors name gguf.path().
  static Result<std::unique_ptr<Engine>> from_gguf(GgufFile gguf,
                                                   GeluKind gelu = GeluKind::kGgmlTable);

  GgufFile gguf;
  TransformerModel model;
  std::unique_ptr<Tokenizer> tokenizer;
};

}  // namespace sllm
