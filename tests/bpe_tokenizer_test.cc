// The BPE tokenizers (gpt2, gemma4) on small hand-made vocabularies: merge order, special
// tokens, gemma4's rules, decoding, and the errors of malformed vocabularies and inputs.
#include <gtest/gtest.h>

#include <cstdio>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gguf/gguf.h"
#include "test_util.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"

namespace sllm {
namespace {

// A byte-level vocab: "Ġ" is GPT-2's character for the space byte.
const std::vector<std::string> kTokens = {
    "a", "b", "c", "\xC4\xA0", "ab", "abc", "Ġa", "<|endoftext|>", "<u>"};
const std::vector<int32_t> kTypes = {1, 1, 1, 1, 1, 1, 1, 3, 4};

class BpeVocabFile : public ::testing::Test {
 protected:
  BpeVocabFile() {
    writer_.set("tokenizer.ggml.model", GgufValue::str("gpt2"));
    writer_.set("tokenizer.ggml.pre", GgufValue::str("gpt-2"));
    writer_.set("tokenizer.ggml.tokens", GgufValue::string_array(kTokens));
    writer_.set("tokenizer.ggml.token_type", GgufValue::i32_array(kTypes));
    // "Ġ a" would merge first if merging went left to right; rank decides.
    writer_.set("tokenizer.ggml.merges", GgufValue::string_array({"a b", "ab c", "Ġ a"}));
    writer_.set("tokenizer.ggml.eos_token_id", GgufValue::u32(7));
  }

  // Writes the file, loads the vocab and makes its tokenizer; the error message, "" if none.
  std::string load_error() {
    const std::string path = ::testing::TempDir() + "bpe_tokenizer_test_" +
                             ::testing::UnitTest::GetInstance()->current_test_info()->name() +
                             ".gguf";
    const Status written = writer_.write(path);
    EXPECT_TRUE(written.ok()) << (written.ok() ? "" : written.error().message());
    Result<GgufFile> gguf = GgufFile::open(path);
    std::remove(path.c_str());
    if (!gguf.ok()) return gguf.error().message();
    Result<Vocab> vocab = vocab_from_gguf(gguf.value());
    if (!vocab.ok()) {
      code_ = vocab.error().code();
      return vocab.error().message();
    }
    Result<std::unique_ptr<Tokenizer>> tokenizer = make_tokenizer(std::move(vocab).value());
    if (!tokenizer.ok()) {
      code_ = tokenizer.error().code();
      return tokenizer.error().message();
    }
    tokenizer_ = std::move(tokenizer).value();
    return "";
  }

  std::vector<TokenId> encode(std::string_view text, bool parse_special = false) {
    Result<std::vector<TokenId>> ids = tokenizer_->encode(text, false, parse_special);
    EXPECT_TRUE(ids.ok()) << (ids.ok() ? "" : ids.error().message());
    return ids.ok() ? ids.value() : std::vector<TokenId>{};
  }

  GgufWriter writer_;
  ErrorCode code_ = ErrorCode::kInternal;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(BpeVocabFile, MergesByRankNotPosition) {
  ASSERT_EQ(load_error(), "");
  // "abc" -> a b c -> ab c -> abc; " ab" -> Ġ a b: (a b) has rank 0, (Ġ a) rank 2 -> Ġ ab.
  EXPECT_EQ(encode("abc ab"), (std::vector<TokenId>{5, 3, 4}));
  EXPECT_EQ(tokenizer_->decode({5, 3, 4}), "abc ab");
}

TEST_F(BpeVocabFile, ControlTokensOnlyWithParseSpecialUserDefinedAlways) {
  ASSERT_EQ(load_error(), "");
  EXPECT_EQ(encode("a<|endoftext|>", true), (std::vector<TokenId>{0, 7}));
  // Without parse_special it is text: "<|", "endoftext", "|>" are words of characters this
  // vocab lacks, dropped as llama.cpp drops bytes without a token.
  EXPECT_EQ(encode("ab<|endoftext|>cab", false), (std::vector<TokenId>{4, 2, 4}));
  EXPECT_EQ(encode("b<u>", false), (std::vector<TokenId>{1, 8}));
  EXPECT_EQ(tokenizer_->decode({1, 8, 7}), "b<u>");  // control tokens print nothing
}

TEST_F(BpeVocabFile, DefaultsFollowLlamaCpp) {
  writer_.set("tokenizer.ggml.pre", GgufValue::str("llama-bpe"));
  ASSERT_EQ(load_error(), "");
  EXPECT_TRUE(tokenizer_->vocab().add_bos);  // llama3 adds a BOS unless the file says not
  EXPECT_EQ(tokenizer_->vocab().eos, 7);
}

TEST_F(BpeVocabFile, InvalidUtf8NamesTheByteOffset) {
  ASSERT_EQ(load_error(), "");
  Result<std::vector<TokenId>> ids = tokenizer_->encode("ab\xC3(", false, false);
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(ids.error().message().rfind("invalid UTF-8 at byte 2", 0), 0u) << ids.error().message();
}

TEST_F(BpeVocabFile, MergeWithoutSpace) {
  writer_.set("tokenizer.ggml.merges", GgufValue::string_array({"a b", "abc"}));
  EXPECT_EQ(load_error(),
            "tokenizer.ggml.merges[1] = 'abc' is not two tokens separated by a space");
  EXPECT_EQ(code_, ErrorCode::kFormat);
}

TEST_F(BpeVocabFile, MergeWithEmptyHalf) {
  writer_.set("tokenizer.ggml.merges", GgufValue::string_array({"a "}));
  EXPECT_EQ(load_error(), "tokenizer.ggml.merges[0] = 'a ' is not two tokens separated by a space");
}

TEST_F(BpeVocabFile, MergeNamingAnUnknownToken) {
  writer_.set("tokenizer.ggml.merges", GgufValue::string_array({"a b", "ab x"}));
  EXPECT_EQ(load_error(),
            "tokenizer.ggml.merges[1] = 'ab x' names 'x', which is not in tokenizer.ggml.tokens");
  EXPECT_EQ(code_, ErrorCode::kFormat);
}

TEST_F(BpeVocabFile, MissingMerges) {
  GgufWriter writer;
  writer.set("tokenizer.ggml.model", GgufValue::str("gpt2"));
  writer.set("tokenizer.ggml.tokens", GgufValue::string_array(kTokens));
  writer_ = std::move(writer);
  EXPECT_EQ(load_error(),
            "tokenizer.ggml.merges is missing or empty (a 'gpt2' tokenizer needs its BPE merges)");
  EXPECT_EQ(code_, ErrorCode::kFormat);
}

TEST_F(BpeVocabFile, MergesOfTheWrongType) {
  writer_.set("tokenizer.ggml.merges", GgufValue::u32(3));
  EXPECT_NE(load_error().find("tokenizer.ggml.merges"), std::string::npos);
}

TEST_F(BpeVocabFile, TokenTypesOfAnotherLength) {
  writer_.set("tokenizer.ggml.token_type", GgufValue::i32_array({1, 1, 1}));
  EXPECT_EQ(load_error(), "tokenizer.ggml.token_type has 3 entries, expected 9 (one per token)");
  EXPECT_EQ(code_, ErrorCode::kFormat);
}

TEST_F(BpeVocabFile, ScoresOfAnotherLength) {
  writer_.set("tokenizer.ggml.scores", GgufValue::f32_array({0, 0}));
  EXPECT_EQ(load_error(), "tokenizer.ggml.scores has 2 entries, expected 9 (one per token)");
}

TEST_F(BpeVocabFile, EmptyVocab) {
  writer_.set("tokenizer.ggml.tokens", GgufValue::string_array({}));
  writer_.set("tokenizer.ggml.token_type", GgufValue::i32_array({}));
  EXPECT_EQ(load_error(), "tokenizer.ggml.tokens is empty");
  EXPECT_EQ(code_, ErrorCode::kFormat);
}

TEST_F(BpeVocabFile, SpecialIdOutOfRange) {
  writer_.set("tokenizer.ggml.bos_token_id", GgufValue::u32(9));
  EXPECT_EQ(load_error(),
            "tokenizer.ggml.bos_token_id = 9 is out of range (the vocab has 9 tokens)");
  EXPECT_EQ(code_, ErrorCode::kFormat);
}

TEST_F(BpeVocabFile, UnknownPreTokenizerIsNamedWithTheSupportedOnes) {
  writer_.set("tokenizer.ggml.pre", GgufValue::str("no-such-pre"));
  const std::string error = load_error();
  EXPECT_EQ(code_, ErrorCode::kUnsupported);
  EXPECT_EQ(error.rfind("tokenizer.ggml.pre = 'no-such-pre' is not a supported pre-tokenizer "
                        "(supported: default, llama3, ",
                        0),
            0u)
      << error;
  for (const char* name :
       {"gpt-2", "llama-bpe", "qwen2", "qwen35", "deepseek-llm", "deepseek-coder", "falcon", "mpt",
        "starcoder", "refact", "command-r", "smollm", "tekken"}) {
    EXPECT_NE(error.find(std::string(", ") + name), std::string::npos) << name;
  }
}

// llama.cpp ignores tokenizer.ggml.pre for SentencePiece vocabs (its pre type is always the
// default there), so a file it loads must load here too.
TEST_F(BpeVocabFile, PreTokenizerOnASentencePieceVocabIsIgnored) {
  writer_.set("tokenizer.ggml.model", GgufValue::str("llama"));
  writer_.set("tokenizer.ggml.pre", GgufValue::str("qwen2"));
  writer_.set("tokenizer.ggml.token_type",
              GgufValue::i32_array(std::vector<int32_t>(kTokens.size(), 1)));
  EXPECT_EQ(load_error(), "");
}

TEST_F(BpeVocabFile, UnknownModel) {
  writer_.set("tokenizer.ggml.model", GgufValue::str("rwkv"));
  EXPECT_EQ(load_error(),
            "tokenizer.ggml.model = 'rwkv' is not supported (supported: llama, gpt2, gemma4)");
  EXPECT_EQ(code_, ErrorCode::kUnsupported);
}

// Gemma 4: spaces become "▁", only newlines cut words, a newline run that is a token stays whole,
// bytes without a token become <0xXX> tokens, and a BOS is added even if the file says not.
GgufWriter gemma4_writer(const std::string& model, const std::string& pre) {
  GgufWriter writer;
  writer.set("tokenizer.ggml.model", GgufValue::str(model));
  if (!pre.empty()) writer.set("tokenizer.ggml.pre", GgufValue::str(pre));
  writer.set("tokenizer.ggml.tokens",
             GgufValue::string_array({"<bos>", "a", "\xE2\x96\x81",
                                      "\xE2\x96\x81"
                                      "a",
                                      "\n", "\n\n", "<0xC3>", "<0xA9>", "\n\n\n"}));
  writer.set("tokenizer.ggml.token_type", GgufValue::i32_array({3, 1, 1, 1, 1, 1, 6, 6, 1}));
  writer.set("tokenizer.ggml.merges", GgufValue::string_array({"\xE2\x96\x81 a", "\n \n"}));
  writer.set("tokenizer.ggml.bos_token_id", GgufValue::u32(0));
  writer.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(false));
  return writer;
}

TEST_F(BpeVocabFile, Gemma4) {
  writer_ = gemma4_writer("gemma4", "");
  ASSERT_EQ(load_error(), "");
  EXPECT_TRUE(tokenizer_->vocab().add_bos);
  // "\n\n\n" is a token although no merge makes it; "\n\n\n\n" is not: merged as \n\n \n\n.
  EXPECT_EQ(encode("a a\n\n\n\xC3\xA9\n\n\n\n"), (std::vector<TokenId>{1, 3, 8, 6, 7, 5, 5}));
  EXPECT_EQ(tokenizer_->decode({0, 1, 3, 8, 6, 7, 5, 5}), "a a\n\n\n\xC3\xA9\n\n\n\n");
}

// llama.cpp gives a gpt2 vocab whose pre is "gemma4" the same tokenizer.
TEST_F(BpeVocabFile, Gpt2WithGemma4PreIsGemma4) {
  writer_ = gemma4_writer("gpt2", "gemma4");
  ASSERT_EQ(load_error(), "");
  EXPECT_TRUE(tokenizer_->vocab().add_bos);
  EXPECT_EQ(encode("a a\n\n\n\xC3\xA9\n\n\n\n"), (std::vector<TokenId>{1, 3, 8, 6, 7, 5, 5}));
}

std::unique_ptr<Tokenizer> shared_vocab(const std::string& name) {
  Result<GgufFile> gguf =
      GgufFile::open(test::shared_path("data/vocab/ggml-vocab-" + name + ".gguf"));
  EXPECT_TRUE(gguf.ok());
  if (!gguf.ok()) return nullptr;
  Result<Vocab> vocab = vocab_from_gguf(gguf.value());
  EXPECT_TRUE(vocab.ok());
  if (!vocab.ok()) return nullptr;
  Result<std::unique_ptr<Tokenizer>> tokenizer = make_tokenizer(std::move(vocab).value());
  EXPECT_TRUE(tokenizer.ok());
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

// A byte-level token can end inside a UTF-8 character: the StreamDecoder holds the bytes back
// until the character is whole, and adds no space in front (no dummy prefix in BPE).
TEST(BpeStreamDecoder, PrintsWholeCharactersOnly) {
  const std::unique_ptr<Tokenizer> tokenizer = shared_vocab("gpt-2");
  ASSERT_NE(tokenizer, nullptr);
  const std::string text = " \xE2\x98\x83\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E ok";  // " ☃日本語 ok"
  Result<std::vector<TokenId>> ids = tokenizer->encode(text, false, false);
  ASSERT_TRUE(ids.ok());
  StreamDecoder decoder(*tokenizer);
  std::string printed;
  size_t held_back = 0;
  for (const TokenId id : ids.value()) {
    const std::string piece = decoder.push(id);
    if (piece.empty()) ++held_back;
    // A printed piece ends on a character boundary: its last byte is ASCII or a continuation.
    if (!piece.empty()) {
      const auto last = static_cast<unsigned char>(piece.back());
      EXPECT_TRUE(last < 0x80 || (last & 0xC0) == 0x80) << "a piece ends in a lead byte";
    }
    printed += piece;
  }
  printed += decoder.flush();
  EXPECT_GT(held_back, 0u) << "no token ended inside a character: the test proves nothing";
  EXPECT_EQ(printed, text);
}

// Random text from many scripts, controls and unusual whitespace (a fixed LCG, so the same
// text each run) comes back from decode(encode(x)) for the byte-level and gemma4 vocabularies,
// which have a token for every byte.
TEST(BpeRoundTrip, RandomUnicodeText) {
  constexpr std::pair<uint32_t, uint32_t> kRanges[] = {
      {0x00, 0x7F},       {0xA0, 0x24F},    {0x370, 0x52F},      {0x590, 0x6FF},
      {0x900, 0x97F},     {0x1F00, 0x1FFF}, {0x2000, 0x206F},    {0x3000, 0x30FF},
      {0x4E00, 0x4FFF},   {0xAC00, 0xAD00}, {0xFF00, 0xFFEF},    {0x1F300, 0x1F6FF},
      {0x1D400, 0x1D7FF}, {0xE000, 0xE0FF}, {0x10FF00, 0x10FFFF}};
  std::string text;
  uint64_t x = 12345;
  auto next = [&x] {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(x >> 33);
  };
  // Smaller and fewer vocabularies under the sanitizers, where loading one takes seconds.
  const size_t n_bytes = test::kSanitizedBuild ? 8000 : 20000;
  while (text.size() < n_bytes) {
    const auto& [lo, hi] = kRanges[next() % std::size(kRanges)];
    const uint32_t cp = lo + next() % (hi - lo + 1);
    if (cp < 0x80) {
      text += static_cast<char>(cp);
    } else if (cp < 0x800) {
      text += static_cast<char>(0xC0 | (cp >> 6));
      text += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      text += static_cast<char>(0xE0 | (cp >> 12));
      text += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      text += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      text += static_cast<char>(0xF0 | (cp >> 18));
      text += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      text += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      text += static_cast<char>(0x80 | (cp & 0x3F));
    }
    if (next() % 6 == 0) text += ' ';
  }
  const std::vector<std::string> names =
      test::kSanitizedBuild
          ? std::vector<std::string>{"gpt-2", "deepseek-llm"}
          : std::vector<std::string>{"gpt-2", "qwen35", "deepseek-llm", "gemma-4"};
  for (const std::string& name : names) {
    const std::unique_ptr<Tokenizer> tokenizer = shared_vocab(name);
    ASSERT_NE(tokenizer, nullptr);
    Result<std::vector<TokenId>> ids = tokenizer->encode(text, false, false);
    ASSERT_TRUE(ids.ok()) << name << ": " << ids.error().message();
    EXPECT_EQ(tokenizer->decode(ids.value()), text) << name;
  }
}

// encode is const and may run on several threads at once (PCRE2 match state is per thread).
TEST(BpeThreads, ConcurrentEncodesAgree) {
  const std::unique_ptr<Tokenizer> tokenizer = shared_vocab("gpt-2");
  ASSERT_NE(tokenizer, nullptr);
  std::string text;
  for (int i = 0; i < 200; ++i)
    text += "Thread " + std::to_string(i) + " says h\xC3\xA9llo, world!\n";
  Result<std::vector<TokenId>> expected = tokenizer->encode(text, false, false);
  ASSERT_TRUE(expected.ok());
  std::vector<std::vector<TokenId>> got(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round) {
        Result<std::vector<TokenId>> ids = tokenizer->encode(text, false, false);
        if (ids.ok()) got[t] = ids.value();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::vector<TokenId>& ids : got) EXPECT_EQ(ids, expected.value());
}

// The pre-tokenizer's words, for the regex rules llama.cpp's own matching has.
std::vector<std::string> words(const std::string& pre, std::string_view text) {
  const PreTokenizerSpec* spec = find_pre_tokenizer(pre);
  EXPECT_NE(spec, nullptr) << pre;
  if (spec == nullptr) return {};
  Result<std::unique_ptr<PreTokenizer>> pt = PreTokenizer::create(*spec);
  EXPECT_TRUE(pt.ok());
  Result<std::vector<uint32_t>> ends = pt.value()->split(text);
  EXPECT_TRUE(ends.ok());
  std::vector<std::string> out;
  uint32_t begin = 0;
  for (const uint32_t end : ends.value()) {
    out.emplace_back(text.substr(begin, end - begin));
    begin = end;
  }
  return out;
}

TEST(PreTokenizer, EveryPatternCompiles) {
  for (const char* pre :
       {"default", "llama-bpe", "deepseek-llm", "deepseek-coder", "falcon", "gpt-2", "starcoder",
        "qwen2", "qwen35", "tekken", "gpt-4o", "bloom", "viking"}) {
    const PreTokenizerSpec* spec = find_pre_tokenizer(pre);
    ASSERT_NE(spec, nullptr) << pre;
    Result<std::unique_ptr<PreTokenizer>> pt = PreTokenizer::create(*spec);
    EXPECT_TRUE(pt.ok()) << pre << ": " << (pt.ok() ? "" : pt.error().message());
  }
}

TEST(PreTokenizer, WhitespaceIsLlamaCppsSet) {
  // U+0085 (NEL) is whitespace to llama.cpp: "\s+(?!\S)" leaves the last one to the word.
  EXPECT_EQ(words("gpt-2",
                  "a\xC2\x85\xC2\x85"
                  "b"),
            (std::vector<std::string>{"a", "\xC2\x85", "\xC2\x85", "b"}));
  // Llama 3: \s*[\r\n]+ takes the spaces before a newline.
  EXPECT_EQ(words("llama-bpe", "x  \n\ny"), (std::vector<std::string>{"x", "  \n\n", "y"}));
  // Digits in threes (llama3) or one by one (qwen2).
  EXPECT_EQ(words("llama-bpe", "12345"), (std::vector<std::string>{"123", "45"}));
  EXPECT_EQ(words("qwen2", "123"), (std::vector<std::string>{"1", "2", "3"}));
}

TEST(PreTokenizer, IdeographicSpaceIsNotCjkOrPunctuation) {
  // llama.cpp maps U+3000 to \v before matching, so deepseek's ranges that span it miss it.
  EXPECT_EQ(words("deepseek-coder", "\xE4\xB8\x80\xE3\x80\x80\xE4\xB8\x80"),
            (std::vector<std::string>{"\xE4\xB8\x80", "\xE3\x80\x80", "\xE4\xB8\x80"}));
}

}  // namespace
}  // namespace sllm
