// libFuzzer target for the SentencePiece tokenizer (src/tokenizer/spm.cc) with the llama-spm and
// phi-3 vocabularies: encode (with and without BOS and special-token parsing), decode, the stream
// decoder. Bit 0 of the first byte picks the vocabulary, bit 7 text or token ids; what is checked
// is listed in tokenizer_fuzz.h.
//   scripts/fuzz.sh 60 tokenizer_spm
#include <array>

#include "tokenizer_fuzz.h"

namespace {
std::array<sllm::fuzz::FuzzVocab, 2> g_vocabs;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_vocabs[0] = sllm::fuzz::load_vocab("llama-spm");
  g_vocabs[1] = sllm::fuzz::load_vocab("phi-3");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  sllm::fuzz::check_tokenizer_input(g_vocabs[data[0] & 1], data[0], data + 1, size - 1);
  return 0;
}
