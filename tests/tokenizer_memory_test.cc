// The SentencePiece tokenizer's memory follows its input: merges run in segments split where no
// vocab entry can straddle, and segmenting never changes a single id.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "util/mapped_file.h"

namespace sllm {
namespace {

using test::shared_path;

Vocab load_vocab(const std::string& name) {
  auto gguf = GgufFile::open(shared_path("data/vocab/ggml-vocab-" + name + ".gguf"));
  if (!gguf.ok()) throw std::runtime_error(gguf.error().message());
  auto vocab = vocab_from_gguf(*gguf);
  if (!vocab.ok()) throw std::runtime_error(vocab.error().message());
  return std::move(vocab).value();
}

std::string read_text(const std::string& rel) {
  auto text = read_file(shared_path(rel));
  if (!text.ok()) throw std::runtime_error(text.error().message());
  return std::move(text).value();
}

// Text that exercises the splitter: prose, runs of spaces and newlines (which long "▁▁▁" and
// "\n\n" entries straddle), digits, and multi-byte characters.
std::string mixed_text(size_t n_bytes) {
  const std::string prose = read_text("data/text/gutenberg_pg1342.txt");
  const std::string inserts[] = {
      "        ", "\n\n\n",    "  x  ", "12345678901234567890", "héllo wörld ", "日本語のテキスト ",
      "\t\t",     "🙂🙂 ", ""};
  std::string out;
  size_t i = 0;
  while (out.size() < n_bytes) {
    const size_t take = 37 + (i * 7919) % 301;
    out.append(prose, (i * 104729) % (prose.size() - take), take);
    out.append(inserts[i % std::size(inserts)]);
    ++i;
  }
  return out;
}

std::vector<TokenId> encode(const Tokenizer& t, const std::string& text) {
  auto ids = t.encode(text, true, false);
  if (!ids.ok()) throw std::runtime_error(ids.error().message());
  return std::move(ids).value();
}

// Segments as small as 16 bytes put a boundary attempt every few characters: every one of them
// must leave the ids exactly as merging each fragment whole.
TEST(SpmSegments, SmallSegmentsGiveTheSameIdsAsWholeFragments) {
  for (const char* name : {"llama-spm", "phi-3"}) {
    const Vocab vocab = load_vocab(name);
    const auto whole = make_spm_tokenizer_for_test(vocab, 0);
    const std::string text = mixed_text(60000);
    const std::vector<TokenId> expected = encode(*whole, text);
    for (size_t segment_bytes : {16, 64, 1000}) {
      const auto segmented = make_spm_tokenizer_for_test(vocab, segment_bytes);
      EXPECT_EQ(encode(*segmented, text), expected) << name << " segments of " << segment_bytes;
    }
    // And every llama.cpp test case, whose edge cases (spaces, newlines, tabs) matter most.
    const std::string inp = read_text("data/vocab/ggml-vocab-" + std::string(name) + ".gguf.inp");
    const auto segmented = make_spm_tokenizer_for_test(vocab, 16);
    const std::string sep = "\n__ggml_vocab_test__\n";
    size_t n_cases = 0;
    for (size_t pos = 0; pos < inp.size();) {
      size_t next = inp.find(sep, pos);
      if (next == std::string::npos) next = inp.size();
      const std::string one = inp.substr(pos, next - pos);
      EXPECT_EQ(encode(*segmented, one), encode(*whole, one)) << name << ": '" << one << "'";
      pos = next + sep.size();
      ++n_cases;
    }
    EXPECT_GE(n_cases, 40u);
  }
}

// The default tokenizer (1 MiB segments) against whole fragments on 2.5 MB: two real
// boundaries.
TEST(SpmSegments, DefaultSegmentsGiveTheSameIdsOnMegabytes) {
  if (test::kSanitizedBuild) GTEST_SKIP() << "2.5 MB twice is slow under sanitizers";
  const Vocab vocab = load_vocab("llama-spm");
  const std::string text = mixed_text(5 << 19);
  EXPECT_EQ(encode(*make_spm_tokenizer(vocab), text),
            encode(*make_spm_tokenizer_for_test(vocab, 0), text));
}

using test::peak_rss_bytes;
using test::reset_peak_rss;

// Issue 8: a 50 MB prompt peaked at 2.1 GB. 24 MB of text now costs its escaped copy, the ids
// and one segment's merge state: bounded here at 6 bytes per input byte (about 150 MB).
TEST(SpmSegments, PeakMemoryOfA24MBPromptIsProportionalToIt) {
  if (test::kSanitizedBuild) GTEST_SKIP() << "peak memory is not meaningful under sanitizers";
  const Vocab vocab = load_vocab("llama-spm");
  const auto tokenizer = make_spm_tokenizer(vocab);
  const std::string text = mixed_text(24 << 20);
  if (!reset_peak_rss()) GTEST_SKIP() << "cannot reset the peak RSS (/proc/self/clear_refs)";
  const uint64_t before = peak_rss_bytes();
  const std::vector<TokenId> ids = encode(*tokenizer, text);
  const uint64_t growth = peak_rss_bytes() - before;
  EXPECT_GT(ids.size(), text.size() / 8);
  EXPECT_LT(growth, 6 * text.size())
      << "peak grew by " << growth << " bytes for " << text.size() << " bytes of text";
  std::printf("24 MB prompt: %zu tokens, peak RSS growth %llu MB\n", ids.size(),
              static_cast<unsigned long long>(growth >> 20));
}

}  // namespace
}  // namespace sllm
