// The end-of-generation set of every shared vocabulary against llama.cpp's (the goldens come from
// peer/eog.mjs: node-llama-cpp's isEogToken over every token id), and the rules behind it.
#include <gtest/gtest.h>

#include <cstdio>
#include <ostream>
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
  std::vector<std::string> texts = {};  // of the eog tokens, where the test checks them
};

void PrintTo(const EogGolden& g, std::ostream* os) { *os << g.name; }

// One vocabulary per test: a 256K-token vocabulary takes seconds to load under ASan.
class EogGoldenTest : public ::testing::TestWithParam<EogGolden> {};

TEST_P(EogGoldenTest, MatchesLlamaCpp) {
  const EogGolden& golden = GetParam();
  Result<Vocab> vocab =
      load_vocab(test::shared_path(std::string("data/vocab/ggml-vocab-") + golden.name + ".gguf"));
  ASSERT_TRUE(vocab.ok()) << vocab.error().message();
  EXPECT_EQ(vocab->eos, golden.eos);
  EXPECT_EQ(vocab->eot, golden.eot);
  EXPECT_EQ(vocab->eog, golden.eog);
  EXPECT_EQ(end_of_generation_ids(*vocab), golden.eog);
  if (!golden.texts.empty()) {
    std::vector<std::string> texts;
    for (const TokenId id : vocab->eog) texts.push_back(vocab->tokens[id]);
    EXPECT_EQ(texts, golden.texts);
  }
}

// node peer/eog.mjs ../shared/data/vocab/ggml-vocab-*.gguf (node-llama-cpp 3.21.1).
INSTANTIATE_TEST_SUITE_P(
    SharedVocabularies, EogGoldenTest,
    ::testing::Values(
        EogGolden{"bert-bge", -1, -1, {0}},
        EogGolden{"command-r", 255001, -1, {0, 255001}, {"<PAD>", "<|END_OF_TURN_TOKEN|>"}},
        EogGolden{"deepseek-coder", 32014, 32014, {32014}},
        EogGolden{"deepseek-llm", 100001, 100001, {100001}}, EogGolden{"falcon", 11, 11, {11}},
        // Gemma 4's </s> is not an end token (its <|tool_response> rule removes it).
        EogGolden{"gemma-4", 1, -1, {1, 50, 106}, {"<eos>", "<|tool_response>", "<turn|>"}},
        EogGolden{"gpt-2", 50256, 50256, {50256}}, EogGolden{"gpt-neox", 0, 0, {0}},
        EogGolden{"llama-bpe", 128001, 128009, {128001, 128009}},
        EogGolden{"llama-spm", 2, -1, {2}}, EogGolden{"mpt", 0, 0, {0}},
        EogGolden{"phi-3", 32000, 32007, {2, 32000, 32007}},
        // A normal-looking </s> that llama.cpp stops on too.
        EogGolden{"qwen2",
                  151643,
                  151645,
                  {128247, 151643, 151645},
                  {"</s>", "<|endoftext|>", "<|im_end|>"}},
        EogGolden{"qwen35", 151643, 151645, {128247, 151643, 151645}},
        EogGolden{"refact", 0, 0, {0, 4, 18}}, EogGolden{"starcoder", 0, 0, {0, 4}}),
    [](const auto& param_info) {
      std::string name = param_info.param.name;
      for (char& c : name) c = c == '-' ? '_' : c;
      return name;
    });

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
