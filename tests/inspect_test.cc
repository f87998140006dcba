// Issue 4: the attention-sink measurement (StreamingLLM, Figure 2). Synthetic q/k/v with known
// attention first, then stories260K through the probe, then `inspect attention` end to end.
#include "runtime/inspect.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include "cli_runner.h"
#include "engine_fixture.h"

namespace sllm::test {
namespace {

// One layer, two query heads sharing one KV head (GQA), head_dim 4 of which only the first pair
// is rotated: dims 2 and 3 score independently of position.
ModelConfig tiny_config() {
  ModelConfig c;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 4;
  c.rope = RopeSpec{4, 2, 10000.0, RopeLayout::kAdjacentPairs};
  return c;
}

// Feeds n_tokens tokens in batches of `batch`. Head 0's query matches token 0's key in the
// unrotated dim 3 with score `sink_score`; head 1's query is zero (uniform attention). Values:
// v[t] = (t, 0, 0, 0). Returns the attention outputs [n_tokens, 2 * 4].
std::vector<float> run_synthetic(AttentionProbe& probe, size_t n_tokens, size_t batch,
                                 float sink_score) {
  std::vector<float> outputs;
  for (size_t done = 0; done < n_tokens; done += batch) {
    const size_t n = std::min(batch, n_tokens - done);
    std::vector<float> q(n * 8, 0.0f), k(n * 4, 0.0f), v(n * 4, 0.0f), out(n * 8, -1.0f);
    for (size_t i = 0; i < n; ++i) {
      q[i * 8 + 3] = std::sqrt(sink_score) * 2;  // scores are scaled by 1/sqrt(head_dim) = 1/2
      if (done + i == 0) k[3] = std::sqrt(sink_score);
      v[i * 4] = static_cast<float>(done + i);
    }
    probe.attend(0, n, q.data(), k.data(), v.data(), out.data());
    outputs.insert(outputs.end(), out.begin(), out.end());
  }
  return outputs;
}

TEST(AttentionProbeTest, UniformAttentionGivesTheUniformShare) {
  AttentionMassOptions o;
  o.max_k = 4;
  o.min_query_pos = 8;
  AttentionProbe probe(tiny_config(), o);
  const std::vector<float> out = run_synthetic(probe, 40, 40, 0.0f);
  const AttentionMass m = probe.result();
  ASSERT_EQ(m.n_queries, 32u);  // positions 8..39
  for (size_t k = 1; k <= 4; ++k) {
    double uniform = 0;
    for (size_t t = 8; t < 40; ++t) uniform += static_cast<double>(k) / static_cast<double>(t + 1);
    uniform /= 32;
    EXPECT_NEAR(m.uniform_mass(k), uniform, 1e-12);
    EXPECT_NEAR(m.head_mass(0, 0, k), uniform, 1e-6);
    EXPECT_NEAR(m.head_mass(0, 1, k), uniform, 1e-6);
  }
  // The output is the mean of the values seen: (0 + ... + t) / (t + 1) = t / 2.
  for (size_t t = 0; t < 40; ++t) EXPECT_NEAR(out[t * 8], static_cast<float>(t) / 2, 1e-4) << t;
}

TEST(AttentionProbeTest, SinkHeadPutsItsMassOnTheFirstToken) {
  AttentionMassOptions o;
  o.max_k = 4;
  o.min_query_pos = 8;
  AttentionProbe probe(tiny_config(), o);
  // Score 20 on token 0, 0 elsewhere: weight e^20 / (e^20 + t) > 0.999 for t < 4e5.
  const std::vector<float> out = run_synthetic(probe, 40, 40, 20.0f);
  const AttentionMass m = probe.result();
  for (size_t k = 1; k <= 4; ++k) {
    EXPECT_GT(m.head_mass(0, 0, k), 0.999);                      // the sink head
    EXPECT_NEAR(m.head_mass(0, 1, k), m.uniform_mass(k), 1e-6);  // the uniform head
    EXPECT_NEAR(m.layer_mass(0, k), (m.head_mass(0, 0, k) + m.head_mass(0, 1, k)) / 2, 1e-12);
  }
  // Head 0 reads token 0's value (0), head 1 the mean (t / 2).
  EXPECT_NEAR(out[39 * 8], 0.0f, 1e-3);
  EXPECT_NEAR(out[39 * 8 + 4], 19.5f, 1e-3);
}

TEST(AttentionProbeTest, BatchSizeDoesNotChangeTheMeasurement) {
  AttentionMassOptions o;
  o.max_k = 3;
  o.min_query_pos = 5;
  const size_t n_tokens = 30;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> q(n_tokens * 8), k(n_tokens * 4), v(n_tokens * 4);  // unrotated
  for (auto* x : {&q, &k, &v}) {
    for (float& f : *x) f = normal(rng);
  }
  auto run = [&](size_t batch) {
    AttentionProbe probe(tiny_config(), o);
    std::vector<float> qr = q, kr = k, out(n_tokens * 8);  // attend() rotates q and k in place
    for (size_t done = 0; done < n_tokens; done += batch) {
      const size_t n = std::min(batch, n_tokens - done);
      probe.attend(0, n, &qr[done * 8], &kr[done * 4], &v[done * 4], &out[done * 8]);
    }
    EXPECT_EQ(probe.n_seen(), n_tokens);
    return std::make_pair(out, probe.result());
  };
  const auto [out_whole, whole] = run(n_tokens);
  const auto [out_pieces, pieces] = run(7);
  EXPECT_LT(max_abs_diff(out_whole, out_pieces), 1e-6);
  EXPECT_EQ(whole.n_queries, 25u);
  EXPECT_EQ(pieces.n_queries, 25u);
  for (size_t i = 0; i < whole.mass.size(); ++i) EXPECT_NEAR(whole.mass[i], pieces.mass[i], 1e-9);
  // Random scores: head 0 and head 1 differ, and neither is uniform.
  EXPECT_NE(whole.head_mass(0, 0, 1), whole.head_mass(0, 1, 1));
  EXPECT_GT(std::abs(whole.head_mass(0, 0, 1) - whole.uniform_mass(1)), 1e-4);
}

// The probe is dense attention: the model run through it predicts what a dense session predicts.
TEST(AttentionProbeTest, ModelThroughTheProbeMatchesDenseSession) {
  const Engine& e = stories();
  ThreadPool pool(2);
  const auto tokens = story_tokens(160);
  SessionOptions so;
  so.policy = CachePolicy::kDense;
  so.window = 2048;
  auto session = make_session(so, pool);
  std::vector<float> expected;
  ASSERT_TRUE(session->feed(tokens, &expected).ok());

  const size_t n_vocab = e.model.config().n_vocab, batch = 64;
  AttentionProbe probe(e.model.config(), AttentionMassOptions{});
  ForwardScratch scratch(e.model.config(), batch);
  const AttendFn attend = [&probe](size_t layer, size_t n, float* q, float* k, const float* v,
                                   float* out) { probe.attend(layer, n, q, k, v, out); };
  std::vector<float> logits(tokens.size() * n_vocab);
  for (size_t done = 0; done < tokens.size(); done += batch) {
    const size_t n = std::min(batch, tokens.size() - done);
    e.model.forward(std::span<const TokenId>(tokens).subspan(done, n), attend, scratch, pool,
                    logits.data() + done * n_vocab, true);
  }
  EXPECT_EQ(probe.n_seen(), tokens.size());
  EXPECT_LT(max_abs_diff(logits, expected), 1e-4);
}

TEST(AttentionMassTest, StoriesTableHasTheRightShape) {
  const Engine& e = stories();
  ThreadPool pool(2);
  const auto tokens = story_tokens(200);
  auto m = measure_attention_mass(e.model, tokens, AttentionMassOptions{}, pool);
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->n_layers, 5u);
  EXPECT_EQ(m->n_heads, 8u);
  EXPECT_EQ(m->max_k, 8u);
  EXPECT_EQ(m->first_query_pos, 16u);
  EXPECT_EQ(m->n_queries, 184u);
  ASSERT_EQ(m->mass.size(), 5u * 8 * 8);
  for (size_t l = 0; l < 5; ++l) {
    for (size_t h = 0; h < 8; ++h) {
      double previous = 0;
      for (size_t k = 1; k <= 8; ++k) {
        const double mass = m->head_mass(l, h, k);
        EXPECT_GE(mass, previous) << l << "." << h << " k=" << k;
        EXPECT_LE(mass, 1.0);
        previous = mass;
      }
    }
  }
  // Softmax weights are never exactly zero, and the share of 8 of >= 17 tokens is below 1/2.
  EXPECT_GT(m->layer_mass(0, 1), 0.0);
  EXPECT_LT(m->uniform_mass(8), 0.5);
}

TEST(AttentionMassTest, BadOptionsAreErrors) {
  ThreadPool pool(1);
  const auto tokens = story_tokens(16);
  AttentionMassOptions o;
  auto short_stream = measure_attention_mass(stories().model, tokens, o, pool);
  ASSERT_FALSE(short_stream.ok());
  EXPECT_EQ(short_stream.error().message(),
            "the text is 16 token(s) long; measuring queries from position 16 needs at least 17");
  o.min_query_pos = 4;
  auto early = measure_attention_mass(stories().model, tokens, o, pool);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().message(),
            "the first query position (4) must be at least k (8): earlier queries see fewer than "
            "k tokens");
}

TEST(InspectCliTest, AttentionTableAndCsv) {
  // The first lines of the stories (about 500 tokens): the CLI tokenizes the whole file.
  const std::string text = temp_dir() + "/head.txt";
  {
    std::ifstream in(shared_path("data/text/tinystories_val_head.txt"), std::ios::binary);
    std::string head(2000, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    std::ofstream(text, std::ios::binary) << head.substr(0, head.rfind('\n') + 1);
  }
  const std::string csv = temp_dir() + "/attention.csv";
  const std::string args = "inspect attention -m " + quote(stories_gguf()) + " -f " + quote(text);
  const CliResult r = run_cli(args + " --tokens 64 --per-head --csv " + quote(csv));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("64-token stream, mean over the 48 queries at positions 16..63"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\n4.7 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n4.mean "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nuniform "), std::string::npos) << r.out;
  std::ifstream in(csv);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(line, "layer,head,k,mass,uniform");
  size_t rows = 0;
  while (std::getline(in, line)) ++rows;
  EXPECT_EQ(rows, 5u * (8 + 1) * 8);  // layers x (heads + their mean) x k

  const CliResult bad = run_cli(args + " --tokens 10");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("error: the text is 10 token(s) long"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace sllm::test
