// Loading the shared stories260K model and real text for engine tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/engine.h"
#include "runtime/session.h"
#include "runtime/session_file.h"
#include "test_util.h"
#include "util/mapped_file.h"

namespace sllm::test {

// Under AddressSanitizer the engine runs 10-30x slower, so the long-stream equivalence tests use
// shorter streams there; they still wrap the ring many times, which is what the sanitizers need to
// see. The release build runs the full lengths the acceptance criteria name.
inline constexpr bool kSanitized = kSanitizedBuild;

// `full` tokens normally, `sanitized` under ASan.
inline size_t stream_length(size_t full, size_t sanitized) { return kSanitized ? sanitized : full; }

// The engine for stories260K, loaded once per test binary.
inline const Engine& stories() {
  static const std::unique_ptr<Engine> engine = [] {
    auto e = Engine::load(stories_gguf());
    if (!e.ok()) throw std::runtime_error(e.error().message());
    return std::move(e).value();
  }();
  return *engine;
}

// BOS followed by the first tokens of the TinyStories validation text: n_tokens in all.
// model_fingerprint() of stories260K, computed once per test binary.
inline uint64_t stories_fingerprint() {
  static const uint64_t fingerprint = [] {
    auto f = model_fingerprint(stories().gguf);
    if (!f.ok()) throw std::runtime_error(f.error().message());
    return *f;
  }();
  return fingerprint;
}

inline std::vector<TokenId> story_tokens(size_t n_tokens) {
  static const std::vector<TokenId> all = [] {
    auto text = read_file(shared_path("data/text/tinystories_val_head.txt"));
    if (!text.ok()) throw std::runtime_error(text.error().message());
    // 200 KB of text is ample for the longest test stream.
    auto ids = stories().tokenizer->encode(text->substr(0, 200000), true, false);
    if (!ids.ok()) throw std::runtime_error(ids.error().message());
    return std::move(ids).value();
  }();
  if (n_tokens > all.size()) throw std::runtime_error("not enough text");
  return {all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n_tokens)};
}

inline std::unique_ptr<Session> make_session(const SessionOptions& options, ThreadPool& pool) {
  auto s = Session::create(stories().model, options, pool);
  if (!s.ok()) throw std::runtime_error(s.error().message());
  return std::move(s).value();
}

// Logits after each token, feeding them one at a time: [n_tokens][n_vocab].
inline std::vector<std::vector<float>> feed_one_by_one(Session& session,
                                                       const std::vector<TokenId>& tokens) {
  std::vector<std::vector<float>> out;
  out.reserve(tokens.size());
  for (TokenId t : tokens) {
    const TokenId one[1] = {t};
    EXPECT_TRUE(session.feed(one).ok());
    out.emplace_back(session.last_logits().begin(), session.last_logits().end());
  }
  return out;
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(static_cast<double>(a[i]) - b[i]));
  return m;
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    m = std::max(m, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  }
  return m;
}

// The largest difference between the logits of a chunked feed, all rows [n_tokens * n_vocab], and
// those of feeding one token at a time (feed_one_by_one).
inline double max_row_diff(const std::vector<float>& all,
                           const std::vector<std::vector<float>>& one_by_one) {
  double worst = 0;
  const size_t n_vocab = one_by_one.empty() ? 0 : one_by_one[0].size();
  for (size_t i = 0; i < one_by_one.size(); ++i) {
    const auto begin = all.begin() + static_cast<std::ptrdiff_t>(i * n_vocab);
    worst = std::max(
        worst, max_abs_diff(std::vector<float>(begin, begin + static_cast<std::ptrdiff_t>(n_vocab)),
                            one_by_one[i]));
  }
  return worst;
}

}  // namespace sllm::test
