#include "util/tensor_type.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace sllm {

namespace {
// Block layouts as in ggml (ggml-common.h); the structs with their static_asserts are in
// kernels/quant_blocks.h. Display order: dense types first, then by family.
constexpr std::array<TensorTypeTraits, 16> kSupported = {{
    {TensorType::kF32, "f32", 1, 4},
    {TensorType::kF16, "f16", 1, 2},
    {TensorType::kBF16, "bf16", 1, 2},
    {TensorType::kQ8_0, "q8_0", 32, 34},
    {TensorType::kQ4_0, "q4_0", 32, 18},
    {TensorType::kQ4_1, "q4_1", 32, 20},
    {TensorType::kQ5_0, "q5_0", 32, 22},
    {TensorType::kQ5_1, "q5_1", 32, 24},
    {TensorType::kQ2_K, "q2_K", 256, 84},
    {TensorType::kQ3_K, "q3_K", 256, 110},
    {TensorType::kQ4_K, "q4_K", 256, 144},
    {TensorType::kQ5_K, "q5_K", 256, 176},
    {TensorType::kQ6_K, "q6_K", 256, 210},
    {TensorType::kIQ4_NL, "iq4_nl", 32, 18},
    {TensorType::kIQ4_XS, "iq4_xs", 256, 136},
    {TensorType::kMXFP4, "mxfp4", 32, 17},
}};

constexpr TensorTypeTraits kQ8_K = {TensorType::kQ8_K, "q8_K", 256, 292};

// ggml's type names by id (ggml.c type_traits), so unsupported types can be named in errors.
constexpr std::array<const char*, 43> kGgmlNames = {
    "f32",   "f16",        "q4_0",       "q4_1",       "q4_2",     "q4_3",     "q5_0",
    "q5_1",  "q8_0",       "q8_1",       "q2_K",       "q3_K",     "q4_K",     "q5_K",
    "q6_K",  "q8_K",       "iq2_xxs",    "iq2_xs",     "iq3_xxs",  "iq1_s",    "iq4_nl",
    "iq3_s", "iq2_s",      "iq4_xs",     "i8",         "i16",      "i32",      "i64",
    "f64",   "iq1_m",      "bf16",       "q4_0_4_4",   "q4_0_4_8", "q4_0_8_8", "tq1_0",
    "tq2_0", "iq4_nl_4_4", "iq4_nl_4_8", "iq4_nl_8_8", "mxfp4",    "nvfp4",    "q1_0",
    "q2_0",
};
}  // namespace

std::optional<TensorTypeTraits> tensor_type_traits(uint32_t ggml_type_id) {
  for (const auto& t : kSupported) {
    if (static_cast<uint32_t>(t.type) == ggml_type_id) return t;
  }
  return std::nullopt;
}

TensorTypeTraits traits_of(TensorType type) {
  if (type == TensorType::kQ8_K) return kQ8_K;
  return *tensor_type_traits(static_cast<uint32_t>(type));
}

std::span<const TensorTypeTraits> supported_tensor_types() { return kSupported; }

std::string ggml_type_name(uint32_t ggml_type_id) {
  if (ggml_type_id < kGgmlNames.size()) return kGgmlNames[ggml_type_id];
  return "type " + std::to_string(ggml_type_id);
}

std::optional<TensorType> parse_tensor_type(const std::string& name) {
  auto lower = [](std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
  };
  const std::string wanted = lower(name);
  for (const auto& t : kSupported) {
    if (wanted == lower(t.name)) return t.type;
  }
  return std::nullopt;
}

}  // namespace sllm
