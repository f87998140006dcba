// GGUF v3 writer. The layout matches what ggml's gguf writer produces (header, metadata in
// insertion order, tensor infos with offsets assigned in insertion order, zero padding to the
// alignment after the tensor infos and after every tensor), so that a file read by GgufFile and
// written back comes out byte for byte the same.
#include <bit>
#include <cassert>
#include <cstring>
#include <utility>

#include "gguf/gguf.h"

namespace sllm {

namespace {

constexpr uint32_t kVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;

uint64_t align_up(uint64_t n, uint64_t alignment) {
  return (n + alignment - 1) / alignment * alignment;
}

class ByteWriter {
 public:
  explicit ByteWriter(std::vector<uint8_t>& out) : out_(out) {}

  template <typename T>
  void put(T x) {
    const size_t at = out_.size();
    out_.resize(at + sizeof(T));
    std::memcpy(out_.data() + at, &x, sizeof(T));
  }

  void put_string(std::string_view s) {
    put<uint64_t>(s.size());
    out_.insert(out_.end(), s.begin(), s.end());
  }

  void put_bytes(std::span<const uint8_t> bytes) {
    out_.insert(out_.end(), bytes.begin(), bytes.end());
  }

  void pad_to(uint64_t alignment) { out_.resize(align_up(out_.size(), alignment), 0); }

  // Writes the payload of `value` (not its type id). Assumes the value passed check_value().
  void put_value(const GgufValue& value) {
    const uint64_t u = unsigned_bits(value);
    switch (value.type) {
      case GgufValueType::kUint8:
      case GgufValueType::kInt8:
        put(static_cast<uint8_t>(u));
        return;
      case GgufValueType::kUint16:
      case GgufValueType::kInt16:
        put(static_cast<uint16_t>(u));
        return;
      case GgufValueType::kUint32:
      case GgufValueType::kInt32:
        put(static_cast<uint32_t>(u));
        return;
      case GgufValueType::kUint64:
      case GgufValueType::kInt64:
        put(u);
        return;
      case GgufValueType::kFloat32:
        put(static_cast<float>(as<double>(value)));
        return;
      case GgufValueType::kFloat64:
        put(as<double>(value));
        return;
      case GgufValueType::kBool:
        put(static_cast<uint8_t>(as<bool>(value) ? 1 : 0));
        return;
      case GgufValueType::kString:
        put_string(as<std::string>(value));
        return;
      case GgufValueType::kArray: {
        const GgufArray& array = as<GgufArray>(value);
        put(static_cast<uint32_t>(array.elem_type));
        put<uint64_t>(array.items.size());
        for (const GgufValue& item : array.items) put_value(item);
        return;
      }
    }
  }

 private:
  template <typename T>
  static const T& as(const GgufValue& value) {
    static const T kEmpty{};
    const T* x = std::get_if<T>(&value.v);
    return x != nullptr ? *x : kEmpty;
  }

  // Two's complement bits of an integer value; truncating them to the type's width gives its
  // little-endian encoding for signed and unsigned types alike.
  static uint64_t unsigned_bits(const GgufValue& value) {
    if (const auto* s = std::get_if<int64_t>(&value.v)) return static_cast<uint64_t>(*s);
    if (const auto* u = std::get_if<uint64_t>(&value.v)) return *u;
    return 0;
  }

  std::vector<uint8_t>& out_;
};

// Whether an integer payload lies in the range of its declared width.
bool integer_fits(const GgufValue& value) {
  const auto* u = std::get_if<uint64_t>(&value.v);
  const auto* s = std::get_if<int64_t>(&value.v);
  switch (value.type) {
    case GgufValueType::kUint8:
      return u != nullptr && std::in_range<uint8_t>(*u);
    case GgufValueType::kUint16:
      return u != nullptr && std::in_range<uint16_t>(*u);
    case GgufValueType::kUint32:
      return u != nullptr && std::in_range<uint32_t>(*u);
    case GgufValueType::kUint64:
      return u != nullptr;
    case GgufValueType::kInt8:
      return s != nullptr && std::in_range<int8_t>(*s);
    case GgufValueType::kInt16:
      return s != nullptr && std::in_range<int16_t>(*s);
    case GgufValueType::kInt32:
      return s != nullptr && std::in_range<int32_t>(*s);
    case GgufValueType::kInt64:
      return s != nullptr;
    default:
      return false;
  }
}

Status check_value(const GgufValue& value, const std::string& where) {
  auto mismatch = [&](const char* what) {
    return Error(ErrorCode::kInvalidInput, "gguf writer: " + where + ": " +
                                               gguf_value_type_name(value.type) + " value " + what);
  };
  switch (value.type) {
    case GgufValueType::kUint8:
    case GgufValueType::kUint16:
    case GgufValueType::kUint32:
    case GgufValueType::kUint64:
    case GgufValueType::kInt8:
    case GgufValueType::kInt16:
    case GgufValueType::kInt32:
    case GgufValueType::kInt64:
      if (!integer_fits(value)) return mismatch("does not hold an integer in its range");
      return {};
    case GgufValueType::kFloat32:
    case GgufValueType::kFloat64:
      if (!std::holds_alternative<double>(value.v)) return mismatch("does not hold a double");
      return {};
    case GgufValueType::kBool:
      if (!std::holds_alternative<bool>(value.v)) return mismatch("does not hold a bool");
      return {};
    case GgufValueType::kString:
      if (!std::holds_alternative<std::string>(value.v)) return mismatch("does not hold a string");
      return {};
    case GgufValueType::kArray: {
      const auto* array = std::get_if<GgufArray>(&value.v);
      if (array == nullptr) return mismatch("does not hold an array");
      for (size_t i = 0; i < array->items.size(); ++i) {
        const std::string item_where = where + "[" + std::to_string(i) + "]";
        if (array->items[i].type != array->elem_type) {
          return Error(ErrorCode::kInvalidInput, "gguf writer: " + item_where + " has type " +
                                                     gguf_value_type_name(array->items[i].type) +
                                                     " in an array of " +
                                                     gguf_value_type_name(array->elem_type));
        }
        SLLM_RETURN_IF_ERROR(check_value(array->items[i], item_where));
      }
      return {};
    }
  }
  return mismatch("has an invalid type id");
}

}  // namespace

void GgufWriter::set(std::string key, GgufValue value) {
  for (auto& [k, v] : metadata_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(std::move(key), std::move(value));
}

Status GgufWriter::add_tensor(std::string name, TensorType type, std::vector<uint64_t> dims,
                              std::span<const uint8_t> bytes) {
  auto invalid = [&](const std::string& what) {
    return Error(ErrorCode::kInvalidInput, "gguf writer: tensor '" + name + "' " + what);
  };
  for (const Tensor& t : tensors_) {
    if (t.name == name) return invalid("is already added");
  }
  if (dims.size() > kMaxDims) return invalid("has more than 4 dimensions");
  const std::optional<TensorTypeTraits> traits = tensor_type_traits(static_cast<uint32_t>(type));
  if (!traits) return invalid("has an unsupported type");
  uint64_t n_elements = 1;
  for (uint64_t dim : dims) {
    if (dim == 0) return invalid("has a zero dimension");
    if (__builtin_mul_overflow(n_elements, dim, &n_elements)) {
      return invalid("element count overflows");
    }
  }
  const uint64_t row_length = dims.empty() ? 1 : dims[0];
  if (row_length % traits->block_elems != 0) {
    return invalid("row length " + std::to_string(row_length) + " is not a multiple of the " +
                   traits->name + " block size " + std::to_string(traits->block_elems));
  }
  uint64_t n_bytes = 0;
  if (__builtin_mul_overflow(n_elements / traits->block_elems, uint64_t{traits->block_bytes},
                             &n_bytes)) {
    return invalid("byte size overflows");
  }
  if (bytes.size() != n_bytes) {
    return invalid("needs " + std::to_string(n_bytes) + " bytes of " + traits->name +
                   " data, got " + std::to_string(bytes.size()));
  }
  tensors_.push_back({std::move(name), type, std::move(dims), {bytes.begin(), bytes.end()}});
  return {};
}

Status GgufWriter::validate() const {
  for (const auto& [key, value] : metadata_) {
    SLLM_RETURN_IF_ERROR(check_value(value, "key '" + key + "'"));
    if (key != "general.alignment") continue;
    const auto* u = std::get_if<uint64_t>(&value.v);
    const auto* s = std::get_if<int64_t>(&value.v);
    const bool ok = (u != nullptr && std::in_range<uint32_t>(*u) && std::has_single_bit(*u)) ||
                    (s != nullptr && std::in_range<uint32_t>(*s) &&
                     std::has_single_bit(static_cast<uint64_t>(*s)));
    if (!ok) {
      return Error(ErrorCode::kInvalidInput,
                   "gguf writer: general.alignment must be a non-zero power of two that fits "
                   "in u32");
    }
    const uint64_t alignment = u != nullptr ? *u : static_cast<uint64_t>(*s);
    if (alignment > kMaxGgufAlignment) {
      return Error(ErrorCode::kInvalidInput, "gguf writer: general.alignment " +
                                                 std::to_string(alignment) + " is larger than " +
                                                 std::to_string(kMaxGgufAlignment) +
                                                 ", the largest alignment accepted");
    }
  }
  return {};
}

std::vector<uint8_t> GgufWriter::serialize() const {
  assert(validate().ok());
  uint64_t alignment = kDefaultAlignment;
  for (const auto& [key, value] : metadata_) {
    if (key != "general.alignment") continue;
    if (const auto* u = std::get_if<uint64_t>(&value.v)) alignment = *u;
    if (const auto* s = std::get_if<int64_t>(&value.v)) alignment = static_cast<uint64_t>(*s);
  }
  if (!std::has_single_bit(alignment)) alignment = kDefaultAlignment;  // only if validate() fails

  std::vector<uint8_t> out;
  ByteWriter w(out);
  w.put<uint32_t>(0x46554747);  // "GGUF"
  w.put<uint32_t>(kVersion);
  w.put<uint64_t>(tensors_.size());
  w.put<uint64_t>(metadata_.size());
  for (const auto& [key, value] : metadata_) {
    w.put_string(key);
    w.put(static_cast<uint32_t>(value.type));
    w.put_value(value);
  }
  uint64_t offset = 0;  // of the next tensor in the data section
  for (const Tensor& t : tensors_) {
    w.put_string(t.name);
    w.put(static_cast<uint32_t>(t.dims.size()));
    for (uint64_t dim : t.dims) w.put(dim);
    w.put(static_cast<uint32_t>(t.type));
    w.put(offset);
    offset += align_up(t.bytes.size(), alignment);
  }
  w.pad_to(alignment);
  for (const Tensor& t : tensors_) {
    w.put_bytes(t.bytes);
    w.pad_to(alignment);
  }
  return out;
}

Status GgufWriter::write(const std::string& path) const {
  SLLM_RETURN_IF_ERROR(validate());
  return write_file_atomic(path, serialize());
}

}  // namespace sllm
