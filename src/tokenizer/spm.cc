// SentencePiece-style tokenizer (GGUF `tokenizer.ggml.model = llama`), token for token the
// algorithm of llama.cpp's llm_tokenizer_spm: spaces become U+2581, a dummy "▁" goes in front,
// the text is split into UTF-8 characters, and the adjacent pair whose concatenation is the
// highest-scoring vocab entry is merged until no pair is in the vocab (ties: the leftmost pair).
// What stays outside the vocab falls back to <0xXX> byte tokens.
#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/special_split.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace sllm {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 "▁", SentencePiece's space
constexpr char kHexDigits[] = "0123456789ABCDEF";

// `prefix` + text with every `from` replaced by `to`, sized exactly before it is filled.
std::string replace_all(std::string_view text, std::string_view from, std::string_view to,
                        std::string_view prefix = {}) {
  size_t n_matches = 0;
  for (size_t pos = 0; (pos = text.find(from, pos)) != std::string_view::npos; pos += from.size()) {
    ++n_matches;
  }
  std::string out;
  out.reserve(prefix.size() + text.size() + n_matches * to.size() - n_matches * from.size());
  out.append(prefix);
  size_t start = 0;
  for (size_t pos; (pos = text.find(from, start)) != std::string_view::npos;) {
    out.append(text, start, pos - start);
    out.append(to);
    start = pos + from.size();
  }
  out.append(text, start);
  return out;
}

struct StringHash {
  using is_transparent = void;  // lookups by string_view without building a std::string
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// A piece of the segment being merged, 12 bytes: a live symbol spans from its offset to the
// next live symbol's (or the segment's end), so no length is stored. prev/next link the live
// symbols (-1: none); a merged-away symbol has prev = kMerged.
struct Symbol {
  int32_t prev;
  int32_t next;
  uint32_t offset;
};
constexpr int32_t kMerged = -2;

// A candidate merge of two adjacent symbols, 16 bytes. n_bytes is their combined length when
// it was proposed: if either side has changed since, the candidate is stale.
struct Bigram {
  int32_t left;
  int32_t right;
  float score;
  uint32_t n_bytes;
};

// Segments of one text fragment are merged one at a time (see SpmTokenizer::encode_text): about
// this many bytes each, at a point no vocab entry can straddle, tried at up to kBoundaryTries
// character boundaries; a segment where none is found runs on to the next try.
constexpr size_t kSegmentBytes = size_t{1} << 20;
constexpr int kBoundaryTries = 64;
// Vocabs with longer entries are not segmented: the straddle check costs (entry length)^2.
constexpr size_t kMaxSegmentableTokenBytes = 256;
// Symbol offsets are 32-bit.
constexpr size_t kMaxSegmentBytes = size_t{INT32_MAX};

// Highest score on top; among equal scores the leftmost pair, as llama.cpp's llm_bigram_spm.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

class SpmTokenizer final : public Tokenizer {
 public:
  SpmTokenizer(Vocab vocab, size_t segment_bytes);

  Result<std::vector<TokenId>> encode(std::string_view text, bool add_bos,
                                      bool parse_special) const override;
  std::string token_bytes(TokenId id) const override;

 private:
  TokenType type(TokenId id) const {
    return vocab_.types.empty() ? TokenType::kNormal : vocab_.types[id];
  }
  TokenId find(std::string_view text) const {
    const auto it = ids_.find(text);
    return it == ids_.end() ? -1 : it->second;
  }
  Status encode_text(std::string_view text, std::vector<TokenId>& ids) const;
  Status encode_segment(std::string_view text, std::vector<TokenId>& ids) const;
  // Whether some vocab entry could be formed across byte position p of `text` (starting at or
  // after `from`): if none can, the merges on either side of p never interact.
  bool straddled(std::string_view text, size_t from, size_t p) const;
  size_t next_boundary(std::string_view text, size_t from) const;

  std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>> ids_;
  std::vector<std::string> pieces_;       // [n_tokens] what token_bytes returns
  std::vector<TokenId> special_tokens_;   // control, user-defined, unknown; longest text first,
                                          // then lowest id
  std::array<TokenId, 256> byte_tokens_;  // the fallback for each byte, -1: none
  size_t max_token_bytes_ = 0;            // longest entry's text
  size_t segment_bytes_;                  // 0: the whole fragment is one segment
};

SpmTokenizer::SpmTokenizer(Vocab vocab, size_t segment_bytes)
    : Tokenizer(std::move(vocab)), segment_bytes_(segment_bytes) {
  const auto n_tokens = static_cast<TokenId>(vocab_.n_tokens());
  ids_.reserve(vocab_.n_tokens());
  pieces_.resize(vocab_.n_tokens());
  for (TokenId id = 0; id < n_tokens; ++id) {
    const std::string& text = vocab_.tokens[id];
    const TokenType t = type(id);
    ids_[text] = id;  // a duplicate text maps to its last id, as in llama.cpp
    max_token_bytes_ = std::max(max_token_bytes_, text.size());
    switch (t) {
      case TokenType::kNormal:
        pieces_[id] = replace_all(text, kSpaceMarker, " ");
        break;
      default:
        pieces_[id] = non_normal_piece(t, text);
        break;
    }
  }
  if (max_token_bytes_ > kMaxSegmentableTokenBytes) segment_bytes_ = 0;
  special_tokens_ = special_tokens_of(vocab_);

  // llama.cpp's byte_to_token: the <0xXX> token, else a token that is the byte itself; we add
  // <unk> as the last resort so that a vocab without byte tokens still encodes everything.
  for (int byte = 0; byte < 256; ++byte) {
    const std::string spelled = {'<', '0', 'x', kHexDigits[byte >> 4], kHexDigits[byte & 15], '>'};
    TokenId id = find(spelled);
    if (id < 0) id = find(std::string(1, static_cast<char>(byte)));
    if (id < 0) id = vocab_.unk;
    byte_tokens_[byte] = id;
  }
}

std::string SpmTokenizer::token_bytes(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) return {};
  return pieces_[id];
}

bool SpmTokenizer::straddled(std::string_view text, size_t from, size_t p) const {
  const size_t first = p - std::min(p - from, max_token_bytes_ - 1);
  for (size_t i = first; i < p; ++i) {
    const size_t max_len = std::min(max_token_bytes_, text.size() - i);
    for (size_t len = p - i + 1; len <= max_len; ++len) {
      if (find(text.substr(i, len)) >= 0) return true;
    }
  }
  return false;
}

// The end of the segment starting at `from`: text.size(), or a character boundary that no vocab
// entry straddles. Merges only ever form vocab entries out of adjacent symbols, so no merge
// crosses such a point, and merging each side alone gives exactly the symbols that merging the
// whole gives (the order of merges on one side never depends on the other side).
size_t SpmTokenizer::next_boundary(std::string_view text, size_t from) const {
  if (segment_bytes_ == 0 || max_token_bytes_ == 0) return text.size();
  size_t target = from + segment_bytes_;
  while (target < text.size() && target - from < kMaxSegmentBytes) {
    size_t p = target;
    for (int tries = 0; tries < kBoundaryTries && p < text.size(); ++tries) {
      while (p < text.size() && (static_cast<uint8_t>(text[p]) & 0xC0) == 0x80) ++p;
      if (p >= text.size()) break;
      if (!straddled(text, from, p)) return p;
      ++p;
    }
    target += segment_bytes_;
  }
  return std::min(text.size(), target);
}

// llm_tokenizer_spm_session::tokenize on one fragment, already escaped and prefixed, one
// segment at a time so that the merge state is bounded by the segment, not the fragment.
Status SpmTokenizer::encode_text(std::string_view text, std::vector<TokenId>& ids) const {
  for (size_t start = 0; start < text.size();) {
    const size_t end = next_boundary(text, start);
    if (end - start > kMaxSegmentBytes) {
      return Error(ErrorCode::kLimit, "a text of more than " + std::to_string(kMaxSegmentBytes) +
                                          " bytes without a point to split it at is too long");
    }
    SLLM_RETURN_IF_ERROR(encode_segment(text.substr(start, end - start), ids));
    start = end;
  }
  return {};
}

Status SpmTokenizer::encode_segment(std::string_view text, std::vector<TokenId>& ids) const {
  std::vector<Symbol> symbols;
  for (size_t offset = 0; offset < text.size();) {
    const size_t n_bytes =
        std::min(utf8_char_length(static_cast<uint8_t>(text[offset])), text.size() - offset);
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({index - 1, offset + n_bytes == text.size() ? -1 : index + 1,
                       static_cast<uint32_t>(offset)});
    offset += n_bytes;
  }
  if (symbols.empty()) return {};
  symbols.shrink_to_fit();
  const auto end_of = [&](int32_t i) -> uint32_t {
    const int32_t next = symbols[static_cast<size_t>(i)].next;
    return next < 0 ? static_cast<uint32_t>(text.size())
                    : symbols[static_cast<size_t>(next)].offset;
  };

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto propose = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const uint32_t offset = symbols[static_cast<size_t>(left)].offset;
    const uint32_t n_bytes = end_of(right) - offset;
    const TokenId id = find(text.substr(offset, n_bytes));
    if (id < 0) return;
    const float score = vocab_.scores.empty() ? 0.0f : vocab_.scores[static_cast<size_t>(id)];
    queue.push({left, right, score, n_bytes});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) propose(i - 1, i);

  while (!queue.empty()) {
    const Bigram bigram = queue.top();
    queue.pop();
    Symbol& left = symbols[static_cast<size_t>(bigram.left)];
    Symbol& right = symbols[static_cast<size_t>(bigram.right)];
    // Stale: one side was merged into something else since. Two live symbols that were
    // adjacent still are; only the right one can have grown.
    if (left.prev == kMerged || right.prev == kMerged ||
        end_of(bigram.right) - left.offset != bigram.n_bytes) {
      continue;
    }
    left.next = right.next;
    right.prev = kMerged;
    if (left.next >= 0) symbols[static_cast<size_t>(left.next)].prev = bigram.left;
    propose(left.prev, bigram.left);
    propose(bigram.left, left.next);
  }

  // Every merged symbol is a vocab entry, so only single characters can miss the vocab (this is
  // all that llama.cpp's resegment can reach): they become one token per byte.
  for (int32_t i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
    const uint32_t offset = symbols[static_cast<size_t>(i)].offset;
    const std::string_view piece = text.substr(offset, end_of(i) - offset);
    if (const TokenId id = find(piece); id >= 0) {
      ids.push_back(id);
      continue;
    }
    for (const char c : piece) {
      const TokenId id = byte_tokens_[static_cast<uint8_t>(c)];
      if (id < 0) {
        const auto byte = static_cast<uint8_t>(c);
        return Error(ErrorCode::kUnsupported,
                     std::string("cannot encode byte 0x") + kHexDigits[byte >> 4] +
                         kHexDigits[byte & 15] +
                         ": the vocab has neither a byte token for it nor an unknown token");
      }
      ids.push_back(id);
    }
  }
  return {};
}

Result<std::vector<TokenId>> SpmTokenizer::encode(std::string_view text, bool add_bos,
                                                  bool parse_special) const {
  SLLM_ASSIGN_OR_RETURN(std::vector<TokenId> ids, start_encoding(text, add_bos));
  if (text.empty()) return ids;

  // llama.cpp puts the dummy prefix in front of every text fragment that starts the input or
  // follows a special token: a text after "<s>" is a new SentencePiece "sentence".
  bool after_special = true;
  for (const Fragment& fragment : split_special(text, vocab_, special_tokens_, parse_special)) {
    if (fragment.token() >= 0) {
      ids.push_back(fragment.token());
      after_special = true;
      continue;
    }
    // Escaped in one pass, dummy prefix included: one copy of the fragment, not three.
    const std::string escaped =
        replace_all(text.substr(fragment.offset, fragment.n_bytes), " ", kSpaceMarker,
                    vocab_.add_space_prefix && after_special ? kSpaceMarker : "");
    SLLM_RETURN_IF_ERROR(encode_text(escaped, ids));
    after_special = false;
  }
  return ids;
}

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab) {
  return std::make_unique<SpmTokenizer>(std::move(vocab), kSegmentBytes);
}

std::unique_ptr<Tokenizer> make_spm_tokenizer_for_test(Vocab vocab, size_t segment_bytes) {
  return std::make_unique<SpmTokenizer>(std::move(vocab), segment_bytes);
}

}  // namespace sllm
