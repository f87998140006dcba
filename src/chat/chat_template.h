// Chat templates: a conversation (system, user and assistant messages) as the text a chat model
// was trained on.
//
// A model ships its format as a Jinja program in `tokenizer.chat_template`. We do not run Jinja:
// the common families are recognised by the marker strings their templates contain (detect) and
// rendered from a table of the texts around each message. docs/chat.md lists the formats.
//
// A streaming chat never re-renders its history (the history is gone: it was evicted). It renders
// one turn at a time, and the pieces add up to the whole conversation:
//
//   render([system, u1, a1, u2, a2, u3], true)
//     == opening(system) + user_turn(u1, true)  + reply_lead() + a1 + end_of_reply()
//                        + user_turn(u2, false) + reply_lead() + a2 + end_of_reply()
//                        + user_turn(u3, false)
//
// The reply itself is what the model generates after user_turn(); reply_lead() is text the model
// writes itself (Llama 2's space before the answer) and is only rendered for stored replies.
// One exception: Gemma 4 ends its generation prompt with an empty thought channel that its
// template leaves out of past replies; user_turn() has it (the model is answering now), render()
// drops it from the turns that a stored reply follows.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "streamingllm/error.h"

namespace sllm {

enum class ChatRole { kSystem, kUser, kAssistant };

struct ChatMessage {
  ChatRole role = ChatRole::kUser;
  std::string content;
};

// Rendered chat text in pieces: the template's own text, where special-token texts such as
// "<|im_end|>" are meant as those tokens, and message content, which is text whatever it
// contains (a user typing "<|im_end|>" must not end their turn).
struct ChatPiece {
  std::string text;
  bool content = false;  // a message's text (user or system), never parsed for special tokens
};
using ChatPieces = std::vector<ChatPiece>;
std::string join(const ChatPieces& pieces);

// The vocabulary's texts for the special tokens that templates write as {{ bos_token }} and
// {{ eos_token }}.
struct SpecialTokenTexts {
  std::string bos = "<s>";
  std::string eos = "</s>";
};

class ChatTemplate {
 public:
  // Every template by name, `plain` first.
  static std::span<const std::string_view> names();

  // One of names(); anything else is kInvalidInput, listing the names.
  static Result<ChatTemplate> from_name(std::string_view name, const SpecialTokenTexts& special);

  // The family of a Jinja chat template, recognised by its marker strings (for instance
  // "<|im_start|>" for chatml, "[INST]" with "<<SYS>>" for llama2); "" if none matches.
  static std::string_view detect(std::string_view jinja);

  const std::string& name() const { return name_; }

  // Everything before the first user message's text: BOS when the template writes it, the system
  // message (if not empty) and the first user header. This is the prefix --keep-system pins.
  std::string opening(std::string_view system) const;
  ChatPieces opening_pieces(std::string_view system) const;  // the same, in pieces

  // A user message and the generation prompt that the reply follows. The first user message's
  // header is part of opening(), so `first` leaves it out.
  std::string user_turn(std::string_view content, bool first) const;
  ChatPieces user_turn_pieces(std::string_view content, bool first) const;  // in pieces

  // Text after the generation prompt that render() leaves out in front of a stored reply
  // (Gemma 4's empty thought channel); "" for most templates.
  const std::string& generation_suffix() const { return generation_suffix_; }

  // Text the model writes itself in front of its answer (rendered for stored replies only).
  const std::string& reply_lead() const { return reply_lead_; }

  // Text that closes an assistant reply, starting with the end-of-turn token (if the template has
  // one distinct from EOS) or EOS; the plain template closes a reply with a space.
  const std::string& end_of_reply() const { return end_of_reply_; }

  // Text of the special token the model emits to end its reply: "<|im_end|>", "<|eot_id|>", ...
  // or EOS. The plain template has none ("").
  const std::string& end_of_turn() const { return end_of_turn_; }

  // Whether the template writes BOS itself; if not, the vocabulary's add_bos flag decides.
  bool writes_bos() const { return writes_bos_; }

  // The whole conversation: an optional system message first, then user and assistant messages
  // alternating, starting with a user message. add_generation_prompt: end with the header the
  // reply follows (the last message must then be a user message). Other orders: kInvalidInput.
  Result<std::string> render(std::span<const ChatMessage> messages,
                             bool add_generation_prompt) const;

  struct Spec;  // one row of the table in chat_template.cc

 private:
  ChatTemplate(const Spec& spec, const SpecialTokenTexts& special);

  std::string name_;
  bool writes_bos_ = false;
  std::string start_;          // at the very start of the conversation (BOS, if written there)
  std::string system_prefix_;  // around the system message ...
  std::string system_suffix_;
  bool system_in_first_user_ = false;  // ... written inside the first user message, after its
                                       // header, instead of as a turn of its own
  std::string user_prefix_;            // around a user message
  std::string user_suffix_;
  std::string assistant_header_;   // the generation prompt ...
  std::string generation_suffix_;  // ... and what follows it only when a reply is generated
  std::string reply_lead_;
  std::string end_of_reply_;
  std::string end_of_turn_;
};

// The template for a model whose `tokenizer.chat_template` is `jinja` ("" if it has none), and a
// note for the user when it was not recognised from the model:
//   none         -> plain (a base model)
//   recognised   -> that family, no note
//   unrecognised -> chatml, the most common format (as llama.cpp falls back to it)
struct TemplateChoice {
  std::string name;
  std::string note;
};
TemplateChoice choose_template(std::string_view jinja);

}  // namespace sllm
