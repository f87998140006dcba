// quantize() maps the type's name; convert_llama2c(), read_file() and write_file_atomic() are the
// tools' and util's own functions, declared in the public header (src/tools/llama2c.h and
// src/util/mapped_file.h include it).
#include "streamingllm/tools.h"

#include "tools/quantize.h"
#include "util/tensor_type.h"

namespace sllm {

Status quantize(const std::string& in, const std::string& out, std::string_view type,
                const LogFn& log) {
  if (const auto mix = parse_quant_mix(std::string(type))) {
    return quantize_gguf_mix(in, out, *mix, log);
  }
  const auto parsed = parse_tensor_type(std::string(type));
  if (!parsed) {
    std::string expected;
    for (const TensorTypeTraits& t : supported_tensor_types()) {
      expected += (expected.empty() ? "" : ", ") + std::string(t.name);
    }
    return Error(ErrorCode::kInvalidInput, "unknown weight type '" + std::string(type) +
                                               "' (expected " + expected + ", Q4_K_M or Q5_K_M)");
  }
  return quantize_gguf(in, out, *parsed, log);
}

}  // namespace sllm
