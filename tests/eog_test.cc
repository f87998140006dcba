// The end-of-generation set of every shared vocabulary against llama.cpp's (the goldens come from
// peer/eog.mjs: node-llama-cpp's isEogToken over every token id), and the rules behind it.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace sllm {
namespace {

Result<Vocab> load_vocab(const std::string& path) {
  SLLM_ASSIGN_OR_RETURN(const GgufFile gguf, GgufFile::open(path));
  return vocab_from_gguf(gguf);
}

struct EogGolden {
  const char* name;
  TokenId eos;
  TokenId eot;  // -1: llama.cpp has none
  std::vector<TokenId> eog;
};

// node peer/eog.mjs ../shared/data/vocab/ggml-vocab-*.gguf (node-llama-cpp 3.21.1).
const std::vector<EogGolden>& goldens() {
  static const std::vector<EogGolden> g = {
      {"bert-bge", -1, -1, {0}},
      {"command-r", 255001, -1, {0, 255001}},
      {"deepseek-coder", 32014, 32014, {32014}},
      {"deepseek-llm", 100001, 100001, {100001}},
      {"falcon", 11, 11, {11}},
      {"gemma-4", 1, -1, {1, 50, 106}},
      {"gpt-2", 50256, 50256, {50256}},
      {"gpt-neox", 0, 0, {0}},
      {"llama-bpe", 128001, 128009, {128001, 128009}},
      {"llama-spm", 2, -1, {2}},
      {"mpt", 0, 0, {0}},
      {"phi-3", 32000, 32007, {2, 32000, 32007}},
      {"qwen2", 151643, 151645, {128247, 151643, 151645}},
      {"qwen35", 151643, 151645, {128247, 151643, 151645}},
      {"refact", 0, 0, {0, 4, 18}},
      {"starcoder", 0, 0, {0, 4}},
  };
  return g;
}

TEST(EndOfGeneration, EveryVocabularyMatchesLlamaCpp) {
  for (const EogGolden& golden : goldens()) {
    SCOPED_TRACE(golden.name);
    Result<Vocab> vocab = load_vocab(
        test::shared_path(std::string("data/vocab/ggml-vocab-") + golden.name + ".gguf"));
    ASSERT_TRUE(vocab.ok()) << vocab.error().message();
    EXPECT_EQ(vocab->eos, golden.eos);
    EXPECT_EQ(vocab->eot, golden.eot);
    EXPECT_EQ(vocab->eog, golden.eog);
    EXPECT_EQ(end_of_generation_ids(*vocab), golden.eog);
  }
}

TEST(EndOfGeneration, TextsOfTheSharedVocabularies) {
  Result<Vocab> qwen = load_vocab(test::shared_path("data/vocab/ggml-vocab-qwen2.gguf"));
  ASSERT_TRUE(qwen.ok()) << qwen.error().message();
  EXPECT_EQ(qwen->tokens[151645], "<|im_end|>");
  EXPECT_EQ(qwen->tokens[151643], "<|endoftext|>");
  EXPECT_EQ(qwen->tokens[128247], "</s>");  // a normal-looking token llama.cpp stops on too
  Result<Vocab> gemma = load_vocab(test::shared_path("data/vocab/ggml-vocab-gemma-4.gguf"));
  ASSERT_TRUE(gemma.ok()) << gemma.error().message();
  EXPECT_EQ(gemma->tokens[1], "<eos>");
  EXPECT_EQ(gemma->tokens[50], "<|tool_response>");
  EXPECT_EQ(gemma->tokens[106], "<turn|>");
}

Vocab vocab_of(std::vector<std::string> tokens) {
  Vocab v;
  v.model = "gpt2";
  v.tokens = std::move(tokens);
  return v;
}

TEST(EndOfGeneration, FindsEotAndEomByText) {
  Vocab v = vocab_of({"a", "<|eom_id|>", "<|endoftext|>", "<|eot_id|>", "b"});
  compute_end_of_generation(&v);
  EXPECT_EQ(v.eot, 3);  // <|eot_id|> is preferred over <|endoftext|>
  EXPECT_EQ(v.eom, 1);
  EXPECT_EQ(v.eog, (std::vector<TokenId>{1, 2, 3}));
}

TEST(EndOfGeneration, KeyIdsAreAddedWhateverTheirText) {
  Vocab v = vocab_of({"a", "<stop>", "<halt>", "<pad-ish>", "b"});
  v.eos = 1;
  v.eot = 2;
  v.fim_pad = 3;
  compute_end_of_generation(&v);
  EXPECT_EQ(v.eog, (std::vector<TokenId>{1, 2, 3}));
}

TEST(EndOfGeneration, FimPadRepoAndFileSeparatorEndGeneration) {
  Vocab v = vocab_of({"<|fim_prefix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "x"});
  compute_end_of_generation(&v);
  EXPECT_EQ(v.fim_pad, 1);
  EXPECT_EQ(v.fim_rep, 2);
  EXPECT_EQ(v.fim_sep, 3);
  EXPECT_EQ(v.eog, (std::vector<TokenId>{1, 2, 3}));
}

TEST(EndOfGeneration, DuplicateTextUsesItsLastId) {
  Vocab v = vocab_of({"<|im_end|>", "x", "<|im_end|>"});
  compute_end_of_generation(&v);
  EXPECT_EQ(v.eot, 2);
  EXPECT_EQ(v.eog, (std::vector<TokenId>{2}));
}

TEST(EndOfGeneration, HarmonyEndIsNotAnEndOfGeneration) {
  Vocab v = vocab_of({"<|return|>", "<|call|>", "<|end|>", "<|endoftext|>"});
  compute_end_of_generation(&v);
  EXPECT_EQ(v.eog, (std::vector<TokenId>{0, 1, 3}));
  // Without <|return|> (or <|flush|>), <|end|> stays: Phi-3 ends its turns with it.
  Vocab phi = vocab_of({"<|call|>", "<|end|>"});
  compute_end_of_generation(&phi);
  EXPECT_EQ(phi.eog, (std::vector<TokenId>{0, 1}));
  Vocab solar = vocab_of({"<|calls|>", "<|flush|>", "<|end|>"});
  compute_end_of_generation(&solar);
  EXPECT_EQ(solar.eog, (std::vector<TokenId>{0, 1}));
}

TEST(EndOfGeneration, ToolResponseDropsSlashS) {
  Vocab v = vocab_of({"<pad>", "<eos>", "</s>", "<|tool_response>", "<turn|>"});
  v.eos = 1;
  compute_end_of_generation(&v);
  EXPECT_EQ(v.eog, (std::vector<TokenId>{1, 3, 4}));
  // EOS is kept even when its text is </s>... unless the tool-response rule removes it, as in
  // llama.cpp, which checks the set after adding EOS.
  Vocab w = vocab_of({"</s>", "<|tool_response>"});
  w.eos = 0;
  compute_end_of_generation(&w);
  EXPECT_EQ(w.eog, (std::vector<TokenId>{1}));
}

TEST(EndOfGeneration, HandBuiltVocabFallsBackToEos) {
  Vocab v = vocab_of({"a", "b"});
  v.eos = 1;
  EXPECT_EQ(end_of_generation_ids(v), (std::vector<TokenId>{1}));
  v.eos = -1;
  EXPECT_TRUE(end_of_generation_ids(v).empty());
}

// A GGUF vocabulary whose eot/eom/fim keys a test sets.
std::string load_error_with(const std::string& key, GgufValue value, Vocab* out = nullptr) {
  GgufWriter w;
  w.set("tokenizer.ggml.model", GgufValue::str("gpt2"));
  w.set("tokenizer.ggml.tokens", GgufValue::string_array({"a", "b", "<end>"}));
  w.set(key, std::move(value));
  const std::string path = ::testing::TempDir() + "eog_test_" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name() +
                           ".gguf";
  const Status written = w.write(path);
  EXPECT_TRUE(written.ok()) << (written.ok() ? "" : written.error().message());
  Result<Vocab> vocab = load_vocab(path);
  std::remove(path.c_str());
  if (!vocab.ok()) return vocab.error().message();
  if (out != nullptr) *out = std::move(vocab).value();
  return "";
}

TEST(EndOfGeneration, KeysAreRead) {
  Vocab v;
  ASSERT_EQ(load_error_with("tokenizer.ggml.eot_token_id", GgufValue::u32(2), &v), "");
  EXPECT_EQ(v.eot, 2);
  EXPECT_EQ(v.eog, (std::vector<TokenId>{2}));
  ASSERT_EQ(load_error_with("tokenizer.ggml.eom_token_id", GgufValue::u32(1), &v), "");
  EXPECT_EQ(v.eom, 1);
  EXPECT_EQ(v.eog, (std::vector<TokenId>{1}));
  ASSERT_EQ(load_error_with("tokenizer.ggml.fim_sep_token_id", GgufValue::u32(0xFFFFFFFFu), &v),
            "");
  EXPECT_EQ(v.fim_sep, -1);
  EXPECT_TRUE(v.eog.empty());
}

TEST(EndOfGeneration, KeyOutOfRangeIsAnError) {
  EXPECT_EQ(load_error_with("tokenizer.ggml.eot_token_id", GgufValue::u32(3)),
            "tokenizer.ggml.eot_token_id = 3 is out of range (the vocab has 3 tokens)");
  EXPECT_EQ(load_error_with("tokenizer.ggml.fim_pad_token_id", GgufValue::i32(-7)),
            "tokenizer.ggml.fim_pad_token_id = -7 is out of range (the vocab has 3 tokens)");
}

}  // namespace
}  // namespace sllm
