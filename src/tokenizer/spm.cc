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

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace sllm {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 "▁", SentencePiece's space
constexpr char kHexDigits[] = "0123456789ABCDEF";

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
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

// A piece of the text being merged; merged-away symbols keep n_bytes = 0. prev/next link the
// live symbols (-1: none).
struct Symbol {
  int prev;
  int next;
  size_t offset;
  size_t n_bytes;
};

// A candidate merge of two adjacent symbols. n_bytes is their combined length when it was
// proposed: if either side has changed since, the candidate is stale.
struct Bigram {
  int left;
  int right;
  float score;
  size_t n_bytes;
};

// Highest score on top; among equal scores the leftmost pair, as llama.cpp's llm_bigram_spm.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

// A run of the input that is either plain text or one special token.
struct Fragment {
  TokenId token;  // -1: text
  size_t offset;
  size_t n_bytes;
};

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(Vocab vocab);

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
  std::vector<Fragment> split_special(std::string_view text, bool parse_special) const;
  Status encode_text(std::string_view text, std::vector<TokenId>& ids) const;

  std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>> ids_;
  std::vector<std::string> pieces_;       // [n_tokens] what token_bytes returns
  std::vector<TokenId> special_tokens_;   // control, user-defined, unknown; longest text first,
                                          // then lowest id
  std::array<TokenId, 256> byte_tokens_;  // the fallback for each byte, -1: none
};

SpmTokenizer::SpmTokenizer(Vocab vocab) : Tokenizer(std::move(vocab)) {
  const auto n_tokens = static_cast<TokenId>(vocab_.n_tokens());
  ids_.reserve(vocab_.n_tokens());
  pieces_.resize(vocab_.n_tokens());
  for (TokenId id = 0; id < n_tokens; ++id) {
    const std::string& text = vocab_.tokens[id];
    const TokenType t = type(id);
    ids_[text] = id;  // a duplicate text maps to its last id, as in llama.cpp
    switch (t) {
      case TokenType::kNormal:
        pieces_[id] = replace_all(text, kSpaceMarker, " ");
        break;
      case TokenType::kByte:  // validate_vocab checked the <0xXX> spelling
        pieces_[id] = std::string(1, static_cast<char>(std::stoi(text.substr(3, 2), nullptr, 16)));
        break;
      case TokenType::kUserDefined:
      case TokenType::kUnknown:
        pieces_[id] = text;
        break;
      case TokenType::kControl:
      case TokenType::kUnused:
      case TokenType::kUndefined:
        break;
    }
    if ((t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown) &&
        !text.empty()) {
      special_tokens_.push_back(id);
    }
  }
  std::stable_sort(special_tokens_.begin(), special_tokens_.end(), [&](TokenId a, TokenId b) {
    return vocab_.tokens[a].size() > vocab_.tokens[b].size();
  });

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

// llama.cpp's tokenizer_st_partition: each special token, longest first, cuts every text
// fragment it occurs in.
std::vector<Fragment> SpmTokenizer::split_special(std::string_view text, bool parse_special) const {
  std::vector<Fragment> fragments = {{-1, 0, text.size()}};
  std::vector<Fragment> split;
  for (const TokenId special : special_tokens_) {
    if (!parse_special && type(special) != TokenType::kUserDefined) continue;
    const std::string& needle = vocab_.tokens[special];
    split.clear();
    for (const Fragment& fragment : fragments) {
      if (fragment.token >= 0) {
        split.push_back(fragment);
        continue;
      }
      const std::string_view haystack = text.substr(fragment.offset, fragment.n_bytes);
      size_t start = 0;
      for (size_t pos; (pos = haystack.find(needle, start)) != std::string_view::npos;) {
        if (pos > start) split.push_back({-1, fragment.offset + start, pos - start});
        split.push_back({special, 0, 0});
        start = pos + needle.size();
      }
      if (start < haystack.size()) {
        split.push_back({-1, fragment.offset + start, haystack.size() - start});
      }
    }
    fragments.swap(split);
  }
  return fragments;
}

// llm_tokenizer_spm_session::tokenize on one fragment, already escaped and prefixed.
Status SpmTokenizer::encode_text(std::string_view text, std::vector<TokenId>& ids) const {
  std::vector<Symbol> symbols;
  for (size_t offset = 0; offset < text.size();) {
    const size_t n_bytes =
        std::min(utf8_char_length(static_cast<uint8_t>(text[offset])), text.size() - offset);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back(
        {index - 1, offset + n_bytes == text.size() ? -1 : index + 1, offset, n_bytes});
    offset += n_bytes;
  }
  if (symbols.empty()) return {};

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto propose = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t n_bytes = symbols[left].n_bytes + symbols[right].n_bytes;
    const TokenId id = find(text.substr(symbols[left].offset, n_bytes));
    if (id < 0) return;
    const float score = vocab_.scores.empty() ? 0.0f : vocab_.scores[id];
    queue.push({left, right, score, n_bytes});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) propose(i - 1, i);

  while (!queue.empty()) {
    const Bigram bigram = queue.top();
    queue.pop();
    Symbol& left = symbols[bigram.left];
    Symbol& right = symbols[bigram.right];
    if (left.n_bytes == 0 || right.n_bytes == 0 || left.n_bytes + right.n_bytes != bigram.n_bytes) {
      continue;  // stale: one side was merged into something else since
    }
    left.n_bytes += right.n_bytes;
    right.n_bytes = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = bigram.left;
    propose(left.prev, bigram.left);
    propose(bigram.left, left.next);
  }

  // Every merged symbol is a vocab entry, so only single characters can miss the vocab (this is
  // all that llama.cpp's resegment can reach): they become one token per byte.
  for (int i = 0; i >= 0; i = symbols[i].next) {
    const std::string_view piece = text.substr(symbols[i].offset, symbols[i].n_bytes);
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
  SLLM_RETURN_IF_ERROR(validate_utf8(text));
  std::vector<TokenId> ids;
  if (add_bos) {
    if (vocab_.bos < 0) {
      return Error(ErrorCode::kInvalidInput,
                   "add_bos was requested but the vocab has no BOS token "
                   "(tokenizer.ggml.bos_token_id)");
    }
    ids.push_back(vocab_.bos);
  }
  if (text.empty()) return ids;

  // llama.cpp puts the dummy prefix in front of every text fragment that starts the input or
  // follows a special token: a text after "<s>" is a new SentencePiece "sentence".
  bool after_special = true;
  for (const Fragment& fragment : split_special(text, parse_special)) {
    if (fragment.token >= 0) {
      ids.push_back(fragment.token);
      after_special = true;
      continue;
    }
    std::string escaped = vocab_.add_space_prefix && after_special ? " " : "";
    escaped.append(text.substr(fragment.offset, fragment.n_bytes));
    SLLM_RETURN_IF_ERROR(encode_text(replace_all(escaped, " ", kSpaceMarker), ids));
    after_special = false;
  }
  return ids;
}

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab) {
  return std::make_unique<SpmTokenizer>(std::move(vocab));
}

}  // namespace sllm
