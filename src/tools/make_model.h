// Random-weight models (streamingllm make-model): the shared part and one table entry per
// architecture. An architecture adds its metadata and tensors to a GgufWriter through a
// ModelBuilder; everything else (options, vocabulary, RNG, encoding, writing) is shared.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"
#include "streamingllm/error.h"
#include "streamingllm/tools.h"
#include "tools/quantize.h"
#include "util/tensor_type.h"
#include "util/thread_pool.h"

namespace sllm::make_model_detail {

// SplitMix64: a fixed, portable sequence (std::*_distribution differ between libraries).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next();
  float uniform();  // [-1, 1)

 private:
  uint64_t state_;
};

// The options with defaults resolved, and what the vocabulary gave.
struct ModelShape {
  MakeModelOptions options;
  size_t n_vocab = 0;
  size_t head_dim = 0;
};

class ModelBuilder {
 public:
  ModelBuilder(const ModelShape& shape, GgufWriter& writer, TensorType matrix_type)
      : shape_(shape), writer_(writer), matrix_type_(matrix_type), rng_(shape.options.seed) {}

  const ModelShape& shape() const { return shape_; }
  const MakeModelOptions& options() const { return shape_.options; }
  void set(std::string key, GgufValue value) { writer_.set(std::move(key), std::move(value)); }

  // A weight matrix [n_rows, n_cols] (GGUF dims {n_cols, n_rows}) of uniform values with
  // standard deviation `std`, in the matrix type.
  Status matrix(const std::string& name, size_t n_rows, size_t n_cols, float std);
  // A vector (f32) of `center` +- `spread` (uniform).
  Status vector(const std::string& name, size_t n, float center, float spread);
  // A LayerNorm of n_embd: `name`.weight around 1, `name`.bias around 0.
  Status layer_norm(const std::string& name);
  // A vector (f32) of the given values.
  Status values(const std::string& name, const std::vector<float>& v);

  // A dry run: tensors are only named in `names` (a quantize mix needs the whole list first).
  void record_names(std::vector<std::string>* names) { names_ = names; }
  // Matrices generated in f32, then encoded as `plan` says, rows in parallel on `pool`: the
  // bytes quantize would write from the f32 file, without the f32 file.
  void encode_with(const QuantizePlan* plan, ThreadPool* pool) {
    plan_ = plan;
    pool_ = pool;
  }

 private:
  Status add_matrix(const std::string& name, const std::vector<uint64_t>& dims,
                    const std::vector<float>& f);

  const ModelShape& shape_;
  GgufWriter& writer_;
  TensorType matrix_type_;
  Rng rng_;
  std::vector<std::string>* names_ = nullptr;
  const QuantizePlan* plan_ = nullptr;
  ThreadPool* pool_ = nullptr;
};

// One architecture: its name and what it adds (metadata under "<arch>.", tensors).
struct ArchWriter {
  std::string_view name;
  Status (*build)(ModelBuilder& b);
};

// The widths every builder sizes its tensors by, and the standard deviations that keep each
// projection's output at unit variance (1 / sqrt(fan_in)).
struct Widths {
  size_t d, q_dim, kv_dim;
  float in_std, ff_std;  // for a matrix reading d, or n_ff, inputs
};
Widths widths(const ModelBuilder& b);

// The Llama block and its variants (make_model_llama.cc).
struct LlamaLike {
  std::string_view name;   // general.architecture, the metadata prefix
  bool qkv_bias = false;   // attn_q/k/v.bias (qwen2)
  bool head_norm = false;  // attn_q_norm / attn_k_norm [head_dim] (qwen3)
  bool fused_qkv = false;  // attn_qkv (phi3)
  bool fused_ffn = false;  // ffn_up of 2 n_ff rows, no ffn_gate (phi3)
};
Status build_llama_like(ModelBuilder& b, const LlamaLike& arch);
Status build_llama(ModelBuilder& b);
Status build_qwen2(ModelBuilder& b);
Status build_qwen3(ModelBuilder& b);
Status build_phi3(ModelBuilder& b);
Status build_gptneox(ModelBuilder& b);  // make_model_gptneox.cc
Status build_gemma2(ModelBuilder& b);   // make_model_gemma.cc
Status build_gemma3(ModelBuilder& b);
Status build_falcon(ModelBuilder& b);  // make_model_falcon.cc
Status build_mpt(ModelBuilder& b);     // make_model_falcon.cc

// Llama 3.1's rope_freqs factors (llama.cpp's convert_hf_to_gguf.py, rope_type "llama3").
std::vector<float> llama3_rope_factors(size_t rope_dim, double base, float factor,
                                       float low_freq_factor, float high_freq_factor,
                                       float original_context);

}  // namespace sllm::make_model_detail
