// `streamingllm info` and `tokenize --special` on tokenizer-only GGUFs (issue 10): the tokenizer
// model, the pre-tokenizer and the end-of-generation tokens of each family.
#include <gtest/gtest.h>

#include "cli_runner.h"
#include "stories_golden.h"
#include "test_util.h"

namespace sllm::test {
namespace {

std::string vocab(const std::string& name) {
  return quote(shared_path("data/vocab/ggml-vocab-" + name + ".gguf"));
}

// The lines info prints about the vocabulary, from "tokenizer:" on.
std::string vocabulary_lines(const std::string& out) {
  const size_t at = out.find("tokenizer:");
  return at == std::string::npos ? out : out.substr(at);
}

struct InfoCase {
  const char* name;
  const char* expected;  // from "tokenizer:" to the end
};

void PrintTo(const InfoCase& c, std::ostream* os) { *os << c.name; }

class InfoTest : public ::testing::TestWithParam<InfoCase> {};

TEST_P(InfoTest, TokenizerOnlyFile) {
  const CliResult r = run_cli("info -m " + vocab(GetParam().name));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("no tensors"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("weights:        none (a tokenizer-only file)\n"), std::string::npos)
      << r.out;
  EXPECT_EQ(vocabulary_lines(r.out), GetParam().expected);
  EXPECT_EQ(r.err, "");
}

INSTANTIATE_TEST_SUITE_P(
    Vocabularies, InfoTest,
    ::testing::Values(
        InfoCase{"llama-spm",
                 "tokenizer:      llama (32000 tokens, bos 1, eos 2)\n"
                 "pre-tokenizer:  default\n"
                 "end tokens:     2 '</s>'\n"
                 "chat template:  none\n"},
        InfoCase{"llama-bpe",
                 "tokenizer:      gpt2 (128256 tokens, bos 128000, eos 128001)\n"
                 "pre-tokenizer:  llama-bpe\n"
                 "end tokens:     128001 '<|end_of_text|>', 128009 '<|eot_id|>'\n"
                 "chat template:  none\n"},
        InfoCase{"qwen2",
                 "tokenizer:      gpt2 (151936 tokens, bos 151643, eos 151643)\n"
                 "pre-tokenizer:  qwen2\n"
                 "end tokens:     128247 '</s>', 151643 '<|endoftext|>', 151645 '<|im_end|>'\n"
                 "chat template:  present (chatml)\n"},
        InfoCase{"gemma-4",
                 "tokenizer:      gemma4 (262144 tokens, bos 2, eos 1)\n"
                 "pre-tokenizer:  gemma4\n"
                 "end tokens:     1 '<eos>', 50 '<|tool_response>', 106 '<turn|>'\n"
                 "chat template:  present (gemma4)\n"},
        InfoCase{"phi-3",
                 "tokenizer:      llama (32064 tokens, bos 1, eos 32000)\n"
                 "pre-tokenizer:  default\n"
                 "end tokens:     2 '</s>', 32000 '<|endoftext|>', 32007 '<|end|>'\n"
                 "chat template:  present (phi3)\n"},
        InfoCase{"command-r",
                 "tokenizer:      gpt2 (256000 tokens, bos 5, eos 255001)\n"
                 "pre-tokenizer:  command-r\n"
                 "end tokens:     0 '<PAD>', 255001 '<|END_OF_TURN_TOKEN|>'\n"
                 "chat template:  present (command-r)\n"}),
    [](const auto& param_info) {
      std::string name = param_info.param.name;
      for (char& c : name) c = c == '-' ? '_' : c;
      return name;
    });

TEST(InfoTest, ModelFilePrintsWeightsAndVocabulary) {
  const CliResult r = run_cli("info -m " + quote(stories_gguf()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("(GGUF v3, 48 tensors, 19 metadata keys)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tokenizer:      llama (512 tokens, bos 1, eos 2)\n"
                       "pre-tokenizer:  default\n"
                       "end tokens:     2 '</s>'\n"
                       "chat template:  none\n"
                       "kv bytes/token:"),
            std::string::npos)
      << r.out;
}

TEST(InfoTest, BadVocabularyIsAnError) {
  const std::string path = temp_dir() + "/not_a_gguf.gguf";
  {
    FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fputs("GGUF", f);
    std::fclose(f);
  }
  const CliResult r = run_cli("info -m " + quote(path));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("not_a_gguf.gguf"), std::string::npos) << r.err;
}

// Ids from llama.cpp (node-llama-cpp's tokenize with and without special tokens).
TEST(TokenizeSpecialTest, ControlTokensAreTextUnlessSpecial) {
  const std::string text = " -p '<s>Hi<|end|></s>'";
  CliResult r = run_cli("tokenize -m " + vocab("phi-3") + text);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "529 29879 29958 18567 29966 29989 355 29989 2565 29879 29958\n");
  r = run_cli("tokenize -m " + vocab("phi-3") + " --special" + text);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1 6324 32007 2\n");
  r = run_cli("tokenize -m " + vocab("llama-spm") + text);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "529 29879 29958 18567 29966 29989 355 29989 2565 29879 29958\n");
  r = run_cli("tokenize -m " + vocab("llama-spm") + " --special" + text);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1 6324 29966 29989 355 29989 29958 2\n");
}

TEST(TokenizeSpecialTest, NoParseSpecialIsGone) {
  const CliResult r = run_cli("tokenize -m " + vocab("llama-spm") + " --no-parse-special -p x");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--no-parse-special"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace sllm::test
