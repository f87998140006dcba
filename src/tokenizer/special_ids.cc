// The end-of-generation set: which tokens end a reply. GGUF files name EOS, and some EOT/EOM and
// the fill-in-the-middle tokens, but many converters leave EOT out; llama.cpp therefore also
// recognises end tokens by their text, and so must we, or a Qwen model talks past <|im_end|>.
// The lists and the order of the steps follow llama.cpp's llama_vocab::load (the goldens in
// tests/eog_test.cc come from it).
#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace sllm {
namespace {

// Candidates for an id whose key is absent, most specific first: where a vocabulary has several
// (Qwen has <|im_end|> and <|endoftext|>), the first listed is taken. (llama.cpp takes whichever
// its hash map yields first; the EOG set does not depend on the choice, as every EOT candidate is
// an EOG text too.)
constexpr std::array<std::string_view, 11> kEotTexts = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<\xef\xbd\x9c"
    "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",  // DeepSeek
    "<end_of_utterance>"};
constexpr std::array<std::string_view, 1> kEomTexts = {"<|eom_id|>"};
constexpr std::array<std::string_view, 5> kFimPadTexts = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>",
                                                          "<PAD>", "[PAD]"};
constexpr std::array<std::string_view, 5> kFimRepTexts = {"<|fim_repo|>", "<|repo_name|>",
                                                          "<fim-repo>", "<REPO>", "<reponame>"};
constexpr std::array<std::string_view, 1> kFimSepTexts = {"<|file_sep|>"};
// Not end tokens, but llama.cpp finds them by text too and makes them control tokens.
constexpr std::array<std::string_view, 8> kFimPreTexts = {"<|fim_prefix|>",
                                                          "<fim-prefix>",
                                                          "<fim_prefix>",
                                                          "<\xef\xbd\x9c"
                                                          "fim\xe2\x96\x81"
                                                          "begin\xef\xbd\x9c>",
                                                          "<PRE>",
                                                          "\xe2\x96\x81<PRE>",
                                                          "<|code_prefix|>",
                                                          "<|prefix|>"};
constexpr std::array<std::string_view, 8> kFimSufTexts = {"<|fim_suffix|>",
                                                          "<fim-suffix>",
                                                          "<fim_suffix>",
                                                          "<\xef\xbd\x9c"
                                                          "fim\xe2\x96\x81"
                                                          "hole\xef\xbd\x9c>",
                                                          "<SUF>",
                                                          "\xe2\x96\x81<SUF>",
                                                          "<|code_suffix|>",
                                                          "<|suffix|>"};
constexpr std::array<std::string_view, 8> kFimMidTexts = {"<|fim_middle|>",
                                                          "<fim-middle>",
                                                          "<fim_middle>",
                                                          "<\xef\xbd\x9c"
                                                          "fim\xe2\x96\x81"
                                                          "end\xef\xbd\x9c>",
                                                          "<MID>",
                                                          "\xe2\x96\x81<MID>",
                                                          "<|code_middle|>",
                                                          "<|middle|>"};
// gpt-oss's message structure tokens, which llama.cpp always renders (user-defined).
constexpr std::array<std::string_view, 4> kAlwaysRenderedTexts = {"<|channel|>", "<|message|>",
                                                                  "<|start|>", "<|constrain|>"};
constexpr std::string_view kFimPreKey = "tokenizer.ggml.fim_pre_token_id";
constexpr std::string_view kFimSufKey = "tokenizer.ggml.fim_suf_token_id";
constexpr std::string_view kFimMidKey = "tokenizer.ggml.fim_mid_token_id";
// Older names of the same three keys.
constexpr std::string_view kPrefixKey = "tokenizer.ggml.prefix_token_id";
constexpr std::string_view kSuffixKey = "tokenizer.ggml.suffix_token_id";
constexpr std::string_view kMiddleKey = "tokenizer.ggml.middle_token_id";

// Tokens that end a generation whatever the keys say.
constexpr std::array<std::string_view, 22> kEogTexts = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<\xef\xbd\x9c"
    "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
    "[e~["};

constexpr std::string_view kEotKey = "tokenizer.ggml.eot_token_id";
constexpr std::string_view kEomKey = "tokenizer.ggml.eom_token_id";
constexpr std::string_view kFimPadKey = "tokenizer.ggml.fim_pad_token_id";
constexpr std::string_view kFimRepKey = "tokenizer.ggml.fim_rep_token_id";
constexpr std::string_view kFimSepKey = "tokenizer.ggml.fim_sep_token_id";

// -1 (or uint32 0xFFFFFFFF) means none: the id keeps what it had (as in llama.cpp, where it
// keeps its default); other ids must be in the vocab.
Status read_id(const GgufFile& gguf, std::string_view key, size_t n_tokens, TokenId* id) {
  if (gguf.find(key) == nullptr) return {};
  SLLM_ASSIGN_OR_RETURN(const int64_t value, gguf.get_i64(key));
  if (value == -1 || value == int64_t{UINT32_MAX}) return {};
  if (value < 0 || static_cast<uint64_t>(value) >= n_tokens) {
    return Error(ErrorCode::kFormat, std::string(key) + " = " + std::to_string(value) +
                                         " is out of range (the vocab has " +
                                         std::to_string(n_tokens) + " tokens)");
  }
  *id = static_cast<TokenId>(value);
  return {};
}

// Text -> id as llama.cpp's token_to_id map has it: a text that occurs twice maps to its last id.
class TextIndex {
 public:
  explicit TextIndex(const Vocab& vocab) {
    std::set<std::string_view> wanted;
    wanted.insert(kEotTexts.begin(), kEotTexts.end());
    wanted.insert(kEogTexts.begin(), kEogTexts.end());
    for (std::string_view t : kEomTexts) wanted.insert(t);
    for (std::string_view t : kFimPadTexts) wanted.insert(t);
    for (std::string_view t : kFimRepTexts) wanted.insert(t);
    for (std::string_view t : kFimSepTexts) wanted.insert(t);
    for (std::string_view t : kFimPreTexts) wanted.insert(t);
    for (std::string_view t : kFimSufTexts) wanted.insert(t);
    for (std::string_view t : kFimMidTexts) wanted.insert(t);
    for (std::string_view t : kAlwaysRenderedTexts) wanted.insert(t);
    for (size_t i = 0; i < vocab.tokens.size(); ++i) {
      const std::string& text = vocab.tokens[i];
      if (wanted.contains(text)) ids_[text] = static_cast<TokenId>(i);
    }
  }

  TokenId find(std::string_view text) const {
    const auto it = ids_.find(text);
    return it == ids_.end() ? -1 : it->second;
  }

  template <size_t N>
  TokenId first_of(const std::array<std::string_view, N>& texts) const {
    for (std::string_view t : texts) {
      if (const TokenId id = find(t); id >= 0) return id;
    }
    return -1;
  }

 private:
  std::map<std::string_view, TokenId, std::less<>> ids_;
};

}  // namespace

namespace {

// A token that llama.cpp recognises by its text as a control token is one, whatever type the file
// gives it: encoding then matches it only with parse_special, and decoding drops it (Phi-3's
// </s> is user-defined in the file, so without this "</s>" typed as text would become EOS).
void set_type(Vocab* vocab, TokenId id, TokenType type) {
  if (id >= 0 && static_cast<size_t>(id) < vocab->types.size()) vocab->types[id] = type;
}

template <size_t N>
void find_by_text(Vocab* vocab, const TextIndex& index,
                  const std::array<std::string_view, N>& texts, TokenId* id) {
  if (*id >= 0) return;
  *id = index.first_of(texts);
  set_type(vocab, *id, TokenType::kControl);
}

void compute(Vocab* vocab, TokenId fim_pre, TokenId fim_suf, TokenId fim_mid) {
  const TextIndex index(*vocab);
  find_by_text(vocab, index, kEotTexts, &vocab->eot);
  find_by_text(vocab, index, kEomTexts, &vocab->eom);
  find_by_text(vocab, index, kFimPreTexts, &fim_pre);
  find_by_text(vocab, index, kFimSufTexts, &fim_suf);
  find_by_text(vocab, index, kFimMidTexts, &fim_mid);
  find_by_text(vocab, index, kFimPadTexts, &vocab->fim_pad);
  find_by_text(vocab, index, kFimRepTexts, &vocab->fim_rep);
  find_by_text(vocab, index, kFimSepTexts, &vocab->fim_sep);

  std::set<TokenId> eog;
  for (const TokenId id : {vocab->fim_pad, vocab->fim_rep, vocab->fim_sep}) {
    if (id >= 0) eog.insert(id);
  }
  for (std::string_view text : kEogTexts) {
    if (const TokenId id = index.find(text); id >= 0) {
      eog.insert(id);
      set_type(vocab, id, TokenType::kControl);
    }
  }
  for (std::string_view text : kAlwaysRenderedTexts) {
    set_type(vocab, index.find(text), TokenType::kUserDefined);
  }
  // The ids the file names end a generation even when their text is unusual.
  for (const TokenId id : {vocab->eos, vocab->eot, vocab->eom}) {
    if (id >= 0 && static_cast<size_t>(id) < vocab->n_tokens()) eog.insert(id);
  }

  auto has = [&](std::string_view text) {
    const TokenId id = index.find(text);
    return id >= 0 && eog.contains(id);
  };
  // gpt-oss (<|return|>, <|call|>) and Solar Open (<|calls|>, <|flush|>) end a message with <|end|>
  // and go on with the next one: there <|end|> must not stop the generation.
  const bool has_call = has("<|call|>") || has("<|calls|>");
  if (has("<|end|>") && has_call && (has("<|return|>") || has("<|flush|>"))) {
    eog.erase(index.find("<|end|>"));
    set_type(vocab, index.find("<|end|>"), TokenType::kUserDefined);
  }
  // Gemma 4 has a </s> that is not its end of sequence (it ends turns with <turn|>).
  if (has("<|tool_response>") && has("</s>")) {
    eog.erase(index.find("</s>"));
    set_type(vocab, index.find("</s>"), TokenType::kNormal);
  }

  vocab->eog.assign(eog.begin(), eog.end());
}

}  // namespace

void compute_end_of_generation(Vocab* vocab) { compute(vocab, -1, -1, -1); }

Status read_end_of_generation(const GgufFile& gguf, Vocab* vocab) {
  const size_t n = vocab->n_tokens();
  SLLM_RETURN_IF_ERROR(read_id(gguf, kEotKey, n, &vocab->eot));
  SLLM_RETURN_IF_ERROR(read_id(gguf, kEomKey, n, &vocab->eom));
  SLLM_RETURN_IF_ERROR(read_id(gguf, kFimPadKey, n, &vocab->fim_pad));
  SLLM_RETURN_IF_ERROR(read_id(gguf, kFimRepKey, n, &vocab->fim_rep));
  SLLM_RETURN_IF_ERROR(read_id(gguf, kFimSepKey, n, &vocab->fim_sep));
  TokenId fim_pre = -1, fim_suf = -1, fim_mid = -1;
  // llama.cpp reads the older names after the new ones: where both are present, they win.
  SLLM_RETURN_IF_ERROR(read_id(gguf, kFimPreKey, n, &fim_pre));
  SLLM_RETURN_IF_ERROR(read_id(gguf, kFimSufKey, n, &fim_suf));
  SLLM_RETURN_IF_ERROR(read_id(gguf, kFimMidKey, n, &fim_mid));
  SLLM_RETURN_IF_ERROR(read_id(gguf, kPrefixKey, n, &fim_pre));
  SLLM_RETURN_IF_ERROR(read_id(gguf, kSuffixKey, n, &fim_suf));
  SLLM_RETURN_IF_ERROR(read_id(gguf, kMiddleKey, n, &fim_mid));
  compute(vocab, fim_pre, fim_suf, fim_mid);
  return {};
}

std::vector<TokenId> end_of_generation_ids(const Vocab& vocab) {
  if (!vocab.eog.empty()) return vocab.eog;
  if (vocab.eos >= 0) return {vocab.eos};
  return {};
}

}  // namespace sllm
