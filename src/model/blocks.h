// The shared blocks of every family: norms, attention projections, feed-forward variants. Each
// works on a batch of n tokens, row-major [n, width], with buffers from ForwardScratch.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/ops.h"
#include "model/config.h"
#include "model/family.h"
#include "streamingllm/error.h"
#include "util/op_profile.h"
#include "util/thread_pool.h"

namespace sllm {

// Activations for batches of up to max_batch tokens; allocated once, reused every call.
struct ForwardScratch {
  // Bytes the constructor allocates, checked (overflow, machine memory) before it is called.
  static Result<uint64_t> bytes_needed(const ModelConfig& config, size_t max_batch);
  ForwardScratch(const ModelConfig& config, size_t max_batch);
  size_t n_bytes() const;  // what the constructor allocated
  size_t max_batch;
  std::vector<float> x;          // [max_batch, dim] residual stream
  std::vector<float> xn;         // [max_batch, dim] normed input of a sub-block
  std::vector<float> xn2;        // [max_batch, dim] the FFN's normed input (parallel residual only)
  std::vector<float> q;          // [max_batch, q_dim]
  std::vector<float> k, v;       // [max_batch, kv_dim]
  std::vector<float> qkv;        // [max_batch, q_dim + 2 kv_dim] (fused QKV only)
  std::vector<float> att;        // [max_batch, q_dim] attention output
  std::vector<float> proj;       // [max_batch, dim] output of wo / w_down
  std::vector<float> gate;       // [max_batch, ffn_dim] (2 ffn_dim with fused gate/up)
  std::vector<float> up;         // [max_batch, ffn_dim]
  OpProfile* profile = nullptr;  // where forward passes add their phases' times, if anywhere
};

struct Norm {
  std::vector<float> weight;  // [dim]
  std::vector<float> bias;    // [dim], LayerNorm only (may be empty: biases_if_present)
};

// `name` without its ".weight" / ".bias" suffix.
Result<Norm> load_norm(const GgufFile& gguf, const std::string& name, size_t dim, NormKind kind);
// The family's norm `name` of width dim (biases_if_present: the bias only if the file has it).
Result<Norm> load_norm(const GgufFile& gguf, const ModelConfig& c, const std::string& name);
// out[t] = norm(x[t]) for n rows of dim; out may be x.
void apply_norm(const Norm& norm, NormKind kind, float eps, const float* x, size_t n, size_t dim,
                float* out);

struct AttentionWeights {
  ops::MatView wq, wk, wv;            // separate: [q_dim, dim], [kv_dim, dim] x2
  ops::MatView wqkv;                  // fused: [q_dim + 2 kv_dim, dim]
  std::vector<float> bq, bk, bv;      // biases (separate)
  std::vector<float> bqkv;            // bias (fused)
  std::vector<float> q_norm, k_norm;  // per-head RMSNorm weights [head_dim]
  ops::MatView wo;                    // [dim, q_dim]
  std::vector<float> bo;              // [dim]
};

// blk = "blk.<i>."
Result<AttentionWeights> load_attention(const GgufFile& gguf, const std::string& blk,
                                        const ModelConfig& c);
// s.q, s.k, s.v = the (unrotated) projections of xn [n, dim], with biases, clipping
// (clamp_kqv) and head norms.
void project_qkv(const AttentionWeights& w, const ModelConfig& c, const float* xn, size_t n,
                 ForwardScratch& s, ThreadPool& pool);
// s.proj = wo · s.att (+ bias).
void project_out(const AttentionWeights& w, const ModelConfig& c, size_t n, ForwardScratch& s,
                 ThreadPool& pool);

struct FfnWeights {
  ops::MatView gate, up, down;  // up is [2 ffn_dim, dim] when gate and up are fused
  std::vector<float> b_up, b_down;
};

// Bytes of the weight matrices a call reads (for OpProfile).
inline uint64_t weight_bytes(const ops::MatView& m) {
  return m.data != nullptr ? uint64_t{m.n_rows} * m.row_bytes : 0;
}
inline uint64_t weight_bytes(const AttentionWeights& w) {
  return weight_bytes(w.wq) + weight_bytes(w.wk) + weight_bytes(w.wv) + weight_bytes(w.wqkv);
}
inline uint64_t weight_bytes(const FfnWeights& w) {
  return weight_bytes(w.gate) + weight_bytes(w.up) + weight_bytes(w.down);
}

Result<FfnWeights> load_ffn(const GgufFile& gguf, const std::string& blk, const ModelConfig& c);
// s.proj = ffn(xn) for xn [n, dim]; uses s.gate and s.up.
void run_ffn(const FfnWeights& w, const ModelConfig& c, const float* xn, size_t n,
             ForwardScratch& s, ThreadPool& pool);

}  // namespace sllm
