// make_model(): options, the vocabulary, the architecture table, deterministic weights.
#include "tools/make_model.h"

#include <cmath>
#include <cstring>

#include "kernels/quant.h"

namespace sllm {

namespace make_model_detail {

uint64_t Rng::next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

float Rng::uniform() {
  // 24 random bits: every value exact in float.
  return static_cast<float>(next() >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

Status ModelBuilder::matrix(const std::string& name, size_t n_rows, size_t n_cols, float std) {
  // A uniform variable on [-a, a] has standard deviation a / sqrt(3).
  const float a = std * std::sqrt(3.0f);
  const size_t n = n_rows * n_cols;
  const std::vector<uint64_t> dims = {n_cols, n_rows};
  if (matrix_type_ == TensorType::kF16) {
    std::vector<uint16_t> h(n);
    for (uint16_t& x : h) x = quant::f32_to_f16(a * rng_.uniform());
    return writer_.add_tensor(name, matrix_type_, dims,
                              {reinterpret_cast<const uint8_t*>(h.data()), n * 2});
  }
  std::vector<float> f(n);
  for (float& x : f) x = a * rng_.uniform();
  return writer_.add_tensor(name, matrix_type_, dims,
                            {reinterpret_cast<const uint8_t*>(f.data()), n * 4});
}

Status ModelBuilder::vector(const std::string& name, size_t n, float center, float spread) {
  std::vector<float> v(n);
  for (float& x : v) x = center + spread * rng_.uniform();
  return values(name, v);
}

Status ModelBuilder::values(const std::string& name, const std::vector<float>& v) {
  std::vector<uint8_t> bytes(v.size() * 4);
  std::memcpy(bytes.data(), v.data(), bytes.size());
  return writer_.add_tensor(name, TensorType::kF32, {v.size()}, bytes);
}

std::vector<float> llama3_rope_factors(size_t rope_dim, double base, float factor,
                                       float low_freq_factor, float high_freq_factor,
                                       float original_context) {
  // As the converter does it: torch float32 frequencies, Python double arithmetic after.
  const double low_freq_wavelen = original_context / low_freq_factor;
  const double high_freq_wavelen = original_context / high_freq_factor;
  std::vector<float> factors;
  for (size_t i = 0; i < rope_dim; i += 2) {
    const float freq =
        1.0f /
        static_cast<float>(std::pow(
            base, static_cast<double>(static_cast<float>(i) / static_cast<float>(rope_dim))));
    const double wavelen = 2.0 * M_PI / static_cast<double>(freq);
    if (wavelen < high_freq_wavelen) {
      factors.push_back(1.0f);
    } else if (wavelen > low_freq_wavelen) {
      factors.push_back(factor);
    } else {
      const double smooth =
          (original_context / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
      factors.push_back(static_cast<float>(1.0 / ((1.0 - smooth) / factor + smooth)));
    }
  }
  return factors;
}

namespace {

constexpr ArchWriter kArchWriters[] = {
    {"llama", build_llama},   {"qwen2", build_qwen2},     {"qwen3", build_qwen3},
    {"phi3", build_phi3},     {"gptneox", build_gptneox}, {"gemma2", build_gemma2},
    {"gemma3", build_gemma3}, {"falcon", build_falcon},   {"mpt", build_mpt},
};

Error invalid(const std::string& message) { return Error(ErrorCode::kInvalidInput, message); }

Status check_options(const MakeModelOptions& o) {
  const auto positive = [](const char* flag, size_t v, size_t max) -> Status {
    if (v == 0 || v > max) {
      return invalid(std::string("make-model: ") + flag + " = " + std::to_string(v) +
                     " is out of range (1.." + std::to_string(max) + ")");
    }
    return {};
  };
  SLLM_RETURN_IF_ERROR(positive("--n-embd", o.n_embd, 1 << 16));
  SLLM_RETURN_IF_ERROR(positive("--n-layer", o.n_layer, 1024));
  SLLM_RETURN_IF_ERROR(positive("--n-head", o.n_head, 1024));
  SLLM_RETURN_IF_ERROR(positive("--n-head-kv", o.n_head_kv, o.n_head));
  SLLM_RETURN_IF_ERROR(positive("--n-ff", o.n_ff, 1 << 18));
  SLLM_RETURN_IF_ERROR(positive("--ctx", o.n_ctx, 1 << 24));
  SLLM_RETURN_IF_ERROR(positive("--sliding-window", o.sliding_window, 1 << 24));
  if (o.n_embd % o.n_head != 0 || (o.n_embd / o.n_head) % 2 != 0) {
    return invalid("make-model: --n-embd " + std::to_string(o.n_embd) + " must be --n-head (" +
                   std::to_string(o.n_head) + ") times an even head dimension");
  }
  if (o.n_head % o.n_head_kv != 0) {
    return invalid("make-model: --n-head " + std::to_string(o.n_head) +
                   " is not a multiple of --n-head-kv " + std::to_string(o.n_head_kv));
  }
  if (!(o.rope_base > 1.0 && std::isfinite(o.rope_base))) {
    return invalid("make-model: --rope-base must be a finite number > 1");
  }
  if (o.rope_scaling != "none" && o.rope_scaling != "linear" && o.rope_scaling != "yarn" &&
      o.rope_scaling != "llama3" && o.rope_scaling != "longrope") {
    return invalid("make-model: --rope-scaling '" + o.rope_scaling +
                   "' is not one of none, linear, yarn, llama3, longrope");
  }
  if (o.rope_scaling == "longrope" && o.arch != "phi3") {
    return invalid(
        "make-model: --rope-scaling longrope is for --arch phi3 (llama.cpp reads "
        "long-rope factors for phi3 only)");
  }
  if (!(o.rope_factor >= 1.0f && o.rope_factor <= 1024.0f)) {
    return invalid("make-model: --rope-factor must be in [1, 1024]");
  }
  if (o.type != "f32" && o.type != "f16") {
    return invalid("make-model: --type '" + o.type + "' is not one of f32, f16");
  }
  return {};
}

}  // namespace

Status ModelBuilder::layer_norm(const std::string& name) {
  const size_t d = options().n_embd;
  SLLM_RETURN_IF_ERROR(vector(name + ".weight", d, 1.0f, 0.2f));
  return vector(name + ".bias", d, 0.0f, 0.1f);
}

Widths widths(const ModelBuilder& b) {
  const MakeModelOptions& o = b.options();
  const size_t d = o.n_embd, q_dim = o.n_head * b.shape().head_dim;
  return {d, q_dim, o.n_head_kv * b.shape().head_dim, 1.0f / std::sqrt(static_cast<float>(d)),
          1.0f / std::sqrt(static_cast<float>(o.n_ff))};
}

}  // namespace make_model_detail

using namespace make_model_detail;

std::string make_model_architectures() {
  std::string names;
  for (const auto& a : kArchWriters) names += (names.empty() ? "" : ", ") + std::string(a.name);
  return names;
}

Status make_model(const MakeModelOptions& options, const std::string& out) {
  const ArchWriter* arch = nullptr;
  for (const auto& a : kArchWriters) {
    if (a.name == options.arch) arch = &a;
  }
  if (arch == nullptr) {
    return Error(ErrorCode::kUnsupported,
                 "make-model: architecture '" + options.arch +
                     "' is not supported (supported: " + make_model_architectures() + ")");
  }
  ModelShape shape;
  shape.options = options;
  MakeModelOptions& o = shape.options;
  if (o.n_head_kv == 0) o.n_head_kv = o.n_head;
  if (o.n_ff == 0) o.n_ff = (o.n_embd * 8 / 3 + 31) / 32 * 32;
  SLLM_RETURN_IF_ERROR(check_options(o));
  shape.head_dim = o.n_embd / o.n_head;

  SLLM_ASSIGN_OR_RETURN(const GgufFile vocab, GgufFile::open(o.vocab));
  SLLM_ASSIGN_OR_RETURN(const std::vector<std::string> tokens,
                        vocab.get_string_array("tokenizer.ggml.tokens"));
  if (tokens.empty()) {
    return Error(ErrorCode::kFormat, vocab.path() + ": 'tokenizer.ggml.tokens' is empty");
  }
  shape.n_vocab = tokens.size();

  GgufWriter w;
  w.set("general.architecture", GgufValue::str(o.arch));
  w.set("general.name",
        GgufValue::str("streamingllm make-model " + o.arch + " seed " + std::to_string(o.seed)));
  // llama.cpp's LLAMA_FTYPE_ALL_F32 / LLAMA_FTYPE_MOSTLY_F16.
  w.set("general.file_type", GgufValue::u32(o.type == "f16" ? 1 : 0));
  ModelBuilder builder(shape, w, o.type == "f16" ? TensorType::kF16 : TensorType::kF32);
  SLLM_RETURN_IF_ERROR(arch->build(builder));
  for (const auto& [key, value] : vocab.metadata()) {
    if (key.rfind("tokenizer.", 0) == 0) w.set(key, value);
  }
  return w.write(out);
}

}  // namespace sllm
