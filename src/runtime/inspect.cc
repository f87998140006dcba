#include "runtime/inspect.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "util/limits.h"

namespace sllm {

double AttentionMass::layer_mass(size_t layer, size_t k) const {
  double sum = 0;
  for (size_t h = 0; h < n_heads; ++h) sum += head_mass(layer, h, k);
  return sum / static_cast<double>(n_heads);
}

AttentionProbe::AttentionProbe(const ModelConfig& config, const AttentionMassOptions& options,
                               size_t n_ctx)
    : config_(config),
      options_(options),
      rope_(config.rope_for(n_ctx)),
      local_rope_(config.local_rope),
      keys_(config.n_layers),
      values_(config.n_layers),
      n_seen_(config.n_layers, 0),
      mass_sum_(config.n_layers * config.n_heads * options.max_k, 0.0),
      uniform_sum_(options.max_k, 0.0) {}

void AttentionProbe::attend(size_t layer, size_t n_tokens, float* q, float* k, const float* v,
                            float* out) {
  const ModelConfig& c = config_;
  const size_t hd = c.head_dim, q_dim = c.q_dim(), kv_dim = c.kv_dim();
  const size_t group = c.n_heads / c.n_kv_heads;  // query heads per KV head (GQA)
  const size_t max_k = options_.max_k;
  // The model's attention: its scale and soft-cap, and for a sliding-window layer (Gemma) its
  // own rope and only its last sliding_window tokens.
  const float scale = c.attn_scale > 0.0f ? c.attn_scale : 1.0f / std::sqrt(static_cast<float>(hd));
  const bool local = !c.local_layers.empty() && c.local_layers[layer];
  RopeAngles& rope = local ? local_rope_ : rope_;
  std::vector<float>& keys = keys_[layer];
  std::vector<float>& values = values_[layer];
  const size_t pos0 = n_seen_[layer];

  for (size_t i = 0; i < n_tokens; ++i) {
    rope.set_position(pos0 + i);
    rope.rotate(q + i * q_dim, c.n_heads);
    rope.rotate(k + i * kv_dim, c.n_kv_heads);
  }
  keys.insert(keys.end(), k, k + n_tokens * kv_dim);
  values.insert(values.end(), v, v + n_tokens * kv_dim);
  weights_.resize(pos0 + n_tokens);

  for (size_t i = 0; i < n_tokens; ++i) {
    const size_t t = pos0 + i;  // the query's position; it sees tokens first..t
    const size_t first = local && t + 1 > c.sliding_window ? t + 1 - c.sliding_window : 0;
    const bool counted = t >= options_.min_query_pos;
    if (counted && layer == 0) {
      ++n_queries_;
      for (size_t kk = 1; kk <= max_k; ++kk) {
        uniform_sum_[kk - 1] +=
            static_cast<double>(std::min(kk, t + 1)) / static_cast<double>(t + 1);
      }
    }
    for (size_t h = 0; h < c.n_heads; ++h) {
      const float* qh = q + i * q_dim + h * hd;
      const size_t kv_off = (h / group) * hd;
      float max_score = -INFINITY;
      std::fill(weights_.begin(), weights_.begin() + static_cast<std::ptrdiff_t>(first), 0.0f);
      for (size_t j = first; j <= t; ++j) {
        const float* kj = &keys[j * kv_dim + kv_off];
        float s = 0;
        for (size_t d = 0; d < hd; ++d) s += qh[d] * kj[d];
        weights_[j] = s * scale;
        if (c.attn_softcap > 0.0f) {
          weights_[j] = std::tanh(weights_[j] / c.attn_softcap) * c.attn_softcap;
        }
        // ALiBi (MPT), as the cache adds it: the query at t, key j at distance t - j.
        if (!c.alibi_slopes.empty()) weights_[j] += c.alibi_slopes[h] * -static_cast<float>(t - j);
        max_score = std::max(max_score, weights_[j]);
      }
      float sum = 0;
      for (size_t j = first; j <= t; ++j) {
        weights_[j] = std::exp(weights_[j] - max_score);
        sum += weights_[j];
      }
      float* oh = out + i * q_dim + h * hd;
      std::fill(oh, oh + hd, 0.0f);
      for (size_t j = first; j <= t; ++j) {
        weights_[j] /= sum;
        const float* vj = &values[j * kv_dim + kv_off];
        for (size_t d = 0; d < hd; ++d) oh[d] += weights_[j] * vj[d];
      }
      if (!counted) continue;
      double* m = &mass_sum_[(layer * c.n_heads + h) * max_k];
      double cumulative = 0;
      for (size_t kk = 1; kk <= max_k; ++kk) {
        if (kk <= t + 1) cumulative += weights_[kk - 1];
        m[kk - 1] += cumulative;
      }
    }
  }
  n_seen_[layer] += n_tokens;
}

AttentionMass AttentionProbe::result() const {
  AttentionMass r;
  r.n_layers = config_.n_layers;
  r.n_heads = config_.n_heads;
  r.max_k = options_.max_k;
  r.first_query_pos = options_.min_query_pos;
  r.n_queries = n_queries_;
  const double n = n_queries_ > 0 ? static_cast<double>(n_queries_) : std::nan("");
  r.mass.resize(mass_sum_.size());
  for (size_t i = 0; i < mass_sum_.size(); ++i) r.mass[i] = mass_sum_[i] / n;
  r.uniform.resize(uniform_sum_.size());
  for (size_t i = 0; i < uniform_sum_.size(); ++i) r.uniform[i] = uniform_sum_[i] / n;
  return r;
}

Result<AttentionMass> measure_attention_mass(const TransformerModel& model,
                                             std::span<const TokenId> tokens,
                                             const AttentionMassOptions& options,
                                             ThreadPool& pool) {
  auto invalid = [](const std::string& msg) { return Error(ErrorCode::kInvalidInput, msg); };
  if (options.max_k == 0) return invalid("the number of first tokens k must be at least 1");
  if (options.max_batch == 0) return invalid("the batch size must be at least 1");
  if (options.min_query_pos < options.max_k) {
    return invalid("the first query position (" + std::to_string(options.min_query_pos) +
                   ") must be at least k (" + std::to_string(options.max_k) +
                   "): earlier queries see fewer than k tokens");
  }
  if (tokens.size() <= options.min_query_pos) {
    return invalid("the text is " + std::to_string(tokens.size()) +
                   " token(s) long; measuring queries from position " +
                   std::to_string(options.min_query_pos) + " needs at least " +
                   std::to_string(options.min_query_pos + 1));
  }
  const size_t n_vocab = model.config().n_vocab;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || static_cast<size_t>(tokens[i]) >= n_vocab) {
      return invalid("token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                     " is outside the vocabulary of " + std::to_string(n_vocab));
    }
  }

  // The probe keeps every token's K and V of every layer, and a sum per layer, head and k.
  const ModelConfig& c = model.config();
  SLLM_RETURN_IF_ERROR(
      checked_bytes("the keys and values of " + std::to_string(tokens.size()) + " tokens",
                    {2, tokens.size(), c.n_layers, c.kv_dim(), sizeof(float)}));
  SLLM_RETURN_IF_ERROR(
      checked_bytes("the attention mass of the first " + std::to_string(options.max_k) + " tokens",
                    {c.n_layers, c.n_heads, options.max_k, 2 * sizeof(double)}));
  SLLM_RETURN_IF_ERROR(ForwardScratch::bytes_needed(c, options.max_batch));
  AttentionProbe probe(model.config(), options, tokens.size());
  ForwardScratch scratch(model.config(), options.max_batch);
  std::vector<float> logits(n_vocab);  // [n_vocab], unused: only the attention is measured
  const AttendFn attend = [&probe](size_t layer, size_t n, float* q, float* k, const float* v,
                                   float* out) { probe.attend(layer, n, q, k, v, out); };
  for (size_t done = 0; done < tokens.size();) {
    const size_t n = std::min(options.max_batch, tokens.size() - done);
    model.forward(tokens.subspan(done, n), attend, scratch, pool, logits.data(), false);
    done += n;
  }
  return probe.result();
}

}  // namespace sllm
