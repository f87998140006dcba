#include "model/blocks.h"

#include <cmath>
#include <cstring>

#include "kernels/quant.h"
#include "model/weights.h"
#include "util/limits.h"

namespace sllm {

namespace {

bool fused_ffn(const ModelConfig& c) { return c.family->ffn == FfnKind::kSwiGluFused; }

void add_bias(const std::vector<float>& bias, float* y, size_t n_tokens) {
  if (bias.empty()) return;
  for (size_t t = 0; t < n_tokens; ++t) ops::add(bias.data(), y + t * bias.size(), bias.size());
}

// GELU, tanh approximation.
float gelu_tanh(float x) {
  constexpr float kSqrt2OverPi = 0.79788456080286535588f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + 0.044715f * x * x)));
}

// GELU as llama.cpp's CPU backend computes it on f32 (GGML_GELU_FP16; GeluKind says why): the
// input rounded to f16, looked up in a table of f16 results, identity above 10 and 0 below -10.
// ggml_vec_geglu_f32 uses the same table.
float gelu_ggml(float x) {
  if (x <= -10.0f) return 0.0f;
  if (x >= 10.0f) return x;
  return quant::f16_to_f32(quant::f32_to_f16(gelu_tanh(quant::f16_to_f32(quant::f32_to_f16(x)))));
}

// A bias the family requires (`required`), or, for families whose biases are optional
// (biases_if_present), the file's if it has one; empty otherwise.
Result<std::vector<float>> load_bias(const GgufFile& gguf, const ModelConfig& c,
                                     const std::string& name, size_t n, bool required) {
  if (!required && !(c.family->biases_if_present && gguf.find_tensor(name) != nullptr)) {
    return std::vector<float>();
  }
  return get_vector(gguf, name, n);
}

// MPT's clip_qkv, as ggml_clamp: x limited to [-limit, limit].
void clamp_inplace(float limit, float* x, size_t n) {
  if (limit <= 0.0f) return;
  for (size_t i = 0; i < n; ++i) x[i] = x[i] < -limit ? -limit : (x[i] > limit ? limit : x[i]);
}

void gelu_inplace(GeluKind kind, float* x, size_t n) {
  if (kind == GeluKind::kTanh) {
    for (size_t i = 0; i < n; ++i) x[i] = gelu_tanh(x[i]);
  } else {
    for (size_t i = 0; i < n; ++i) x[i] = gelu_ggml(x[i]);
  }
}

}  // namespace

Result<uint64_t> ForwardScratch::bytes_needed(const ModelConfig& c, size_t max_batch) {
  // Sizes from a validated config are below 2^31 each: the per-token sum cannot overflow.
  const Family& f = *c.family;
  const uint64_t qkv = f.fused_qkv ? uint64_t{c.q_dim()} + 2 * uint64_t{c.kv_dim()} : 0;
  const uint64_t per_token_floats = (c.parallel_residual ? 4 : 3) * uint64_t{c.dim} +
                                    2 * uint64_t{c.q_dim()} + 2 * uint64_t{c.kv_dim()} + qkv +
                                    (fused_ffn(c) ? 3 : 2) * uint64_t{c.ffn_dim};
  return checked_bytes("the activations of a batch of " + std::to_string(max_batch) + " tokens",
                       {max_batch, per_token_floats, sizeof(float)});
}

ForwardScratch::ForwardScratch(const ModelConfig& c, size_t max_batch_tokens)
    : max_batch(max_batch_tokens),
      x(max_batch * c.dim),
      xn(max_batch * c.dim),
      xn2(c.parallel_residual ? max_batch * c.dim : 0),
      q(max_batch * c.q_dim()),
      k(max_batch * c.kv_dim()),
      v(max_batch * c.kv_dim()),
      qkv(c.family->fused_qkv ? max_batch * (c.q_dim() + 2 * c.kv_dim()) : 0),
      att(max_batch * c.q_dim()),
      proj(max_batch * c.dim),
      gate(max_batch * c.ffn_dim * (fused_ffn(c) ? 2 : 1)),
      up(max_batch * c.ffn_dim) {}

size_t ForwardScratch::n_bytes() const {
  size_t n = 0;
  for (const std::vector<float>* b : {&x, &xn, &xn2, &q, &k, &v, &qkv, &att, &proj, &gate, &up}) {
    n += b->capacity();
  }
  return n * sizeof(float);
}

Result<Norm> load_norm(const GgufFile& gguf, const std::string& name, size_t dim, NormKind kind) {
  Norm n;
  SLLM_ASSIGN_OR_RETURN(n.weight, get_vector(gguf, name + ".weight", dim));
  if (kind == NormKind::kLayer) {
    SLLM_ASSIGN_OR_RETURN(n.bias, get_vector(gguf, name + ".bias", dim));
  }
  return n;
}

Result<Norm> load_norm(const GgufFile& gguf, const ModelConfig& c, const std::string& name) {
  const NormKind kind = c.family->norm;
  if (kind == NormKind::kLayer && c.family->biases_if_present &&
      gguf.find_tensor(name + ".bias") == nullptr) {
    return load_norm(gguf, name, c.dim, NormKind::kRms);  // the weight alone
  }
  return load_norm(gguf, name, c.dim, kind);
}

void apply_norm(const Norm& norm, NormKind kind, float eps, const float* x, size_t n, size_t dim,
                float* out) {
  for (size_t t = 0; t < n; ++t) {
    const float* row = x + t * dim;
    float* o = out + t * dim;
    if (kind == NormKind::kRms) {
      ops::rmsnorm(row, norm.weight.data(), dim, eps, o);
      continue;
    }
    float mean = 0.0f;
    for (size_t i = 0; i < dim; ++i) mean += row[i];
    mean /= static_cast<float>(dim);
    float var = 0.0f;
    for (size_t i = 0; i < dim; ++i) var += (row[i] - mean) * (row[i] - mean);
    const float scale = 1.0f / std::sqrt(var / static_cast<float>(dim) + eps);
    if (norm.bias.empty()) {  // biases_if_present families
      for (size_t i = 0; i < dim; ++i) o[i] = (row[i] - mean) * scale * norm.weight[i];
      continue;
    }
    for (size_t i = 0; i < dim; ++i) {
      o[i] = (row[i] - mean) * scale * norm.weight[i] + norm.bias[i];
    }
  }
}

Result<AttentionWeights> load_attention(const GgufFile& gguf, const std::string& p,
                                        const ModelConfig& c) {
  const Family& f = *c.family;
  AttentionWeights w;
  if (f.fused_qkv) {
    const size_t rows = c.q_dim() + 2 * c.kv_dim();
    SLLM_ASSIGN_OR_RETURN(w.wqkv, get_matrix(gguf, p + "attn_qkv.weight", rows, c.dim));
    SLLM_ASSIGN_OR_RETURN(w.bqkv, load_bias(gguf, c, p + "attn_qkv.bias", rows, f.qkv_bias));
  } else {
    SLLM_ASSIGN_OR_RETURN(w.wq, get_matrix(gguf, p + "attn_q.weight", c.q_dim(), c.dim));
    SLLM_ASSIGN_OR_RETURN(w.wk, get_matrix(gguf, p + "attn_k.weight", c.kv_dim(), c.dim));
    SLLM_ASSIGN_OR_RETURN(w.wv, get_matrix(gguf, p + "attn_v.weight", c.kv_dim(), c.dim));
    SLLM_ASSIGN_OR_RETURN(w.bq, load_bias(gguf, c, p + "attn_q.bias", c.q_dim(), f.qkv_bias));
    SLLM_ASSIGN_OR_RETURN(w.bk, load_bias(gguf, c, p + "attn_k.bias", c.kv_dim(), f.qkv_bias));
    SLLM_ASSIGN_OR_RETURN(w.bv, load_bias(gguf, c, p + "attn_v.bias", c.kv_dim(), f.qkv_bias));
  }
  if (f.head_norm) {
    SLLM_ASSIGN_OR_RETURN(w.q_norm, get_vector(gguf, p + "attn_q_norm.weight", c.head_dim));
    SLLM_ASSIGN_OR_RETURN(w.k_norm, get_vector(gguf, p + "attn_k_norm.weight", c.head_dim));
  }
  SLLM_ASSIGN_OR_RETURN(w.wo, get_matrix(gguf, p + "attn_output.weight", c.dim, c.q_dim()));
  SLLM_ASSIGN_OR_RETURN(w.bo, load_bias(gguf, c, p + "attn_output.bias", c.dim, f.out_bias));
  return w;
}

void project_qkv(const AttentionWeights& w, const ModelConfig& c, const float* xn, size_t n,
                 ForwardScratch& s, ThreadPool& pool) {
  const size_t q_dim = c.q_dim(), kv_dim = c.kv_dim();
  if (c.family->fused_qkv) {
    const size_t width = q_dim + 2 * kv_dim;
    ops::matmul(w.wqkv, xn, n, s.qkv.data(), pool);
    add_bias(w.bqkv, s.qkv.data(), n);
    clamp_inplace(c.clamp_kqv, s.qkv.data(), n * width);
    for (size_t t = 0; t < n; ++t) {
      const float* row = &s.qkv[t * width];
      std::memcpy(&s.q[t * q_dim], row, q_dim * sizeof(float));
      std::memcpy(&s.k[t * kv_dim], row + q_dim, kv_dim * sizeof(float));
      std::memcpy(&s.v[t * kv_dim], row + q_dim + kv_dim, kv_dim * sizeof(float));
    }
  } else {
    ops::matmul(w.wq, xn, n, s.q.data(), pool);
    ops::matmul(w.wk, xn, n, s.k.data(), pool);
    ops::matmul(w.wv, xn, n, s.v.data(), pool);
    add_bias(w.bq, s.q.data(), n);
    add_bias(w.bk, s.k.data(), n);
    add_bias(w.bv, s.v.data(), n);
    clamp_inplace(c.clamp_kqv, s.q.data(), n * q_dim);
    clamp_inplace(c.clamp_kqv, s.k.data(), n * kv_dim);
    clamp_inplace(c.clamp_kqv, s.v.data(), n * kv_dim);
  }
  if (!w.q_norm.empty()) {
    const size_t hd = c.head_dim;
    for (size_t h = 0; h < n * c.n_heads; ++h) {
      ops::rmsnorm(&s.q[h * hd], w.q_norm.data(), hd, c.rms_eps, &s.q[h * hd]);
    }
    for (size_t h = 0; h < n * c.n_kv_heads; ++h) {
      ops::rmsnorm(&s.k[h * hd], w.k_norm.data(), hd, c.rms_eps, &s.k[h * hd]);
    }
  }
}

void project_out(const AttentionWeights& w, const ModelConfig&, size_t n, ForwardScratch& s,
                 ThreadPool& pool) {
  ops::matmul(w.wo, s.att.data(), n, s.proj.data(), pool);
  add_bias(w.bo, s.proj.data(), n);
}

Result<FfnWeights> load_ffn(const GgufFile& gguf, const std::string& p, const ModelConfig& c) {
  const Family& f = *c.family;
  FfnWeights w;
  const bool gated = f.ffn == FfnKind::kSwiGlu || f.ffn == FfnKind::kGeGluTanh;
  if (gated) {
    SLLM_ASSIGN_OR_RETURN(w.gate, get_matrix(gguf, p + "ffn_gate.weight", c.ffn_dim, c.dim));
  }
  const size_t up_rows = f.ffn == FfnKind::kSwiGluFused ? 2 * c.ffn_dim : c.ffn_dim;
  SLLM_ASSIGN_OR_RETURN(w.up, get_matrix(gguf, p + "ffn_up.weight", up_rows, c.dim));
  SLLM_ASSIGN_OR_RETURN(w.down, get_matrix(gguf, p + "ffn_down.weight", c.dim, c.ffn_dim));
  SLLM_ASSIGN_OR_RETURN(w.b_up, load_bias(gguf, c, p + "ffn_up.bias", up_rows, f.ffn_bias));
  SLLM_ASSIGN_OR_RETURN(w.b_down, load_bias(gguf, c, p + "ffn_down.bias", c.dim, f.ffn_bias));
  return w;
}

void run_ffn(const FfnWeights& w, const ModelConfig& c, const float* xn, size_t n,
             ForwardScratch& s, ThreadPool& pool) {
  const size_t ff = c.ffn_dim;
  switch (c.family->ffn) {
    case FfnKind::kSwiGlu:
      ops::matmul(w.gate, xn, n, s.gate.data(), pool);
      ops::matmul(w.up, xn, n, s.up.data(), pool);
      ops::silu_mul(s.gate.data(), s.up.data(), n * ff);
      break;
    case FfnKind::kSwiGluFused:
      // Row t is [gate | up]; the product is packed to [n, ff] in place (row t moves down).
      ops::matmul(w.up, xn, n, s.gate.data(), pool);
      add_bias(w.b_up, s.gate.data(), n);
      for (size_t t = 0; t < n; ++t) {
        float* row = &s.gate[t * 2 * ff];
        ops::silu_mul(row, row + ff, ff);
        std::memmove(&s.gate[t * ff], row, ff * sizeof(float));
      }
      break;
    case FfnKind::kGeGluTanh:
      ops::matmul(w.gate, xn, n, s.gate.data(), pool);
      ops::matmul(w.up, xn, n, s.up.data(), pool);
      gelu_inplace(c.gelu, s.gate.data(), n * ff);
      for (size_t i = 0; i < n * ff; ++i) s.gate[i] *= s.up[i];
      break;
    case FfnKind::kGeluMlp:
      ops::matmul(w.up, xn, n, s.gate.data(), pool);
      add_bias(w.b_up, s.gate.data(), n);
      gelu_inplace(c.gelu, s.gate.data(), n * ff);
      break;
  }
  ops::matmul(w.down, s.gate.data(), n, s.proj.data(), pool);
  add_bias(w.b_down, s.proj.data(), n);
}

}  // namespace sllm
