// Issue 2, acceptance 5: quantized copies of stories260K keep their perplexity on real text.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "engine_fixture.h"
#include "runtime/perplexity.h"
#include "tools/quantize.h"

namespace sllm::test {
namespace {

double perplexity_of(const std::string& gguf_path, const std::vector<TokenId>& tokens) {
  auto engine = Engine::load(gguf_path);
  EXPECT_TRUE(engine.ok()) << engine.error().message();
  ThreadPool pool(2);
  SessionOptions options;  // the default streaming cache: 4 sinks + 1020 window
  auto session = Session::create((*engine)->model, options, pool);
  EXPECT_TRUE(session.ok());
  auto result = stream_perplexity(**session, tokens);
  EXPECT_TRUE(result.ok());
  return result->ppl();
}

TEST(QuantizePplTest, QuantizedModelsStayCloseToF32) {
  // The acceptance length; under ASan a 1024-token prefix (measured: the same relative changes).
  const auto tokens = story_tokens(stream_length(4096, 1024));
  const double f32 = perplexity_of(stories_gguf(), tokens);
  struct Case {
    TensorType type;
    double max_relative_change;
  };
  for (const Case& c : {Case{TensorType::kF16, 0.002}, Case{TensorType::kQ8_0, 0.01},
                        Case{TensorType::kQ4_0, 0.10}}) {
    const std::string name = tensor_type_traits(static_cast<uint32_t>(c.type))->name;
    const std::string path = ::testing::TempDir() + "stories260K-" + name + ".gguf";
    ASSERT_TRUE(quantize_gguf(stories_gguf(), path, c.type, [](const std::string&) {}).ok());
    const double q = perplexity_of(path, tokens);
    const double change = std::abs(q - f32) / f32;
    EXPECT_LT(change, c.max_relative_change) << name << ": ppl " << q << " vs f32 " << f32;
    RecordProperty("ppl_" + name, std::to_string(q));
    std::printf("ppl over %zu tokens: f32 %.4f, %s %.4f (%+.3f%%)\n", tokens.size(), f32,
                name.c_str(), q, 100 * (q - f32) / f32);
    std::remove(path.c_str());
  }
}

}  // namespace
}  // namespace sllm::test
