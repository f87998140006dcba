#include "model/weights.h"

namespace sllm {

namespace {

std::string dims_str(const std::vector<uint64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

Result<const GgufTensorInfo*> find(const GgufFile& gguf, const std::string& name,
                                   const std::vector<uint64_t>& dims) {
  const GgufTensorInfo* t = gguf.find_tensor(name);
  if (t == nullptr) {
    return Error(ErrorCode::kFormat, gguf.path() + ": missing tensor '" + name + "'");
  }
  if (t->dims != dims) {
    return Error(ErrorCode::kFormat, gguf.path() + ": tensor '" + name + "' has shape " +
                                         dims_str(t->dims) + ", expected " + dims_str(dims));
  }
  return t;
}

}  // namespace

Result<ops::MatView> get_matrix(const GgufFile& gguf, const std::string& name, size_t n_rows,
                                size_t n_cols) {
  SLLM_ASSIGN_OR_RETURN(const GgufTensorInfo* t, find(gguf, name, {n_cols, n_rows}));
  ops::MatView m;
  m.type = t->type;
  m.data = t->data;
  m.n_rows = n_rows;
  m.n_cols = n_cols;
  m.row_bytes = static_cast<size_t>(t->n_bytes / n_rows);
  return m;
}

Result<std::vector<float>> get_vector(const GgufFile& gguf, const std::string& name, size_t n) {
  SLLM_ASSIGN_OR_RETURN(const GgufTensorInfo* t, find(gguf, name, {n}));
  std::vector<float> v(n);
  ops::dequantize_row(t->type, t->data, v.data(), n);
  return v;
}

}  // namespace sllm
