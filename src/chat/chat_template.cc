#include "chat/chat_template.h"

#include <array>
#include <initializer_list>

namespace sllm {

// One family's texts around each message. "{bos}" and "{eos}" stand for the vocabulary's special
// token texts. The formats are those of the models' own Jinja templates (docs/chat.md).
struct ChatTemplate::Spec {
  std::string_view name = "";
  bool writes_bos = false;  // {{ bos_token }} in the Jinja template (in `start` or `user_prefix`)
  std::string_view start = "";
  std::string_view system_prefix = "";
  std::string_view system_suffix = "";
  bool system_in_first_user = false;
  std::string_view user_prefix = "";
  std::string_view user_suffix = "";
  std::string_view assistant_header = "";
  std::string_view generation_suffix = "";
  std::string_view reply_lead = "";
  std::string_view end_of_reply = "";
  std::string_view end_of_turn = "";
};

namespace {

using Spec = ChatTemplate::Spec;

constexpr std::array kSpecs = {
    // A base model: the texts follow one another, a space apart: the model writes the space in
    // front of its continuation itself (a SentencePiece "▁" token), and end_of_reply puts one in
    // front of the next user text.
    Spec{.name = "plain", .system_suffix = "\n", .reply_lead = " ", .end_of_reply = " "},
    // Llama 2 chat: BOS opens every user turn; the system message sits inside the first [INST].
    Spec{.name = "llama2",
         .writes_bos = true,
         .system_prefix = "<<SYS>>\n",
         .system_suffix = "\n<</SYS>>\n\n",
         .system_in_first_user = true,
         .user_prefix = "{bos}[INST] ",
         .user_suffix = " [/INST]",
         .reply_lead = " ",
         .end_of_reply = " {eos}",
         .end_of_turn = "{eos}"},
    Spec{.name = "llama3",
         .writes_bos = true,
         .start = "{bos}",
         .system_prefix = "<|start_header_id|>system<|end_header_id|>\n\n",
         .system_suffix = "<|eot_id|>",
         .user_prefix = "<|start_header_id|>user<|end_header_id|>\n\n",
         .user_suffix = "<|eot_id|>",
         .assistant_header = "<|start_header_id|>assistant<|end_header_id|>\n\n",
         .end_of_reply = "<|eot_id|>",
         .end_of_turn = "<|eot_id|>"},
    // ChatML (Qwen, OpenHermes, ...). Qwen's template adds a default system message when none
    // is given; we add none.
    Spec{.name = "chatml",
         .system_prefix = "<|im_start|>system\n",
         .system_suffix = "<|im_end|>\n",
         .user_prefix = "<|im_start|>user\n",
         .user_suffix = "<|im_end|>\n",
         .assistant_header = "<|im_start|>assistant\n",
         .end_of_reply = "<|im_end|>\n",
         .end_of_turn = "<|im_end|>"},
    // Mistral Instruct v0.1/v0.2: no system role; the system message goes in front of the first
    // user message, as in Mistral's later templates and llama.cpp.
    Spec{.name = "mistral",
         .writes_bos = true,
         .start = "{bos}",
         .system_suffix = "\n\n",
         .system_in_first_user = true,
         .user_prefix = "[INST] ",
         .user_suffix = " [/INST]",
         .end_of_reply = "{eos}",
         .end_of_turn = "{eos}"},
    Spec{.name = "zephyr",
         .system_prefix = "<|system|>\n",
         .system_suffix = "{eos}\n",
         .user_prefix = "<|user|>\n",
         .user_suffix = "{eos}\n",
         .assistant_header = "<|assistant|>\n",
         .end_of_reply = "{eos}\n",
         .end_of_turn = "{eos}"},
    Spec{.name = "phi3",
         .writes_bos = true,
         .start = "{bos}",
         .system_prefix = "<|system|>\n",
         .system_suffix = "<|end|>\n",
         .user_prefix = "<|user|>\n",
         .user_suffix = "<|end|>\n",
         .assistant_header = "<|assistant|>\n",
         .end_of_reply = "<|end|>\n",
         .end_of_turn = "<|end|>"},
    // Gemma has no system role (its template raises); llama.cpp puts the system message in front
    // of the first user message, and so do we.
    Spec{.name = "gemma",
         .writes_bos = true,
         .start = "{bos}",
         .system_suffix = "\n\n",
         .system_in_first_user = true,
         .user_prefix = "<start_of_turn>user\n",
         .user_suffix = "<end_of_turn>\n",
         .assistant_header = "<start_of_turn>model\n",
         .end_of_reply = "<end_of_turn>\n",
         .end_of_turn = "<end_of_turn>"},
    // Gemma 4: new turn markers, and a real system turn. With thinking off, the generation prompt
    // ends in an empty thought channel, which the template leaves out of past replies.
    Spec{.name = "gemma4",
         .writes_bos = true,
         .start = "{bos}",
         .system_prefix = "<|turn>system\n",
         .system_suffix = "<turn|>\n",
         .user_prefix = "<|turn>user\n",
         .user_suffix = "<turn|>\n",
         .assistant_header = "<|turn>model\n",
         .generation_suffix = "<|channel>thought\n<channel|>",
         .end_of_reply = "<turn|>\n",
         .end_of_turn = "<turn|>"},
    // Mistral v3 (Mistral 7B v0.3, Mixtral 8x22B): no space before [/INST]; the model writes the
    // space in front of its answer. Mistral's template puts the system message in front of the
    // LAST user message; a streaming chat cannot move it there, so, as llama.cpp does, it goes in
    // front of the first.
    Spec{.name = "mistral-v3",
         .writes_bos = true,
         .start = "{bos}",
         .system_suffix = "\n\n",
         .system_in_first_user = true,
         .user_prefix = "[INST] ",
         .user_suffix = "[/INST]",
         .reply_lead = " ",
         .end_of_reply = "{eos}",
         .end_of_turn = "{eos}"},
    // Mistral v3 with the Tekken tokenizer (Mistral Nemo): no spaces around the markers at all.
    Spec{.name = "mistral-v3-tekken",
         .writes_bos = true,
         .start = "{bos}",
         .system_suffix = "\n\n",
         .system_in_first_user = true,
         .user_prefix = "[INST]",
         .user_suffix = "[/INST]",
         .end_of_reply = "{eos}",
         .end_of_turn = "{eos}"},
    // Mistral v7 (Mistral Large 2411, Small 3): v3 with a system prompt of its own.
    Spec{.name = "mistral-v7",
         .writes_bos = true,
         .start = "{bos}",
         .system_prefix = "[SYSTEM_PROMPT] ",
         .system_suffix = "[/SYSTEM_PROMPT]",
         .user_prefix = "[INST] ",
         .user_suffix = "[/INST]",
         .reply_lead = " ",
         .end_of_reply = "{eos}",
         .end_of_turn = "{eos}"},
    // Command-R (Cohere): its EOS is the end-of-turn token.
    Spec{.name = "command-r",
         .writes_bos = true,
         .start = "{bos}",
         .system_prefix = "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>",
         .system_suffix = "<|END_OF_TURN_TOKEN|>",
         .user_prefix = "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>",
         .user_suffix = "<|END_OF_TURN_TOKEN|>",
         .assistant_header = "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
         .end_of_reply = "<|END_OF_TURN_TOKEN|>",
         .end_of_turn = "<|END_OF_TURN_TOKEN|>"},
    // The StreamingLLM demo's "USER: ...\n\nASSISTANT: " (Vicuna v1.1 with its separators).
    Spec{.name = "vicuna",
         .system_suffix = "\n\n",
         .user_prefix = "USER: ",
         .user_suffix = "\n\n",
         .assistant_header = "ASSISTANT: ",
         .end_of_reply = "{eos}",
         .end_of_turn = "{eos}"},
};

constexpr std::array<std::string_view, kSpecs.size()> kNames = [] {
  std::array<std::string_view, kSpecs.size()> names{};
  for (size_t i = 0; i < kSpecs.size(); ++i) names[i] = kSpecs[i].name;
  return names;
}();

std::string substitute(std::string_view text, const SpecialTokenTexts& special) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    if (text.substr(i, 5) == "{bos}") {
      out += special.bos;
      i += 5;
    } else if (text.substr(i, 5) == "{eos}") {
      out += special.eos;
      i += 5;
    } else {
      out += text[i++];
    }
  }
  return out;
}

bool contains_all(std::string_view text, std::initializer_list<std::string_view> markers) {
  for (std::string_view m : markers) {
    if (text.find(m) == std::string_view::npos) return false;
  }
  return true;
}

const char* role_name(ChatRole role) {
  switch (role) {
    case ChatRole::kSystem:
      return "system";
    case ChatRole::kUser:
      return "user";
    case ChatRole::kAssistant:
      return "assistant";
  }
  return "?";
}

}  // namespace

ChatTemplate::ChatTemplate(const Spec& spec, const SpecialTokenTexts& special)
    : name_(spec.name),
      writes_bos_(spec.writes_bos),
      start_(substitute(spec.start, special)),
      system_prefix_(substitute(spec.system_prefix, special)),
      system_suffix_(substitute(spec.system_suffix, special)),
      system_in_first_user_(spec.system_in_first_user),
      user_prefix_(substitute(spec.user_prefix, special)),
      user_suffix_(substitute(spec.user_suffix, special)),
      assistant_header_(substitute(spec.assistant_header, special)),
      generation_suffix_(substitute(spec.generation_suffix, special)),
      reply_lead_(substitute(spec.reply_lead, special)),
      end_of_reply_(substitute(spec.end_of_reply, special)),
      end_of_turn_(substitute(spec.end_of_turn, special)) {}

std::span<const std::string_view> ChatTemplate::names() { return kNames; }

Result<ChatTemplate> ChatTemplate::from_name(std::string_view name,
                                             const SpecialTokenTexts& special) {
  for (const Spec& spec : kSpecs) {
    if (spec.name == name) return ChatTemplate(spec, special);
  }
  std::string known;
  for (std::string_view n : kNames) known += (known.empty() ? "" : ", ") + std::string(n);
  return Error(ErrorCode::kInvalidInput,
               "unknown chat template '" + std::string(name) + "' (known: " + known + ")");
}

// Markers are checked most specific first: Phi-3 and Zephyr share <|user|>; Llama 2 and the
// Mistral versions share [INST], told apart as llama.cpp's llm_chat_detect_template does.
std::string_view ChatTemplate::detect(std::string_view jinja) {
  if (contains_all(jinja, {"<|im_start|>"})) return "chatml";
  if (contains_all(jinja, {"<|START_OF_TURN_TOKEN|>", "<|USER_TOKEN|>"})) return "command-r";
  if (contains_all(jinja, {"<|start_header_id|>", "<|end_header_id|>"})) return "llama3";
  if (contains_all(jinja, {"<|turn>", "<turn|>"})) return "gemma4";
  if (contains_all(jinja, {"<start_of_turn>"})) return "gemma";
  if (contains_all(jinja, {"<|assistant|>", "<|end|>"})) return "phi3";
  if (contains_all(jinja, {"<|user|>", "<|assistant|>"})) return "zephyr";
  if (contains_all(jinja, {"[INST]"})) {
    if (contains_all(jinja, {"[SYSTEM_PROMPT]"})) return "mistral-v7";
    // Mistral's official v1/v3/v3-tekken templates (their tool-calling versions carry
    // [AVAILABLE_TOOLS]; v1 writes ' [INST] ' + system_message).
    if (contains_all(jinja, {"[AVAILABLE_TOOLS]"}) ||
        contains_all(jinja, {"' [INST] ' + system_message"})) {
      if (contains_all(jinja, {" [INST]"})) return "mistral";
      if (contains_all(jinja, {"\"[INST]\""})) return "mistral-v3-tekken";
      return "mistral-v3";
    }
    if (contains_all(jinja, {"<<SYS>>"})) return "llama2";
    // Shorter templates of the same formats, without tools: "[INST]" alone is Tekken; "[INST] "
    // with "[/INST]" (no space before it) is v3.
    auto any = [&](std::string_view a, std::string_view b) {
      return contains_all(jinja, {a}) || contains_all(jinja, {b});
    };
    if (any("\"[INST]\"", "'[INST]'")) return "mistral-v3-tekken";
    if (any("\"[INST] \"", "'[INST] '") && any("\"[/INST]\"", "'[/INST]'")) return "mistral-v3";
    return "mistral";
  }
  if (contains_all(jinja, {"USER:", "ASSISTANT:"})) return "vicuna";
  return "";
}

TemplateChoice choose_template(std::string_view jinja) {
  if (jinja.empty()) {
    return {"plain",
            "the model has no tokenizer.chat_template: using the plain template (a base "
            "model)"};
  }
  const std::string_view detected = ChatTemplate::detect(jinja);
  if (!detected.empty()) return {std::string(detected), ""};
  return {"chatml", "the model's tokenizer.chat_template is not one we recognise: using chatml"};
}

std::string join(const ChatPieces& pieces) {
  std::string out;
  for (const ChatPiece& p : pieces) out += p.text;
  return out;
}

ChatPieces ChatTemplate::opening_pieces(std::string_view system) const {
  ChatPieces out = {{start_, false}};
  ChatPieces system_text;
  if (!system.empty()) {
    system_text = {{system_prefix_, false}, {std::string(system), true}, {system_suffix_, false}};
  }
  if (system_in_first_user_) {
    out.push_back({user_prefix_, false});
    out.insert(out.end(), system_text.begin(), system_text.end());
  } else {
    out.insert(out.end(), system_text.begin(), system_text.end());
    out.push_back({user_prefix_, false});
  }
  return out;
}

std::string ChatTemplate::opening(std::string_view system) const {
  return join(opening_pieces(system));
}

ChatPieces ChatTemplate::user_turn_pieces(std::string_view content, bool first) const {
  return {{first ? "" : user_prefix_, false},
          {std::string(content), true},
          {user_suffix_ + assistant_header_ + generation_suffix_, false}};
}

std::string ChatTemplate::user_turn(std::string_view content, bool first) const {
  return join(user_turn_pieces(content, first));
}

Result<std::string> ChatTemplate::render(std::span<const ChatMessage> messages,
                                         bool add_generation_prompt) const {
  auto invalid = [](const std::string& msg) { return Error(ErrorCode::kInvalidInput, msg); };
  size_t first = 0;
  std::string_view system;
  if (!messages.empty() && messages[0].role == ChatRole::kSystem) {
    system = messages[0].content;
    first = 1;
  }
  if (messages.size() == first) return invalid("a conversation needs a user message");
  std::string out = opening(system);
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatRole expected = (i - first) % 2 == 0 ? ChatRole::kUser : ChatRole::kAssistant;
    if (messages[i].role != expected) {
      return invalid("message " + std::to_string(i) + " has role " + role_name(messages[i].role) +
                     ", expected " + role_name(expected) +
                     " (an optional system message, then user and assistant messages "
                     "alternating)");
    }
    if (expected == ChatRole::kAssistant) {
      out += reply_lead_ + messages[i].content + end_of_reply_;
      continue;
    }
    std::string turn = user_turn(messages[i].content, i == first);
    if (i + 1 == messages.size() && !add_generation_prompt) {
      turn.resize(turn.size() - assistant_header_.size() - generation_suffix_.size());
    } else if (i + 1 < messages.size()) {
      turn.resize(turn.size() - generation_suffix_.size());  // a past reply's header
    }
    out += turn;
  }
  if (add_generation_prompt && messages.back().role != ChatRole::kUser) {
    return invalid("add_generation_prompt needs a user message last");
  }
  return out;
}

}  // namespace sllm
