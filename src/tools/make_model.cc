// make_model(): options, the vocabulary, the architecture table, deterministic weights.
#include "tools/make_model.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <thread>

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
  if (names_ != nullptr) {
    names_->push_back(name);
    return {};
  }
  if (matrix_type_ == TensorType::kF16) {
    std::vector<uint16_t> h(n);
    for (uint16_t& x : h) x = quant::f32_to_f16(a * rng_.uniform());
    return writer_.add_tensor(name, matrix_type_, dims,
                              {reinterpret_cast<const uint8_t*>(h.data()), n * 2});
  }
  std::vector<float> f(n);
  for (float& x : f) x = a * rng_.uniform();
  return add_matrix(name, dims, f);
}

Status ModelBuilder::add_matrix(const std::string& name, const std::vector<uint64_t>& dims,
                                const std::vector<float>& f) {
  const TensorType type =
      plan_ == nullptr ? matrix_type_
                       : plan_->type_for(name, dims, TensorType::kF32, [](const std::string& line) {
                           fmt::print(stderr, "{}\n", line);
                         });
  if (type == TensorType::kF32) {
    return writer_.add_tensor(name, type, dims,
                              {reinterpret_cast<const uint8_t*>(f.data()), f.size() * 4});
  }
  const size_t row_length = dims[0], n_rows = dims[1];
  const TensorTypeTraits traits = traits_of(type);
  const size_t row_bytes = row_length / traits.block_elems * traits.block_bytes;
  std::vector<uint8_t> encoded(n_rows * row_bytes);
  // Rows are encoded independently: the bytes do not depend on the thread count.
  const size_t n_tasks = std::min(n_rows, 4 * pool_->n_threads());
  const size_t per_task = (n_rows + n_tasks - 1) / n_tasks;
  pool_->run(n_tasks, [&](size_t task) {
    for (size_t r = task * per_task; r < std::min(n_rows, (task + 1) * per_task); ++r) {
      quant::quantize_row(type, f.data() + r * row_length, encoded.data() + r * row_bytes,
                          row_length);
    }
  });
  return writer_.add_tensor(name, type, dims, encoded);
}

Status ModelBuilder::vector(const std::string& name, size_t n, float center, float spread) {
  std::vector<float> v(n);
  for (float& x : v) x = center + spread * rng_.uniform();
  return values(name, v);
}

Status ModelBuilder::values(const std::string& name, const std::vector<float>& v) {
  if (names_ != nullptr) {
    names_->push_back(name);
    return {};
  }
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
  if (!parse_tensor_type(o.type) && !parse_quant_mix(o.type)) {
    return invalid("make-model: --type '" + o.type +
                   "' is neither a weight type nor a quantize mix (Q4_K_M, Q5_K_M)");
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

  // f32 and f16 are generated as such; any other type is generated in f32 and encoded matrix by
  // matrix as `quantize` would encode the f32 file (a 7B f16 intermediate would not fit a disk).
  const bool native = o.type == "f32" || o.type == "f16";
  std::optional<QuantizePlan> plan;
  if (!native) {
    GgufWriter scratch;
    ModelBuilder recorder(shape, scratch, TensorType::kF32);
    std::vector<std::string> names;
    recorder.record_names(&names);
    SLLM_RETURN_IF_ERROR(arch->build(recorder));
    SLLM_ASSIGN_OR_RETURN(plan,
                          QuantizePlan::create(o.type, static_cast<uint32_t>(o.n_layer), names));
  }

  GgufWriter w;
  w.set("general.architecture", GgufValue::str(o.arch));
  w.set("general.name",
        GgufValue::str("streamingllm make-model " + o.arch + " seed " + std::to_string(o.seed)));
  // llama.cpp's LLAMA_FTYPE_ALL_F32 / LLAMA_FTYPE_MOSTLY_F16, or quantize's for the type.
  w.set("general.file_type", GgufValue::u32(plan ? plan->file_type() : o.type == "f16" ? 1 : 0));
  ModelBuilder builder(shape, w, o.type == "f16" ? TensorType::kF16 : TensorType::kF32);
  ThreadPool pool(std::max(1u, std::thread::hardware_concurrency()));
  if (plan) builder.encode_with(&*plan, &pool);
  SLLM_RETURN_IF_ERROR(arch->build(builder));
  for (const auto& [key, value] : vocab.metadata()) {
    if (key.rfind("tokenizer.", 0) == 0) w.set(key, value);
  }
  return w.write(out);
}

}  // namespace sllm
