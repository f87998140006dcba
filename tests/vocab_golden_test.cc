// Acceptance 1 of issue 10: every vocabulary in ../shared/data/vocab/ (bert-bge aside: WordPiece;
// gpt-neox has no goldens) tokenizes every case of its .inp file to the ids of its .out line, as
// llama.cpp's tests/test-tokenizer-0 does (no BOS/EOS, special tokens not parsed); decoding
// gives the text back wherever the vocabulary can represent it; and the CLI's `tokenize -f`
// agrees on a case per vocabulary.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "gguf/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace sllm {
namespace {

struct GoldenCase {
  std::string text;
  std::vector<TokenId> ids;
};

std::string vocab_path(const std::string& name) {
  return test::shared_path("data/vocab/ggml-vocab-" + name + ".gguf");
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// test-tokenizer-0's read_tests: cases are separated by "\n__ggml_vocab_test__\n" (so the last
// case keeps whatever follows it up to the end of the file); one .out line per case.
std::vector<GoldenCase> read_cases(const std::string& name) {
  const std::string raw = read_text(vocab_path(name) + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t pos = 0; pos < raw.size();) {
    const size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(raw.substr(pos));
      break;
    }
    inputs.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::ifstream out(vocab_path(name) + ".out");
  std::vector<GoldenCase> cases;
  size_t i = 0;
  for (std::string line; std::getline(out, line); ++i) {
    GoldenCase c;
    if (i < inputs.size()) c.text = inputs[i];
    std::istringstream ids(line);
    for (long id; ids >> id;) c.ids.push_back(static_cast<TokenId>(id));
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(cases.size(), inputs.size()) << name << ": .inp and .out disagree on the case count";
  return cases;
}

std::unique_ptr<Tokenizer> load(const std::string& name) {
  Result<GgufFile> gguf = GgufFile::open(vocab_path(name));
  EXPECT_TRUE(gguf.ok()) << (gguf.ok() ? "" : gguf.error().message());
  if (!gguf.ok()) return nullptr;
  Result<Vocab> vocab = vocab_from_gguf(gguf.value());
  EXPECT_TRUE(vocab.ok()) << (vocab.ok() ? "" : vocab.error().message());
  if (!vocab.ok()) return nullptr;
  Result<std::unique_ptr<Tokenizer>> tokenizer = make_tokenizer(std::move(vocab).value());
  EXPECT_TRUE(tokenizer.ok()) << (tokenizer.ok() ? "" : tokenizer.error().message());
  if (!tokenizer.ok()) return nullptr;
  return std::move(tokenizer).value();
}

std::string ids_string(const std::vector<TokenId>& ids) {
  std::string s;
  for (const TokenId id : ids) {
    if (!s.empty()) s += ' ';
    s += std::to_string(id);
  }
  return s;
}

class VocabGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabGolden, EveryCaseMatchesLlamaCpp) {
  const std::string name = GetParam();
  const std::unique_ptr<Tokenizer> tokenizer = load(name);
  ASSERT_NE(tokenizer, nullptr);
  const std::vector<GoldenCase> cases = read_cases(name);
  ASSERT_FALSE(cases.empty());
  size_t passed = 0;
  size_t round_tripped = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const GoldenCase& c = cases[i];
    Result<std::vector<TokenId>> ids = tokenizer->encode(c.text, false, false);
    ASSERT_TRUE(ids.ok()) << name << " case " << i << ": " << ids.error().message();
    EXPECT_EQ(ids_string(ids.value()), ids_string(c.ids))
        << name << " case " << i << ": '" << c.text << "'";
    if (ids.value() == c.ids) ++passed;
    // Every case of every vocabulary can be given back: the BPE vocabs have a token for every
    // byte, the SentencePiece ones byte fallback, and their dummy prefix is dropped on decoding.
    const std::string decoded = tokenizer->decode(ids.value());
    EXPECT_EQ(decoded, c.text) << name << " case " << i << " does not round-trip";
    if (decoded == c.text) ++round_tripped;
  }
  std::printf("%s: %zu/%zu cases match llama.cpp, %zu round-trip\n", name.c_str(), passed,
              cases.size(), round_tripped);
}

INSTANTIATE_TEST_SUITE_P(AllVocabs, VocabGolden,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "llama-bpe", "qwen2",
                                           "qwen35", "command-r", "falcon", "mpt", "starcoder",
                                           "refact", "deepseek-llm", "deepseek-coder", "gemma-4"),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           std::string n = param_info.param;
                           for (char& ch : n) {
                             if (ch == '-') ch = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace sllm
