// Byte-level BPE (GGUF `tokenizer.ggml.model = gpt2`) and Gemma 4's BPE (`gemma4`), token for
// token what llama.cpp's llm_tokenizer_bpe does: special tokens are split out, the rest is cut
// into words by the pre-tokenizer's regexes, each word's bytes become GPT-2's printable
// characters (gemma4: spaces become U+2581 and the UTF-8 stays as it is), and within a word the
// adjacent pair with the lowest merge rank is merged (ties: the leftmost) until no pair has a
// rank. A finished piece that is not a token falls back to one token per byte, or is dropped
// where the vocab has none, as in llama.cpp.
#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/flat_map.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/special_split.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace sllm {
namespace {

constexpr std::string_view kMergesKey = "tokenizer.ggml.merges";
constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581, gemma4's space
constexpr char kHexDigits[] = "0123456789ABCDEF";

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes
// for U+0100.. in byte order. Returns each byte's character as UTF-8.
std::array<std::string, 256> byte_to_unicode() {
  std::array<std::string, 256> table;
  auto utf8 = [](uint32_t cp) {
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
  };
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    table[b] = utf8(printable ? b : next++);
  }
  return table;
}

const std::array<std::string, 256>& byte_chars() {
  static const std::array<std::string, 256> table = byte_to_unicode();
  return table;
}

// The inverse, by code point: the byte a character stands for, -1 if none. All of GPT-2's
// characters are below U+0144, so one or two UTF-8 bytes.
constexpr uint32_t kMaxByteChar = 0x144;
const std::array<int16_t, kMaxByteChar>& char_bytes() {
  static const std::array<int16_t, kMaxByteChar> table = [] {
    std::array<int16_t, kMaxByteChar> t;
    t.fill(-1);
    for (int b = 0; b < 256; ++b) {
      const std::string& c = byte_chars()[static_cast<size_t>(b)];
      const uint32_t cp = c.size() == 1 ? static_cast<uint8_t>(c[0])
                                        : ((static_cast<uint8_t>(c[0]) & 0x1Fu) << 6) |
                                              (static_cast<uint8_t>(c[1]) & 0x3Fu);
      t[cp] = static_cast<int16_t>(b);
    }
    return t;
  }();
  return table;
}

// The byte that the character at `offset` of `text` (valid UTF-8) stands for, -1 if none;
// `n_bytes` gets the character's length.
int byte_of_char(std::string_view text, size_t offset, size_t& n_bytes) {
  const auto lead = static_cast<uint8_t>(text[offset]);
  n_bytes = std::min(utf8_char_length(lead), text.size() - offset);
  uint32_t cp = lead;
  if (n_bytes == 2) {
    cp = ((lead & 0x1Fu) << 6) | (static_cast<uint8_t>(text[offset + 1]) & 0x3Fu);
  } else if (n_bytes != 1) {
    return -1;
  }
  return cp < kMaxByteChar ? char_bytes()[cp] : -1;
}

// llama.cpp's llama_decode_text: each character back to its byte; a character outside the
// mapping is spelled out the way llama.cpp does.
std::string decode_byte_level(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t offset = 0; offset < text.size();) {
    size_t n_bytes = 0;
    const int byte = byte_of_char(text, offset, n_bytes);
    const std::string_view ch = text.substr(offset, n_bytes);
    offset += n_bytes;
    if (byte >= 0) {
      out += static_cast<char>(byte);
      continue;
    }
    out += "[UNK_BYTE_0x";
    for (const char b : ch) {
      out += kHexDigits[static_cast<uint8_t>(b) >> 4];
      out += kHexDigits[static_cast<uint8_t>(b) & 15];
    }
    out += std::string(text) + "]";
  }
  return out;
}

// A piece of the word being merged: it spans from its offset to the next live symbol's (or the
// word's end). prev/next link live symbols (-1: none); a merged-away symbol has prev = kMerged.
struct Symbol {
  int32_t prev;
  int32_t next;
  uint32_t offset;
  TokenId id;  // the token the piece is, -1: none
};
constexpr int32_t kMerged = -2;

// A candidate merge of a symbol and the one after it, 16 bytes. order is rank << 32 | left: the
// lowest rank first, among equal ranks the leftmost, as llama.cpp's llm_bigram_bpe. n_bytes is
// the pair's length when proposed: a symbol only grows to the right, so the pair at `left` has
// the same length later only if neither side changed.
struct Bigram {
  uint64_t order;
  uint32_t n_bytes;
  TokenId result;

  int32_t left() const { return static_cast<int32_t>(order & 0xFFFFFFFFu); }
};

struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const { return a.order > b.order; }
};

struct Merge {
  int32_t rank;
  TokenId result;  // the merged text's token, -1 if the vocab lacks it
};

uint64_t pair_key(TokenId left, TokenId right) {
  return (uint64_t{static_cast<uint32_t>(left)} << 32) | static_cast<uint32_t>(right);
}

// Words up to this long are remembered within one encode call; at most this many of them.
constexpr size_t kMaxCachedWordBytes = 128;
constexpr size_t kMaxCachedWords = size_t{1} << 16;

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(Vocab vocab, const PreTokenizerSpec& spec, std::unique_ptr<PreTokenizer> pre)
      : Tokenizer(std::move(vocab)), spec_(spec), pre_(std::move(pre)) {}

  Status init();
  Result<std::vector<TokenId>> encode(std::string_view text, bool add_bos,
                                      bool parse_special) const override;
  std::string token_bytes(TokenId id) const override {
    if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) return {};
    return pieces_[static_cast<size_t>(id)];
  }

 private:
  TokenType type(size_t id) const {
    return vocab_.types.empty() ? TokenType::kNormal : vocab_.types[id];
  }
  TokenId find(std::string_view text) const { return ids_.find(text); }
  Status encode_fragment(std::string_view text, std::vector<TokenId>& ids) const;
  void encode_word(std::string_view word, std::vector<TokenId>& ids,
                   std::vector<Symbol>& symbols) const;
  void emit_unknown(std::string_view piece, std::vector<TokenId>& ids) const;

  const PreTokenizerSpec& spec_;
  std::unique_ptr<PreTokenizer> pre_;
  TextIndex ids_;                       // token text -> id (a duplicate: its last id, as llama.cpp)
  std::vector<std::string> raw_texts_;  // byte_encode + ignore_merges: each token's bytes
  TextIndex raw_ids_;                   // bytes -> id over raw_texts_
  U64Map<Merge> merges_;                // (left id, right id) -> rank, result
  std::array<TokenId, 256> unit_ids_{};     // byte_encode: the token of each byte's character
  std::array<TokenId, 256> byte_tokens_{};  // !byte_encode: the <0xXX> token of each byte
  std::vector<std::string> pieces_;         // what token_bytes returns
  std::vector<TokenId> specials_;
};

Status BpeTokenizer::init() {
  const size_t n_tokens = vocab_.n_tokens();
  ids_.build(vocab_.tokens);
  pieces_.resize(n_tokens);
  for (size_t id = 0; id < n_tokens; ++id) {
    const std::string& text = vocab_.tokens[id];
    const TokenType t = type(id);
    switch (t) {
      case TokenType::kNormal:
        pieces_[id] = spec_.byte_encode ? decode_byte_level(text) : [&] {
          std::string s;
          for (size_t p = 0; p < text.size();) {
            if (text.compare(p, kSpaceMarker.size(), kSpaceMarker) == 0) {
              s += ' ';
              p += kSpaceMarker.size();
            } else {
              s += text[p++];
            }
          }
          return s;
        }();
        break;
      default:
        pieces_[id] = non_normal_piece(t, text);
        break;
    }
  }
  if (spec_.byte_encode && spec_.ignore_merges) {
    // Byte-level encoding is one-to-one, so a word's encoding is a token exactly when the
    // word's bytes are that token's decoding (for tokens made only of encoded bytes).
    // (A token with other characters can never equal a word's encoding: it stays "".)
    raw_texts_.resize(n_tokens);
    for (size_t id = 0; id < n_tokens; ++id) {
      const std::string& text = vocab_.tokens[id];
      std::string raw;
      raw.reserve(text.size());
      for (size_t offset = 0, n_bytes = 0; offset < text.size(); offset += n_bytes) {
        const int byte = byte_of_char(text, offset, n_bytes);
        if (byte < 0) {
          raw.clear();
          break;
        }
        raw += static_cast<char>(byte);
      }
      raw_texts_[id] = std::move(raw);
    }
    raw_ids_.build(raw_texts_);
  }
  for (size_t b = 0; b < 256; ++b) {
    unit_ids_[b] = find(byte_chars()[b]);
    const std::string spelled = {'<', '0', 'x', kHexDigits[b >> 4], kHexDigits[b & 15], '>'};
    byte_tokens_[b] = find(spelled);
  }
  specials_ = special_tokens_of(vocab_);

  merges_.reserve(vocab_.merges.size());
  std::string joined;
  for (size_t i = 0; i < vocab_.merges.size(); ++i) {
    const std::string& merge = vocab_.merges[i];
    const std::string where = std::string(kMergesKey) + "[" + std::to_string(i) + "] = '" + merge;
    // As llama.cpp: the first space after the first byte separates the two tokens.
    const size_t space = merge.size() > 1 ? merge.find(' ', 1) : std::string::npos;
    if (space == std::string::npos || space + 1 >= merge.size()) {
      return Error(ErrorCode::kFormat, where + "' is not two tokens separated by a space");
    }
    const std::string_view left = std::string_view(merge).substr(0, space);
    const std::string_view right = std::string_view(merge).substr(space + 1);
    const TokenId left_id = find(left);
    const TokenId right_id = find(right);
    if (left_id < 0 || right_id < 0) {
      return Error(ErrorCode::kFormat, where + "' names '" +
                                           std::string(left_id < 0 ? left : right) +
                                           "', which is not in tokenizer.ggml.tokens");
    }
    if (i > size_t{INT32_MAX}) {
      return Error(ErrorCode::kFormat, std::string(kMergesKey) + " has too many entries");
    }
    // A repeated pair keeps its first (lowest) rank, as llama.cpp's emplace does.
    joined.assign(left);
    joined.append(right);
    merges_.emplace(pair_key(left_id, right_id), Merge{static_cast<int32_t>(i), find(joined)});
  }
  return {};
}

void BpeTokenizer::emit_unknown(std::string_view piece, std::vector<TokenId>& ids) const {
  for (const char c : piece) {
    const auto byte = static_cast<uint8_t>(c);
    if (spec_.byte_encode) {
      // llama.cpp looks up each byte of the piece's encoding as a one-byte token.
      for (const char e : byte_chars()[byte]) {
        if (const TokenId id = find(std::string_view(&e, 1)); id >= 0) ids.push_back(id);
      }
    } else if (byte_tokens_[byte] >= 0) {
      ids.push_back(byte_tokens_[byte]);
    }
  }
}

// llm_tokenizer_bpe_session::tokenize on one word: `word` is raw bytes (byte_encode) or the
// escaped UTF-8 (gemma4).
void BpeTokenizer::encode_word(std::string_view word, std::vector<TokenId>& ids,
                               std::vector<Symbol>& symbols) const {
  if (spec_.ignore_merges) {
    const TokenId id = spec_.byte_encode ? raw_ids_.find(word) : find(word);
    if (id >= 0) {
      ids.push_back(id);
      return;
    }
  }
  // Gemma 4: a run of newlines that is a token stays whole (llama.cpp PR 21343).
  if (spec_.escape_whitespace && word.find_first_not_of('\n') == std::string_view::npos) {
    if (const TokenId id = find(word); id >= 0) {
      ids.push_back(id);
      return;
    }
  }

  symbols.clear();
  symbols.reserve(word.size());
  for (size_t offset = 0; offset < word.size();) {
    const auto lead = static_cast<uint8_t>(word[offset]);
    const size_t n_bytes =
        spec_.byte_encode ? 1 : std::min(utf8_char_length(lead), word.size() - offset);
    const TokenId id = spec_.byte_encode ? unit_ids_[lead] : find(word.substr(offset, n_bytes));
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({index - 1, offset + n_bytes == word.size() ? -1 : index + 1,
                       static_cast<uint32_t>(offset), id});
    offset += n_bytes;
  }
  const auto end_of = [&](int32_t i) -> uint32_t {
    const int32_t next = symbols[static_cast<size_t>(i)].next;
    return next < 0 ? static_cast<uint32_t>(word.size())
                    : symbols[static_cast<size_t>(next)].offset;
  };

  // The first candidates are heapified at once (linear), not pushed one by one.
  std::vector<Bigram> initial;
  initial.reserve(symbols.size() + 16);
  auto candidate = [&](int32_t left, int32_t right) -> std::optional<Bigram> {
    if (left < 0 || right < 0) return std::nullopt;
    const Symbol& l = symbols[static_cast<size_t>(left)];
    const Symbol& r = symbols[static_cast<size_t>(right)];
    // Only tokens can be merged: every merge names two tokens (checked when loading).
    if (l.id < 0 || r.id < 0) return std::nullopt;
    const Merge* merge = merges_.find(pair_key(l.id, r.id));
    if (merge == nullptr) return std::nullopt;
    return Bigram{
        (uint64_t{static_cast<uint32_t>(merge->rank)} << 32) | static_cast<uint32_t>(left),
        end_of(right) - l.offset, merge->result};
  };
  for (int32_t i = 1; i < static_cast<int32_t>(symbols.size()); ++i) {
    if (const std::optional<Bigram> b = candidate(i - 1, i)) initial.push_back(*b);
  }
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue(BigramOrder{},
                                                                      std::move(initial));
  auto propose = [&](int32_t left, int32_t right) {
    if (const std::optional<Bigram> b = candidate(left, right)) queue.push(*b);
  };

  while (!queue.empty()) {
    const Bigram bigram = queue.top();
    queue.pop();
    const int32_t index = bigram.left();
    Symbol& left = symbols[static_cast<size_t>(index)];
    if (left.prev == kMerged || left.next < 0 ||
        end_of(left.next) - left.offset != bigram.n_bytes) {
      continue;
    }
    Symbol& right = symbols[static_cast<size_t>(left.next)];
    left.next = right.next;
    left.id = bigram.result;
    right.prev = kMerged;
    if (left.next >= 0) symbols[static_cast<size_t>(left.next)].prev = index;
    propose(left.prev, index);
    propose(index, left.next);
  }

  for (int32_t i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
    const Symbol& symbol = symbols[static_cast<size_t>(i)];
    if (symbol.id >= 0) {
      ids.push_back(symbol.id);
    } else {
      emit_unknown(word.substr(symbol.offset, end_of(i) - symbol.offset), ids);
    }
  }
}

Status BpeTokenizer::encode_fragment(std::string_view text, std::vector<TokenId>& ids) const {
  std::string escaped;
  if (spec_.escape_whitespace) {
    escaped.reserve(text.size());
    for (const char c : text) {
      if (c == ' ') {
        escaped += kSpaceMarker;
      } else {
        escaped += c;
      }
    }
    text = escaped;
  }
  SLLM_ASSIGN_OR_RETURN(const std::vector<uint32_t> ends, pre_->split(text));

  // Words repeat (" the", " of"): each distinct short word is merged once per call.
  std::unordered_map<std::string_view, std::pair<uint32_t, uint32_t>> cache;
  std::vector<TokenId> cached;
  std::vector<Symbol> symbols;
  uint32_t begin = 0;
  for (const uint32_t end : ends) {
    const std::string_view word = text.substr(begin, end - begin);
    begin = end;
    if (word.size() > kMaxCachedWordBytes) {
      encode_word(word, ids, symbols);
      continue;
    }
    if (const auto it = cache.find(word); it != cache.end()) {
      ids.insert(ids.end(), cached.begin() + it->second.first,
                 cached.begin() + it->second.first + it->second.second);
      continue;
    }
    const size_t before = ids.size();
    encode_word(word, ids, symbols);
    if (cache.size() < kMaxCachedWords) {
      const auto first = static_cast<uint32_t>(cached.size());
      cached.insert(cached.end(), ids.begin() + static_cast<std::ptrdiff_t>(before), ids.end());
      cache.emplace(word, std::pair{first, static_cast<uint32_t>(ids.size() - before)});
    }
  }
  return {};
}

Result<std::vector<TokenId>> BpeTokenizer::encode(std::string_view text, bool add_bos,
                                                  bool parse_special) const {
  SLLM_ASSIGN_OR_RETURN(std::vector<TokenId> ids, start_encoding(text, add_bos));
  if (text.empty()) return ids;
  for (const Fragment& fragment : split_special(text, vocab_, specials_, parse_special)) {
    if (fragment.token() >= 0) {
      ids.push_back(fragment.token());
      continue;
    }
    SLLM_RETURN_IF_ERROR(encode_fragment(text.substr(fragment.offset, fragment.n_bytes), ids));
  }
  return ids;
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> make_bpe_tokenizer(Vocab vocab) {
  const PreTokenizerSpec* spec = nullptr;
  if (vocab.model == "gemma4") {
    spec = &gemma4_pre_tokenizer();
  } else {
    spec = find_pre_tokenizer(vocab.pre);
    if (spec == nullptr) {
      return Error(ErrorCode::kUnsupported, "tokenizer.ggml.pre = '" + vocab.pre +
                                                "' is not a supported pre-tokenizer (supported: " +
                                                supported_pre_tokenizers() + ")");
    }
  }
  if (vocab.merges.empty()) {
    return Error(ErrorCode::kFormat, "tokenizer.ggml.merges is missing or empty (a '" +
                                         vocab.model + "' tokenizer needs its BPE merges)");
  }
  SLLM_ASSIGN_OR_RETURN(std::unique_ptr<PreTokenizer> pre, PreTokenizer::create(*spec));
  auto tokenizer = std::make_unique<BpeTokenizer>(std::move(vocab), *spec, std::move(pre));
  SLLM_RETURN_IF_ERROR(tokenizer->init());
  return std::unique_ptr<Tokenizer>(std::move(tokenizer));
}

}  // namespace sllm
