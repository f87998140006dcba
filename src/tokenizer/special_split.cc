// Splitting the input at special tokens (see special_split.h).
#include "tokenizer/special_split.h"

#include <algorithm>

namespace sllm {
namespace {

TokenType type_of(const Vocab& vocab, TokenId id) {
  return vocab.types.empty() ? TokenType::kNormal : vocab.types[static_cast<size_t>(id)];
}

}  // namespace

std::vector<TokenId> special_tokens_of(const Vocab& vocab) {
  std::vector<TokenId> specials;
  for (size_t i = 0; i < vocab.types.size(); ++i) {
    const TokenType t = vocab.types[i];
    if ((t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown) &&
        !vocab.tokens[i].empty()) {
      specials.push_back(static_cast<TokenId>(i));
    }
  }
  std::stable_sort(specials.begin(), specials.end(), [&](TokenId a, TokenId b) {
    return vocab.tokens[static_cast<size_t>(a)].size() >
           vocab.tokens[static_cast<size_t>(b)].size();
  });
  return specials;
}

std::vector<Fragment> split_special(std::string_view text, const Vocab& vocab,
                                    const std::vector<TokenId>& specials, bool parse_special) {
  std::vector<Fragment> fragments = {Fragment::text(0, text.size())};
  std::vector<Fragment> split;
  for (const TokenId special : specials) {
    if (!parse_special && type_of(vocab, special) != TokenType::kUserDefined) continue;
    const std::string& needle = vocab.tokens[static_cast<size_t>(special)];
    if (text.find(needle) == std::string_view::npos) continue;  // no copy of the list for it
    split.clear();
    for (const Fragment& fragment : fragments) {
      if (fragment.token() >= 0) {
        split.push_back(fragment);
        continue;
      }
      const std::string_view haystack = text.substr(fragment.offset, fragment.n_bytes);
      size_t start = 0;
      for (size_t pos; (pos = haystack.find(needle, start)) != std::string_view::npos;) {
        if (pos > start) split.push_back(Fragment::text(fragment.offset + start, pos - start));
        split.push_back(Fragment::special(special));
        start = pos + needle.size();
      }
      if (start < haystack.size()) {
        split.push_back(Fragment::text(fragment.offset + start, haystack.size() - start));
      }
    }
    fragments.swap(split);
  }
  return fragments;
}

}  // namespace sllm
