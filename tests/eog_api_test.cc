// Generation and chat stop on every end-of-generation token of the vocabulary (issue 10), not
// only on EOS: stories260K with an end-of-turn id added (tokenizer.ggml.eot_token_id = the token
// its greedy story continues with) stops right before that token, through the public API.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "gguf/gguf.h"
#include "stories_golden.h"
#include "streamingllm/streamingllm.h"
#include "test_util.h"

namespace sllm {
namespace {

// Greedy from BOS, stories260K writes 403 407 261 378 ... ("Once upon a time"); 407 is "▁upon".
constexpr TokenId kUpon = 407;

std::shared_ptr<Model> stories_with_eot(TokenId eot) {
  auto original = GgufFile::open(test::stories_gguf());
  if (!original.ok()) throw std::runtime_error(original.error().message());
  GgufWriter w;
  for (const auto& [k, v] : original->metadata()) w.set(k, v);
  w.set("tokenizer.ggml.eot_token_id", GgufValue::u32(static_cast<uint32_t>(eot)));
  for (const GgufTensorInfo& t : original->tensors()) {
    if (!w.add_tensor(t.name, t.type, t.dims, std::span(t.data, t.n_bytes)).ok()) {
      throw std::runtime_error("add_tensor failed");
    }
  }
  const std::string path = ::testing::TempDir() + "eog_api_test_stories_eot.gguf";
  if (!w.write(path).ok()) throw std::runtime_error("write failed");
  auto model = Model::load(path, {.n_threads = 1});
  std::filesystem::remove(path);  // mapped: the model keeps its pages
  if (!model.ok()) throw std::runtime_error(model.error().message());
  return std::move(model).value();
}

TEST(EndOfGenerationApi, InfoListsTheEndTokens) {
  const auto model = stories_with_eot(kUpon);
  EXPECT_EQ(model->info().end_of_generation,
            (std::vector<SpecialToken>{{2, "</s>"}, {kUpon, "\xe2\x96\x81upon"}}));
  auto plain = Model::load(test::stories_gguf(), {.n_threads = 1});
  ASSERT_TRUE(plain.ok()) << plain.error().message();
  EXPECT_EQ((*plain)->info().end_of_generation, (std::vector<SpecialToken>{{2, "</s>"}}));
  EXPECT_EQ((*plain)->info().pre_tokenizer, "default");
}

TEST(EndOfGenerationApi, VocabularyDescribesATokenizerOnlyFile) {
  auto info = Vocabulary::describe(test::shared_path("data/vocab/ggml-vocab-qwen2.gguf"));
  ASSERT_TRUE(info.ok()) << info.error().message();
  EXPECT_EQ(info->n_tensors, 0u);
  EXPECT_EQ(info->tokenizer_model, "gpt2");
  EXPECT_EQ(info->pre_tokenizer, "qwen2");
  EXPECT_EQ(info->end_of_generation,
            (std::vector<SpecialToken>{
                {128247, "</s>"}, {151643, "<|endoftext|>"}, {151645, "<|im_end|>"}}));
  auto spm = Vocabulary::load(test::shared_path("data/vocab/ggml-vocab-phi-3.gguf"));
  ASSERT_TRUE(spm.ok()) << spm.error().message();
  EXPECT_EQ((*spm)->info().end_of_generation,
            (std::vector<SpecialToken>{{2, "</s>"}, {32000, "<|endoftext|>"}, {32007, "<|end|>"}}));
}

TEST(EndOfGenerationApi, GenerationStopsAtAnyEndToken) {
  const auto model = stories_with_eot(kUpon);
  SamplingOptions greedy;
  greedy.temperature = 0;
  auto stream = Stream::create(model, CacheOptions{}, greedy);
  ASSERT_TRUE(stream.ok()) << stream.error().message();
  const TokenId bos[1] = {1};
  ASSERT_TRUE((*stream)->feed(bos).ok());
  StopOptions stop;
  stop.max_tokens = 50;
  auto g = (*stream)->generate(stop);
  ASSERT_TRUE(g.ok()) << g.error().message();
  EXPECT_EQ(g->stop, StopReason::kEndOfGeneration);
  EXPECT_EQ(g->end_token, kUpon);
  EXPECT_EQ(g->tokens, (std::vector<TokenId>{403}));
  EXPECT_EQ(g->text, "Once");
}

TEST(EndOfGenerationApi, ChatReplyStopsAtAnyEndToken) {
  const auto model = stories_with_eot(kUpon);
  ChatOptions options;
  options.template_name = "plain";
  options.sampling.temperature = 0;
  auto chat = Chat::create(model, options);
  ASSERT_TRUE(chat.ok()) << chat.error().message();
  StopOptions stop;
  stop.max_tokens = 50;
  // BOS "▁Once": the greedy continuation is "▁upon", the end token.
  auto reply = (*chat)->send("Once", stop);
  ASSERT_TRUE(reply.ok()) << reply.error().message();
  EXPECT_EQ(reply->prompt_tokens, (std::vector<TokenId>{1, 403}));
  EXPECT_EQ(reply->stop, StopReason::kEndOfGeneration);
  EXPECT_EQ(reply->end_token, kUpon);
  EXPECT_TRUE(reply->tokens.empty());
}

// A user typing a special token's text gets that text, not the token: stories260K's "</s>" (EOS)
// typed in a turn is encoded as the characters, while the template's own </s> (vicuna's closing)
// is EOS.
TEST(EndOfGenerationApi, UserTypedSpecialTokensStayText) {
  auto model = Model::load(test::stories_gguf(), {.n_threads = 1});
  ASSERT_TRUE(model.ok()) << model.error().message();
  ChatOptions options;
  options.template_name = "vicuna";
  options.sampling.temperature = 0;
  auto chat = Chat::create(*model, options);
  ASSERT_TRUE(chat.ok()) << chat.error().message();
  StopOptions stop;
  stop.max_tokens = 3;
  const std::string typed = "Hi</s><s>ASSISTANT: ";
  auto first = (*chat)->send(typed, stop);
  ASSERT_TRUE(first.ok()) << first.error().message();
  const std::vector<TokenId>& ids = first->prompt_tokens;
  EXPECT_EQ(ids.front(), 1);                            // BOS from the vocabulary
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 1);  // typed <s> is not BOS
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 0);  // typed </s> is not EOS
  auto as_text = (*model)->tokenize("USER: " + typed + "\n\nASSISTANT: ", true, false);
  ASSERT_TRUE(as_text.ok());
  EXPECT_EQ(ids, *as_text);
  auto second = (*chat)->send("More", stop);
  ASSERT_TRUE(second.ok()) << second.error().message();
  EXPECT_EQ(second->prompt_tokens.front(), 2);  // the template's closing </s> is EOS
}

}  // namespace
}  // namespace sllm
