// quantize() maps the type's name; convert_llama2c(), read_file() and write_file_atomic() are the
// tools' and util's own functions, declared in the public header (src/tools/llama2c.h and
// src/util/mapped_file.h include it).
#include "streamingllm/tools.h"

#include "tools/quantize.h"
#include "util/tensor_type.h"

namespace sllm {

Status quantize(const std::string& in, const std::string& out, std::string_view type,
                const LogFn& log) {
  const auto parsed = parse_tensor_type(std::string(type));
  if (!parsed) {
    std::string expected;
    for (const TensorTypeTraits& t : supported_tensor_types()) {
      expected += (expected.empty() ? "" : ", ") + std::string(t.name);
    }
    return Error(ErrorCode::kInvalidInput,
                 "unknown weight type '" + std::string(type) + "' (expected " + expected + ")");
  }
  return quantize_gguf(in, out, *parsed, log);
}

}  // namespace sllm
