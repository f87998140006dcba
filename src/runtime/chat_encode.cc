#include "runtime/chat_encode.h"

#include <algorithm>
#include <string>
#include <string_view>

namespace sllm {

ChatEncoder::ChatEncoder(const Tokenizer& tokenizer) : tokenizer_(&tokenizer) {
  const Vocab& v = tokenizer.vocab();
  for (size_t i = 0; i < v.types.size(); ++i) {
    const TokenType t = v.types[i];
    if ((t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown) &&
        !v.tokens[i].empty()) {
      specials_.push_back(static_cast<TokenId>(i));
    }
  }
  // The tokenizers' order: the longest text wins where two overlap.
  std::stable_sort(specials_.begin(), specials_.end(),
                   [&v](TokenId a, TokenId b) { return v.tokens[a].size() > v.tokens[b].size(); });
}

namespace {

// A run of text, or a special token (token >= 0).
struct Part {
  TokenId token = -1;
  std::string text;
};

}  // namespace

Result<std::vector<TokenId>> ChatEncoder::encode(const ChatPieces& pieces, bool add_bos,
                                                 bool drop_leading_space) const {
  const Vocab& v = tokenizer_->vocab();
  // Adjacent pieces of one kind join first, so that a special token written across two template
  // pieces is still found (as in the joined text).
  std::vector<ChatPiece> runs;
  for (const ChatPiece& p : pieces) {
    if (p.text.empty()) continue;
    if (!runs.empty() && runs.back().content == p.content) {
      runs.back().text += p.text;
    } else {
      runs.push_back(p);
    }
  }
  if (drop_leading_space && !runs.empty() && runs.front().text.front() == ' ') {
    runs.front().text.erase(0, 1);
  }

  std::vector<Part> parts;
  auto add_text = [&parts](std::string_view text) {
    if (text.empty()) return;
    if (parts.empty() || parts.back().token >= 0) parts.push_back({});
    parts.back().text += text;
  };
  for (const ChatPiece& run : runs) {
    if (run.content) {
      add_text(run.text);
      continue;
    }
    // The template's text cut at each special token, longest first: each token cuts the text
    // fragments left by the longer ones.
    std::vector<Part> cut = {{-1, run.text}};
    for (const TokenId special : specials_) {
      const std::string& needle = v.tokens[special];
      if (run.text.find(needle) == std::string::npos) continue;
      std::vector<Part> next;
      for (Part& part : cut) {
        if (part.token >= 0) {
          next.push_back(std::move(part));
          continue;
        }
        size_t start = 0;
        for (size_t pos; (pos = part.text.find(needle, start)) != std::string::npos;) {
          if (pos > start) next.push_back({-1, part.text.substr(start, pos - start)});
          next.push_back({special, {}});
          start = pos + needle.size();
        }
        if (start < part.text.size()) next.push_back({-1, part.text.substr(start)});
      }
      cut = std::move(next);
    }
    for (Part& part : cut) {
      if (part.token >= 0) {
        parts.push_back(std::move(part));
      } else {
        add_text(part.text);
      }
    }
  }

  std::vector<TokenId> ids;
  if (add_bos) {
    if (v.bos < 0) {
      return Error(ErrorCode::kInvalidInput,
                   "add_bos was requested but the vocab has no BOS token "
                   "(tokenizer.ggml.bos_token_id)");
    }
    ids.push_back(v.bos);
  }
  for (const Part& part : parts) {
    if (part.token >= 0) {
      ids.push_back(part.token);
      continue;
    }
    SLLM_ASSIGN_OR_RETURN(const std::vector<TokenId> text_ids,
                          tokenizer_->encode(part.text, /*add_bos=*/false,
                                             /*parse_special=*/false));
    ids.insert(ids.end(), text_ids.begin(), text_ids.end());
  }
  return ids;
}

}  // namespace sllm
