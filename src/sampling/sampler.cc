#include "sampling/sampler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>

namespace sllm {
namespace {

Error invalid_option(const std::string& message) {
  return Error(ErrorCode::kInvalidInput, "sampler options: " + message);
}

Error bad_state(const std::string& message) {
  return Error(ErrorCode::kFormat, "sampler state: " + message);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// Descending logit, ties broken by the lower id: a total order, so every sort of the same logits
// gives the same candidate list (std::sort is not stable).
bool more_likely(float a_logit, int32_t a_id, float b_logit, int32_t b_id) {
  return a_logit > b_logit || (a_logit == b_logit && a_id < b_id);
}

// Splits on ASCII whitespace.
std::vector<std::string_view> split_words(std::string_view text) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) words.push_back(text.substr(start, i - start));
  }
  return words;
}

// Parses a whole word as an unsigned integer in `base`; false on any stray character.
bool parse_u64(std::string_view word, int base, uint64_t* out) {
  const char* end = word.data() + word.size();
  auto [ptr, ec] = std::from_chars(word.data(), end, *out, base);
  return ec == std::errc() && ptr == end && !word.empty();
}

constexpr std::string_view kStateMagic = "sllm-sampler-state";
constexpr std::string_view kStateVersion = "v1";

}  // namespace

Status SamplerOptions::validate() const {
  if (!std::isfinite(temperature) || temperature < 0.0f) {
    return invalid_option(
        fmt::format("temperature must be >= 0 (0 = greedy), got {}", temperature));
  }
  if (top_k < 0) {
    return invalid_option(fmt::format("top_k must be >= 0 (0 = off), got {}", top_k));
  }
  if (!(top_p > 0.0f && top_p <= 1.0f)) {
    return invalid_option(fmt::format("top_p must be in (0, 1] (1 = off), got {}", top_p));
  }
  if (!(min_p >= 0.0f && min_p <= 1.0f)) {
    return invalid_option(fmt::format("min_p must be in [0, 1] (0 = off), got {}", min_p));
  }
  if (!std::isfinite(repeat_penalty) || repeat_penalty <= 0.0f) {
    return invalid_option(
        fmt::format("repeat_penalty must be > 0 (1 = off), got {}", repeat_penalty));
  }
  if (repeat_last_n < 0) {
    return invalid_option(
        fmt::format("repeat_last_n must be >= 0 (0 = off), got {}", repeat_last_n));
  }
  return {};
}

Rng Rng::from_seed(uint64_t seed) {
  // splitmix64 spreads any seed (also 0) over the four state words; the state is never all zero.
  Rng rng;
  uint64_t x = seed;
  for (uint64_t& word : rng.s) {
    x += 0x9e3779b97f4a7c15ULL;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    word = z ^ (z >> 31);
  }
  return rng;
}

uint64_t Rng::next_u64() {
  const uint64_t result = rotl(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double Rng::next_double() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

Sampler::Sampler(SamplerOptions options, size_t n_vocab)
    : options_(options),
      n_vocab_(n_vocab),
      rng_(Rng::from_seed(options.seed)),
      history_capacity_(static_cast<size_t>(std::max(options.repeat_last_n, 0))) {
  assert(options_.validate().ok());
  assert(n_vocab_ > 0 && n_vocab_ <= static_cast<size_t>(std::numeric_limits<int32_t>::max()));
  candidates_.reserve(n_vocab_);
}

std::vector<int32_t> Sampler::history() const {
  std::vector<int32_t> out(history_.begin() + static_cast<std::ptrdiff_t>(history_next_),
                           history_.end());
  out.insert(out.end(), history_.begin(),
             history_.begin() + static_cast<std::ptrdiff_t>(history_next_));
  return out;
}

void Sampler::accept(int32_t token) {
  assert(token >= 0 && static_cast<size_t>(token) < n_vocab_);
  if (history_capacity_ == 0) return;
  if (history_.size() < history_capacity_) {
    // Doubling, but never past the capacity: memory stays proportional to the tokens seen.
    if (history_.size() == history_.capacity()) {
      history_.reserve(std::min(history_capacity_, std::max<size_t>(16, 2 * history_.size())));
    }
    history_.push_back(token);
    return;  // history_next_ stays 0: the oldest token is the first overwritten once full
  }
  history_[history_next_] = token;
  history_next_ = (history_next_ + 1) % history_capacity_;
}

void Sampler::apply_repeat_penalty(std::span<float> logits) {
  if (options_.repeat_penalty == 1.0f || history_.empty()) return;
  // Each distinct token is penalised once, however often it occurs (llama.cpp's penalty_repeat;
  // frequency/presence penalties would count occurrences).
  penalized_.assign(history_.begin(), history_.end());
  std::sort(penalized_.begin(), penalized_.end());
  penalized_.erase(std::unique(penalized_.begin(), penalized_.end()), penalized_.end());
  for (int32_t token : penalized_) {
    float& logit = logits[static_cast<size_t>(token)];
    // Dividing a negative logit would make the token more likely, hence the two cases.
    // Clamped so that an extreme penalty cannot turn a finite logit into an infinity (whose
    // softmax would be NaN); within range this is the plain quotient or product.
    const float penalized =
        logit > 0.0f ? logit / options_.repeat_penalty : logit * options_.repeat_penalty;
    logit = std::clamp(penalized, -std::numeric_limits<float>::max(),
                       std::numeric_limits<float>::max());
  }
}

void Sampler::filter_candidates(std::span<const float> logits) {
  candidates_.clear();
  for (size_t i = 0; i < logits.size(); ++i) {
    candidates_.push_back({static_cast<int32_t>(i), logits[i]});
  }
  auto by_likelihood = [](const Candidate& a, const Candidate& b) {
    return more_likely(a.logit, a.id, b.logit, b.id);
  };
  const size_t top_k = static_cast<size_t>(options_.top_k);
  if (top_k > 0 && top_k < candidates_.size()) {
    std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<ptrdiff_t>(top_k),
                      candidates_.end(), by_likelihood);
    candidates_.resize(top_k);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_likelihood);
  }

  const double max_logit = candidates_.front().logit;
  if (options_.top_p < 1.0f) {
    double sum = 0.0;
    for (const Candidate& c : candidates_) sum += std::exp(c.logit - max_logit);
    // Keep up to and including the token whose mass crosses top_p (so at least one).
    const double mass_needed = static_cast<double>(options_.top_p) * sum;
    double mass = 0.0;
    size_t n_keep = candidates_.size();
    for (size_t i = 0; i < candidates_.size(); ++i) {
      mass += std::exp(candidates_[i].logit - max_logit);
      if (mass >= mass_needed) {
        n_keep = i + 1;
        break;
      }
    }
    candidates_.resize(n_keep);
  }

  if (options_.min_p > 0.0f) {
    // p_i >= min_p * p_max  <=>  logit_i >= max_logit + log(min_p): the softmax normaliser
    // cancels, so no probabilities are needed. The max itself always survives.
    const double min_logit = max_logit + std::log(static_cast<double>(options_.min_p));
    auto first_dropped =
        std::find_if(candidates_.begin(), candidates_.end(),
                     [&](const Candidate& c) { return static_cast<double>(c.logit) < min_logit; });
    candidates_.erase(first_dropped, candidates_.end());
  }
}

int32_t Sampler::draw() {
  // Always one RNG step per sampled token, even with a single candidate, so that the stream of
  // random numbers does not depend on how many candidates the filters left.
  const double u = rng_.next_double();
  const double inv_temperature = 1.0 / static_cast<double>(options_.temperature);
  const double max_logit = candidates_.front().logit;
  double sum = 0.0;
  for (const Candidate& c : candidates_) sum += std::exp((c.logit - max_logit) * inv_temperature);
  const double target = u * sum;
  double cumulative = 0.0;
  for (const Candidate& c : candidates_) {
    cumulative += std::exp((c.logit - max_logit) * inv_temperature);
    if (target < cumulative) return c.id;
  }
  return candidates_.back().id;  // u * sum rounded up to the total
}

int32_t Sampler::sample(std::span<float> logits) {
  assert(logits.size() == n_vocab_);
  apply_repeat_penalty(logits);
  if (options_.temperature == 0.0f) {
    size_t best = 0;
    for (size_t i = 1; i < logits.size(); ++i) {
      if (logits[i] > logits[best]) best = i;  // strict: ties keep the lowest id
    }
    return static_cast<int32_t>(best);
  }
  filter_candidates(logits);
  return draw();
}

// Format (whitespace-separated words, one section per line for readability):
//   sllm-sampler-state v1
//   rng <s0> <s1> <s2> <s3>            xoshiro256** words, 16 hex digits each
//   history <n> <id_0> ... <id_n-1>    accepted tokens, oldest first
std::string Sampler::save_state() const {
  std::string out = fmt::format("{} {}\nrng", kStateMagic, kStateVersion);
  for (uint64_t word : rng_.s) out += fmt::format(" {:016x}", word);
  out += fmt::format("\nhistory {}", history_.size());
  // Oldest first: the ring starts at history_next_ (0 until the history is full).
  for (size_t i = 0; i < history_.size(); ++i) {
    out += fmt::format(" {}", history_[(history_next_ + i) % history_.size()]);
  }
  out += "\n";
  return out;
}

Status Sampler::load_state(std::string_view state) {
  const std::vector<std::string_view> words = split_words(state);
  if (words.size() < 2 || words[0] != kStateMagic) {
    return bad_state(fmt::format("does not start with '{}'", kStateMagic));
  }
  if (words[1] != kStateVersion) {
    return bad_state(
        fmt::format("version '{}' is not supported (expected '{}')", words[1], kStateVersion));
  }
  if (words.size() < 9 || words[2] != "rng" || words[7] != "history") {
    return bad_state("expected 'rng' with 4 words, then 'history'");
  }
  Rng rng;
  for (size_t i = 0; i < 4; ++i) {
    if (words[3 + i].size() != 16 || !parse_u64(words[3 + i], 16, &rng.s[i])) {
      return bad_state(fmt::format("rng word {} '{}' is not 16 hex digits", i, words[3 + i]));
    }
  }
  if ((rng.s[0] | rng.s[1] | rng.s[2] | rng.s[3]) == 0) {
    return bad_state("rng state is all zero (xoshiro256** would only ever return 0)");
  }
  uint64_t n_tokens = 0;
  if (!parse_u64(words[8], 10, &n_tokens)) {
    return bad_state(fmt::format("history length '{}' is not a number", words[8]));
  }
  if (n_tokens > history_capacity_) {
    return bad_state(fmt::format("history holds {} tokens but repeat_last_n is {}", n_tokens,
                                 history_capacity_));
  }
  if (words.size() != 9 + n_tokens) {
    return bad_state(
        fmt::format("history announces {} tokens but {} follow", n_tokens, words.size() - 9));
  }
  std::vector<int32_t> tokens(n_tokens);
  for (size_t i = 0; i < n_tokens; ++i) {
    uint64_t id = 0;
    if (!parse_u64(words[9 + i], 10, &id) || id >= n_vocab_) {
      return bad_state(fmt::format("history token {} '{}' is not an id below n_vocab {}", i,
                                   words[9 + i], n_vocab_));
    }
    tokens[i] = static_cast<int32_t>(id);
  }

  rng_ = rng;
  history_ = std::move(tokens);  // oldest first, as accept() keeps it until full
  history_next_ = 0;
  return {};
}

}  // namespace sllm
