#include "tools/quantize.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "gguf/gguf.h"
#include "kernels/quant.h"
#include "util/mapped_file.h"
#include "util/thread_pool.h"

namespace sllm {
namespace {

// llama.cpp's LLAMA_FTYPE for a file whose matrices are mostly `type` (llama.h llama_ftype; for
// the K-quants the "_M" mixes' ids would claim per-tensor choices a single-type file lacks, so the
// plain or "_S" ids are used).
uint32_t llama_file_type(TensorType type) {
  switch (type) {
    case TensorType::kF32:
      return 0;  // LLAMA_FTYPE_ALL_F32
    case TensorType::kF16:
      return 1;  // LLAMA_FTYPE_MOSTLY_F16
    case TensorType::kQ4_0:
      return 2;  // LLAMA_FTYPE_MOSTLY_Q4_0
    case TensorType::kQ4_1:
      return 3;  // LLAMA_FTYPE_MOSTLY_Q4_1
    case TensorType::kQ8_0:
      return 7;  // LLAMA_FTYPE_MOSTLY_Q8_0
    case TensorType::kQ5_0:
      return 8;  // LLAMA_FTYPE_MOSTLY_Q5_0
    case TensorType::kQ5_1:
      return 9;  // LLAMA_FTYPE_MOSTLY_Q5_1
    case TensorType::kQ2_K:
      return 10;  // LLAMA_FTYPE_MOSTLY_Q2_K
    case TensorType::kQ3_K:
      return 11;  // LLAMA_FTYPE_MOSTLY_Q3_K_S
    case TensorType::kQ4_K:
      return 14;  // LLAMA_FTYPE_MOSTLY_Q4_K_S
    case TensorType::kQ5_K:
      return 16;  // LLAMA_FTYPE_MOSTLY_Q5_K_S
    case TensorType::kQ6_K:
      return 18;  // LLAMA_FTYPE_MOSTLY_Q6_K
    case TensorType::kIQ4_NL:
      return 25;  // LLAMA_FTYPE_MOSTLY_IQ4_NL
    case TensorType::kIQ4_XS:
      return 30;  // LLAMA_FTYPE_MOSTLY_IQ4_XS
    case TensorType::kBF16:
      return 32;  // LLAMA_FTYPE_MOSTLY_BF16
    case TensorType::kMXFP4:
      return 38;  // LLAMA_FTYPE_MOSTLY_MXFP4_MOE
    case TensorType::kQ8_K:
      break;
  }
  return 0;
}

// llama.cpp's type for rows that `type`'s block does not divide (llama-quant.cpp
// tensor_type_fallback): a 32-element relative of the 256-element types; f16 when that does not
// fit either.
TensorType fallback_type(TensorType type, uint64_t row_length) {
  TensorType fallback = type;
  switch (type) {
    case TensorType::kIQ4_XS:
      fallback = TensorType::kIQ4_NL;
      break;
    case TensorType::kQ2_K:
    case TensorType::kQ3_K:
      fallback = TensorType::kQ4_0;
      break;
    case TensorType::kQ4_K:
      fallback = TensorType::kQ5_0;
      break;
    case TensorType::kQ5_K:
      fallback = TensorType::kQ5_1;
      break;
    case TensorType::kQ6_K:
      fallback = TensorType::kQ8_0;
      break;
    default:
      break;
  }
  return row_length % traits_of(fallback).block_elems == 0 ? fallback : TensorType::kF16;
}

// llama.cpp quantizes the 2-D weights (matmul operands and the embedding table) and leaves
// vectors such as the norms in f32: they are tiny and feed the activations directly.
bool is_weight_matrix(const GgufTensorInfo& t) {
  constexpr std::string_view kSuffix = ".weight";
  return t.dims.size() == 2 && t.name.size() >= kSuffix.size() &&
         t.name.compare(t.name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0;
}

bool is_block_type(TensorType type) { return traits_of(type).block_elems > 1; }

// Decodes each row of `t` to f32 and encodes it as `out_type`, chunks of rows in parallel (the
// K-quants' scale searches make this the slow part of quantize). Rows are independent, so the
// bytes do not depend on the thread count.
Result<std::vector<uint8_t>> encode(const GgufTensorInfo& t, TensorType out_type,
                                    const std::string& path, ThreadPool& pool) {
  const size_t n_rows = static_cast<size_t>(t.n_rows());
  const size_t row_length = static_cast<size_t>(t.row_length());
  const size_t src_row_bytes = static_cast<size_t>(t.n_bytes) / n_rows;
  const TensorTypeTraits out = traits_of(out_type);
  const size_t dst_row_bytes = row_length / out.block_elems * out.block_bytes;

  std::vector<uint8_t> encoded(n_rows * dst_row_bytes);  // [n_rows, dst_row_bytes]
  // The first non-finite value in row order, if any (each task stops at its first).
  std::mutex mutex;
  size_t bad_row = n_rows;
  size_t bad_col = 0;
  float bad_value = 0.0f;
  const size_t n_tasks = std::min(n_rows, 4 * pool.n_threads());
  const size_t rows_per_task = (n_rows + n_tasks - 1) / n_tasks;
  pool.run(n_tasks, [&](size_t task) {
    std::vector<float> row(row_length);  // [row_length]
    const size_t end = std::min(n_rows, (task + 1) * rows_per_task);
    for (size_t r = task * rows_per_task; r < end; ++r) {
      quant::dequantize_row_ref(t.type, t.data + r * src_row_bytes, row.data(), row_length);
      if (is_block_type(out_type)) {
        // A block's scale comes from its largest magnitude; inf or NaN would poison the block.
        for (size_t i = 0; i < row_length; ++i) {
          if (!std::isfinite(row[i])) {
            const std::lock_guard lock(mutex);
            if (r < bad_row) {
              bad_row = r;
              bad_col = i;
              bad_value = row[i];
            }
            return;
          }
        }
      }
      quant::quantize_row(out_type, row.data(), encoded.data() + r * dst_row_bytes, row_length);
    }
  });
  if (bad_row < n_rows) {
    return Error(ErrorCode::kInvalidInput,
                 fmt::format("'{}': tensor '{}' has the non-finite value {} at row {}, column {}; "
                             "{} needs finite weights",
                             path, t.name, bad_value, bad_row, bad_col, out.name));
  }
  return encoded;
}

// Per-tensor type choice: `type` for a single-type file, or a mix's rule.
struct TypeChooser {
  std::optional<QuantMix> mix;
  TensorType type = TensorType::kF32;  // single-type files
  int n_layer = 0;                     // <arch>.block_count
  int n_attn_v = 0;                    // attn_v / attn_qkv / attn_kv_b matrices
  bool tied_embeddings = true;         // no output.weight: token_embd is the output matrix

  // llama.cpp's use_more_bits: the first and last eighth of the layers and every third between.
  static bool use_more_bits(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
  }

  static int layer_of(const std::string& name) {
    int layer = -1;
    if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) return -1;
    return layer;
  }

  static bool is_attn_v(const std::string& name) {
    return name.find("attn_qkv.weight") != std::string::npos ||
           name.find("attn_kv_b.weight") != std::string::npos ||
           name.find("attn_v.weight") != std::string::npos;
  }

  TensorType base() const {
    if (!mix) return type;
    return *mix == QuantMix::kQ4_K_M ? TensorType::kQ4_K : TensorType::kQ5_K;
  }

  // The type before the row-length fallback, and why it differs from base(), if it does.
  std::pair<TensorType, std::string> choose(const GgufTensorInfo& t) const {
    if (!mix) {
      if (type == TensorType::kQ4_0 && t.name == "output.weight") {
        // The output matrix is the most sensitive one (its error lands on every logit); llama.cpp
        // keeps it at a higher-precision type for q4_0 files (q6_K there). q8_0 is ours.
        return {TensorType::kQ8_0, "kept at q8_0 (the output matrix), as llama.cpp does for q4_0"};
      }
      return {type, ""};
    }
    const bool is_output =
        t.name == "output.weight" || (tied_embeddings && t.name == "token_embd.weight");
    if (is_output) {
      if (t.row_length() % traits_of(base()).block_elems != 0) {
        return {TensorType::kQ8_0, "q8_0 (the output matrix, rows no multiple of the block)"};
      }
      return {TensorType::kQ6_K, "q6_K (the output matrix)"};
    }
    if (t.name == "token_embd.weight") return {base(), ""};
    const int layer = layer_of(t.name);
    if (is_attn_v(t.name) && use_more_bits(layer, n_attn_v)) {
      return {TensorType::kQ6_K, fmt::format("q6_K (attention values of layer {})", layer)};
    }
    if (t.name.find("ffn_down") != std::string::npos && use_more_bits(layer, n_layer)) {
      return {TensorType::kQ6_K, fmt::format("q6_K (ffn_down of layer {})", layer)};
    }
    return {base(), ""};
  }

  // What a mix needs to know of the whole file, one tensor name at a time.
  void count(const std::string& name) {
    if (is_attn_v(name)) ++n_attn_v;
    if (name == "output.weight") tied_embeddings = false;
  }

  // choose(), then llama.cpp's fallback for rows the block does not divide; says why in `emit`.
  template <typename Emit>
  TensorType choose_with_fallback(const GgufTensorInfo& t, const Emit& emit) const {
    auto [out_type, why] = choose(t);
    if (!why.empty()) emit(fmt::format("{}: {}", t.name, why));
    if (t.row_length() % traits_of(out_type).block_elems != 0) {
      const TensorType fallback = fallback_type(out_type, t.row_length());
      emit(fmt::format(
          "{}: row length {} is not a multiple of the {}-element {} block; written as {}", t.name,
          t.row_length(), traits_of(out_type).block_elems, traits_of(out_type).name,
          traits_of(fallback).name));
      out_type = fallback;
    }
    return out_type;
  }
};

Status quantize_with(const std::string& in, const std::string& out, TypeChooser chooser,
                     uint32_t file_type, const QuantizeLog& log) {
  auto emit = [&](const std::string& line) {
    if (log) {
      log(line);
    } else {
      fmt::print(stderr, "{}\n", line);
    }
  };
  // A device, FIFO or directory as the output is refused before the work, not after it.
  SLLM_RETURN_IF_ERROR(check_output_path(out));
  SLLM_ASSIGN_OR_RETURN(GgufFile src, GgufFile::open(in));

  if (chooser.mix) {
    // use_more_bits needs the layer count; a file without it is no model llama.cpp quantizes.
    SLLM_ASSIGN_OR_RETURN(const std::string arch, src.get_string("general.architecture"));
    SLLM_ASSIGN_OR_RETURN(const uint32_t n_layer, src.get_u32(arch + ".block_count"));
    chooser.n_layer = static_cast<int>(n_layer);
    for (const GgufTensorInfo& t : src.tensors()) chooser.count(t.name);
  }

  GgufWriter writer;
  for (const auto& [key, value] : src.metadata()) writer.set(key, value);
  writer.set("general.file_type", GgufValue::u32(file_type));
  ThreadPool pool(std::max(1u, std::thread::hardware_concurrency()));

  for (const GgufTensorInfo& t : src.tensors()) {
    const std::span<const uint8_t> bytes(t.data, static_cast<size_t>(t.n_bytes));
    if (!is_weight_matrix(t)) {
      SLLM_RETURN_IF_ERROR(writer.add_tensor(t.name, t.type, t.dims, bytes));
      continue;
    }
    const TensorType out_type = chooser.choose_with_fallback(t, emit);
    if (out_type == t.type) {
      SLLM_RETURN_IF_ERROR(writer.add_tensor(t.name, t.type, t.dims, bytes));
      continue;
    }
    if (is_block_type(t.type)) {
      emit(fmt::format("{}: requantizing {} to {} adds the rounding errors of both", t.name,
                       traits_of(t.type).name, traits_of(out_type).name));
    }
    SLLM_ASSIGN_OR_RETURN(std::vector<uint8_t> encoded, encode(t, out_type, in, pool));
    SLLM_RETURN_IF_ERROR(writer.add_tensor(t.name, out_type, t.dims, encoded));
  }
  return writer.write(out);
}

}  // namespace

Result<QuantizePlan> QuantizePlan::create(const std::string& type_name, uint32_t n_layer,
                                          const std::vector<std::string>& tensor_names) {
  QuantizePlan plan;
  if (const auto mix = parse_quant_mix(type_name)) {
    plan.mix_ = mix;
    plan.n_layer_ = static_cast<int>(n_layer);
    TypeChooser chooser;
    for (const std::string& name : tensor_names) chooser.count(name);
    plan.n_attn_v_ = chooser.n_attn_v;
    plan.tied_embeddings_ = chooser.tied_embeddings;
    plan.file_type_ = *mix == QuantMix::kQ4_K_M ? 15 : 17;
    return plan;
  }
  const auto type = parse_tensor_type(type_name);
  if (!type) {
    return Error(ErrorCode::kInvalidInput,
                 "unknown weight type '" + type_name + "' (expected a quantize --type)");
  }
  plan.type_ = *type;
  plan.file_type_ = llama_file_type(*type);
  return plan;
}

TensorType QuantizePlan::type_for(const std::string& name, const std::vector<uint64_t>& dims,
                                  TensorType source, const QuantizeLog& log) const {
  GgufTensorInfo t;
  t.name = name;
  t.dims = dims;
  t.type = source;
  if (!is_weight_matrix(t)) return source;
  TypeChooser chooser;
  chooser.mix = mix_;
  chooser.type = type_;
  chooser.n_layer = n_layer_;
  chooser.n_attn_v = n_attn_v_;
  chooser.tied_embeddings = tied_embeddings_;
  return chooser.choose_with_fallback(t, [&](const std::string& line) {
    if (log) log(line);
  });
}

Status quantize_gguf(const std::string& in, const std::string& out, TensorType type,
                     const QuantizeLog& log) {
  TypeChooser chooser;
  chooser.type = type;
  return quantize_with(in, out, chooser, llama_file_type(type), log);
}

std::optional<QuantMix> parse_quant_mix(const std::string& name) {
  std::string lower = name;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "q4_k_m") return QuantMix::kQ4_K_M;
  if (lower == "q5_k_m") return QuantMix::kQ5_K_M;
  return std::nullopt;
}

Status quantize_gguf_mix(const std::string& in, const std::string& out, QuantMix mix,
                         const QuantizeLog& log) {
  TypeChooser chooser;
  chooser.mix = mix;
  // LLAMA_FTYPE_MOSTLY_Q4_K_M / _Q5_K_M
  return quantize_with(in, out, chooser, mix == QuantMix::kQ4_K_M ? 15 : 17, log);
}

}  // namespace sllm
