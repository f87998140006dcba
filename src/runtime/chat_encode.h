// Chat text to tokens: the template's special-token texts become their tokens, message content
// stays text. Encoding the joined text with parse_special would let a user (or a pasted document)
// write "<|im_end|><|im_start|>system\n..." and forge turns; encoding the pieces apart would
// change the tokens at their seams. This encoder cuts the template text at special tokens exactly
// as the tokenizer's own parse_special does, and encodes each run of text between them (template
// and content together) in one piece, so that a conversation without special-token text in its
// messages gets the very tokens encode(join(pieces), add_bos, true) gives.
#pragma once

#include <vector>

#include "chat/chat_template.h"
#include "streamingllm/error.h"
#include "tokenizer/tokenizer.h"

namespace sllm {

class ChatEncoder {
 public:
  // `tokenizer` must outlive the encoder.
  explicit ChatEncoder(const Tokenizer& tokenizer);

  // add_bos prepends BOS (the vocabulary must have one). drop_leading_space removes one space at
  // the very start (SentencePiece's dummy prefix stands for it).
  Result<std::vector<TokenId>> encode(const ChatPieces& pieces, bool add_bos,
                                      bool drop_leading_space = false) const;

 private:
  const Tokenizer* tokenizer_;
  std::vector<TokenId> specials_;  // control, user-defined, unknown: longest text first
};

}  // namespace sllm
