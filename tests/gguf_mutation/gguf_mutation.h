// Structure-aware GGUF mutations (issue 14): valid GGUF files with exactly one field wrong, for
// every metadata key a model or its tokenizer reads and for the tensors' shapes and types. The
// base files are tiny random-weight models of every architecture make-model writes, on two tiny
// vocabularies written here (SentencePiece and byte-level BPE); nothing binary is committed.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "gguf/gguf.h"
#include "streamingllm/error.h"
#include "util/tensor_type.h"

namespace sllm::mutation {

// A GGUF file as plain data, serialised without validation: a mutation may put anything in it.
struct GgufDoc {
  struct Tensor {
    std::string name;
    uint32_t type = 0;  // the raw ggml type id (may be one the reader does not know)
    std::vector<uint64_t> dims;
    std::vector<uint8_t> bytes;  // the data; its size decides where the next tensor starts
  };
  std::vector<std::pair<std::string, GgufValue>> metadata;
  std::vector<Tensor> tensors;
  uint64_t layout_alignment = 32;  // the alignment the data is laid out with

  static GgufDoc from(const GgufFile& file);
  std::vector<uint8_t> serialize() const;

  GgufValue* find(const std::string& key);
  void set(const std::string& key, GgufValue value);  // replaces, else appends
  bool erase(const std::string& key);
  Tensor* find_tensor(const std::string& name);
};

// The two tiny vocabularies: SentencePiece ("llama": <unk>, <s>, </s>, 256 byte tokens, a few
// pieces) and byte-level BPE ("gpt2", pre "gpt-2": GPT-2's 256 byte symbols, a few merges,
// <|endoftext|>). Tokenizer-only GGUFs, written to `path`.
Status write_spm_vocab(const std::string& path);
Status write_bpe_vocab(const std::string& path);

struct BaseModel {
  std::string name;  // "llama", ..., "llama-bpe"
  std::string arch;  // general.architecture
  std::string path;  // the file make-model wrote
};
// The base models' names: each make-model architecture, then "llama-bpe".
std::vector<std::string> base_model_names();
// One tiny model (n_embd 32, 4 heads, 2 KV heads where the family allows, 2 blocks, f32) per
// make-model architecture on the SentencePiece vocabulary, and a llama one on the BPE vocabulary;
// written under `dir`.
Result<std::vector<BaseModel>> write_base_models(const std::string& dir);

// What a case must end in.
enum class Expect {
  kError,       // a clear error: the message names `target` (or a tensor, for a shape mismatch)
  kSame,        // loads and runs exactly as the base model (same info, tokens and generation)
  kErrorOrRun,  // either a clear error or a run (a different but valid model)
};

struct Case {
  std::string base;      // BaseModel::name
  std::string category;  // "wrong type", "zero", "negative", "huge", "non-finite", ...
  std::string target;    // the metadata key or tensor name changed
  std::string what;      // the change, in words ("u32 -> string 'x'")
  Expect expect = Expect::kErrorOrRun;
  // Further words an error may name instead of `target` (a key the mismatch shows up in).
  std::vector<std::string> also_named;
  std::function<void(GgufDoc&)> apply;

  std::string id() const { return base + ": " + target + ": " + what; }
};

// Every case for a base model (its file already loaded as `base`).
std::vector<Case> cases_for(const BaseModel& model, const GgufFile& base);

}  // namespace sllm::mutation
