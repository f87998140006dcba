// GGUF (v2 and v3) reader and writer.
//
// The reader memory-maps the file, parses the header, the metadata and the tensor infos, and
// validates every count, offset, size, dimension and type against the file size with
// overflow-checked arithmetic before anything is dereferenced. Errors name the file, the byte
// offset and what is wrong. Spec: ggml's docs/gguf.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "streamingllm/error.h"
#include "util/mapped_file.h"
#include "util/tensor_type.h"

namespace sllm {

// The largest general.alignment read or written (1 MiB). llama.cpp accepts any power of two; real
// files use 32 or 64, and an alignment of 2^31 makes a writer pad gigabytes of zeros.
inline constexpr uint64_t kMaxGgufAlignment = uint64_t{1} << 20;

enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

const char* gguf_value_type_name(GgufValueType type);

struct GgufValue;

// A typed array; `elem_type` is kept even when the array is empty. Arrays may nest.
struct GgufArray {
  GgufValueType elem_type = GgufValueType::kUint8;
  std::vector<GgufValue> items;

  bool operator==(const GgufArray&) const = default;
};

// One metadata value. Integers keep their GGUF width in `type`; they are stored widened.
struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> v;

  static GgufValue u32(uint32_t x);
  static GgufValue i32(int32_t x);
  static GgufValue u64(uint64_t x);
  static GgufValue f32(float x);
  static GgufValue boolean(bool x);
  static GgufValue str(std::string x);
  static GgufValue array(GgufValueType elem_type, std::vector<GgufValue> items);
  static GgufValue string_array(const std::vector<std::string>& xs);
  static GgufValue f32_array(const std::vector<float>& xs);
  static GgufValue i32_array(const std::vector<int32_t>& xs);

  // Same type and same value (floats compare as doubles, so NaN != NaN).
  bool operator==(const GgufValue&) const = default;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // dims[0] is the contiguous (fastest-varying) one: the row length
  TensorType type = TensorType::kF32;
  uint64_t offset = 0;  // from the start of the data section, as stored in the file
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // into the mapping (or parse()'s bytes); valid while they live

  uint64_t n_rows() const { return dims.empty() ? 1 : n_elements / dims[0]; }
  uint64_t row_length() const { return dims.empty() ? 1 : dims[0]; }
};

class GgufFile {
 public:
  // Maps and validates the file. Fails on any malformation or unsupported tensor type.
  static Result<GgufFile> open(const std::string& path);

  // Parses a GGUF image already in memory (what open() does after mapping; also the fuzzer's and
  // the malformed-input tests' entry point). `name` prefixes error messages. Tensor `data`
  // pointers point into `bytes`, which must outlive the result.
  static Result<GgufFile> parse(std::span<const uint8_t> bytes, std::string name);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // file offset of the data section

  // Metadata in file order, and by key.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const GgufValue* find(std::string_view key) const;

  // Typed getters. Integer getters accept any integer type whose value fits; errors name the key.
  Result<uint32_t> get_u32(std::string_view key) const;
  Result<uint64_t> get_u64(std::string_view key) const;
  Result<int64_t> get_i64(std::string_view key) const;
  Result<float> get_f32(std::string_view key) const;
  Result<bool> get_bool(std::string_view key) const;
  Result<std::string> get_string(std::string_view key) const;
  Result<std::vector<std::string>> get_string_array(std::string_view key) const;
  Result<std::vector<float>> get_f32_array(std::string_view key) const;
  Result<std::vector<int32_t>> get_i32_array(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;

 private:
  MappedFile file_;   // empty when parsed from memory
  std::string path_;  // the path, or the name given to parse()
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::map<std::string, size_t, std::less<>> metadata_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;

  friend class GgufParser;
};

// Builds a GGUF v3 file in memory and writes it. Tensor data is copied in.
class GgufWriter {
 public:
  void set(std::string key, GgufValue value);  // replaces an existing key, else appends
  // `dims[0]` is the row length; `bytes` must hold exactly the type's size for these dims.
  Status add_tensor(std::string name, TensorType type, std::vector<uint64_t> dims,
                    std::span<const uint8_t> bytes);
  // Checks what add_tensor() cannot: that each value's payload matches its type (integers in
  // range of their width, array items of the array's element type) and that "general.alignment",
  // if set, is an integer power of two that fits in u32.
  Status validate() const;
  // Serialises the file (alignment from "general.alignment" if set, else 32), padding with zeros
  // after the tensor infos and after each tensor. Requires validate() to pass (asserted in debug).
  std::vector<uint8_t> serialize() const;
  Status write(const std::string& path) const;  // validate(), then atomic: temp + fsync + rename

 private:
  struct Tensor {
    std::string name;
    TensorType type;
    std::vector<uint64_t> dims;
    std::vector<uint8_t> bytes;
  };
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<Tensor> tensors_;
};

}  // namespace sllm
