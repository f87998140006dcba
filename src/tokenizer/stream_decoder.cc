// The parts of Tokenizer shared by every model (the start of encoding, decoding) and StreamDecoder.
#include <string>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace sllm {
namespace {

// Moves the whole characters at the front of `pending` to `out`, each ill-formed sequence as one
// U+FFFD. A well-formed but unfinished character at the end stays in `pending` unless `final`.
void drain_utf8(std::string& pending, bool final, std::string& out) {
  size_t offset = 0;
  while (offset < pending.size()) {
    const Utf8Char c = next_utf8_char(pending, offset);
    if (c.status == Utf8Status::kTruncated && !final) break;
    if (c.status == Utf8Status::kValid) {
      out.append(pending, offset, c.n_bytes);
    } else {
      out.append(kReplacementChar);
    }
    offset += c.n_bytes;
  }
  pending.erase(0, offset);
}

}  // namespace

std::string StreamDecoder::push(TokenId id) {
  const Vocab& vocab = tokenizer_->vocab();
  if (id >= 0 && id == vocab.bos) {
    at_start_ = true;  // a new sequence: its first piece carries a dummy prefix again
    return {};
  }
  std::string piece = tokenizer_->token_bytes(id);
  if (piece.empty()) return {};
  if (at_start_) {
    // The encoder put a space in front of the text; SentencePiece drops it when decoding.
    at_start_ = false;
    if (vocab.add_space_prefix && piece.front() == ' ') piece.erase(0, 1);
  }
  pending_ += piece;
  std::string out;
  drain_utf8(pending_, /*final=*/false, out);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  drain_utf8(pending_, /*final=*/true, out);
  return out;
}

std::string Tokenizer::decode(const std::vector<TokenId>& ids) const {
  StreamDecoder decoder(*this);
  std::string text;
  for (const TokenId id : ids) text += decoder.push(id);
  return text + decoder.flush();
}

Result<std::vector<TokenId>> Tokenizer::start_encoding(std::string_view text, bool add_bos) const {
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
  return ids;
}

std::string non_normal_piece(TokenType type, const std::string& text) {
  switch (type) {
    case TokenType::kByte:
      return std::string(1, static_cast<char>(std::stoi(text.substr(3, 2), nullptr, 16)));
    case TokenType::kUserDefined:
    case TokenType::kUnknown:
      return text;
    default:
      return {};
  }
}

bool Tokenizer::is_control(TokenId id) const {
  return id >= 0 && static_cast<size_t>(id) < vocab_.types.size() &&
         vocab_.types[id] == TokenType::kControl;
}

}  // namespace sllm
