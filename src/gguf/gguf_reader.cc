// GGUF reader: parses the header, metadata and tensor infos of a mapped file and checks each
// count, length, offset, dimension and type against the bytes that are actually there.
//
// Layout (ggml docs/gguf.md; all little-endian, counts and lengths u64 since v2):
//   "GGUF" u32:version u64:n_tensors u64:n_kv
//   n_kv x      { string:key u32:value_type value }
//   n_tensors x { string:name u32:n_dims u64:dims[n_dims] u32:ggml_type u64:offset }
//   zero padding to `alignment`, then the data section; each tensor's offset is relative to it.
// A string is u64:n_bytes followed by the bytes; an array is u32:elem_type u64:n_items items.
//
// Every bound is checked as `n <= bytes_left()` style comparisons on values already known to be in
// range, never as `pos + n <= size`, which a hostile n would wrap.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include "gguf/gguf.h"
#include "util/limits.h"

namespace sllm {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes little-endian");

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kMaxDims = 4;         // GGML_MAX_DIMS
// Arrays of arrays are legal but nothing real nests deeply; the cap keeps a hostile file from
// exhausting the stack through the recursive value reader.
constexpr int kMaxArrayDepth = 8;

// Smallest encodings, used to reject absurd counts before anything is allocated.
// A metadata entry: key length (8) + value type (4) + a 1-byte value.
constexpr uint64_t kMinEntryBytes = 8 + 4 + 1;
// A tensor info: name length (8) + n_dims (4) + type (4) + offset (8), with no dimensions.
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;

bool is_valid_value_type(uint32_t id) {
  return id <= static_cast<uint32_t>(GgufValueType::kFloat64);
}

bool is_unsigned_type(GgufValueType t) {
  return t == GgufValueType::kUint8 || t == GgufValueType::kUint16 || t == GgufValueType::kUint32 ||
         t == GgufValueType::kUint64;
}

bool is_signed_type(GgufValueType t) {
  return t == GgufValueType::kInt8 || t == GgufValueType::kInt16 || t == GgufValueType::kInt32 ||
         t == GgufValueType::kInt64;
}

bool is_integer_type(GgufValueType t) { return is_unsigned_type(t) || is_signed_type(t); }

// Encoded size of a value of `type`; for strings and arrays the size of an empty one.
uint64_t min_value_bytes(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32:
      return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64:
    case GgufValueType::kString:
      return 8;
    case GgufValueType::kArray:
      return 4 + 8;
  }
  return 1;
}

std::string supported_types_list() {
  std::string list;
  for (const TensorTypeTraits& t : supported_tensor_types()) {
    if (!list.empty()) list += ", ";
    list += t.name;
  }
  return list;
}

// An integer value as decimal text.
std::string value_string(const GgufValue& value) {
  if (const auto* u = std::get_if<uint64_t>(&value.v)) return std::to_string(*u);
  if (const auto* s = std::get_if<int64_t>(&value.v)) return std::to_string(*s);
  return "?";
}

std::string dims_string(const std::vector<uint64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

// Built with append: GCC 12 gives a false -Wrestrict on `"'" + std::string(s)` (GCC bug 105329).
std::string quoted(std::string_view s) {
  std::string q;
  q.reserve(s.size() + 2);
  q.append(1, '\'').append(s).append(1, '\'');
  return q;
}

}  // namespace

const char* gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
      return "u8";
    case GgufValueType::kInt8:
      return "i8";
    case GgufValueType::kUint16:
      return "u16";
    case GgufValueType::kInt16:
      return "i16";
    case GgufValueType::kUint32:
      return "u32";
    case GgufValueType::kInt32:
      return "i32";
    case GgufValueType::kFloat32:
      return "f32";
    case GgufValueType::kBool:
      return "bool";
    case GgufValueType::kString:
      return "string";
    case GgufValueType::kArray:
      return "array";
    case GgufValueType::kUint64:
      return "u64";
    case GgufValueType::kInt64:
      return "i64";
    case GgufValueType::kFloat64:
      return "f64";
  }
  return "invalid";
}

GgufValue GgufValue::u32(uint32_t x) { return {GgufValueType::kUint32, uint64_t{x}}; }
GgufValue GgufValue::i32(int32_t x) { return {GgufValueType::kInt32, int64_t{x}}; }
GgufValue GgufValue::u64(uint64_t x) { return {GgufValueType::kUint64, x}; }
GgufValue GgufValue::f32(float x) { return {GgufValueType::kFloat32, double{x}}; }
GgufValue GgufValue::boolean(bool x) { return {GgufValueType::kBool, x}; }
GgufValue GgufValue::str(std::string x) { return {GgufValueType::kString, std::move(x)}; }

GgufValue GgufValue::array(GgufValueType elem_type, std::vector<GgufValue> items) {
  return {GgufValueType::kArray, GgufArray{elem_type, std::move(items)}};
}

GgufValue GgufValue::string_array(const std::vector<std::string>& xs) {
  std::vector<GgufValue> items;
  items.reserve(xs.size());
  for (const auto& x : xs) items.push_back(str(x));
  return array(GgufValueType::kString, std::move(items));
}

GgufValue GgufValue::f32_array(const std::vector<float>& xs) {
  std::vector<GgufValue> items;
  items.reserve(xs.size());
  for (float x : xs) items.push_back(f32(x));
  return array(GgufValueType::kFloat32, std::move(items));
}

GgufValue GgufValue::i32_array(const std::vector<int32_t>& xs) {
  std::vector<GgufValue> items;
  items.reserve(xs.size());
  for (int32_t x : xs) items.push_back(i32(x));
  return array(GgufValueType::kInt32, std::move(items));
}

// Reads the bytes front to back. `context_` names the key or tensor being read so that errors deep
// inside a value still say where they are.
//
// The metadata is walked twice: first only to check it (bounds, type ids, bools, nesting), storing
// nothing but general.alignment; then, once the tensor infos and data ranges have been checked
// too, to build the values. A truncated or lying file thus fails before any of its (possibly
// 10^5-entry) arrays is allocated, and fails fast: the every-cut-point truncation test parses the
// real model 14000 times under ASan.
class GgufParser {
 public:
  GgufParser(std::span<const uint8_t> bytes, std::string name)
      : bytes_(bytes), name_(std::move(name)) {}

  Result<GgufFile> parse() {
    file_.path_ = name_;
    SLLM_RETURN_IF_ERROR(parse_header());
    const uint64_t metadata_at = pos_;
    SLLM_RETURN_IF_ERROR(parse_metadata(/*build=*/false));
    SLLM_RETURN_IF_ERROR(parse_alignment());
    SLLM_RETURN_IF_ERROR(parse_tensor_infos());
    SLLM_RETURN_IF_ERROR(locate_tensor_data());
    pos_ = metadata_at;
    SLLM_RETURN_IF_ERROR(parse_metadata(/*build=*/true));
    return std::move(file_);
  }

 private:
  uint64_t bytes_left() const { return bytes_.size() - pos_; }

  Error error_at(uint64_t offset, const std::string& what,
                 ErrorCode code = ErrorCode::kFormat) const {
    return Error(code, name_ + ": offset " + std::to_string(offset) + ": " + what);
  }

  std::string in_context() const { return context_.empty() ? "" : " of " + context_; }

  // Copies the next sizeof(T) bytes into `x`; false, reading nothing, if fewer are left.
  template <typename T>
  bool take(T& x) {
    if (sizeof(T) > bytes_left()) return false;
    std::memcpy(&x, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }

  Error truncated(uint64_t n_bytes, const char* what) const {
    return error_at(pos_, std::string("unexpected end of file reading ") + what + in_context() +
                              " (needs " + std::to_string(n_bytes) + " bytes, " +
                              std::to_string(bytes_left()) + " left)");
  }

  template <typename T>
  Result<T> read(const char* what) {
    T x;
    if (!take(x)) return truncated(sizeof(T), what);
    return x;
  }

  // The readers below return false on failure and leave the error in `error_`: they run once per
  // array element (10^5 times for a tokenizer), and returning a Status costs an Error, string
  // included, even on success.
  bool fail(Error e) {
    error_.emplace(std::move(e));
    return false;
  }
  Error take_error() { return std::move(*error_); }

  // Fails unless `count` items of at least `min_item_bytes` each fit in what is left.
  bool check_count(uint64_t count, uint64_t min_item_bytes, const char* what) {
    if (count <= bytes_left() / min_item_bytes) return true;
    return fail(error_at(pos_, std::string(what) + " " + std::to_string(count) + in_context() +
                                   " exceeds what the file can hold (each needs at least " +
                                   std::to_string(min_item_bytes) + " bytes, " +
                                   std::to_string(bytes_left()) + " left)"));
  }

  // Reads a string into `out`, or skips it if `out` is null.
  bool read_string(const char* what, std::string* out) {
    uint64_t n_bytes = 0;
    if (!take(n_bytes)) return fail(truncated(sizeof(n_bytes), what));
    if (n_bytes > bytes_left()) {
      return fail(error_at(pos_, std::string(what) + in_context() + " length " +
                                     std::to_string(n_bytes) + " exceeds the " +
                                     std::to_string(bytes_left()) + " bytes left in the file"));
    }
    if (out != nullptr) out->assign(reinterpret_cast<const char*>(bytes_.data() + pos_), n_bytes);
    pos_ += n_bytes;
    return true;
  }

  bool read_value_type(const char* what, GgufValueType& type) {
    uint32_t id = 0;
    if (!take(id)) return fail(truncated(sizeof(id), what));
    if (!is_valid_value_type(id)) {
      return fail(error_at(pos_ - sizeof(id), "invalid " + std::string(what) + " " +
                                                  std::to_string(id) + in_context() +
                                                  " (valid: 0..12)"));
    }
    type = static_cast<GgufValueType>(id);
    return true;
  }

  // Reads a value of `type` into `out`, or only checks it if `out` is null.
  bool read_value(GgufValueType type, int depth, GgufValue* out) {
    if (out != nullptr) out->type = type;
    switch (type) {
      case GgufValueType::kUint8:
        return read_number<uint8_t, uint64_t>(type, out);
      case GgufValueType::kUint16:
        return read_number<uint16_t, uint64_t>(type, out);
      case GgufValueType::kUint32:
        return read_number<uint32_t, uint64_t>(type, out);
      case GgufValueType::kUint64:
        return read_number<uint64_t, uint64_t>(type, out);
      case GgufValueType::kInt8:
        return read_number<int8_t, int64_t>(type, out);
      case GgufValueType::kInt16:
        return read_number<int16_t, int64_t>(type, out);
      case GgufValueType::kInt32:
        return read_number<int32_t, int64_t>(type, out);
      case GgufValueType::kInt64:
        return read_number<int64_t, int64_t>(type, out);
      case GgufValueType::kFloat32:
        return read_number<float, double>(type, out);
      case GgufValueType::kFloat64:
        return read_number<double, double>(type, out);
      case GgufValueType::kBool: {
        uint8_t x = 0;
        if (!take(x)) return fail(truncated(1, "bool value"));
        if (x > 1) {
          return fail(error_at(
              pos_ - 1, "bool value " + std::to_string(x) + in_context() + " is neither 0 nor 1"));
        }
        if (out != nullptr) out->v = x == 1;
        return true;
      }
      case GgufValueType::kString:
        return read_string("string value",
                           out != nullptr ? &out->v.emplace<std::string>() : nullptr);
      case GgufValueType::kArray:
        return read_array(depth, out);
    }
    return fail(error_at(pos_, "invalid value type"));  // unreachable: checked when read
  }

  bool read_array(int depth, GgufValue* out) {
    GgufValueType elem_type{};
    if (!read_value_type("array element type", elem_type)) return false;
    if (elem_type == GgufValueType::kArray && depth + 1 >= kMaxArrayDepth) {
      return fail(error_at(pos_ - 4, "arrays" + in_context() + " nest deeper than " +
                                         std::to_string(kMaxArrayDepth) + " levels"));
    }
    uint64_t n_items = 0;
    if (!take(n_items)) return fail(truncated(sizeof(n_items), "array length"));
    if (!check_count(n_items, min_value_bytes(elem_type), "array length")) return false;
    if (out == nullptr) {
      for (uint64_t i = 0; i < n_items; ++i) {
        if (!read_value(elem_type, depth + 1, nullptr)) return false;
      }
      return true;
    }
    // A stored item is larger than its encoding (up to sizeof(GgufValue) for a 1-byte item):
    // still O(file size), but refused as an error where the machine cannot hold it.
    // (Small arrays skip the check: it asks the system for its memory size, and a file may hold
    // tens of thousands of them.)
    if (Status fits = n_items < 4096 ? Status{}
                                     : check_allocation("array" + in_context() + " of " +
                                                            std::to_string(n_items) + " items",
                                                        n_items * sizeof(GgufValue));
        !fits.ok()) {
      return fail(error_at(pos_, fits.error().message(), ErrorCode::kLimit));
    }
    GgufArray& array = out->v.emplace<GgufArray>();
    array.elem_type = elem_type;
    array.items.resize(n_items);
    for (GgufValue& item : array.items) {
      if (!read_value(elem_type, depth + 1, &item)) return false;
    }
    return true;
  }

  // A number stored as T in the file and as the widened `Stored` in GgufValue.
  template <typename T, typename Stored>
  bool read_number(GgufValueType type, GgufValue* out) {
    T x;
    if (!take(x)) return fail(truncated(sizeof(T), gguf_value_type_name(type)));
    if (out != nullptr) out->v = Stored{x};
    return true;
  }

  Status parse_header() {
    SLLM_ASSIGN_OR_RETURN(uint32_t magic, read<uint32_t>("magic"));
    if (magic != kMagic) {
      char hex[16];
      std::snprintf(hex, sizeof(hex), "%08x", magic);
      return error_at(
          0, std::string("not a GGUF file: magic 0x") + hex + " (expected 0x46554747, \"GGUF\")");
    }
    SLLM_ASSIGN_OR_RETURN(file_.version_, read<uint32_t>("version"));
    const uint32_t version = file_.version_;
    if (version == 1) {
      return error_at(4,
                      "GGUF version 1 is not supported (it has 32-bit counts and lengths); "
                      "supported versions: 2, 3",
                      ErrorCode::kUnsupported);
    }
    if (version != 2 && version != 3) {
      const uint32_t swapped = __builtin_bswap32(version);
      if (swapped == 2 || swapped == 3) {
        return error_at(4, "big-endian GGUF files are not supported", ErrorCode::kUnsupported);
      }
      return error_at(
          4, "unsupported GGUF version " + std::to_string(version) + "; supported versions: 2, 3",
          ErrorCode::kUnsupported);
    }
    SLLM_ASSIGN_OR_RETURN(n_tensors_, read<uint64_t>("tensor count"));
    SLLM_ASSIGN_OR_RETURN(n_entries_, read<uint64_t>("metadata count"));
    // Both sections follow; each must fit in what is left, and together as well.
    if (!check_count(n_entries_, kMinEntryBytes, "metadata count")) return take_error();
    const uint64_t min_metadata_bytes = n_entries_ * kMinEntryBytes;
    if (n_tensors_ > (bytes_left() - min_metadata_bytes) / kMinTensorInfoBytes) {
      return error_at(pos_, "tensor count " + std::to_string(n_tensors_) +
                                " exceeds what the file can hold (each needs at least " +
                                std::to_string(kMinTensorInfoBytes) + " bytes, " +
                                std::to_string(bytes_left() - min_metadata_bytes) +
                                " left after the metadata)");
    }
    return {};
  }

  // With `build` false checks the metadata and keeps only general.alignment; with `build` true
  // (after a check) stores it all.
  Status parse_metadata(bool build) {
    if (build) file_.metadata_.reserve(n_entries_);
    for (uint64_t i = 0; i < n_entries_; ++i) {
      const uint64_t key_at = pos_;
      context_.clear();
      std::string key;
      if (!read_string("metadata key", &key)) return take_error();
      context_ = "key " + quoted(key);
      if (build && file_.metadata_index_.count(key) != 0) {
        return error_at(key_at, "duplicate metadata key " + quoted(key));
      }
      GgufValueType type{};
      if (!read_value_type("value type", type)) return take_error();
      if (!build) {
        GgufValue* keep = nullptr;
        if (key == "general.alignment") {
          alignment_at_ = pos_;
          keep = &alignment_.emplace();
        }
        if (!read_value(type, 0, keep)) return take_error();
        continue;
      }
      GgufValue value;
      if (!read_value(type, 0, &value)) return take_error();
      file_.metadata_index_.emplace(key, file_.metadata_.size());
      file_.metadata_.emplace_back(std::move(key), std::move(value));
    }
    context_.clear();
    return {};
  }

  Status parse_alignment() {
    if (!alignment_) return {};
    const GgufValue& value = *alignment_;
    if (!is_integer_type(value.type)) {
      return error_at(alignment_at_, std::string("general.alignment has type ") +
                                         gguf_value_type_name(value.type) + "; expected u32");
    }
    std::optional<uint32_t> alignment;
    const auto* u = std::get_if<uint64_t>(&value.v);
    const auto* s = std::get_if<int64_t>(&value.v);
    if (u != nullptr && std::in_range<uint32_t>(*u)) alignment = static_cast<uint32_t>(*u);
    if (s != nullptr && std::in_range<uint32_t>(*s)) alignment = static_cast<uint32_t>(*s);
    if (!alignment || !std::has_single_bit(*alignment)) {
      return error_at(alignment_at_, "general.alignment " + value_string(value) +
                                         " is not a non-zero power of two that fits in u32");
    }
    // Real files use 32 or 64; a huge alignment only makes whoever writes the file back pad
    // gigabytes of zeros.
    if (*alignment > kMaxGgufAlignment) {
      return error_at(alignment_at_, "general.alignment " + value_string(value) +
                                         " is larger than " + std::to_string(kMaxGgufAlignment) +
                                         ", the largest alignment accepted");
    }
    file_.alignment_ = *alignment;
    return {};
  }

  Status parse_tensor_infos() {
    if (!check_count(n_tensors_, kMinTensorInfoBytes, "tensor count")) return take_error();
    if (Status fits = check_allocation(std::to_string(n_tensors_) + " tensor infos",
                                       n_tensors_ * (sizeof(GgufTensorInfo) + sizeof(uint64_t)));
        !fits.ok()) {
      return error_at(pos_, fits.error().message(), ErrorCode::kLimit);
    }
    file_.tensors_.reserve(n_tensors_);
    offset_field_at_.reserve(n_tensors_);
    for (uint64_t i = 0; i < n_tensors_; ++i) {
      const uint64_t info_at = pos_;
      context_ = "tensor " + std::to_string(i);
      GgufTensorInfo info;
      if (!read_string("name", &info.name)) return take_error();
      const std::string tensor = "tensor " + quoted(info.name);
      context_ = tensor;
      if (file_.tensor_index_.count(info.name) != 0) {
        return error_at(info_at, "duplicate " + tensor);
      }
      SLLM_ASSIGN_OR_RETURN(uint32_t n_dims, read<uint32_t>("n_dims"));
      if (n_dims > kMaxDims) {
        return error_at(pos_ - 4, tensor + " has " + std::to_string(n_dims) +
                                      " dimensions; at most " + std::to_string(kMaxDims) +
                                      " are supported");
      }
      info.dims.reserve(n_dims);
      info.n_elements = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        SLLM_ASSIGN_OR_RETURN(uint64_t dim, read<uint64_t>("dimension"));
        if (dim == 0) {
          return error_at(pos_ - 8, tensor + " dimension " + std::to_string(d) + " is zero");
        }
        info.dims.push_back(dim);
        if (__builtin_mul_overflow(info.n_elements, dim, &info.n_elements)) {
          return error_at(pos_ - 8, tensor + " element count overflows (dims " +
                                        dims_string(info.dims) + "...)");
        }
      }
      const uint64_t type_at = pos_;
      SLLM_ASSIGN_OR_RETURN(uint32_t type_id, read<uint32_t>("type"));
      const std::optional<TensorTypeTraits> traits = tensor_type_traits(type_id);
      if (!traits) {
        const std::string type_name = ggml_type_name(type_id);
        const std::string what =
            type_name == "type " + std::to_string(type_id)
                ? "unknown ggml type " + std::to_string(type_id)
                : "unsupported type " + type_name + " (ggml type " + std::to_string(type_id) + ")";
        return error_at(type_at, tensor + " has " + what + "; supported: " + supported_types_list(),
                        ErrorCode::kUnsupported);
      }
      info.type = traits->type;
      if (info.row_length() % traits->block_elems != 0) {
        return error_at(type_at, tensor + " row length " + std::to_string(info.row_length()) +
                                     " is not a multiple of the " + traits->name + " block size " +
                                     std::to_string(traits->block_elems));
      }
      const uint64_t n_blocks = info.n_elements / traits->block_elems;
      if (__builtin_mul_overflow(n_blocks, uint64_t{traits->block_bytes}, &info.n_bytes)) {
        return error_at(type_at, tensor + " byte size overflows (dims " + dims_string(info.dims) +
                                     ", " + traits->name + ")");
      }
      offset_field_at_.push_back(pos_);
      SLLM_ASSIGN_OR_RETURN(info.offset, read<uint64_t>("data offset"));
      if (info.offset % file_.alignment_ != 0) {
        return error_at(pos_ - 8, tensor + " data offset " + std::to_string(info.offset) +
                                      " is not a multiple of the alignment " +
                                      std::to_string(file_.alignment_));
      }
      file_.tensor_index_.emplace(info.name, file_.tensors_.size());
      file_.tensors_.push_back(std::move(info));
    }
    context_.clear();
    return {};
  }

  Status locate_tensor_data() {
    // pos_ <= size and alignment <= kMaxGgufAlignment, so rounding up cannot wrap.
    const uint64_t alignment = file_.alignment_;
    const uint64_t data_offset = (pos_ + alignment - 1) / alignment * alignment;
    file_.data_offset_ = data_offset;
    if (file_.tensors_.empty()) return {};
    if (data_offset > bytes_.size()) {
      return error_at(pos_, "data section would start at offset " + std::to_string(data_offset) +
                                ", past the end of the file (" + std::to_string(bytes_.size()) +
                                " bytes)");
    }
    const uint64_t data_bytes = bytes_.size() - data_offset;
    uint64_t data_end = 0;  // the end of the last tensor's data, from the data section's start
    for (size_t i = 0; i < file_.tensors_.size(); ++i) {
      GgufTensorInfo& info = file_.tensors_[i];
      if (info.offset > data_bytes || info.n_bytes > data_bytes - info.offset) {
        return error_at(offset_field_at_[i],
                        "tensor " + quoted(info.name) + " data (" + std::to_string(info.n_bytes) +
                            " bytes at data offset " + std::to_string(info.offset) +
                            ") extends past the end of the file (the data section holds " +
                            std::to_string(data_bytes) + " bytes from file offset " +
                            std::to_string(data_offset) + ", where general.alignment " +
                            std::to_string(alignment) + " puts it)");
      }
      info.data = bytes_.data() + data_offset + info.offset;
      data_end = std::max(data_end, info.offset + info.n_bytes);
    }
    // Writers (ggml's and ours) end the file with the last tensor and at most its padding. More
    // bytes after it mean the data section starts elsewhere than general.alignment says (a file
    // laid out at 32 that claims 1 or 16): every tensor would be read shifted, silently wrong.
    if (data_bytes - data_end >= alignment) {
      return error_at(data_offset + data_end,
                      std::to_string(data_bytes - data_end) +
                          " bytes follow the last tensor's data, more than padding: the data "
                          "section does not start where general.alignment " +
                          std::to_string(alignment) + " puts it (file offset " +
                          std::to_string(data_offset) + "), or the file has trailing bytes");
    }
    return {};
  }

  std::span<const uint8_t> bytes_;
  std::string name_;
  uint64_t pos_ = 0;
  std::string context_;         // "key 'x'" or "tensor 'y'" while inside one, for messages
  std::optional<Error> error_;  // set by a reader that returned false
  uint64_t n_tensors_ = 0;
  uint64_t n_entries_ = 0;
  std::optional<GgufValue> alignment_;     // general.alignment, kept by the checking pass
  uint64_t alignment_at_ = 0;              // file offset of its value
  std::vector<uint64_t> offset_field_at_;  // [n_tensors] file offset of each tensor's offset field
  GgufFile file_;
};

Result<GgufFile> GgufFile::parse(std::span<const uint8_t> bytes, std::string name) {
  return GgufParser(bytes, std::move(name)).parse();
}

Result<GgufFile> GgufFile::open(const std::string& path) {
  SLLM_ASSIGN_OR_RETURN(MappedFile mapped, MappedFile::open(path));
  // Moving a MappedFile keeps the mapping where it is, so the tensor pointers stay valid.
  SLLM_ASSIGN_OR_RETURN(GgufFile file, parse(mapped.bytes(), path));
  file.file_ = std::move(mapped);
  return file;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

// ---- Typed getters ----

namespace {

Error key_error(const std::string& path, std::string_view key, const std::string& what) {
  return Error(ErrorCode::kFormat, path + ": key " + quoted(key) + " " + what);
}

Result<const GgufValue*> require(const GgufFile& file, std::string_view key) {
  const GgufValue* value = file.find(key);
  if (value == nullptr) return key_error(file.path(), key, "not found");
  return value;
}

// `value` (an integer of any width) as T, or an error naming `what` (the key or array element).
template <typename T>
Result<T> integer_as(const GgufValue& value, const std::string& path, std::string_view key,
                     const std::string& what, const char* t_name) {
  if (!is_integer_type(value.type)) {
    return key_error(
        path, key, what + "has type " + gguf_value_type_name(value.type) + "; expected " + t_name);
  }
  bool fits = false;
  T x{};
  if (const auto* u = std::get_if<uint64_t>(&value.v)) {
    fits = std::in_range<T>(*u);
    x = static_cast<T>(*u);
  } else if (const auto* s = std::get_if<int64_t>(&value.v)) {
    fits = std::in_range<T>(*s);
    x = static_cast<T>(*s);
  }
  if (!fits) {
    return key_error(path, key,
                     what + "value " + value_string(value) + " (" +
                         gguf_value_type_name(value.type) + ") does not fit in " + t_name);
  }
  return x;
}

Result<float> float_as_f32(const GgufValue& value, const std::string& path, std::string_view key,
                           const std::string& what) {
  const auto* x = std::get_if<double>(&value.v);
  if ((value.type != GgufValueType::kFloat32 && value.type != GgufValueType::kFloat64) ||
      x == nullptr) {
    return key_error(path, key,
                     what + "has type " + gguf_value_type_name(value.type) + "; expected f32");
  }
  if (std::isfinite(*x) && std::fabs(*x) > std::numeric_limits<float>::max()) {
    return key_error(path, key, what + "value " + std::to_string(*x) + " does not fit in f32");
  }
  return static_cast<float>(*x);
}

// The array at `key`, or an error if it is missing or not an array.
Result<const GgufArray*> require_array(const GgufFile& file, std::string_view key,
                                       const char* expected) {
  SLLM_ASSIGN_OR_RETURN(const GgufValue* value, require(file, key));
  const auto* array = std::get_if<GgufArray>(&value->v);
  if (value->type != GgufValueType::kArray || array == nullptr) {
    return key_error(file.path(), key,
                     std::string("has type ") + gguf_value_type_name(value->type) +
                         "; expected an array of " + expected);
  }
  return array;
}

Error array_type_error(const GgufFile& file, std::string_view key, const GgufArray& array,
                       const char* expected) {
  return key_error(file.path(), key,
                   std::string("is an array of ") + gguf_value_type_name(array.elem_type) +
                       "; expected an array of " + expected);
}

std::string element(size_t i) { return "element " + std::to_string(i) + " "; }

}  // namespace

Result<uint32_t> GgufFile::get_u32(std::string_view key) const {
  SLLM_ASSIGN_OR_RETURN(const GgufValue* value, require(*this, key));
  return integer_as<uint32_t>(*value, path(), key, "", "u32");
}

Result<uint64_t> GgufFile::get_u64(std::string_view key) const {
  SLLM_ASSIGN_OR_RETURN(const GgufValue* value, require(*this, key));
  return integer_as<uint64_t>(*value, path(), key, "", "u64");
}

Result<int64_t> GgufFile::get_i64(std::string_view key) const {
  SLLM_ASSIGN_OR_RETURN(const GgufValue* value, require(*this, key));
  return integer_as<int64_t>(*value, path(), key, "", "i64");
}

Result<float> GgufFile::get_f32(std::string_view key) const {
  SLLM_ASSIGN_OR_RETURN(const GgufValue* value, require(*this, key));
  return float_as_f32(*value, path(), key, "");
}

Result<bool> GgufFile::get_bool(std::string_view key) const {
  SLLM_ASSIGN_OR_RETURN(const GgufValue* value, require(*this, key));
  const auto* x = std::get_if<bool>(&value->v);
  if (value->type != GgufValueType::kBool || x == nullptr) {
    return key_error(
        path(), key,
        std::string("has type ") + gguf_value_type_name(value->type) + "; expected bool");
  }
  return *x;
}

Result<std::string> GgufFile::get_string(std::string_view key) const {
  SLLM_ASSIGN_OR_RETURN(const GgufValue* value, require(*this, key));
  const auto* x = std::get_if<std::string>(&value->v);
  if (value->type != GgufValueType::kString || x == nullptr) {
    return key_error(
        path(), key,
        std::string("has type ") + gguf_value_type_name(value->type) + "; expected string");
  }
  return *x;
}

Result<std::vector<std::string>> GgufFile::get_string_array(std::string_view key) const {
  SLLM_ASSIGN_OR_RETURN(const GgufArray* array, require_array(*this, key, "string"));
  if (array->elem_type != GgufValueType::kString) {
    return array_type_error(*this, key, *array, "string");
  }
  std::vector<std::string> xs;
  xs.reserve(array->items.size());
  for (const GgufValue& item : array->items) {
    const auto* x = std::get_if<std::string>(&item.v);
    if (x == nullptr) return array_type_error(*this, key, *array, "string");
    xs.push_back(*x);
  }
  return xs;
}

Result<std::vector<float>> GgufFile::get_f32_array(std::string_view key) const {
  SLLM_ASSIGN_OR_RETURN(const GgufArray* array, require_array(*this, key, "f32"));
  if (array->elem_type != GgufValueType::kFloat32 && array->elem_type != GgufValueType::kFloat64) {
    return array_type_error(*this, key, *array, "f32");
  }
  std::vector<float> xs;
  xs.reserve(array->items.size());
  for (size_t i = 0; i < array->items.size(); ++i) {
    SLLM_ASSIGN_OR_RETURN(float x, float_as_f32(array->items[i], path(), key, element(i)));
    xs.push_back(x);
  }
  return xs;
}

Result<std::vector<int32_t>> GgufFile::get_i32_array(std::string_view key) const {
  SLLM_ASSIGN_OR_RETURN(const GgufArray* array, require_array(*this, key, "i32"));
  if (!is_integer_type(array->elem_type)) return array_type_error(*this, key, *array, "i32");
  std::vector<int32_t> xs;
  xs.reserve(array->items.size());
  for (size_t i = 0; i < array->items.size(); ++i) {
    SLLM_ASSIGN_OR_RETURN(int32_t x,
                          integer_as<int32_t>(array->items[i], path(), key, element(i), "i32"));
    xs.push_back(x);
  }
  return xs;
}

}  // namespace sllm
