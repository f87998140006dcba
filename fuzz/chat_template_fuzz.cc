// libFuzzer target for chat-template rendering (src/chat/chat_template.{h,cc}).
//
// Input: byte 0 picks the template (by name, modulo their count; or, with bit 7 set, the one that
// choose_template picks for the first segment as a Jinja source), byte 1 the special-token texts
// (bits 0-1) and add_generation_prompt (bit 2); the rest is split at NUL bytes into segments: the
// first is a Jinja source (or a template name to look up), each further segment a message whose
// first byte is its role (modulo 3) and whose other bytes its content (any bytes: special-token
// texts, invalid UTF-8).
//
// Checked:
//   - choose_template / detect: the name is one of names() and from_name accepts it; the note is
//     empty exactly when the source was recognised; an empty source is "plain".
//   - from_name of a name not in names() is kInvalidInput naming it.
//   - render of a conversation in the documented order (optional system, then user and assistant
//     alternating from a user; a user last for the generation prompt) succeeds and equals the
//     turn-by-turn pieces of chat_template.h (opening + user_turn + reply_lead + reply +
//     end_of_reply ..., generation_suffix dropped before stored replies, the generation prompt
//     dropped without add_generation_prompt) and contains every message's content; any other
//     order is kInvalidInput with a message.
//   - opening_pieces / user_turn_pieces join to opening / user_turn, and their content pieces are
//     exactly the message texts.
//   scripts/fuzz.sh 60 chat_template
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "chat/chat_template.h"
#include "fuzz_util.h"

namespace {

using sllm::ChatMessage;
using sllm::ChatPieces;
using sllm::ChatRole;
using sllm::ChatTemplate;

const sllm::SpecialTokenTexts kSpecials[] = {
    {"<s>", "</s>"},
    {"<|begin_of_text|>", "<|end_of_text|>"},
    {"<bos>", "<eos>"},
    {"", ""},
};

bool is_name(std::string_view name) {
  for (const std::string_view n : ChatTemplate::names()) {
    if (n == name) return true;
  }
  return false;
}

// The pieces hold `content` as one content piece and the rest as template text.
void check_pieces(const ChatPieces& pieces, std::string_view content, const std::string& whole) {
  SLLM_FUZZ_CHECK(sllm::join(pieces) == whole);
  size_t n_content = 0;
  for (const sllm::ChatPiece& p : pieces) {
    if (p.content) {
      ++n_content;
      SLLM_FUZZ_CHECK(p.text == content);
    }
  }
  SLLM_FUZZ_CHECK(content.empty() ? n_content <= 1 : n_content == 1);
}

bool documented_order(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  size_t first = !messages.empty() && messages[0].role == ChatRole::kSystem ? 1 : 0;
  if (messages.size() == first) return false;
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatRole expected = (i - first) % 2 == 0 ? ChatRole::kUser : ChatRole::kAssistant;
    if (messages[i].role != expected) return false;
  }
  return !add_generation_prompt || messages.back().role == ChatRole::kUser;
}

// The conversation with the generation prompt, as chat_template.h's turn-by-turn identity writes
// it: opening + user_turn(u1, true) + reply_lead + a1 + end_of_reply + user_turn(u2, false) ...,
// the generation suffix (Gemma 4's empty thought channel) dropped from turns a stored reply
// follows.
std::string by_turns(const ChatTemplate& t, const std::vector<ChatMessage>& messages) {
  size_t first = 0;
  std::string system;
  if (messages[0].role == ChatRole::kSystem) {
    system = messages[0].content;
    first = 1;
  }
  std::string out = t.opening(system);
  for (size_t i = first; i < messages.size(); ++i) {
    if (messages[i].role == ChatRole::kAssistant) {
      out += t.reply_lead() + messages[i].content + t.end_of_reply();
      continue;
    }
    std::string turn = t.user_turn(messages[i].content, i == first);
    if (i + 1 < messages.size()) {
      SLLM_FUZZ_CHECK(turn.ends_with(t.generation_suffix()));
      turn.resize(turn.size() - t.generation_suffix().size());
    }
    out += turn;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t pick = data[0];
  const uint8_t flags = data[1];
  const std::string_view rest(reinterpret_cast<const char*>(data + 2), size - 2);
  std::vector<std::string_view> segments;
  for (size_t start = 0;;) {
    const size_t end = rest.find('\0', start);
    segments.push_back(rest.substr(start, end == std::string_view::npos ? rest.npos : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  const std::string_view jinja = segments[0];
  const sllm::SpecialTokenTexts& special = kSpecials[flags & 3];
  const bool add_generation_prompt = (flags & 4) != 0;

  // Detection and lookup.
  const sllm::TemplateChoice choice = sllm::choose_template(jinja);
  SLLM_FUZZ_CHECK(is_name(choice.name));
  SLLM_FUZZ_CHECK(choice.note.empty() == !sllm::ChatTemplate::detect(jinja).empty());
  if (jinja.empty()) SLLM_FUZZ_CHECK(choice.name == "plain");
  if (!is_name(jinja)) {
    sllm::Result<ChatTemplate> unknown = ChatTemplate::from_name(jinja, special);
    SLLM_FUZZ_CHECK(!unknown.ok());
    SLLM_FUZZ_CHECK(unknown.error().code() == sllm::ErrorCode::kInvalidInput);
    SLLM_FUZZ_CHECK(
        unknown.error().message().find("unknown chat template '" + std::string(jinja) + "'") == 0);
  }
  const std::span<const std::string_view> names = ChatTemplate::names();
  const std::string name =
      (pick & 0x80) != 0 ? choice.name : std::string(names[(pick & 0x7F) % names.size()]);
  sllm::Result<ChatTemplate> t = ChatTemplate::from_name(name, special);
  SLLM_FUZZ_CHECK(t.ok());
  SLLM_FUZZ_CHECK(t->name() == name);

  std::vector<ChatMessage> messages;
  for (size_t i = 1; i < segments.size(); ++i) {
    if (segments[i].empty()) continue;
    const auto role = static_cast<ChatRole>(static_cast<uint8_t>(segments[i][0]) % 3);
    messages.push_back({role, std::string(segments[i].substr(1))});
  }

  // Pieces.
  const std::string_view some_text = messages.empty() ? jinja : messages[0].content;
  check_pieces(t->opening_pieces(some_text), some_text, t->opening(some_text));
  for (const bool first : {false, true}) {
    check_pieces(t->user_turn_pieces(some_text, first), some_text, t->user_turn(some_text, first));
  }

  // Rendering.
  sllm::Result<std::string> rendered = t->render(messages, add_generation_prompt);
  if (!documented_order(messages, add_generation_prompt)) {
    SLLM_FUZZ_CHECK(!rendered.ok());
    SLLM_FUZZ_CHECK(rendered.error().code() == sllm::ErrorCode::kInvalidInput);
    SLLM_FUZZ_CHECK(!rendered.error().message().empty());
    return 0;
  }
  SLLM_FUZZ_CHECK(rendered.ok());
  for (const ChatMessage& m : messages)
    SLLM_FUZZ_CHECK(rendered->find(m.content) != rendered->npos);
  const std::string full = by_turns(*t, messages);
  if (add_generation_prompt || messages.back().role == ChatRole::kAssistant) {
    SLLM_FUZZ_CHECK(*rendered == full);
  } else {
    // Without the generation prompt, the last user turn ends before the header the reply follows:
    // what is left out is the end of user_turn("", true) (user suffix, header, generation suffix).
    SLLM_FUZZ_CHECK(full.starts_with(*rendered));
    const std::string left_out = full.substr(rendered->size());
    SLLM_FUZZ_CHECK(t->user_turn("", true).ends_with(left_out));
    SLLM_FUZZ_CHECK(left_out.ends_with(t->generation_suffix()));
  }
  return 0;
}
