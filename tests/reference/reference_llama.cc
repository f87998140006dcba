#include "reference/reference_llama.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <utility>

#include "gguf/gguf.h"

namespace sllm::reference {
namespace {

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error(message); }

template <typename T>
T value_or_throw(Result<T> result, const std::string& context) {
  if (!result.ok()) fail(context + ": " + result.error().message());
  return std::move(result).value();
}

std::string dims_string(const std::vector<uint64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(dims[i]);
  }
  return s + "]";
}

// Reads the metadata and tensors of one GGUF file, converting every tensor to double.
class GgufLoader {
 public:
  explicit GgufLoader(const std::string& path)
      : path_(path), file_(value_or_throw(GgufFile::open(path), "cannot load " + path)) {}

  bool has(const std::string& key) const { return file_.find(key) != nullptr; }
  bool has_tensor(const std::string& name) const { return file_.find_tensor(name) != nullptr; }
  size_t get_size(const std::string& key) const {
    return static_cast<size_t>(value_or_throw(file_.get_u64(key), path_));
  }
  double get_double(const std::string& key) const {
    return static_cast<double>(value_or_throw(file_.get_f32(key), path_));
  }
  std::string get_string(const std::string& key) const {
    return value_or_throw(file_.get_string(key), path_);
  }
  size_t get_array_length(const std::string& key) const {
    return value_or_throw(file_.get_string_array(key), path_).size();
  }

  // A tensor whose GGUF dims must be exactly `dims`, as doubles in file order.
  std::vector<double> tensor(const std::string& name, const std::vector<uint64_t>& dims) const {
    const GgufTensorInfo* info = file_.find_tensor(name);
    if (info == nullptr) fail(path_ + ": tensor " + name + " is missing");
    if (info->dims != dims) {
      fail(path_ + ": tensor " + name + " has dims " + dims_string(info->dims) + ", expected " +
           dims_string(dims));
    }
    const size_t n = static_cast<size_t>(info->n_elements);
    std::vector<double> values(n);
    switch (info->type) {
      case TensorType::kF32:
        for (size_t i = 0; i < n; ++i) {
          float f;
          std::memcpy(&f, info->data + i * sizeof(f), sizeof(f));
          values[i] = static_cast<double>(f);
        }
        break;
      case TensorType::kF16:
        for (size_t i = 0; i < n; ++i) {
          uint16_t bits;
          std::memcpy(&bits, info->data + i * sizeof(bits), sizeof(bits));
          values[i] = f16_to_double(bits);
        }
        break;
      default:
        fail(path_ + ": tensor " + name + " has type " +
             ggml_type_name(static_cast<uint32_t>(info->type)) +
             "; the reference reads only f32 and f16");
    }
    return values;
  }

  // GGUF dims {n_cols, n_rows}: n_rows rows of n_cols elements.
  Matrix matrix(const std::string& name, size_t n_rows, size_t n_cols) const {
    return Matrix{n_rows, n_cols, tensor(name, {n_cols, n_rows})};
  }

 private:
  std::string path_;
  GgufFile file_;
};

void check_matrix(const Matrix& m, size_t n_rows, size_t n_cols, const std::string& name) {
  if (m.n_rows != n_rows || m.n_cols != n_cols || m.data.size() != n_rows * n_cols) {
    fail("reference weights: " + name + " is [" + std::to_string(m.n_rows) + ", " +
         std::to_string(m.n_cols) + "] with " + std::to_string(m.data.size()) +
         " values, expected [" + std::to_string(n_rows) + ", " + std::to_string(n_cols) + "]");
  }
}

void check_vector(const std::vector<double>& v, size_t n, const std::string& name) {
  if (v.size() != n) {
    fail("reference weights: " + name + " has " + std::to_string(v.size()) + " values, expected " +
         std::to_string(n));
  }
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }

}  // namespace

double f16_to_double(uint16_t bits) {
  const unsigned exponent = (bits >> 10) & 0x1fu;
  const unsigned mantissa = bits & 0x3ffu;
  double magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<double>(mantissa), -24);  // subnormal: m * 2^-24
  } else if (exponent == 31) {
    magnitude = mantissa == 0 ? std::numeric_limits<double>::infinity()
                              : std::numeric_limits<double>::quiet_NaN();
  } else {
    // (1 + m / 2^10) * 2^(e - 15)
    magnitude = std::ldexp(static_cast<double>(1024u + mantissa), static_cast<int>(exponent) - 25);
  }
  return (bits & 0x8000u) ? -magnitude : magnitude;
}

std::vector<double> Matrix::apply(const std::vector<double>& x) const {
  if (x.size() != n_cols) {
    fail("Matrix::apply: input has " + std::to_string(x.size()) + " values, expected " +
         std::to_string(n_cols));
  }
  std::vector<double> y(n_rows, 0.0);
  for (size_t r = 0; r < n_rows; ++r) {
    const double* row = data.data() + r * n_cols;
    for (size_t c = 0; c < n_cols; ++c) y[r] += row[c] * x[c];
  }
  return y;
}

std::vector<double> rmsnorm(const std::vector<double>& x, const std::vector<double>& weight,
                            double eps) {
  double sum_squares = 0.0;
  for (double xi : x) sum_squares += xi * xi;
  const double inv_rms = 1.0 / std::sqrt(sum_squares / static_cast<double>(x.size()) + eps);
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] * inv_rms * weight[i];
  return out;
}

void softmax(std::vector<double>& x) {
  const double max = *std::max_element(x.begin(), x.end());
  double sum = 0.0;
  for (double& xi : x) {
    xi = std::exp(xi - max);
    sum += xi;
  }
  for (double& xi : x) xi /= sum;
}

void rope(std::vector<double>& x, size_t n_heads, uint64_t pos, const ReferenceConfig& config) {
  const size_t half = config.rope_dim / 2;
  const bool adjacent = config.rope_style == RopeStyle::kAdjacentPairs;
  for (size_t i = 0; i < half; ++i) {
    const double mul = config.rope_freq_mul.empty() ? 1.0 : config.rope_freq_mul.at(i);
    const double theta = static_cast<double>(pos) *
                         std::pow(config.rope_base, -2.0 * static_cast<double>(i) /
                                                        static_cast<double>(config.rope_dim)) *
                         mul;
    const double cos_theta = std::cos(theta) * config.rope_mscale;
    const double sin_theta = std::sin(theta) * config.rope_mscale;
    const size_t a = adjacent ? 2 * i : i;
    const size_t b = adjacent ? 2 * i + 1 : i + half;
    for (size_t h = 0; h < n_heads; ++h) {
      double* head = x.data() + h * config.head_dim;
      const double xa = head[a];
      const double xb = head[b];
      head[a] = xa * cos_theta - xb * sin_theta;
      head[b] = xa * sin_theta + xb * cos_theta;
    }
  }
}

ReferenceLlama ReferenceLlama::load(const std::string& gguf_path) {
  const GgufLoader gguf(gguf_path);
  const std::string arch = gguf.get_string("general.architecture");
  if (arch != "llama") fail(gguf_path + ": architecture '" + arch + "' is not llama");

  ReferenceConfig c;
  c.dim = gguf.get_size("llama.embedding_length");
  c.n_layers = gguf.get_size("llama.block_count");
  c.n_heads = gguf.get_size("llama.attention.head_count");
  c.n_kv_heads = gguf.get_size("llama.attention.head_count_kv");
  c.ffn_dim = gguf.get_size("llama.feed_forward_length");
  c.rms_eps = gguf.get_double("llama.attention.layer_norm_rms_epsilon");
  if (c.n_heads == 0) fail(gguf_path + ": llama.attention.head_count is 0");
  c.head_dim = gguf.has("llama.attention.key_length") ? gguf.get_size("llama.attention.key_length")
                                                      : c.dim / c.n_heads;
  c.rope_dim = gguf.has("llama.rope.dimension_count") ? gguf.get_size("llama.rope.dimension_count")
                                                      : c.head_dim;
  if (gguf.has("llama.rope.freq_base")) c.rope_base = gguf.get_double("llama.rope.freq_base");
  c.vocab_size = gguf.get_array_length("tokenizer.ggml.tokens");

  const size_t q_dim = c.n_heads * c.head_dim;
  const size_t kv_dim = c.n_kv_heads * c.head_dim;
  ReferenceWeights w;
  w.token_embd = gguf.matrix("token_embd.weight", c.vocab_size, c.dim);
  for (size_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    ReferenceLayer layer;
    layer.attn_norm = gguf.tensor(p + "attn_norm.weight", {c.dim});
    layer.wq = gguf.matrix(p + "attn_q.weight", q_dim, c.dim);
    layer.wk = gguf.matrix(p + "attn_k.weight", kv_dim, c.dim);
    layer.wv = gguf.matrix(p + "attn_v.weight", kv_dim, c.dim);
    layer.wo = gguf.matrix(p + "attn_output.weight", c.dim, q_dim);
    layer.ffn_norm = gguf.tensor(p + "ffn_norm.weight", {c.dim});
    layer.w_gate = gguf.matrix(p + "ffn_gate.weight", c.ffn_dim, c.dim);
    layer.w_up = gguf.matrix(p + "ffn_up.weight", c.ffn_dim, c.dim);
    layer.w_down = gguf.matrix(p + "ffn_down.weight", c.dim, c.ffn_dim);
    w.layers.push_back(std::move(layer));
  }
  w.output_norm = gguf.tensor("output_norm.weight", {c.dim});
  w.output = gguf.has_tensor("output.weight") ? gguf.matrix("output.weight", c.vocab_size, c.dim)
                                              : w.token_embd;
  return ReferenceLlama(c, std::move(w));
}

ReferenceLlama::ReferenceLlama(ReferenceConfig config, ReferenceWeights weights)
    : config_(config), weights_(std::move(weights)) {
  const ReferenceConfig& c = config_;
  if (c.n_heads == 0 || c.n_kv_heads == 0 || c.n_heads % c.n_kv_heads != 0) {
    fail("reference config: n_heads " + std::to_string(c.n_heads) +
         " is not a positive multiple of n_kv_heads " + std::to_string(c.n_kv_heads));
  }
  if (c.rope_dim % 2 != 0 || c.rope_dim > c.head_dim) {
    fail("reference config: rope_dim " + std::to_string(c.rope_dim) +
         " is odd or exceeds head_dim " + std::to_string(c.head_dim));
  }
  const size_t q_dim = c.n_heads * c.head_dim;
  const size_t kv_dim = c.n_kv_heads * c.head_dim;
  const ReferenceWeights& w = weights_;
  check_matrix(w.token_embd, c.vocab_size, c.dim, "token_embd");
  if (w.layers.size() != c.n_layers) {
    fail("reference weights: " + std::to_string(w.layers.size()) + " layers, expected " +
         std::to_string(c.n_layers));
  }
  for (size_t l = 0; l < c.n_layers; ++l) {
    const ReferenceLayer& layer = w.layers[l];
    const std::string p = "layer " + std::to_string(l) + " ";
    check_vector(layer.attn_norm, c.dim, p + "attn_norm");
    check_matrix(layer.wq, q_dim, c.dim, p + "wq");
    check_matrix(layer.wk, kv_dim, c.dim, p + "wk");
    check_matrix(layer.wv, kv_dim, c.dim, p + "wv");
    check_matrix(layer.wo, c.dim, q_dim, p + "wo");
    check_vector(layer.ffn_norm, c.dim, p + "ffn_norm");
    check_matrix(layer.w_gate, c.ffn_dim, c.dim, p + "w_gate");
    check_matrix(layer.w_up, c.ffn_dim, c.dim, p + "w_up");
    check_matrix(layer.w_down, c.dim, c.ffn_dim, p + "w_down");
  }
  check_vector(w.output_norm, c.dim, "output_norm");
  check_matrix(w.output, c.vocab_size, c.dim, "output");
}

std::vector<double> ReferenceLlama::embed(int32_t token) const {
  if (token < 0 || static_cast<size_t>(token) >= config_.vocab_size) {
    fail("token " + std::to_string(token) + " is outside the vocabulary of " +
         std::to_string(config_.vocab_size));
  }
  const double* row = weights_.token_embd.data.data() + static_cast<size_t>(token) * config_.dim;
  return std::vector<double>(row, row + config_.dim);
}

QkvProjection ReferenceLlama::project_qkv(size_t layer, const std::vector<double>& x) const {
  const ReferenceLayer& w = weights_.layers[layer];
  const std::vector<double> h = rmsnorm(x, w.attn_norm, config_.rms_eps);
  return QkvProjection{w.wq.apply(h), w.wk.apply(h), w.wv.apply(h)};
}

std::vector<double> ReferenceLlama::attend(const std::vector<double>& q,
                                           const std::vector<std::vector<double>>& keys,
                                           const std::vector<std::vector<double>>& values) const {
  const size_t head_dim = config_.head_dim;
  const size_t group = config_.n_heads / config_.n_kv_heads;  // query heads per kv head (GQA)
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  std::vector<double> out(config_.n_heads * head_dim, 0.0);
  for (size_t h = 0; h < config_.n_heads; ++h) {
    const size_t q_off = h * head_dim;
    const size_t kv_off = (h / group) * head_dim;
    std::vector<double> scores(keys.size(), 0.0);
    for (size_t j = 0; j < keys.size(); ++j) {
      for (size_t d = 0; d < head_dim; ++d) scores[j] += q[q_off + d] * keys[j][kv_off + d];
      scores[j] *= scale;
    }
    softmax(scores);
    for (size_t j = 0; j < keys.size(); ++j) {
      for (size_t d = 0; d < head_dim; ++d) out[q_off + d] += scores[j] * values[j][kv_off + d];
    }
  }
  return out;
}

void ReferenceLlama::finish_layer(size_t layer, const std::vector<double>& attn,
                                  std::vector<double>& x) const {
  const ReferenceLayer& w = weights_.layers[layer];
  const std::vector<double> attn_out = w.wo.apply(attn);
  for (size_t i = 0; i < x.size(); ++i) x[i] += attn_out[i];

  const std::vector<double> h = rmsnorm(x, w.ffn_norm, config_.rms_eps);
  std::vector<double> gate = w.w_gate.apply(h);
  const std::vector<double> up = w.w_up.apply(h);
  for (size_t i = 0; i < gate.size(); ++i) gate[i] = silu(gate[i]) * up[i];  // SwiGLU
  const std::vector<double> ffn_out = w.w_down.apply(gate);
  for (size_t i = 0; i < x.size(); ++i) x[i] += ffn_out[i];
}

std::vector<double> ReferenceLlama::logits(const std::vector<double>& x) const {
  return weights_.output.apply(rmsnorm(x, weights_.output_norm, config_.rms_eps));
}

std::vector<std::vector<double>> ReferenceLlama::forward_dense(const std::vector<int32_t>& tokens,
                                                               uint64_t first_pos) const {
  const size_t n_tokens = tokens.size();
  std::vector<std::vector<double>> x;  // [n_tokens][dim]
  for (int32_t token : tokens) x.push_back(embed(token));

  for (size_t l = 0; l < config_.n_layers; ++l) {
    std::vector<std::vector<double>> queries, keys, values;  // [n_tokens][...], rotated q and k
    for (size_t i = 0; i < n_tokens; ++i) {
      QkvProjection p = project_qkv(l, x[i]);
      rope(p.q, config_.n_heads, first_pos + i, config_);
      rope(p.k, config_.n_kv_heads, first_pos + i, config_);
      queries.push_back(std::move(p.q));
      keys.push_back(std::move(p.k));
      values.push_back(std::move(p.v));
    }
    for (size_t i = 0; i < n_tokens; ++i) {
      // Causal: token i sees tokens 0..i.
      const std::vector<std::vector<double>> seen_keys(keys.begin(), keys.begin() + i + 1);
      const std::vector<std::vector<double>> seen_values(values.begin(), values.begin() + i + 1);
      finish_layer(l, attend(queries[i], seen_keys, seen_values), x[i]);
    }
  }

  std::vector<std::vector<double>> out;  // [n_tokens][vocab_size]
  for (const std::vector<double>& xi : x) out.push_back(logits(xi));
  return out;
}

NaiveStreamingReference::NaiveStreamingReference(const ReferenceLlama& model, size_t n_sinks,
                                                 size_t window)
    : model_(model),
      n_sinks_(n_sinks),
      window_(window),
      keys_(model.config().n_layers),
      values_(model.config().n_layers) {
  if (window == 0) fail("NaiveStreamingReference: window must be at least 1 (the current token)");
}

std::vector<double> NaiveStreamingReference::step(int32_t token) {
  const ReferenceConfig& c = model_.config();
  // Saturating n_sinks + window, so that a huge window means "never evict".
  const size_t capacity = n_sinks_ > std::numeric_limits<size_t>::max() - window_
                              ? std::numeric_limits<size_t>::max()
                              : n_sinks_ + window_;
  std::vector<double> x = model_.embed(token);
  for (size_t l = 0; l < c.n_layers; ++l) {
    QkvProjection p = model_.project_qkv(l, x);
    std::vector<std::vector<double>>& keys = keys_[l];
    std::vector<std::vector<double>>& values = values_[l];
    keys.push_back(std::move(p.k));
    values.push_back(std::move(p.v));
    if (keys.size() > capacity) {
      // The oldest window token; the sinks (cache entries 0..n_sinks-1) stay.
      keys.erase(keys.begin() + static_cast<std::ptrdiff_t>(n_sinks_));
      values.erase(values.begin() + static_cast<std::ptrdiff_t>(n_sinks_));
    }
    const size_t n_cached = keys.size();
    std::vector<std::vector<double>> rotated_keys = keys;  // [n_cached][kv_dim]
    for (size_t cache_pos = 0; cache_pos < n_cached; ++cache_pos) {
      rope(rotated_keys[cache_pos], c.n_kv_heads, cache_pos, c);
    }
    rope(p.q, c.n_heads, n_cached - 1, c);
    model_.finish_layer(l, model_.attend(p.q, rotated_keys, values), x);
  }
  ++n_seen_;
  return model_.logits(x);
}

std::vector<double> recompute_step(const ReferenceLlama& model,
                                   const std::vector<int32_t>& stream_so_far, size_t window) {
  if (stream_so_far.empty()) fail("recompute_step: the stream is empty");
  if (window == 0) fail("recompute_step: window must be at least 1");
  const size_t n_kept = std::min(window, stream_so_far.size());
  const std::vector<int32_t> kept(stream_so_far.end() - static_cast<std::ptrdiff_t>(n_kept),
                                  stream_so_far.end());
  return model.forward_dense(kept, 0).back();
}

}  // namespace sllm::reference
