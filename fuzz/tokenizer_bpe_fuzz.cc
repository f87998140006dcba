// libFuzzer target for the byte-level BPE tokenizer (src/tokenizer/bpe.cc, pretokenize.cc,
// special_split.cc) with one vocabulary per pre-tokenizer: encode (with and without BOS and
// special-token parsing), decode, the stream decoder. The first byte's low bits pick the
// vocabulary (modulo their count), bit 7 text or token ids; what is checked is listed in
// tokenizer_fuzz.h.
//   scripts/fuzz.sh 60 tokenizer_bpe
#include <vector>

#include "tokenizer_fuzz.h"

namespace {
// One vocabulary per pre-tokenizer (gpt-neox: none, the default one).
constexpr const char* kNames[] = {"llama-bpe", "qwen2",  "gpt-2",  "deepseek-llm", "deepseek-coder",
                                  "starcoder", "falcon", "qwen35", "gpt-neox"};
std::vector<sllm::fuzz::FuzzVocab> g_vocabs;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  for (const char* name : kNames) g_vocabs.push_back(sllm::fuzz::load_vocab(name));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const sllm::fuzz::FuzzVocab& v = g_vocabs[(data[0] & 0x7F) % g_vocabs.size()];
  sllm::fuzz::check_tokenizer_input(v, data[0], data + 1, size - 1);
  return 0;
}
