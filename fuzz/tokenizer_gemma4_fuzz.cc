// libFuzzer target for Gemma 4's tokenizer (BPE over SentencePiece-style text, the gemma4
// pre-tokenizer): encode (with and without BOS and special-token parsing), decode, the stream
// decoder. Bit 7 of the first byte picks text or token ids; what is checked is listed in
// tokenizer_fuzz.h.
//   scripts/fuzz.sh 60 tokenizer_gemma4
#include "tokenizer_fuzz.h"

namespace {
sllm::fuzz::FuzzVocab g_vocab;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_vocab = sllm::fuzz::load_vocab("gemma-4");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  sllm::fuzz::check_tokenizer_input(g_vocab, data[0], data + 1, size - 1);
  return 0;
}
