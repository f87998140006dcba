// Issue 4: streaming perplexity. The library first (NLL, batched = token by token, the stream of
// several files), then the `ppl` command end to end on stories260K and the TinyStories text.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "cli_runner.h"
#include "engine_fixture.h"
#include "runtime/perplexity.h"

namespace sllm::test {
namespace {

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// The first whole lines of the TinyStories text, about 12 KB or 5800 tokens (the text averages
// 2 bytes per token): the CLI tokenizes the whole file, which is slow under ASan for 800 KB.
const std::string& stories_head() {
  static const std::string path = [] {
    std::ifstream in(shared_path("data/text/tinystories_val_head.txt"), std::ios::binary);
    std::string text(12000, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    const std::string p = temp_dir() + "/stories_head.txt";
    write_text(p, text.substr(0, text.rfind('\n') + 1));  // whole lines: no split UTF-8
    return p;
  }();
  return path;
}

TEST(PerplexityTest, TokenNllIsMinusLogSoftmax) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f, -1.0f};
  double z = 0;
  for (float l : logits) z += std::exp(static_cast<double>(l));
  for (TokenId t = 0; t < 4; ++t) {
    EXPECT_NEAR(token_nll(logits, t), std::log(z) - logits[static_cast<size_t>(t)], 1e-12);
  }
  // Large logits: the max is subtracted first, so nothing overflows.
  EXPECT_NEAR(token_nll(std::vector<float>{1000.0f, 1000.0f}, 0), std::log(2.0), 1e-12);
}

TEST(PerplexityTest, PplIsExpOfMeanNllOverARange) {
  PerplexityResult r;
  r.nll = {std::log(2.0), std::log(8.0), std::log(4.0)};
  EXPECT_NEAR(r.ppl(), 4.0, 1e-12);  // (2 * 8 * 4)^(1/3)
  EXPECT_NEAR(r.ppl(0, 2), 4.0, 1e-12);
  EXPECT_NEAR(r.ppl(2, 3), 4.0, 1e-12);
  EXPECT_NEAR(r.ppl(1, 100), std::sqrt(32.0), 1e-12);  // end is clamped to the size
  EXPECT_TRUE(std::isnan(r.ppl(3, 3)));
}

// Acceptance 3: chunked evaluation (batches of 64, which span evictions and exceed the windows
// below) scores every token as feeding the tokens one at a time does.
TEST(PerplexityTest, BatchedEqualsTokenByToken) {
  ThreadPool pool(2);
  const size_t n_tokens = kSanitized ? 100 : 300;  // [sanitized]
  const auto tokens = story_tokens(n_tokens);
  struct Case {
    CachePolicy policy;
    size_t n_sinks, window;
  };
  for (const Case c :
       {Case{CachePolicy::kDense, 0, n_tokens}, Case{CachePolicy::kWindow, 0, 48},
        Case{CachePolicy::kStreaming, 4, 44}, Case{CachePolicy::kRecompute, 0, 24}}) {
    SCOPED_TRACE(policy_name(c.policy));
    SessionOptions o;
    o.policy = c.policy;
    o.n_sinks = c.n_sinks;
    o.window = c.window;
    o.max_batch = 64;
    auto batched = stream_perplexity(*make_session(o, pool), tokens);
    o.max_batch = 1;
    auto one_by_one = stream_perplexity(*make_session(o, pool), tokens);
    ASSERT_TRUE(batched.ok() && one_by_one.ok());
    ASSERT_EQ(batched->nll.size(), tokens.size() - 1);
    ASSERT_EQ(one_by_one->nll.size(), tokens.size() - 1);
    for (size_t i = 0; i < batched->nll.size(); ++i) {
      ASSERT_NEAR(batched->nll[i], one_by_one->nll[i], 1e-5) << "token " << i + 1;
    }
  }
}

TEST(PerplexityTest, StreamNeedsTwoTokens) {
  ThreadPool pool(1);
  auto session = make_session(SessionOptions{}, pool);
  const std::vector<TokenId> one = {1};
  auto r = stream_perplexity(*session, one);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "perplexity needs at least 2 tokens, the text has 1");
}

TEST(TokenizeStreamTest, BosOnceThenFilesInOrder) {
  const Tokenizer& tok = *stories().tokenizer;
  const std::string a = temp_dir() + "/a.txt", b = temp_dir() + "/b.txt";
  write_text(a, "Once upon a time");
  write_text(b, " there was a cat.");
  auto ids_a = tok.encode("Once upon a time", false, false);
  auto ids_b = tok.encode(" there was a cat.", false, false);
  ASSERT_TRUE(ids_a.ok() && ids_b.ok());
  std::vector<TokenId> expected = {tok.vocab().bos};
  expected.insert(expected.end(), ids_a->begin(), ids_a->end());
  expected.insert(expected.end(), ids_b->begin(), ids_b->end());

  const std::vector<std::string> files = {a, b};
  auto stream = tokenize_stream(tok, files);
  ASSERT_TRUE(stream.ok()) << stream.error().message();
  EXPECT_EQ(*stream, expected);

  auto head = tokenize_stream(tok, files, 3);
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(*head, std::vector<TokenId>(expected.begin(), expected.begin() + 3));
}

TEST(TokenizeStreamTest, EmptyOrMissingFileIsAnError) {
  const Tokenizer& tok = *stories().tokenizer;
  const std::string empty = temp_dir() + "/empty_lib.txt";
  write_text(empty, "");
  auto r = tokenize_stream(tok, std::vector<std::string>{stories_head(), empty});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "'" + empty + "' is empty");
  auto missing = tokenize_stream(tok, std::vector<std::string>{temp_dir() + "/no_such_file"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kIo);
}

// ---------------------------------------------------------------------------------------------
// The `ppl` command.

// Columns of a CSV file with a header row: name -> values.
std::map<std::string, std::vector<std::string>> read_csv(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::vector<std::string> names;
  std::map<std::string, std::vector<std::string>> columns;
  for (bool header = true; std::getline(in, line); header = false) {
    std::stringstream ss(line);
    std::string cell;
    for (size_t i = 0; std::getline(ss, cell, ','); ++i) {
      if (header) {
        names.push_back(cell);
      } else if (i < names.size()) {
        columns[names[i]].push_back(cell);
      }
    }
  }
  return columns;
}

// exp(mean NLL) over the scored tokens with index (stream position) in [begin, end).
double csv_ppl(const std::map<std::string, std::vector<std::string>>& csv, const std::string& col,
               size_t begin, size_t end) {
  const auto& index = csv.at("index");
  const auto& nll = csv.at(col);
  double sum = 0;
  size_t n = 0;
  for (size_t i = 0; i < index.size(); ++i) {
    const size_t pos = std::stoul(index[i]);
    if (pos < begin || pos >= end) continue;
    sum += std::stod(nll[i]);
    ++n;
  }
  EXPECT_EQ(n, end - begin) << col;
  return std::exp(sum / static_cast<double>(n));
}

const std::string kModel = quote(stories_gguf());

TEST(PplCliTest, CsvHasOneRowPerScoredToken) {
  const std::string csv = temp_dir() + "/rows.csv";
  const CliResult r = run_cli("ppl -m " + kModel + " -f " + quote(stories_head()) +
                              " --policy window --window 32 --tokens 100 --csv " + quote(csv));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("stream: 100 tokens (BOS + 99 of text from 1 file(s))"), std::string::npos)
      << r.out;
  const auto columns = read_csv(csv);
  ASSERT_EQ(columns.size(), 3u);
  ASSERT_EQ(columns.at("nll_window").size(), 99u);
  EXPECT_EQ(columns.at("index").front(), "1");
  EXPECT_EQ(columns.at("index").back(), "99");
  EXPECT_EQ(columns.at("token"), [] {
    std::vector<std::string> ids;
    for (TokenId t : story_tokens(100)) ids.push_back(std::to_string(t));
    return std::vector<std::string>(ids.begin() + 1, ids.end());
  }());
}

// Acceptance 1 on a prefix short enough for CI (the full 4096 tokens are in docs/RESULTS.md).
// stories260K was trained on 512-token sequences (its GGUF says 2048): dense attention breaks
// down past its training length. Measured: PPL 3.7 over 0-512, 6.2 over 1024-1280 and 20 over
// 2048-2560. [sanitized] Dense costs O(n) per token: 1280 tokens, 1024-1280.
TEST(PplCliTest, DenseBreaksPastTheTrainingLength) {
  const size_t n_tokens = kSanitized ? 1280 : 2560, far_from = kSanitized ? 1024 : 2048;
  const double factor = kSanitized ? 1.4 : 3;
  const std::string csv = temp_dir() + "/dense.csv";
  const CliResult r =
      run_cli("ppl -m " + kModel + " -f " + quote(stories_head()) + " --policy dense --tokens " +
              std::to_string(n_tokens) + " --csv " + quote(csv));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto columns = read_csv(csv);
  const double in_training = csv_ppl(columns, "nll_dense", 1, 512);
  const double beyond = csv_ppl(columns, "nll_dense", far_from, n_tokens);
  EXPECT_LT(in_training, 4.5);
  EXPECT_GT(beyond, factor * in_training) << in_training << " vs " << beyond;
}

// Acceptance 1: streaming with 4 sinks + 124 window is within 2% of the sliding window with
// re-computation of 128 tokens (the paper's quality baseline), 8 windows into the stream.
// [sanitized] Recompute costs W forwards per token: 4 + 28 vs 32 over 256 tokens (measured 1.0%
// apart; 0.8% at full size).
TEST(PplCliTest, StreamingIsWithinTwoPercentOfRecompute) {
  const size_t cache = kSanitized ? 32 : 128, n_tokens = kSanitized ? 256 : 1024;
  const std::string csv = temp_dir() + "/stream_vs_recompute.csv";
  const CliResult r = run_cli("ppl -m " + kModel + " -f " + quote(stories_head()) +
                              " --compare streaming,recompute --cache " + std::to_string(cache) +
                              " --tokens " + std::to_string(n_tokens) + " --csv " + quote(csv));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(" 4+" + std::to_string(cache - 4) + " "), std::string::npos) << r.out;
  const auto columns = read_csv(csv);
  const double streaming = csv_ppl(columns, "nll_streaming", 1, n_tokens);
  const double recompute = csv_ppl(columns, "nll_recompute", 1, n_tokens);
  EXPECT_LT(std::abs(streaming / recompute - 1), 0.02) << streaming << " vs " << recompute;
  // Not two equally broken models: measured 3.91 (4.63 with cache 32).
  EXPECT_LT(recompute, kSanitized ? 5.0 : 4.5);
}

// Acceptance 2: a streaming cache larger than the stream never evicts, and is then dense
// attention exactly: the same NLLs to the last printed digit.
TEST(PplCliTest, StreamingWithoutEvictionEqualsDense) {
  const std::string dense = temp_dir() + "/eq_dense.csv", streaming = temp_dir() + "/eq_s.csv";
  const size_t n_tokens = kSanitized ? 300 : 700;  // [sanitized]
  const std::string common = "ppl -m " + kModel + " -f " + quote(stories_head()) + " --tokens " +
                             std::to_string(n_tokens) + " --csv ";
  const CliResult d = run_cli(common + quote(dense) + " --policy dense");
  const CliResult s = run_cli(common + quote(streaming) + " --policy streaming --window 1020");
  ASSERT_EQ(d.exit_code, 0) << d.err;
  ASSERT_EQ(s.exit_code, 0) << s.err;
  const auto dc = read_csv(dense), sc = read_csv(streaming);
  ASSERT_EQ(dc.at("nll_dense").size(), n_tokens - 1);
  EXPECT_EQ(dc.at("nll_dense"), sc.at("nll_streaming"));
  EXPECT_EQ(dc.at("token"), sc.at("token"));
}

// Acceptance 5: bad input fails with a clear message and a non-zero exit code.
TEST(PplCliTest, BadInputIsAClearError) {
  const std::string empty = temp_dir() + "/empty.txt", one = temp_dir() + "/one_token.txt";
  write_text(empty, "");
  write_text(one, "a");
  struct Case {
    std::string args, message;
  };
  const std::string m = "ppl -m " + kModel + " ";
  const std::string text = quote(stories_head());
  for (const Case& c : {
           Case{"-f " + quote(empty), "error: '" + empty + "' is empty"},
           Case{"-f " + quote(one),
                "error: the text is 1 token(s) long; perplexity needs at "
                "least 2"},
           Case{"-f " + quote(temp_dir() + "/missing.txt"), "File does not exist"},
           Case{"-f " + text + " --policy window --window 0", "error: --window must be at least 1"},
           Case{"-f " + text + " --compare window,streaming --cache 0",
                "error: --cache must be at least 1"},
           Case{"-f " + text + " --compare window,streaming --sinks 200 --cache 128",
                "error: --sinks 200 leaves no room for a window in a cache of 128"},
           Case{"-f " + text + " --policy streaming --sinks 64 --cache 64",
                "error: --sinks 64 leaves no room for a window in a cache of 64"},
           Case{"-f " + text + " --policy window --sinks 4 --cache 64",
                "error: --sinks applies to --policy streaming only"},
           Case{"-f " + text + " --compare window --window 64",
                "error: with --compare or --cache, set the cache size with --cache only"},
           Case{"-f " + text + " --tokens 2",
                "error: --tokens 2 leaves fewer than 2 tokens of text (the stream starts with "
                "BOS)"},
           Case{"-f " + text + " --compare window,sliding",
                "error: unknown cache policy 'sliding'"},
       }) {
    SCOPED_TRACE(c.args);
    const CliResult r = run_cli(m + c.args);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }
}

}  // namespace
}  // namespace sllm::test
