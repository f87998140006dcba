// Chat templates (issue 5, acceptance 3) and MT-Bench prompt files. The expected strings are
// written by hand from each family's documented format (docs/chat.md), not produced by the code.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "chat/prompt_file.h"
#include "gguf/gguf.h"
#include "test_util.h"

namespace sllm {
namespace {

const std::vector<ChatMessage> kConversation = {
    {ChatRole::kSystem, "You are a helpful assistant."},
    {ChatRole::kUser, "Hello!"},
    {ChatRole::kAssistant, "Hi, how can I help?"},
    {ChatRole::kUser, "What is 2+2?"},
    {ChatRole::kAssistant, "It is 4."},
    {ChatRole::kUser, "Thanks!"},
};

struct Expected {
  const char* name;
  SpecialTokenTexts special;
  const char* text;  // kConversation rendered with the generation prompt
  // What a streaming chat feeds for it, where that differs (Gemma 4's empty thought channel
  // stays in past turns); nullptr: the same as text.
  const char* streamed = nullptr;
};

const SpecialTokenTexts kLlamaSpecial{"<s>", "</s>"};

const Expected kExpected[] = {
    {"plain", kLlamaSpecial,
     "You are a helpful assistant.\nHello! Hi, how can I help? What is 2+2? It is 4. Thanks!"},
    {"llama2", kLlamaSpecial,
     "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST] Hi, how can I "
     "help? </s><s>[INST] What is 2+2? [/INST] It is 4. </s><s>[INST] Thanks! [/INST]"},
    {"llama3",
     {"<|begin_of_text|>", "<|end_of_text|>"},
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful "
     "assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\nHi, how can I help?<|eot_id|>"
     "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\nIt is 4.<|eot_id|>"
     "<|start_header_id|>user<|end_header_id|>\n\nThanks!<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\n"},
    {"chatml",
     {"<|endoftext|>", "<|im_end|>"},
     "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!"
     "<|im_end|>\n<|im_start|>assistant\nHi, how can I help?<|im_end|>\n<|im_start|>user\n"
     "What is 2+2?<|im_end|>\n<|im_start|>assistant\nIt is 4.<|im_end|>\n<|im_start|>user\n"
     "Thanks!<|im_end|>\n<|im_start|>assistant\n"},
    {"mistral", kLlamaSpecial,
     "<s>[INST] You are a helpful assistant.\n\nHello! [/INST]Hi, how can I help?</s>"
     "[INST] What is 2+2? [/INST]It is 4.</s>[INST] Thanks! [/INST]"},
    {"zephyr", kLlamaSpecial,
     "<|system|>\nYou are a helpful assistant.</s>\n<|user|>\nHello!</s>\n<|assistant|>\n"
     "Hi, how can I help?</s>\n<|user|>\nWhat is 2+2?</s>\n<|assistant|>\nIt is 4.</s>\n"
     "<|user|>\nThanks!</s>\n<|assistant|>\n"},
    {"phi3",
     {"<s>", "<|endoftext|>"},
     "<s><|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello!<|end|>\n"
     "<|assistant|>\nHi, how can I help?<|end|>\n<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n"
     "It is 4.<|end|>\n<|user|>\nThanks!<|end|>\n<|assistant|>\n"},
    {"gemma",
     {"<bos>", "<eos>"},
     "<bos><start_of_turn>user\nYou are a helpful assistant.\n\nHello!<end_of_turn>\n"
     "<start_of_turn>model\nHi, how can I help?<end_of_turn>\n<start_of_turn>user\nWhat is 2+2?"
     "<end_of_turn>\n<start_of_turn>model\nIt is 4.<end_of_turn>\n<start_of_turn>user\nThanks!"
     "<end_of_turn>\n<start_of_turn>model\n"},
    // google/gemma-4 chat_template (thinking off): a system turn, <|turn>ROLE\n ... <turn|>\n, and
    // the generation prompt's empty thought channel. The template in ggml-vocab-gemma-4.gguf,
    // run by a Jinja engine, gives this very text (peer/chat_templates.mjs).
    {"gemma4",
     {"<bos>", "<eos>"},
     "<bos><|turn>system\nYou are a helpful assistant.<turn|>\n<|turn>user\nHello!<turn|>\n"
     "<|turn>model\nHi, how can I help?<turn|>\n<|turn>user\nWhat is 2+2?<turn|>\n"
     "<|turn>model\nIt is 4.<turn|>\n<|turn>user\nThanks!<turn|>\n"
     "<|turn>model\n<|channel>thought\n<channel|>",
     "<bos><|turn>system\nYou are a helpful assistant.<turn|>\n<|turn>user\nHello!<turn|>\n"
     "<|turn>model\n<|channel>thought\n<channel|>Hi, how can I help?<turn|>\n<|turn>user\n"
     "What is 2+2?<turn|>\n<|turn>model\n<|channel>thought\n<channel|>It is 4.<turn|>\n"
     "<|turn>user\nThanks!<turn|>\n<|turn>model\n<|channel>thought\n<channel|>"},
    // mistralai/Mistral-7B-Instruct-v0.3: "[INST] " + content + "[/INST]", " " + reply + eos.
    // (Its template puts the system message before the last user message; we put it before the
    // first, as llama.cpp does: a streaming chat cannot move it.)
    {"mistral-v3", kLlamaSpecial,
     "<s>[INST] You are a helpful assistant.\n\nHello![/INST] Hi, how can I help?</s>"
     "[INST] What is 2+2?[/INST] It is 4.</s>[INST] Thanks![/INST]"},
    // mistralai/Mistral-Nemo-Instruct-2407: "[INST]" + content + "[/INST]", reply + eos.
    {"mistral-v3-tekken", kLlamaSpecial,
     "<s>[INST]You are a helpful assistant.\n\nHello![/INST]Hi, how can I help?</s>"
     "[INST]What is 2+2?[/INST]It is 4.</s>[INST]Thanks![/INST]"},
    // mistralai/Mistral-Large-Instruct-2411: "[SYSTEM_PROMPT] " + content + "[/SYSTEM_PROMPT]".
    {"mistral-v7", kLlamaSpecial,
     "<s>[SYSTEM_PROMPT] You are a helpful assistant.[/SYSTEM_PROMPT][INST] Hello![/INST] Hi, how "
     "can I help?</s>[INST] What is 2+2?[/INST] It is 4.</s>[INST] Thanks![/INST]"},
    // CohereForAI/c4ai-command-r-v01: the template in ggml-vocab-command-r.gguf, run by a Jinja
    // engine, gives this very text (peer/chat_templates.mjs; so does qwen2's for chatml).
    {"command-r",
     {"<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"},
     "<BOS_TOKEN><|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>You are a helpful assistant."
     "<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hello!<|END_OF_TURN_TOKEN|>"
     "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>Hi, how can I help?<|END_OF_TURN_TOKEN|>"
     "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>What is 2+2?<|END_OF_TURN_TOKEN|>"
     "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>It is 4.<|END_OF_TURN_TOKEN|>"
     "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Thanks!<|END_OF_TURN_TOKEN|>"
     "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"},
    {"vicuna", kLlamaSpecial,
     "You are a helpful assistant.\n\nUSER: Hello!\n\nASSISTANT: Hi, how can I help?</s>"
     "USER: What is 2+2?\n\nASSISTANT: It is 4.</s>USER: Thanks!\n\nASSISTANT: "},
};

ChatTemplate make(const char* name, const SpecialTokenTexts& special) {
  auto t = ChatTemplate::from_name(name, special);
  EXPECT_TRUE(t.ok()) << name;
  return std::move(t).value();
}

TEST(ChatTemplateTest, EveryTemplateHasAnExpectedString) {
  std::vector<std::string_view> tested;
  for (const Expected& e : kExpected) tested.push_back(e.name);
  EXPECT_EQ(tested, std::vector<std::string_view>(ChatTemplate::names().begin(),
                                                  ChatTemplate::names().end()));
}

TEST(ChatTemplateTest, ThreeTurnsWithASystemMessageRenderAsDocumented) {
  for (const Expected& e : kExpected) {
    const ChatTemplate t = make(e.name, e.special);
    auto text = t.render(kConversation, /*add_generation_prompt=*/true);
    ASSERT_TRUE(text.ok()) << e.name << ": " << text.error().message();
    EXPECT_EQ(*text, e.text) << e.name;
  }
}

// What a streaming chat feeds, turn by turn, adds up to the rendered conversation.
TEST(ChatTemplateTest, TurnPiecesAddUpToTheRenderedConversation) {
  for (const Expected& e : kExpected) {
    const ChatTemplate t = make(e.name, e.special);
    std::string pieces = t.opening(kConversation[0].content);
    for (size_t i = 1; i < kConversation.size(); i += 2) {
      pieces += t.user_turn(kConversation[i].content, i == 1);
      if (i + 1 < kConversation.size()) {
        pieces += t.reply_lead() + kConversation[i + 1].content + t.end_of_reply();
      }
    }
    EXPECT_EQ(pieces, e.streamed != nullptr ? e.streamed : e.text) << e.name;
  }
}

TEST(ChatTemplateTest, WithoutASystemMessage) {
  const std::vector<ChatMessage> messages = {
      {ChatRole::kUser, "Hello!"}, {ChatRole::kAssistant, "Hi."}, {ChatRole::kUser, "Bye."}};
  EXPECT_EQ(*make("llama2", kLlamaSpecial).render(messages, true),
            "<s>[INST] Hello! [/INST] Hi. </s><s>[INST] Bye. [/INST]");
  EXPECT_EQ(*make("mistral", kLlamaSpecial).render(messages, true),
            "<s>[INST] Hello! [/INST]Hi.</s>[INST] Bye. [/INST]");
  EXPECT_EQ(*make("gemma", {"<bos>", "<eos>"}).render(messages, true),
            "<bos><start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\nHi.<end_of_turn>"
            "\n<start_of_turn>user\nBye.<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(*make("chatml", {}).render(messages, true),
            "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi.<|im_end|>\n"
            "<|im_start|>user\nBye.<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(*make("vicuna", kLlamaSpecial).render(messages, true),
            "USER: Hello!\n\nASSISTANT: Hi.</s>USER: Bye.\n\nASSISTANT: ");
  EXPECT_EQ(*make("plain", kLlamaSpecial).render(messages, true), "Hello! Hi. Bye.");
  EXPECT_EQ(*make("mistral-v3", kLlamaSpecial).render(messages, true),
            "<s>[INST] Hello![/INST] Hi.</s>[INST] Bye.[/INST]");
  EXPECT_EQ(*make("mistral-v3-tekken", kLlamaSpecial).render(messages, true),
            "<s>[INST]Hello![/INST]Hi.</s>[INST]Bye.[/INST]");
  EXPECT_EQ(*make("command-r", {"<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"}).render(messages, true),
            "<BOS_TOKEN><|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hello!<|END_OF_TURN_TOKEN|>"
            "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>Hi.<|END_OF_TURN_TOKEN|>"
            "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Bye.<|END_OF_TURN_TOKEN|>"
            "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>");
  EXPECT_EQ(*make("gemma4", {"<bos>", "<eos>"}).render(messages, true),
            "<bos><|turn>user\nHello!<turn|>\n<|turn>model\nHi.<turn|>\n<|turn>user\nBye.<turn|>\n"
            "<|turn>model\n<|channel>thought\n<channel|>");
  // Without the generation prompt the text ends with the user message.
  EXPECT_EQ(*make("gemma4", {"<bos>", "<eos>"}).render(std::span(messages).first(1), false),
            "<bos><|turn>user\nHello!<turn|>\n");
  EXPECT_EQ(*make("chatml", {}).render(std::span(messages).first(1), false),
            "<|im_start|>user\nHello!<|im_end|>\n");
}

TEST(ChatTemplateTest, EndOfTurnTokens) {
  EXPECT_EQ(make("chatml", {}).end_of_turn(), "<|im_end|>");
  EXPECT_EQ(make("llama3", {"<|begin_of_text|>", "<|end_of_text|>"}).end_of_turn(), "<|eot_id|>");
  EXPECT_EQ(make("llama2", kLlamaSpecial).end_of_turn(), "</s>");
  EXPECT_EQ(make("gemma", {"<bos>", "<eos>"}).end_of_turn(), "<end_of_turn>");
  EXPECT_EQ(make("phi3", kLlamaSpecial).end_of_turn(), "<|end|>");
  EXPECT_EQ(make("plain", kLlamaSpecial).end_of_turn(), "");
  EXPECT_EQ(make("gemma4", {"<bos>", "<eos>"}).end_of_turn(), "<turn|>");
  EXPECT_EQ(make("mistral-v3", kLlamaSpecial).end_of_turn(), "</s>");
  EXPECT_EQ(make("mistral-v3-tekken", kLlamaSpecial).end_of_turn(), "</s>");
  EXPECT_EQ(make("command-r", {"<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>"}).end_of_turn(),
            "<|END_OF_TURN_TOKEN|>");
  EXPECT_TRUE(make("command-r", {}).writes_bos());
  EXPECT_TRUE(make("gemma4", {}).writes_bos());
  EXPECT_TRUE(make("llama2", kLlamaSpecial).writes_bos());
  EXPECT_FALSE(make("chatml", {}).writes_bos());
}

TEST(ChatTemplateTest, MessagesOutOfOrderAreRejected) {
  const ChatTemplate t = make("chatml", {});
  using Messages = std::vector<ChatMessage>;
  auto assistant_first = t.render(Messages{{ChatRole::kAssistant, "Hi."}}, false);
  ASSERT_FALSE(assistant_first.ok());
  EXPECT_EQ(assistant_first.error().message(),
            "message 0 has role assistant, expected user (an optional system message, then user "
            "and assistant messages alternating)");
  auto two_users = t.render(Messages{{ChatRole::kUser, "a"}, {ChatRole::kUser, "b"}}, true);
  ASSERT_FALSE(two_users.ok());
  EXPECT_NE(two_users.error().message().find("message 1 has role user, expected assistant"),
            std::string::npos);
  auto prompt_after_reply =
      t.render(Messages{{ChatRole::kUser, "a"}, {ChatRole::kAssistant, "b"}}, true);
  ASSERT_FALSE(prompt_after_reply.ok());
  EXPECT_EQ(prompt_after_reply.error().message(),
            "add_generation_prompt needs a user message last");
  auto only_system = t.render(Messages{{ChatRole::kSystem, "s"}}, false);
  ASSERT_FALSE(only_system.ok());
  EXPECT_EQ(only_system.error().message(), "a conversation needs a user message");
}

TEST(ChatTemplateTest, UnknownNameListsTheKnownOnes) {
  auto t = ChatTemplate::from_name("alpaca", {});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().message(),
            "unknown chat template 'alpaca' (known: plain, llama2, llama3, chatml, mistral, "
            "zephyr, phi3, gemma, gemma4, mistral-v3, mistral-v3-tekken, mistral-v7, command-r, "
            "vicuna)");
}

// Excerpts of the Jinja templates the families ship (their distinctive parts).
TEST(ChatTemplateTest, DetectsFamiliesFromTheirJinja) {
  EXPECT_EQ(ChatTemplate::detect("{% for message in messages %}{{'<|im_start|>' + "
                                 "message['role'] + '\\n' + message['content'] + '<|im_end|>'}}"),
            "chatml");
  EXPECT_EQ(ChatTemplate::detect("{% set content = '<|start_header_id|>' + message['role'] + "
                                 "'<|end_header_id|>\\n\\n'+ message['content'] | trim + "
                                 "'<|eot_id|>' %}"),
            "llama3");
  EXPECT_EQ(ChatTemplate::detect("{{ '<start_of_turn>' + role + '\\n' + message['content'] | "
                                 "trim + '<end_of_turn>\\n' }}"),
            "gemma");
  EXPECT_EQ(ChatTemplate::detect("{{ '<|user|>\\n' + message['content'] + eos_token }}{{ "
                                 "'<|assistant|>\\n'  + message['content'] + eos_token }}"),
            "zephyr");
  EXPECT_EQ(ChatTemplate::detect("{% set content = '<<SYS>>\\n' + system_message + "
                                 "'\\n<</SYS>>\\n\\n' %}{{ bos_token + '[INST] ' + "
                                 "content.strip() + ' [/INST]' }}"),
            "llama2");
  EXPECT_EQ(ChatTemplate::detect("{{ bos_token }}{% for message in messages %}{{ '[INST] ' + "
                                 "message['content'] + ' [/INST]' }}"),
            "mistral");
  EXPECT_EQ(ChatTemplate::detect("{{ 'USER: ' + message['content'] + '\\nASSISTANT:' }}"),
            "vicuna");
  EXPECT_EQ(ChatTemplate::detect("{{ '### Instruction:\\n' + message['content'] }}"), "");
}

// The published Mistral templates (mistralai/Mistral-7B-Instruct-v0.3, Mistral-Nemo-Instruct-2407)
// and Meta's Llama 3.1 one, the parts that tell them apart.
TEST(ChatTemplateTest, DetectsMistralVersionsAndLlama3FromTheirPublishedJinja) {
  EXPECT_EQ(ChatTemplate::detect(
                "{%- if tools is not none and (message == user_messages[-1]) %}{{- "
                "\"[AVAILABLE_TOOLS] [\" }}{%- endif %}{%- if loop.last and system_message is "
                "defined %}{{- \"[INST] \" + system_message + \"\\n\\n\" + message[\"content\"] + "
                "\"[/INST]\" }}{%- else %}{{- \"[INST] \" + message[\"content\"] + \"[/INST]\" "
                "}}{%- endif %}{{- \" \" + message[\"content\"]|trim + eos_token}}"),
            "mistral-v3");
  EXPECT_EQ(ChatTemplate::detect(
                "{%- if tools is not none and (message == user_messages[-1]) %}{{- "
                "\"[AVAILABLE_TOOLS][\" }}{%- endif %}{%- if loop.last and system_message is "
                "defined %}{{- \"[INST]\" + system_message + \"\\n\\n\" + message[\"content\"] + "
                "\"[/INST]\" }}{%- else %}{{- \"[INST]\" + message[\"content\"] + \"[/INST]\" "
                "}}{%- endif %}{{- message[\"content\"] + eos_token}}"),
            "mistral-v3-tekken");
  // Without the tool-calling parts.
  EXPECT_EQ(ChatTemplate::detect("{{ bos_token }}{% for message in messages %}{% if "
                                 "message['role'] == 'user' %}{{ '[INST] ' + message['content'] + "
                                 "'[/INST]' }}{% else %}{{ ' ' + message['content'] + eos_token "
                                 "}}{% endif %}{% endfor %}"),
            "mistral-v3");
  EXPECT_EQ(ChatTemplate::detect("{{ bos_token }}{% for message in messages %}{% if "
                                 "message['role'] == 'user' %}{{ '[INST]' + message['content'] + "
                                 "'[/INST]' }}{% else %}{{ message['content'] + eos_token }}{% "
                                 "endif %}{% endfor %}"),
            "mistral-v3-tekken");
  EXPECT_EQ(ChatTemplate::detect(
                "{{- bos_token }}{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}{%- "
                "for message in messages %}{{- '<|start_header_id|>' + message['role'] + "
                "'<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}{%- endfor "
                "%}{%- if add_generation_prompt %}{{- "
                "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"),
            "llama3");
  EXPECT_EQ(ChatTemplate::detect("{{ '<|START_OF_TURN_TOKEN|><|USER_TOKEN|>' + content.strip() + "
                                 "'<|END_OF_TURN_TOKEN|>' }}"),
            "command-r");
  // mistralai/Mistral-Large-Instruct-2411's template, whole.
  EXPECT_EQ(
      ChatTemplate::detect(
          "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ "
          "'[INST] "
          "' + message['content'] + '[/INST]' }}{% elif message['role'] == 'system' %}{{ "
          "'[SYSTEM_PROMPT] ' + message['content'] + '[/SYSTEM_PROMPT]' }}{% elif message['role'] "
          "== 'assistant' %}{{ ' ' + message['content'] + eos_token }}{% else %}{{ "
          "raise_exception('Only user, system and assistant roles are supported!') }}{% endif %}{% "
          "endfor %}"),
      "mistral-v7");
  // Mistral-7B-Instruct-v0.2's 'v1' template with a system prompt: ' [INST] ' + system_message.
  EXPECT_EQ(
      ChatTemplate::detect("{%- if loop.first and system_message is defined %}{{- ' [INST] ' "
                           "+ system_message + '\\n\\n' + message['content'] + ' [/INST]' "
                           "}}{%- else %}{{- ' [INST] ' + message['content'] + ' [/INST]' }}"),
      "mistral");
  EXPECT_EQ(ChatTemplate::detect("{{- '<|turn>' + role + '\\n' }}{{- '<turn|>\\n' -}}"), "gemma4");
}

// The vocabularies in ../shared that carry their model's real chat template.
TEST(ChatTemplateTest, DetectsEachFamilyFromTheRealGguf) {
  const std::pair<const char*, const char*> cases[] = {
      {"phi-3", "phi3"},     {"qwen2", "chatml"},        {"qwen35", "chatml"},
      {"gemma-4", "gemma4"}, {"command-r", "command-r"},
  };
  for (const auto& [vocab, family] : cases) {
    SCOPED_TRACE(vocab);
    auto gguf =
        GgufFile::open(test::shared_path(std::string("data/vocab/ggml-vocab-") + vocab + ".gguf"));
    ASSERT_TRUE(gguf.ok()) << gguf.error().message();
    auto jinja = gguf->get_string("tokenizer.chat_template");
    ASSERT_TRUE(jinja.ok()) << jinja.error().message();
    EXPECT_EQ(ChatTemplate::detect(*jinja), family);
    EXPECT_EQ(choose_template(*jinja).name, family);
    EXPECT_EQ(choose_template(*jinja).note, "");
  }
}

TEST(ChatTemplateTest, ChoiceSaysWhichTemplateIsUsedInstead) {
  const TemplateChoice none = choose_template("");
  EXPECT_EQ(none.name, "plain");
  EXPECT_EQ(none.note,
            "the model has no tokenizer.chat_template: using the plain template (a base model)");
  const TemplateChoice unknown = choose_template("{{ '### Instruction:\\n' }}");
  EXPECT_EQ(unknown.name, "chatml");
  EXPECT_EQ(unknown.note,
            "the model's tokenizer.chat_template is not one we recognise: using chatml");
}

TEST(PromptFileTest, ReadsAllMtBenchTurnsInOrder) {
  auto turns = read_prompt_turns(test::shared_path("data/chat/mt_bench_questions.jsonl"));
  ASSERT_TRUE(turns.ok()) << turns.error().message();
  ASSERT_EQ(turns->size(), 160u);  // 80 questions, two turns each
  EXPECT_EQ(turns->front().rfind("Compose an engaging travel blog post about a recent trip to "
                                 "Hawaii",
                                 0),
            0u);
  EXPECT_EQ((*turns)[1], "Rewrite your previous response. Start every sentence with the letter A.");
}

TEST(PromptFileTest, BadLinesAreNamed) {
  auto ok = parse_prompt_turns("{\"turns\": [\"a\", \"b\"]}\n\n{\"turns\": [\"c\"]}\n", "p");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, (std::vector<std::string>{"a", "b", "c"}));
  const std::pair<const char*, const char*> bad[] = {
      {"{\"turns\": [\"a\"]}\n{not json\n", "p:2: not valid JSON"},
      {"[1, 2]\n", "p:1: expected a JSON object"},
      {"{\"question_id\": 1}\n", "p:1: expected a non-empty \"turns\" array"},
      {"{\"turns\": []}\n", "p:1: expected a non-empty \"turns\" array"},
      {"{\"turns\": [\"a\", 2]}\n", "p:1: every element of \"turns\" must be a string"},
      {"\n  \n", "p: no questions"},
  };
  for (const auto& [text, message] : bad) {
    auto r = parse_prompt_turns(text, "p");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().message(), message);
  }
}

}  // namespace
}  // namespace sllm
