// Long real text tokenizes to llama.cpp's ids (issue 10, acceptance 3): every vocabulary in
// ../shared/data/vocab (bert-bge aside) x every book in ../shared/data/text and every text in
// tests/data/texts. The goldens (tests/data/tokenizer_goldens/VOCAB.txt) are llama.cpp's ids, as
// digests, written by scripts/peer_tokenize.py --write-goldens through node-llama-cpp; this test
// goes through the public API only, as a user's program would.
//
// Each case: the text (whole, or its first 64 KB cut back to a character boundary), llama.cpp's
// token count, the sha256 of its ids (little-endian uint32), a digest per block of 4096 ids (to
// name the first block that differs) and its first 64 ids. One test per vocabulary runs all its
// cases and fails once per differing case. Under the sanitizers only our texts and the first
// 64 KB of one book run, to keep CI fast; Release runs everything.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "sha256.h"
#include "streamingllm/streamingllm.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;

constexpr size_t kBlock = 4096;
constexpr size_t kPrefixBytes = 65536;
const fs::path kGoldens = fs::path(SLLM_SOURCE_DIR) / "tests" / "data" / "tokenizer_goldens";
const fs::path kShared = SLLM_SHARED_DIR;
const fs::path kSource = SLLM_SOURCE_DIR;

struct GoldenCase {
  std::string vocab;  // e.g. "llama-bpe"
  std::string root;   // "shared" (../shared) or "source" (the project)
  std::string rel;    // path of the text under root
  size_t max_bytes = 0;
  size_t text_bytes = 0;
  std::string text_sha256;  // first 16 hex digits
  size_t count = 0;
  std::string sha256;
  std::vector<std::string> blocks;  // first 16 hex digits of each block's sha256
  std::vector<sllm::TokenId> first;
  std::string where;  // golden file and line, for messages
};

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Goldens {
  std::vector<GoldenCase> cases;
  std::vector<std::string> errors;  // parse errors: reported by a test, never skipped
};

// Reads every golden file; a malformed one is an error (reported by the Coverage test), not a
// silently smaller suite.
Goldens load_goldens() {
  Goldens g;
  if (!fs::is_directory(kGoldens)) {
    g.errors.push_back("no goldens directory " + kGoldens.string());
    return g;
  }
  std::set<fs::path> files;
  for (const auto& e : fs::directory_iterator(kGoldens)) {
    if (e.path().extension() == ".txt") files.insert(e.path());
  }
  for (const fs::path& p : files) {
    std::istringstream in(read_bytes(p));
    std::string line;
    int lineno = 0;
    GoldenCase c;
    bool open = false;
    while (std::getline(in, line)) {
      ++lineno;
      if (line.empty() || line[0] == '#') continue;
      std::istringstream ls(line);
      std::string key;
      ls >> key;
      const std::string where = p.filename().string() + ":" + std::to_string(lineno);
      if (key == "case") {
        c = GoldenCase{};
        c.vocab = p.stem().string();
        c.where = where;
        ls >> c.root >> c.rel >> c.max_bytes;
        open = true;
      } else if (!open) {
        g.errors.push_back(where + ": '" + key + "' outside a case");
      } else if (key == "text_bytes") {
        ls >> c.text_bytes;
      } else if (key == "text_sha256") {
        ls >> c.text_sha256;
      } else if (key == "count") {
        ls >> c.count;
      } else if (key == "sha256") {
        ls >> c.sha256;
      } else if (key == "blocks") {
        for (std::string b; ls >> b;) c.blocks.push_back(b);
      } else if (key == "first") {
        for (sllm::TokenId t; ls >> t;) c.first.push_back(t);
      } else if (key == "end") {
        if (c.sha256.size() != 64 || c.blocks.size() != (c.count + kBlock - 1) / kBlock ||
            c.first.size() != std::min<size_t>(c.count, 64) || c.rel.empty()) {
          g.errors.push_back(where + ": incomplete case for " + c.rel);
        } else {
          g.cases.push_back(c);
        }
        open = false;
      } else {
        g.errors.push_back(where + ": unknown key '" + key + "'");
      }
      if (ls.fail() && !ls.eof()) g.errors.push_back(where + ": malformed line: " + line);
    }
    if (open) g.errors.push_back(p.filename().string() + ": last case has no 'end'");
  }
  return g;
}

const Goldens& goldens() {
  static const Goldens g = load_goldens();
  return g;
}

// Under the sanitizers (Debug, ASan: tens of KB/s, and the large BPE vocabularies take seconds to
// load) only our texts (all under 64 KB: every script, emoji, edge cases, code) and the first
// 64 KB of one book run: all 21 cases took up to 24 s per vocabulary there.
bool runs_here(const GoldenCase& c) {
#if defined(SLLM_TEST_ASAN)
  return (c.max_bytes == 0 && c.text_bytes <= kPrefixBytes) ||
         (c.max_bytes != 0 && c.rel == "data/text/gutenberg_pg1342.txt");
#else
  (void)c;
  return true;
#endif
}

// The vocabularies with goldens, in order: one test each, so that each loads its vocabulary once
// (up to a second in Release and several under ASan for the large BPE vocabularies) and ctest
// starts 15 processes, not 315.
std::vector<std::string> vocabularies_with_goldens() {
  std::set<std::string> names;
  for (const GoldenCase& c : goldens().cases) names.insert(c.vocab);
  return {names.begin(), names.end()};
}

// The rule of scripts/peer_tokenize.py: back off to a UTF-8 character boundary.
std::string prefix(std::string text, size_t max_bytes) {
  if (max_bytes == 0 || text.size() <= max_bytes) return text;
  size_t n = max_bytes;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  text.resize(n);
  return text;
}

std::string ids_digest(const std::vector<sllm::TokenId>& ids, size_t from, size_t to) {
  sllm::test::Sha256 s;
  for (size_t i = from; i < to; ++i) {
    const auto v = static_cast<uint32_t>(ids[i]);
    const uint8_t le[4] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8),
                           static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 24)};
    s.update(le, 4);
  }
  return s.hex();
}

std::string ids_text(const std::vector<sllm::TokenId>& ids, size_t from, size_t n) {
  std::string out;
  for (size_t i = from; i < std::min(ids.size(), from + n); ++i) {
    if (i > from) out += ' ';
    out += std::to_string(ids[i]);
  }
  return out;
}

// Empty when the vocabulary tokenizes the case's text to llama.cpp's ids; else what differs.
std::string check_case(const GoldenCase& c, const sllm::Vocabulary& vocab) {
  const fs::path text_path = (c.root == "shared" ? kShared : kSource) / c.rel;
  if (!fs::exists(text_path)) return "text " + text_path.string() + " is missing";
  const std::string text = prefix(read_bytes(text_path), c.max_bytes);
  if (text.size() != c.text_bytes || sllm::test::sha256_hex(text).substr(0, 16) != c.text_sha256) {
    return text_path.string() +
           " changed since the goldens were written: rerun scripts/peer_tokenize.py "
           "--write-goldens";
  }
  auto ids = vocab.tokenize(text, /*add_bos=*/false, /*parse_special=*/false);
  if (!ids.ok()) return "tokenize failed: " + ids.error().message();
  std::ostringstream why;
  // The first ids verbatim: the index of the first difference, with both sides around it.
  for (size_t i = 0; i < c.first.size(); ++i) {
    if (i >= ids->size() || (*ids)[i] != c.first[i]) {
      const size_t from = i < 4 ? 0 : i - 4;
      why << "ids differ from llama.cpp's at index " << i << "; from index " << from
          << ": llama.cpp " << ids_text(c.first, from, 10) << " | ours "
          << ids_text(*ids, from, 10);
      return why.str();
    }
  }
  // Then block by block: the first block whose digest differs.
  const size_t n_blocks = (ids->size() + kBlock - 1) / kBlock;
  for (size_t b = 0; b < std::min(n_blocks, c.blocks.size()); ++b) {
    const size_t from = b * kBlock;
    const size_t to = std::min(ids->size(), from + kBlock);
    if (ids_digest(*ids, from, to).substr(0, 16) != c.blocks[b]) {
      why << "ids differ from llama.cpp's in block " << b << " (ids " << from << ".." << to - 1
          << " of " << ids->size() << ", llama.cpp has " << c.count << "); ours from index " << from
          << ": " << ids_text(*ids, from, 12)
          << "; the exact index: scripts/peer_tokenize.py --vocab " << c.vocab << " --text "
          << fs::path(c.rel).filename().string();
      return why.str();
    }
  }
  if (ids->size() != c.count) {
    why << "token count " << ids->size() << ", llama.cpp's " << c.count;
    return why.str();
  }
  if (ids_digest(*ids, 0, ids->size()) != c.sha256) return "sha256 of the ids differs";
  return "";
}

class PeerGolden : public ::testing::TestWithParam<std::string> {};

// Every case of one vocabulary; each failing case is its own failure, naming the case.
TEST_P(PeerGolden, TokenizesLikeLlamaCpp) {
  const std::string& name = GetParam();
  const fs::path path = kShared / "data" / "vocab" / ("ggml-vocab-" + name + ".gguf");
  auto vocab = sllm::Vocabulary::load(path.string());
  ASSERT_TRUE(vocab.ok()) << path.filename() << " does not load: " << vocab.error().message();
  size_t n = 0, equal = 0;
  for (const GoldenCase& c : goldens().cases) {
    if (c.vocab != name || !runs_here(c)) continue;
    ++n;
    const std::string why = check_case(c, **vocab);
    if (why.empty()) {
      ++equal;
    } else {
      ADD_FAILURE() << c.where << ": " << name << " on " << c.rel
                    << (c.max_bytes ? " (first " + std::to_string(c.max_bytes) + " bytes)" : "")
                    << ": " << why;
    }
  }
  EXPECT_GT(n, 0u) << "no cases for " << name;
  std::cout << name << ": " << equal << " of " << n << " texts tokenize as llama.cpp does\n";
}

std::string case_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Goldens, PeerGolden, ::testing::ValuesIn(vocabularies_with_goldens()),
                         case_name);

// Without this a missing or truncated goldens directory would mean fewer cases, not a failure.
TEST(PeerGoldenCoverage, EveryVocabularyAndTextHasItsGoldens) {
  for (const std::string& e : goldens().errors) ADD_FAILURE() << e;
  std::set<std::string> have;
  for (const GoldenCase& c : goldens().cases) {
    have.insert(c.vocab + " " + c.root + " " + c.rel + " " + std::to_string(c.max_bytes));
  }
  std::vector<std::pair<std::string, fs::path>> texts;
  for (const auto& e : fs::directory_iterator(kShared / "data" / "text")) {
    if (e.path().extension() == ".txt") {
      texts.emplace_back("shared " + fs::relative(e.path(), kShared).string(), e.path());
    }
  }
  for (const auto& e : fs::directory_iterator(kSource / "tests" / "data" / "texts")) {
    if (e.path().extension() == ".txt") {
      texts.emplace_back("source " + fs::relative(e.path(), kSource).string(), e.path());
    }
  }
  ASSERT_GE(texts.size(), 15u) << "the books and our texts";
  size_t n_vocabs = 0;
  for (const auto& e : fs::directory_iterator(kShared / "data" / "vocab")) {
    const std::string file = e.path().filename().string();
    if (e.path().extension() != ".gguf" || file == "ggml-vocab-bert-bge.gguf") continue;
    ++n_vocabs;
    const std::string vocab = file.substr(11, file.size() - 11 - 5);  // ggml-vocab-NAME.gguf
    for (const auto& [key, path] : texts) {
      EXPECT_TRUE(have.count(vocab + " " + key + " 0")) << "no golden for " << vocab << " " << key;
      if (fs::file_size(path) > kPrefixBytes) {
        EXPECT_TRUE(have.count(vocab + " " + key + " " + std::to_string(kPrefixBytes)))
            << "no 64 KB golden for " << vocab << " " << key;
      }
    }
  }
  EXPECT_GE(n_vocabs, 15u) << "vocabularies in " << kShared / "data" / "vocab";
}

}  // namespace
