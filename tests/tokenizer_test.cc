#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "test_util.h"
#include "tokenizer/utf8.h"
#include "util/mapped_file.h"

namespace sllm {
namespace {

using test::shared_path;

std::string vocab_path(const std::string& name) {
  return shared_path("data/vocab/ggml-vocab-" + name + ".gguf");
}

Result<Vocab> load_vocab(const std::string& path) {
  SLLM_ASSIGN_OR_RETURN(const GgufFile gguf, GgufFile::open(path));
  return vocab_from_gguf(gguf);
}

// The tokenizer of a GGUF file; fails the test (and returns null) on any error.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  Result<Vocab> vocab = load_vocab(path);
  EXPECT_TRUE(vocab.ok()) << path << ": " << (vocab.ok() ? "" : vocab.error().message());
  if (!vocab.ok()) return nullptr;
  Result<std::unique_ptr<Tokenizer>> tokenizer = make_tokenizer(std::move(vocab).value());
  EXPECT_TRUE(tokenizer.ok()) << (tokenizer.ok() ? "" : tokenizer.error().message());
  if (!tokenizer.ok()) return nullptr;
  return std::move(tokenizer).value();
}

// load_tokenizer, once per file for the whole test binary: a 32000-token vocab takes a second to
// load under ASan, and tokenizers are immutable.
const Tokenizer* shared_tokenizer(const std::string& path) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> loaded;
  auto it = loaded.find(path);
  if (it == loaded.end()) it = loaded.emplace(path, load_tokenizer(path)).first;
  return it->second.get();
}

std::vector<TokenId> encode_ok(const Tokenizer& tokenizer, std::string_view text, bool add_bos,
                               bool parse_special) {
  Result<std::vector<TokenId>> ids = tokenizer.encode(text, add_bos, parse_special);
  EXPECT_TRUE(ids.ok()) << (ids.ok() ? "" : ids.error().message());
  return ids.ok() ? ids.value() : std::vector<TokenId>{};
}

std::vector<TokenId> concat(std::vector<std::vector<TokenId>> parts) {
  std::vector<TokenId> all;
  for (const auto& part : parts) all.insert(all.end(), part.begin(), part.end());
  return all;
}

// ---------------------------------------------------------------------------------------------
// llama.cpp's tokenizer test set: every case must give exactly the ids llama.cpp expects.

struct VocabCase {
  std::string text;
  std::vector<TokenId> ids;
};

// Splits `.inp` the way llama.cpp's tests/test-tokenizer-0.cpp does: on "\n__ggml_vocab_test__\n";
// the file ends with the separator, so there is no trailing empty case. `.out` has one line of
// ids per case.
std::vector<VocabCase> read_vocab_cases(const std::string& gguf_path) {
  Result<std::string> inp = read_file(gguf_path + ".inp");
  Result<std::string> out = read_file(gguf_path + ".out");
  EXPECT_TRUE(inp.ok() && out.ok()) << gguf_path;
  if (!inp.ok() || !out.ok()) return {};

  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0; pos < inp->size();) {
    const size_t next = inp->find(sep, pos);
    if (next == std::string::npos) {
      texts.push_back(inp->substr(pos));
      break;
    }
    texts.push_back(inp->substr(pos, next - pos));
    pos = next + sep.size();
  }

  std::vector<VocabCase> cases;
  std::istringstream lines(*out);
  std::string line;
  for (size_t i = 0; std::getline(lines, line); ++i) {
    std::istringstream numbers(line);
    VocabCase c;
    c.text = i < texts.size() ? texts[i] : "";
    for (TokenId id; numbers >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(texts.size(), cases.size()) << gguf_path << ": .inp and .out disagree on the count";
  return cases;
}

void check_vocab_cases(const std::string& name) {
  const std::string path = vocab_path(name);
  const Tokenizer* tokenizer = shared_tokenizer(path);
  ASSERT_NE(tokenizer, nullptr);
  const std::vector<VocabCase> cases = read_vocab_cases(path);
  ASSERT_EQ(cases.size(), 46u);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i) + ": '" + cases[i].text + "'");
    // test-tokenizer-0 tokenizes with add_special = false, parse_special = false.
    EXPECT_EQ(encode_ok(*tokenizer, cases[i].text, false, false), cases[i].ids);
    EXPECT_EQ(tokenizer->decode(cases[i].ids), cases[i].text);
  }
}

TEST(SpmTokenizer, MatchesLlamaCppOnLlamaSpmVocab) { check_vocab_cases("llama-spm"); }

TEST(SpmTokenizer, MatchesLlamaCppOnPhi3Vocab) { check_vocab_cases("phi-3"); }

// ---------------------------------------------------------------------------------------------
// The real model: stories260K.

TEST(SpmTokenizer, Stories260KGreedyGolden) {
  const Tokenizer* tokenizer = shared_tokenizer(test::stories_gguf());
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->token_bytes(403), " Once");

  const std::vector<TokenId> prompt = encode_ok(*tokenizer, "Once upon a time", true, false);
  ASSERT_GE(prompt.size(), 2u);
  EXPECT_EQ(prompt[0], 1);
  EXPECT_EQ(prompt[1], 403);

  // BOS and the first ten greedy tokens of the llama2.c reference run (shared/README.md); the
  // tenth token (298) is the "g" of "girl".
  const std::vector<TokenId> greedy = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298};
  const std::string text = "Once upon a time, there was a little g";
  EXPECT_EQ(tokenizer->decode(greedy), text);
  EXPECT_EQ(encode_ok(*tokenizer, text, true, false), greedy);
}

TEST(SpmTokenizer, RoundTripsRealText) {
  const Tokenizer* stories = shared_tokenizer(test::stories_gguf());
  const Tokenizer* llama = shared_tokenizer(vocab_path("llama-spm"));
  ASSERT_NE(stories, nullptr);
  ASSERT_NE(llama, nullptr);
  for (const char* rel : {"data/text/tinystories_val_head.txt", "data/text/gutenberg_pg1342.txt"}) {
    Result<std::string> text = read_file(shared_path(rel));
    ASSERT_TRUE(text.ok()) << rel;
    const std::string head = text->substr(0, 8000);  // ends inside ASCII text in both files
    for (const Tokenizer* tokenizer : {stories, llama}) {
      const std::vector<TokenId> ids = encode_ok(*tokenizer, head, true, false);
      EXPECT_GT(ids.size(), head.size() / 8) << rel;
      EXPECT_EQ(tokenizer->decode(ids), head) << rel;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Vocab loading.

TEST(Vocab, ReadsLlamaSpmMetadata) {
  Result<Vocab> vocab = load_vocab(vocab_path("llama-spm"));
  ASSERT_TRUE(vocab.ok()) << vocab.error().message();
  EXPECT_EQ(vocab->model, "llama");
  EXPECT_EQ(vocab->pre, "default");
  ASSERT_EQ(vocab->n_tokens(), 32000u);
  EXPECT_EQ(vocab->scores.size(), 32000u);
  EXPECT_EQ(vocab->types.size(), 32000u);
  EXPECT_EQ(vocab->tokens[3], "<0x00>");
  EXPECT_EQ(vocab->types[0], TokenType::kUnknown);
  EXPECT_EQ(vocab->types[1], TokenType::kControl);
  EXPECT_EQ(vocab->types[3], TokenType::kByte);
  EXPECT_EQ(vocab->bos, 1);
  EXPECT_EQ(vocab->eos, 2);
  EXPECT_EQ(vocab->unk, 0);
  EXPECT_EQ(vocab->pad, -1);
  EXPECT_TRUE(vocab->add_bos);
  EXPECT_FALSE(vocab->add_eos);
  EXPECT_TRUE(vocab->add_space_prefix);  // no key in the file: the SentencePiece default
}

TEST(Vocab, ReadsPhi3SpecialIds) {
  Result<Vocab> vocab = load_vocab(vocab_path("phi-3"));
  ASSERT_TRUE(vocab.ok()) << vocab.error().message();
  EXPECT_EQ(vocab->n_tokens(), 32064u);
  EXPECT_EQ(vocab->eos, 32000);
  EXPECT_EQ(vocab->pad, 32000);
  EXPECT_EQ(vocab->tokens[32007], "<|end|>");
  // "</s>" is user-defined (type 4) in the file, but an end-of-generation text: llama.cpp makes
  // it a control token, and so do we.
  EXPECT_EQ(vocab->types[2], TokenType::kControl);
}

TEST(Vocab, Uint32MaxSpecialIdMeansNone) {
  // stories260K stores padding_token_id = 4294967295 (-1 written as uint32).
  Result<Vocab> vocab = load_vocab(test::stories_gguf());
  ASSERT_TRUE(vocab.ok()) << vocab.error().message();
  EXPECT_EQ(vocab->n_tokens(), 512u);
  EXPECT_EQ(vocab->pad, -1);
  EXPECT_EQ(vocab->bos, 1);
}

TEST(Vocab, Gpt2IsReadAndTokenized) {
  Result<Vocab> vocab = load_vocab(vocab_path("gpt-2"));
  ASSERT_TRUE(vocab.ok()) << vocab.error().message();
  EXPECT_EQ(vocab->model, "gpt2");
  EXPECT_FALSE(vocab->merges.empty());
  EXPECT_FALSE(vocab->add_space_prefix);
  Result<std::unique_ptr<Tokenizer>> tokenizer = make_tokenizer(std::move(vocab).value());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.error().message();
  // GPT-2's "Hello world" (llama.cpp and HF agree).
  EXPECT_EQ(encode_ok(**tokenizer, "Hello world", false, false),
            (std::vector<TokenId>{15496, 995}));
}

// A minimal SentencePiece GGUF whose metadata a test then breaks.
class BadVocabFile : public ::testing::Test {
 protected:
  BadVocabFile() {
    writer_.set("tokenizer.ggml.model", GgufValue::str("llama"));
    writer_.set("tokenizer.ggml.tokens", GgufValue::string_array({"<unk>", "<s>", "</s>", "a"}));
    writer_.set("tokenizer.ggml.scores", GgufValue::f32_array({0, 0, 0, -1}));
    writer_.set("tokenizer.ggml.token_type", GgufValue::i32_array({2, 3, 3, 1}));
  }

  // Writes the file and returns vocab_from_gguf's error message ("" when it loads).
  std::string load_error() {
    // One file per test: ctest runs the tests of this binary as parallel processes.
    const std::string path = ::testing::TempDir() + "tokenizer_test_bad_vocab_" +
                             ::testing::UnitTest::GetInstance()->current_test_info()->name() +
                             ".gguf";
    const Status written = writer_.write(path);
    EXPECT_TRUE(written.ok()) << (written.ok() ? "" : written.error().message());
    Result<Vocab> vocab = load_vocab(path);
    std::remove(path.c_str());
    if (vocab.ok()) return "";
    error_code_ = vocab.error().code();
    return vocab.error().message();
  }

  ErrorCode error_code_ = ErrorCode::kInternal;

  GgufWriter writer_;
};

TEST_F(BadVocabFile, ValidFileLoads) { EXPECT_EQ(load_error(), ""); }

TEST_F(BadVocabFile, ScoresLengthMismatch) {
  writer_.set("tokenizer.ggml.scores", GgufValue::f32_array({0, 0, 0}));
  EXPECT_EQ(load_error(), "tokenizer.ggml.scores has 3 entries, expected 4 (one per token)");
}

TEST_F(BadVocabFile, TokenTypeLengthMismatch) {
  writer_.set("tokenizer.ggml.token_type", GgufValue::i32_array({2, 3, 3, 1, 1}));
  EXPECT_EQ(load_error(), "tokenizer.ggml.token_type has 5 entries, expected 4 (one per token)");
}

TEST_F(BadVocabFile, UnknownTokenType) {
  writer_.set("tokenizer.ggml.token_type", GgufValue::i32_array({2, 3, 3, 9}));
  EXPECT_EQ(load_error(), "tokenizer.ggml.token_type[3] = 9 is not a token type");
}

TEST_F(BadVocabFile, MisspelledByteToken) {
  writer_.set("tokenizer.ggml.token_type", GgufValue::i32_array({2, 3, 3, 6}));
  EXPECT_EQ(load_error(), "tokenizer.ggml.tokens[3] = 'a' is a byte token but not spelled <0xXX>");
}

TEST_F(BadVocabFile, SpecialIdOutOfRange) {
  writer_.set("tokenizer.ggml.eos_token_id", GgufValue::u32(4));
  EXPECT_EQ(load_error(),
            "tokenizer.ggml.eos_token_id = 4 is out of range (the vocab has 4 tokens)");
  EXPECT_EQ(error_code_, ErrorCode::kFormat);
}

TEST_F(BadVocabFile, MissingModelKeyIsNamed) {
  GgufWriter writer;
  writer.set("tokenizer.ggml.tokens", GgufValue::string_array({"a"}));
  writer_ = std::move(writer);
  EXPECT_NE(load_error().find("tokenizer.ggml.model"), std::string::npos);
}

TEST_F(BadVocabFile, WrongTypeIsNamed) {
  writer_.set("tokenizer.ggml.add_bos_token", GgufValue::u32(1));
  EXPECT_NE(load_error().find("tokenizer.ggml.add_bos_token"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// The SPM algorithm on a hand-made vocab, where the expected ids follow from the rules alone.

struct TinyVocab {
  Vocab vocab;
  TokenId add(std::string text, float score, TokenType type = TokenType::kNormal) {
    vocab.tokens.push_back(std::move(text));
    vocab.scores.push_back(score);
    vocab.types.push_back(type);
    return static_cast<TokenId>(vocab.tokens.size() - 1);
  }
};

// <unk> <s> </s>, then (optionally) the 256 byte tokens at 3..258 as in Llama's vocab.
TinyVocab tiny_vocab(bool with_byte_tokens) {
  TinyVocab t;
  t.vocab.model = "llama";
  t.vocab.unk = t.add("<unk>", 0, TokenType::kUnknown);
  t.vocab.bos = t.add("<s>", 0, TokenType::kControl);
  t.vocab.eos = t.add("</s>", 0, TokenType::kControl);
  if (with_byte_tokens) {
    for (int byte = 0; byte < 256; ++byte) {
      char text[8];
      std::snprintf(text, sizeof(text), "<0x%02X>", byte);
      t.add(text, 0, TokenType::kByte);
    }
  }
  return t;
}

std::unique_ptr<Tokenizer> make_ok(Vocab vocab) {
  Result<std::unique_ptr<Tokenizer>> tokenizer = make_tokenizer(std::move(vocab));
  EXPECT_TRUE(tokenizer.ok()) << (tokenizer.ok() ? "" : tokenizer.error().message());
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

TEST(SpmAlgorithm, MergesHighestScoreFirstAndTiesGoLeft) {
  for (const float bc_score : {-1.0f, -0.5f}) {
    TinyVocab t = tiny_vocab(false);
    t.vocab.add_space_prefix = false;
    const TokenId a = t.add("a", -5);
    t.add("b", -5);
    const TokenId c = t.add("c", -5);
    const TokenId ab = t.add("ab", -1), bc = t.add("bc", bc_score);
    const std::unique_ptr<Tokenizer> tokenizer = make_ok(t.vocab);
    ASSERT_NE(tokenizer, nullptr);
    const std::vector<TokenId> expected =
        bc_score > -1.0f ? std::vector<TokenId>{a, bc} : std::vector<TokenId>{ab, c};
    EXPECT_EQ(encode_ok(*tokenizer, "abc", false, false), expected) << "bc score " << bc_score;
  }
}

TEST(SpmAlgorithm, MergesRepeatUntilNoPairIsInTheVocab) {
  TinyVocab t = tiny_vocab(false);
  const TokenId space = t.add("\xE2\x96\x81", -9);
  t.add("a", -9);
  t.add("b", -9);
  t.add(
      "\xE2\x96\x81"
      "a",
      -3);
  const TokenId space_ab = t.add(
      "\xE2\x96\x81"
      "ab",
      -2);
  const std::unique_ptr<Tokenizer> tokenizer = make_ok(t.vocab);
  ASSERT_NE(tokenizer, nullptr);
  // " ab ab" -> "▁ab▁ab" after the dummy prefix: "▁"+"a", then "▁a"+"b", at both places.
  EXPECT_EQ(encode_ok(*tokenizer, "ab ab", false, false),
            (std::vector<TokenId>{space_ab, space_ab}));
  // The leading space of the text plus the dummy prefix: "▁▁ab".
  EXPECT_EQ(encode_ok(*tokenizer, " ab", false, false), (std::vector<TokenId>{space, space_ab}));
}

TEST(SpmAlgorithm, ByteFallbackForCharactersOutsideTheVocab) {
  TinyVocab t = tiny_vocab(true);
  t.vocab.add_space_prefix = false;
  const TokenId a = t.add("a", -1);
  const std::unique_ptr<Tokenizer> tokenizer = make_ok(t.vocab);
  ASSERT_NE(tokenizer, nullptr);
  // "é" is C3 A9; byte token <0xXX> has id 3 + XX.
  EXPECT_EQ(encode_ok(*tokenizer, "a\xC3\xA9", false, false),
            (std::vector<TokenId>{a, 3 + 0xC3, 3 + 0xA9}));
}

TEST(SpmAlgorithm, UnknownTokenWithoutByteTokens) {
  TinyVocab t = tiny_vocab(false);
  t.vocab.add_space_prefix = false;
  const TokenId a = t.add("a", -1);
  const std::unique_ptr<Tokenizer> tokenizer = make_ok(t.vocab);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(encode_ok(*tokenizer,
                      "\xC3\xA9"
                      "a",
                      false, false),
            (std::vector<TokenId>{t.vocab.unk, t.vocab.unk, a}));
}

TEST(SpmAlgorithm, NoFallbackAtAllIsAnError) {
  TinyVocab t = tiny_vocab(false);
  t.vocab.add_space_prefix = false;
  t.vocab.unk = -1;
  t.add("a", -1);
  const std::unique_ptr<Tokenizer> tokenizer = make_ok(t.vocab);
  ASSERT_NE(tokenizer, nullptr);
  Result<std::vector<TokenId>> ids = tokenizer->encode("a\xC3\xA9", false, false);
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.error().code(), ErrorCode::kUnsupported);
  EXPECT_EQ(ids.error().message(),
            "cannot encode byte 0xC3: the vocab has neither a byte token for it nor an unknown "
            "token");
}

TEST(SpmAlgorithm, LongestSpecialTokenWins) {
  TinyVocab t = tiny_vocab(true);
  const TokenId short_special = t.add("<|a|>", 0, TokenType::kControl);
  const TokenId long_special = t.add("<|a|><|b|>", 0, TokenType::kControl);
  const std::unique_ptr<Tokenizer> tokenizer = make_ok(t.vocab);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(encode_ok(*tokenizer, "<|a|><|b|><|a|>", false, true),
            (std::vector<TokenId>{long_special, short_special}));
}

TEST(SpmAlgorithm, AddBosWithoutBosIsAnError) {
  TinyVocab t = tiny_vocab(true);
  t.vocab.bos = -1;
  const std::unique_ptr<Tokenizer> tokenizer = make_ok(t.vocab);
  ASSERT_NE(tokenizer, nullptr);
  Result<std::vector<TokenId>> ids = tokenizer->encode("a", true, false);
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(ids.error().message(),
            "add_bos was requested but the vocab has no BOS token (tokenizer.ggml.bos_token_id)");
}

TEST(SpmAlgorithm, MakeTokenizerValidatesHandMadeVocabs) {
  TinyVocab t = tiny_vocab(false);
  t.vocab.scores.pop_back();
  Result<std::unique_ptr<Tokenizer>> tokenizer = make_tokenizer(t.vocab);
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.error().message(),
            "tokenizer.ggml.scores has 2 entries, expected 3 (one per token)");
}

// ---------------------------------------------------------------------------------------------
// Special tokens, BOS and token_bytes on the real Llama vocab.

class LlamaVocab : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NE(tokenizer_, nullptr); }

  std::vector<TokenId> encode(std::string_view text, bool add_bos = false,
                              bool parse_special = false) const {
    return encode_ok(*tokenizer_, text, add_bos, parse_special);
  }

  const Tokenizer* tokenizer_ = shared_tokenizer(vocab_path("llama-spm"));
};

constexpr TokenId kBos = 1, kEos = 2;

TEST_F(LlamaVocab, EmptyText) {
  EXPECT_EQ(encode(""), std::vector<TokenId>{});
  EXPECT_EQ(encode("", true), std::vector<TokenId>{kBos});
}

TEST_F(LlamaVocab, AddBosPrependsBos) {
  EXPECT_EQ(encode("Hello world", true), concat({{kBos}, encode("Hello world")}));
}

TEST_F(LlamaVocab, ParseSpecialSplitsOnControlTokens) {
  // Each text fragment after a special token gets the dummy prefix again, as in llama.cpp.
  EXPECT_EQ(encode("Hello</s>world", false, true),
            concat({encode("Hello"), {kEos}, encode("world")}));
  EXPECT_EQ(encode("<s>Hi</s>", false, true), concat({{kBos}, encode("Hi"), {kEos}}));
  EXPECT_EQ(encode("</s></s>", false, true), (std::vector<TokenId>{kEos, kEos}));
}

TEST_F(LlamaVocab, WithoutParseSpecialControlTextIsText) {
  const std::vector<TokenId> ids = encode("Hello</s>world");
  for (const TokenId id : ids) EXPECT_NE(id, kEos);
  EXPECT_EQ(tokenizer_->decode(ids), "Hello</s>world");
}

TEST(SpmTokenizer, UserDefinedTokensMatchEvenWithoutParseSpecial) {
  // Phi-3's vocab with <|placeholder1|> made user-defined; <|end|> is control.
  Result<Vocab> vocab = load_vocab(vocab_path("phi-3"));
  ASSERT_TRUE(vocab.ok()) << vocab.error().message();
  vocab->types[32002] = TokenType::kUserDefined;
  Result<std::unique_ptr<Tokenizer>> tokenizer = make_tokenizer(std::move(vocab).value());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.error().message();
  const std::vector<TokenId> ids =
      encode_ok(**tokenizer, "a<|placeholder1|>b<|end|>", false, false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 32002), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 32007), 0);
  const std::vector<TokenId> special =
      encode_ok(**tokenizer, "a<|placeholder1|>b<|end|>", false, true);
  EXPECT_EQ(special.back(), 32007);
}

// Phi-3's "</s>" is user-defined in the file but control in llama.cpp (an end-of-generation
// text): only --special parses it. Ids from llama.cpp (node-llama-cpp's tokenize).
TEST(SpmTokenizer, Phi3EndOfGenerationTextsAreControlTokens) {
  const Tokenizer* tokenizer = shared_tokenizer(vocab_path("phi-3"));
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(encode_ok(*tokenizer, "<s>Hi<|end|></s>", false, false),
            (std::vector<TokenId>{529, 29879, 29958, 18567, 29966, 29989, 355, 29989, 2565, 29879,
                                  29958}));
  EXPECT_EQ(encode_ok(*tokenizer, "<s>Hi<|end|></s>", false, true),
            (std::vector<TokenId>{1, 6324, 32007, 2}));
}

TEST_F(LlamaVocab, TokenBytes) {
  EXPECT_EQ(tokenizer_->token_bytes(3 + 0x0A), "\n");    // <0x0A>
  EXPECT_EQ(tokenizer_->token_bytes(3 + 0xF0), "\xF0");  // half of a character
  EXPECT_EQ(tokenizer_->token_bytes(encode("Hello")[0]), " Hello");
  EXPECT_EQ(tokenizer_->token_bytes(kBos), "");    // control
  EXPECT_EQ(tokenizer_->token_bytes(0), "<unk>");  // unknown, printed as llama.cpp does
  EXPECT_EQ(tokenizer_->token_bytes(-1), "");
  EXPECT_EQ(tokenizer_->token_bytes(32000), "");
}

TEST_F(LlamaVocab, IsControl) {
  EXPECT_TRUE(tokenizer_->is_control(kBos));
  EXPECT_TRUE(tokenizer_->is_control(kEos));
  EXPECT_FALSE(tokenizer_->is_control(0));  // <unk> is kUnknown
  EXPECT_FALSE(tokenizer_->is_control(3));  // <0x00>
  EXPECT_FALSE(tokenizer_->is_control(-1));
  EXPECT_FALSE(tokenizer_->is_control(32000));
}

// ---------------------------------------------------------------------------------------------
// Invalid UTF-8 in encode: kInvalidInput naming the offset of the bad sequence.

TEST_F(LlamaVocab, InvalidUtf8IsRejectedWithItsOffset) {
  const struct {
    std::string text;
    std::string message;
  } cases[] = {
      {"ab\x80", "invalid UTF-8 at byte 2: unexpected continuation byte"},
      {"abc\xE2\x82", "invalid UTF-8 at byte 3: truncated sequence"},
      {"\xC3(", "invalid UTF-8 at byte 0: missing continuation byte"},
      {"x\xC0\xAF", "invalid UTF-8 at byte 1: overlong encoding"},
      {"xy\xE0\x80\xAF", "invalid UTF-8 at byte 2: overlong encoding"},
      {"\xF0\x82\x82\xAC", "invalid UTF-8 at byte 0: overlong encoding"},
      {"a\xED\xA0\x80", "invalid UTF-8 at byte 1: UTF-16 surrogate"},
      {"\xF4\x90\x80\x80", "invalid UTF-8 at byte 0: code point above U+10FFFF"},
      {"\xF5\x80\x80\x80", "invalid UTF-8 at byte 0: code point above U+10FFFF"},
      {"ok \xFF", "invalid UTF-8 at byte 3: invalid byte"},
  };
  for (const auto& c : cases) {
    for (const bool parse_special : {false, true}) {
      Result<std::vector<TokenId>> ids = tokenizer_->encode(c.text, true, parse_special);
      ASSERT_FALSE(ids.ok()) << c.message;
      EXPECT_EQ(ids.error().code(), ErrorCode::kInvalidInput);
      EXPECT_EQ(ids.error().message(), c.message);
    }
  }
}

TEST_F(LlamaVocab, ValidEdgeCodePointsRoundTrip) {
  // U+007F, U+0080, U+07FF, U+0800, U+D7FF, U+E000, U+FFFF, U+10000, U+10FFFF.
  const std::string text =
      "\x7F\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF\xF0\x90\x80\x80"
      "\xF4\x8F\xBF\xBF";
  EXPECT_EQ(tokenizer_->decode(encode(text)), text);
}

// ---------------------------------------------------------------------------------------------
// StreamDecoder.

TEST_F(LlamaVocab, StreamDecoderPrintsASplitCharacterOnceWhole) {
  const std::string llama = "\xF0\x9F\xA6\x99";  // U+1F999, not in the vocab: four byte tokens
  const std::vector<TokenId> ids = encode("Hi " + llama);
  ASSERT_GE(ids.size(), 4u);
  const std::vector<TokenId> emoji_ids(ids.end() - 4, ids.end());
  ASSERT_EQ(emoji_ids, (std::vector<TokenId>{3 + 0xF0, 3 + 0x9F, 3 + 0xA6, 3 + 0x99}));

  StreamDecoder decoder(*tokenizer_);
  std::string printed;
  for (size_t i = 0; i + 4 < ids.size(); ++i) printed += decoder.push(ids[i]);
  EXPECT_EQ(printed, "Hi ");
  EXPECT_EQ(decoder.push(emoji_ids[0]), "");
  EXPECT_EQ(decoder.push(emoji_ids[1]), "");
  EXPECT_EQ(decoder.push(emoji_ids[2]), "");
  EXPECT_EQ(decoder.push(emoji_ids[3]), llama);
  EXPECT_EQ(decoder.flush(), "");
}

TEST_F(LlamaVocab, StreamDecoderReplacesIncompleteAndInvalidSequences) {
  const TokenId hello = encode("Hello")[0];  // "▁Hello"
  {
    StreamDecoder decoder(*tokenizer_);
    EXPECT_EQ(decoder.push(3 + 0xF0), "");
    EXPECT_EQ(decoder.push(3 + 0x9F), "");
    EXPECT_EQ(decoder.flush(), "\xEF\xBF\xBD");  // one U+FFFD for the unfinished character
    EXPECT_EQ(decoder.flush(), "");
  }
  {
    StreamDecoder decoder(*tokenizer_);
    EXPECT_EQ(decoder.push(3 + 0xE2), "");
    EXPECT_EQ(decoder.push(hello), "\xEF\xBF\xBD Hello");  // broken by a space: U+FFFD, go on
  }
  {
    StreamDecoder decoder(*tokenizer_);
    EXPECT_EQ(decoder.push(3 + 0x80), "\xEF\xBF\xBD");  // a stray continuation byte
    EXPECT_EQ(decoder.push(3 + 'A'), "A");
  }
  // decode() is the same stream: E1 80 is the maximal subpart of a 3-byte sequence.
  EXPECT_EQ(tokenizer_->decode({3 + 0xE1, 3 + 0x80, 3 + 'A'}),
            "\xEF\xBF\xBD"
            "A");
}

TEST_F(LlamaVocab, StreamDecoderDropsTheDummyPrefixAtStartAndAfterBos) {
  const std::vector<TokenId> ids = encode("Hello world");
  ASSERT_EQ(ids.size(), 2u);
  StreamDecoder decoder(*tokenizer_);
  EXPECT_EQ(decoder.push(kBos), "");
  EXPECT_EQ(decoder.push(ids[0]), "Hello");
  EXPECT_EQ(decoder.push(ids[1]), " world");
  EXPECT_EQ(decoder.push(kEos), "");
  EXPECT_EQ(decoder.push(kBos), "");
  EXPECT_EQ(decoder.push(ids[0]), "Hello");

  StreamDecoder no_bos(*tokenizer_);
  EXPECT_EQ(no_bos.push(ids[1]), "world");
  EXPECT_EQ(no_bos.push(ids[1]), " world");
}

// ---------------------------------------------------------------------------------------------
// utf8.h directly: the maximal-subpart lengths the decoder relies on.

TEST(Utf8, MaximalSubparts) {
  const struct {
    std::string text;
    Utf8Status status;
    size_t n_bytes;
  } cases[] = {
      {"A", Utf8Status::kValid, 1},
      {"\xC3\xA9", Utf8Status::kValid, 2},
      {"\xF0\x9F\xA6\x99", Utf8Status::kValid, 4},
      {"\xF0\x9F\xA6", Utf8Status::kTruncated, 3},
      {"\xE1\x80"
       "A",
       Utf8Status::kInvalid, 2},
      {"\xE0\x80\x80", Utf8Status::kInvalid, 1},
      {"\xED\xA0\x80", Utf8Status::kInvalid, 1},
      {"\xBF", Utf8Status::kInvalid, 1},
  };
  for (const auto& c : cases) {
    const Utf8Char got = next_utf8_char(c.text, 0);
    EXPECT_EQ(got.status, c.status) << c.text;
    EXPECT_EQ(got.n_bytes, c.n_bytes) << c.text;
  }
}

}  // namespace
}  // namespace sllm
