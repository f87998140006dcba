// The cases: every metadata key a model and its tokenizer read (present in the base or not), each
// with one value wrong at a time, and the tensors' shapes, types and presence.
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include "gguf_mutation.h"
#include "kernels/quant.h"

namespace sllm::mutation {

namespace {

using VT = GgufValueType;

GgufValue u8(uint8_t x) { return {VT::kUint8, uint64_t{x}}; }
GgufValue u16(uint16_t x) { return {VT::kUint16, uint64_t{x}}; }
GgufValue i64(int64_t x) { return {VT::kInt64, x}; }
GgufValue f64(double x) { return {VT::kFloat64, x}; }
GgufValue raw_bool(uint64_t bits) { return {VT::kBool, bits}; }

// Keys read by the model loader (config.cc, the family files) with `<arch>.` as "{}", and by the
// tokenizer (vocab.cc, special_ids.cc) and the API (general.*, tokenizer.chat_template).
const char* const kArchKeys[] = {
    "{}.embedding_length",
    "{}.block_count",
    "{}.attention.head_count",
    "{}.feed_forward_length",
    "{}.attention.head_count_kv",
    "{}.attention.key_length",
    "{}.context_length",
    "{}.attention.layer_norm_rms_epsilon",
    "{}.attention.layer_norm_epsilon",
    "{}.rope.dimension_count",
    "{}.rope.freq_base",
    "{}.rope.scaling.type",
    "{}.rope.scaling.factor",
    "{}.rope.scale_linear",
    "{}.rope.scaling.attn_factor",
    "{}.rope.scaling.original_context_length",
};
// Keys only some families read.
const std::pair<const char*, const char*> kFamilyKeys[] = {
    {"gemma2", "rope.freq_base_swa"},
    {"gemma2", "attention.sliding_window"},
    {"gemma2", "attn_logit_softcapping"},
    {"gemma2", "final_logit_softcapping"},
    {"gemma3", "rope.freq_base_swa"},
    {"gemma3", "attention.sliding_window"},
    {"gemma3", "attention.sliding_window_pattern"},
    {"gemma3", "final_logit_softcapping"},
    {"mpt", "attention.clamp_kqv"},
    {"mpt", "attention.max_alibi_bias"},
    {"gptneox", "use_parallel_residual"},
};
const char* const kOtherKeys[] = {
    "general.architecture",
    "general.name",
    "general.alignment",
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.scores",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.add_bos_token",
    "tokenizer.ggml.add_eos_token",
    "tokenizer.ggml.add_space_prefix",
    "tokenizer.ggml.eot_token_id",
    "tokenizer.ggml.eom_token_id",
    "tokenizer.ggml.fim_pre_token_id",
    "tokenizer.ggml.fim_suf_token_id",
    "tokenizer.ggml.fim_mid_token_id",
    "tokenizer.ggml.fim_pad_token_id",
    "tokenizer.ggml.fim_rep_token_id",
    "tokenizer.ggml.fim_sep_token_id",
    "tokenizer.ggml.prefix_token_id",
    "tokenizer.ggml.suffix_token_id",
    "tokenizer.ggml.middle_token_id",
    "tokenizer.chat_template",
};

class Builder {
 public:
  Builder(const BaseModel& model, std::vector<Case>& out) : model_(model), out_(out) {}

  void add(std::string category, std::string target, std::string what, Expect expect,
           std::function<void(GgufDoc&)> apply, std::vector<std::string> also = {}) {
    out_.push_back({model_.name, std::move(category), std::move(target), std::move(what), expect,
                    std::move(also), std::move(apply)});
  }
  void set(const std::string& category, const std::string& key, const std::string& what,
           GgufValue v, Expect expect = Expect::kErrorOrRun, std::vector<std::string> also = {}) {
    add(
        category, key, what, expect, [key, v](GgufDoc& d) { d.set(key, v); }, std::move(also));
  }

 private:
  const BaseModel& model_;
  std::vector<Case>& out_;
};

bool is_int(VT t) {
  return t == VT::kUint8 || t == VT::kInt8 || t == VT::kUint16 || t == VT::kInt16 ||
         t == VT::kUint32 || t == VT::kInt32 || t == VT::kUint64 || t == VT::kInt64;
}

// The mutations of one scalar key, present with `value` (null: absent from the base).
// `full` false: only a few of them (a key the same code reads on another base already had all).
void scalar_cases(Builder& b, const std::string& key, const GgufValue* value, bool read,
                  std::vector<std::string> also, bool full) {
  const Expect e = read ? Expect::kErrorOrRun : Expect::kSame;
  static const std::set<std::string> kFew = {"string 'x'", "u64",        "i32 -1", "u32 0",
                                             "u64 2^63",   "f32 NaN",    "f32 0",  "f32 -1",
                                             "string ''",  "bool byte 2"};
  const auto set = [&](const std::string& cat, const std::string& what, GgufValue v,
                       Expect expect) {
    if (full || kFew.count(what) != 0) b.set(cat, key, what, std::move(v), expect, also);
  };
  // Wrong types (each is some other type than the key's).
  const VT t = value != nullptr ? value->type : VT::kUint32;
  if (t != VT::kString) set("wrong type", "string 'x'", GgufValue::str("x"), e);
  if (t != VT::kFloat32) set("wrong type", "f32 1.5", GgufValue::f32(1.5f), e);
  if (t != VT::kBool) set("wrong type", "bool true", GgufValue::boolean(true), e);
  set("wrong type", "array of u32 [1]", GgufValue::array(VT::kUint32, {GgufValue::u32(1)}), e);
  set("wrong type", "empty array of string", GgufValue::array(VT::kString, {}), e);
  if (value != nullptr && is_int(t)) {
    // The same number in another integer width reads the same.
    uint64_t n = 0;
    bool negative = false;
    if (const auto* u = std::get_if<uint64_t>(&value->v)) n = *u;
    if (const auto* s = std::get_if<int64_t>(&value->v)) {
      negative = *s < 0;
      n = static_cast<uint64_t>(*s);
    }
    if (!negative) {
      set("same value, other width", "u64", GgufValue::u64(n), Expect::kSame);
      if (n <= INT32_MAX) {
        set("same value, other width", "i32", GgufValue::i32(static_cast<int32_t>(n)),
            Expect::kSame);
      }
      if (n <= 0xFFFF) {
        set("same value, other width", "u16", u16(static_cast<uint16_t>(n)), Expect::kSame);
      }
      if (n <= 0xFF) {
        set("same value, other width", "u8", u8(static_cast<uint8_t>(n)), Expect::kSame);
      }
    }
    set("wrong type", "f32 of the same number", GgufValue::f32(static_cast<float>(n)), e);
  }
  if (value == nullptr || is_int(t)) {
    set("zero", "u32 0", GgufValue::u32(0), e);
    set("negative", "i32 -1", GgufValue::i32(-1), e);
    if (value != nullptr) set("negative", "i64 min", i64(std::numeric_limits<int64_t>::min()), e);
    set("huge", "u32 2^32-1", GgufValue::u32(0xFFFFFFFFu), e);
    set("huge", "u64 2^31", GgufValue::u64(uint64_t{1} << 31), e);
    if (value != nullptr) set("huge", "u64 2^32", GgufValue::u64(uint64_t{1} << 32), e);
    set("huge", "u64 2^63", GgufValue::u64(uint64_t{1} << 63), e);
    if (value != nullptr) set("huge", "u64 2^64-1", GgufValue::u64(~uint64_t{0}), e);
  }
  if (value == nullptr || t == VT::kFloat32 || t == VT::kFloat64) {
    const float inf = std::numeric_limits<float>::infinity();
    set("zero", "f32 0", GgufValue::f32(0), e);
    set("negative", "f32 -1", GgufValue::f32(-1), e);
    set("non-finite", "f32 NaN", GgufValue::f32(std::numeric_limits<float>::quiet_NaN()), e);
    set("non-finite", "f32 inf", GgufValue::f32(inf), e);
    if (value != nullptr) set("non-finite", "f32 -inf", GgufValue::f32(-inf), e);
    set("huge", "f32 1e30", GgufValue::f32(1e30f), e);
    set("tiny", "f32 1e-40 (subnormal)", GgufValue::f32(1e-40f), e);
    if (value != nullptr) set("non-finite", "f64 NaN", f64(std::nan("")), e);
    if (value != nullptr) {
      if (const auto* d = std::get_if<double>(&value->v)) {
        set("same value, other width", "f64", f64(static_cast<double>(static_cast<float>(*d))), e);
      }
    }
  }
  if (value == nullptr || t == VT::kString) {
    set("empty", "string ''", GgufValue::str(""), e);
    set("bad string", "invalid UTF-8", GgufValue::str("\xFF\xFE\xC0"), e);
    if (value != nullptr) {
      set("bad string", "embedded NUL", GgufValue::str(std::string("llama\0x", 7)), e);
      set("huge", "string of 100000 bytes", GgufValue::str(std::string(100000, 'a')), e);
    }
  }
  if (value == nullptr || t == VT::kBool) {
    set("bad bool", "bool byte 2", raw_bool(2), e);
    if (value != nullptr) {
      set("bad bool", "bool byte 255", raw_bool(255), e);
      set("wrong type", "u8 1", u8(1), e);
    }
  }
  if (value != nullptr) {
    b.add(
        "missing", key, "removed", e, [key](GgufDoc& d) { d.erase(key); }, also);
  }
}

// The mutations of an array key (tokens, scores, token_type, merges).
void array_cases(Builder& b, const std::string& key, const GgufArray& a) {
  const size_t n = a.items.size();
  const auto set = [&](const std::string& cat, const std::string& what, GgufValue v) {
    b.set(cat, key, what, std::move(v));
  };
  const auto with = [&](size_t i, GgufValue item) {
    GgufArray copy = a;
    copy.items[i] = std::move(item);
    return GgufValue{VT::kArray, copy};
  };
  set("wrong type", "string", GgufValue::str("x"));
  set("wrong type", "u32 7", GgufValue::u32(7));
  b.add("missing", key, "removed (erased)", Expect::kErrorOrRun,
        [key](GgufDoc& d) { d.erase(key); });
  // Wrong element types: the same length, each item of another type.
  for (const VT et : {VT::kInt32, VT::kString, VT::kFloat32, VT::kUint8, VT::kArray}) {
    if (et == a.elem_type) continue;
    std::vector<GgufValue> items(n);
    for (size_t i = 0; i < n; ++i) {
      switch (et) {
        case VT::kInt32:
          items[i] = GgufValue::i32(static_cast<int32_t>(i % 7));
          break;
        case VT::kString:
          items[i] = GgufValue::str("t" + std::to_string(i));
          break;
        case VT::kFloat32:
          items[i] = GgufValue::f32(1.0f);
          break;
        case VT::kUint8:
          items[i] = u8(1);
          break;
        default:
          items[i] = GgufValue::array(VT::kUint8, {});
          break;
      }
    }
    set("array element type", std::string("elements of ") + gguf_value_type_name(et),
        GgufValue::array(et, items));
  }
  GgufArray shorter = a, longer = a, empty = a;
  shorter.items.pop_back();
  longer.items.push_back(a.items.back());
  empty.items.clear();
  set("array length", "one element fewer (" + std::to_string(n - 1) + ")",
      GgufValue{VT::kArray, shorter});
  set("array length", "one element more", GgufValue{VT::kArray, longer});
  set("array length", "empty", GgufValue{VT::kArray, empty});
  const size_t k = n > 10 ? n - 5 : n - 1;
  switch (a.elem_type) {
    case VT::kFloat32:
      set("array element", "[" + std::to_string(k) + "] NaN",
          with(k, GgufValue::f32(std::numeric_limits<float>::quiet_NaN())));
      set("array element", "[" + std::to_string(k) + "] inf",
          with(k, GgufValue::f32(std::numeric_limits<float>::infinity())));
      set("array element", "[" + std::to_string(k) + "] -1e30", with(k, GgufValue::f32(-1e30f)));
      break;
    case VT::kInt32:
      for (const int32_t x : {-1, 0, 7, 99, INT32_MAX}) {
        set("array element", "[" + std::to_string(k) + "] " + std::to_string(x),
            with(k, GgufValue::i32(x)));
      }
      set("array element", "[3] 1 (a byte token as normal)", with(3, GgufValue::i32(1)));
      set("array element", "[" + std::to_string(k) + "] 6 (a normal token as byte)",
          with(k, GgufValue::i32(6)));
      break;
    case VT::kString:
      set("array element", "[" + std::to_string(k) + "] ''", with(k, GgufValue::str("")));
      set("array element", "[" + std::to_string(k) + "] invalid UTF-8",
          with(k, GgufValue::str("\xFF\xC0")));
      set("array element", "[" + std::to_string(k) + "] a copy of [" + std::to_string(k - 1) + "]",
          with(k, a.items[k - 1]));
      set("array element", "[" + std::to_string(k) + "] of 70000 bytes",
          with(k, GgufValue::str(std::string(70000, 'a'))));
      if (key == "tokenizer.ggml.tokens") {
        set("array element", "[3] '<0xZZ>' (a byte token)", with(3, GgufValue::str("<0xZZ>")));
        set("array element", "[0] '</s>' (a copy of a control token)", with(0, a.items[2]));
      }
      if (key == "tokenizer.ggml.merges") {
        set("array element", "[0] 'he' (no space)", with(0, GgufValue::str("he")));
        set("array element", "[0] 'a b c' (two spaces)", with(0, GgufValue::str("a b c")));
        set("array element", "[0] ' ' (empty halves)", with(0, GgufValue::str(" ")));
        set("array element", "[0] 'zz qq' (unknown tokens)", with(0, GgufValue::str("zz qq")));
      }
      break;
    default:
      break;
  }
}

std::vector<float> as_floats(const GgufDoc::Tensor& t) {
  const size_t n = t.bytes.size() / 4;
  std::vector<float> f(n);
  std::memcpy(f.data(), t.bytes.data(), n * 4);
  return f;
}

// The tensor as `type`, re-encoded where rows allow it (then a valid file of another type), else
// relabelled with its f32 bytes (a size the type cannot have).
void retype(GgufDoc::Tensor& t, TensorType type) {
  const auto traits = tensor_type_traits(static_cast<uint32_t>(type));
  const size_t row = t.dims.empty() ? 1 : t.dims[0];
  t.type = static_cast<uint32_t>(type);
  if (!traits || row % traits->block_elems != 0) return;
  const std::vector<float> f = as_floats(t);
  const size_t rows = f.size() / row, row_bytes = row / traits->block_elems * traits->block_bytes;
  std::vector<uint8_t> out(rows * row_bytes);
  for (size_t r = 0; r < rows; ++r) {
    quant::quantize_row(type, f.data() + r * row, out.data() + r * row_bytes, row);
  }
  t.bytes = std::move(out);
}

// `full` false: a few (the shared loader code already had the rest on the llama base).
void tensor_cases(Builder& b, const GgufTensorInfo& t, bool full) {
  const std::string name = t.name;
  static const std::set<std::string> kFew = {"transposed", "one element more", "one row fewer",
                                             "unknown type id 99", "as q8_0"};
  const auto edit = [&](const std::string& cat, const std::string& what,
                        std::function<void(GgufDoc::Tensor&)> f,
                        Expect expect = Expect::kErrorOrRun) {
    if (!full && kFew.count(what) == 0) return;
    b.add(cat, name, what, expect, [name, f](GgufDoc& d) {
      if (GgufDoc::Tensor* x = d.find_tensor(name)) f(*x);
    });
  };
  b.add("tensor missing", name, "removed", Expect::kErrorOrRun, [name](GgufDoc& d) {
    std::erase_if(d.tensors, [&](const GgufDoc::Tensor& x) { return x.name == name; });
  });
  if (full) {
    b.add("tensor duplicate", name, "a second tensor of the same name", Expect::kError,
          [name](GgufDoc& d) {
            if (GgufDoc::Tensor* x = d.find_tensor(name)) d.tensors.push_back(*x);
          });
  }
  const auto zeros = [](std::vector<uint64_t> dims) {
    return [dims](GgufDoc::Tensor& x) {
      uint64_t n = 1;
      for (const uint64_t d : dims) n *= d;
      x.type = 0;
      x.dims = dims;
      x.bytes.assign(n * 4, 0);
    };
  };
  if (t.dims.size() == 2) {
    const uint64_t c = t.dims[0], r = t.dims[1];
    if (c != r) {
      edit("tensor shape", "transposed",
           [](GgufDoc::Tensor& x) { std::swap(x.dims[0], x.dims[1]); });
    }
    edit("tensor shape", "one row more", zeros({c, r + 1}));
    edit("tensor shape", "one row fewer", zeros({c, r - 1}));
    edit("tensor shape", "rows twice as long", zeros({2 * c, r}));
    edit("tensor shape", "flattened to 1-D",
         [](GgufDoc::Tensor& x) { x.dims = {x.dims[0] * x.dims[1]}; });
    edit("tensor shape", "a third dimension of 2", zeros({c, (r + 1) / 2, 2}));
    edit("tensor shape", "zero rows", zeros({c, 0}));
  } else {
    const uint64_t n = t.dims[0];
    edit("tensor shape", "one element more", zeros({n + 1}));
    edit("tensor shape", "one element fewer", zeros({n - 1}));
    edit("tensor shape", "2-D [n, 1]", [](GgufDoc::Tensor& x) { x.dims = {x.dims[0], 1}; });
    edit("tensor shape", "2-D [n/2, 2]", [](GgufDoc::Tensor& x) { x.dims = {x.dims[0] / 2, 2}; });
    edit("tensor shape", "zero elements", zeros({0}));
  }
  edit(
      "tensor shape", "5 dimensions", [](GgufDoc::Tensor& x) { x.dims.resize(5, 1); },
      Expect::kError);
  edit(
      "tensor type", "unknown type id 99", [](GgufDoc::Tensor& x) { x.type = 99; }, Expect::kError);
  edit(
      "tensor type", "q8_K (never in files)", [](GgufDoc::Tensor& x) { x.type = 15; },
      Expect::kError);
  edit("tensor type", "i32 (ggml type 26)", [](GgufDoc::Tensor& x) { x.type = 26; });
  for (const TensorType type : {TensorType::kF16, TensorType::kQ8_0, TensorType::kQ4_K}) {
    edit("tensor type", std::string("as ") + traits_of(type).name,
         [type](GgufDoc::Tensor& x) { retype(x, type); });
  }
  edit("tensor data", "first element NaN", [](GgufDoc::Tensor& x) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::memcpy(x.bytes.data(), &nan, 4);
  });
  edit("tensor data", "every element inf", [](GgufDoc::Tensor& x) {
    const float inf = std::numeric_limits<float>::infinity();
    for (size_t i = 0; i + 4 <= x.bytes.size(); i += 4) std::memcpy(x.bytes.data() + i, &inf, 4);
  });
}

}  // namespace

std::vector<Case> cases_for(const BaseModel& model, const GgufFile& base) {
  std::vector<Case> out;
  Builder b(model, out);
  const std::string arch = model.arch;
  std::set<std::string> read_keys;
  for (const char* k : kArchKeys) {
    std::string key = k;
    key.replace(0, 2, arch);
    read_keys.insert(key);
  }
  for (const auto& [family, k] : kFamilyKeys) {
    if (arch == family) read_keys.insert(arch + "." + k);
  }
  // The tokenizer's and general.* keys on the two llama bases only (the same code reads them
  // whatever the architecture).
  const bool vocab_keys = model.name == "llama" || model.name == "llama-bpe";
  if (vocab_keys) {
    for (const char* k : kOtherKeys) read_keys.insert(k);
  }
  // Every mutation on the llama bases and for the keys of one family; a few elsewhere.
  const bool llama = model.name == "llama" || model.name == "llama-bpe";
  const auto full = [&](const std::string& key) {
    if (llama) return true;
    for (const auto& [family, k] : kFamilyKeys) {
      if (arch == family && key == arch + "." + k) return true;
    }
    return false;
  };
  const auto skip = [&](const std::string& key) {
    return !vocab_keys && (key.rfind("tokenizer.", 0) == 0 || key.rfind("general.", 0) == 0);
  };
  // Each key the base has, then each key read that the base lacks.
  std::set<std::string> seen;
  for (const auto& [key, value] : base.metadata()) {
    seen.insert(key);
    if (skip(key)) continue;
    const bool read = read_keys.count(key) != 0;
    // The trailing name a derived error may use ("head_count" for "llama.attention.head_count").
    std::vector<std::string> also;
    if (const size_t dot = key.rfind('.'); dot != std::string::npos) {
      also.push_back(key.substr(dot + 1));
    }
    if (value.type == VT::kArray) {
      array_cases(b, key, std::get<GgufArray>(value.v));
    } else {
      scalar_cases(b, key, &value, read, also, full(key));
    }
  }
  for (const std::string& key : read_keys) {
    if (seen.count(key) == 0) {
      std::vector<std::string> also;
      if (const size_t dot = key.rfind('.'); dot != std::string::npos) {
        also.push_back(key.substr(dot + 1));
      }
      scalar_cases(b, key, nullptr, true, also, full(key));
    }
  }
  // Values that are fine on their own but do not fit the tensors or each other.
  const std::string p = arch + ".";
  const auto u32 = [](uint32_t x) { return GgufValue::u32(x); };
  const std::vector<std::string> any_tensor = {"tensor", "head", "block_count"};
  b.set("mismatch", p + "attention.head_count", "3 (does not divide 32)", u32(3), Expect::kError,
        any_tensor);
  b.set("mismatch", p + "attention.head_count", "8 (other head size)", u32(8), Expect::kErrorOrRun,
        any_tensor);
  b.set("mismatch", p + "attention.head_count", "64 (more than embedding_length)", u32(64),
        Expect::kError, any_tensor);
  b.set("mismatch", p + "attention.head_count_kv", "8 (more than head_count)", u32(8),
        Expect::kError, any_tensor);
  b.set("mismatch", p + "attention.head_count_kv", "3 (does not divide head_count)", u32(3),
        Expect::kError, any_tensor);
  b.set("mismatch", p + "attention.head_count_kv", "1", u32(1), Expect::kErrorOrRun, any_tensor);
  b.set("mismatch", p + "attention.head_count_kv", "4", u32(4), Expect::kErrorOrRun, any_tensor);
  for (const uint32_t n : {16u, 30u, 33u, 64u}) {
    b.set("mismatch", p + "embedding_length", std::to_string(n) + " (tensors are 32)", u32(n),
          Expect::kError, any_tensor);
  }
  for (const uint32_t n : {32u, 63u, 65u, 128u}) {
    b.set("mismatch", p + "feed_forward_length", std::to_string(n) + " (tensors are 64)", u32(n),
          Expect::kError, any_tensor);
  }
  b.set("mismatch", p + "block_count", "1 (the file has 2)", u32(1), Expect::kErrorOrRun,
        any_tensor);
  b.set("mismatch", p + "block_count", "3 (the file has 2)", u32(3), Expect::kError, any_tensor);
  for (const uint32_t n : {4u, 6u, 16u}) {
    b.set("mismatch", p + "attention.key_length", std::to_string(n) + " (heads are 8)", u32(n),
          Expect::kErrorOrRun, any_tensor);
  }
  for (const uint32_t n : {2u, 6u, 7u, 10u}) {
    b.set("mismatch", p + "rope.dimension_count", std::to_string(n) + " (heads are 8)", u32(n),
          Expect::kErrorOrRun, any_tensor);
  }
  b.set("mismatch", p + "context_length", "1", u32(1), Expect::kErrorOrRun, any_tensor);
  b.set("mismatch", p + "rope.scaling.type", "'yarn' without a factor", GgufValue::str("yarn"),
        Expect::kErrorOrRun, any_tensor);
  b.set("mismatch", p + "rope.scaling.type", "'llama3' (not a GGUF scaling type)",
        GgufValue::str("llama3"), Expect::kErrorOrRun, any_tensor);
  b.set("mismatch", "general.architecture", "'mistral' (another name of llama blocks)",
        GgufValue::str("mistral"), Expect::kErrorOrRun, {"tensor", "architecture"});
  b.set("mismatch", "general.architecture", "'gpt2' (not supported)", GgufValue::str("gpt2"),
        Expect::kError, {"architecture"});
  // The layout: data aligned to 16 while general.alignment says 32 (or 64 while 32 is laid out).
  // (The same file when every tensor's size is a multiple of 32 bytes: an error or the same run.)
  b.add("alignment", "general.alignment", "data laid out at 16, key says 32", Expect::kErrorOrRun,
        [](GgufDoc& d) {
          d.set("general.alignment", GgufValue::u32(32));
          d.layout_alignment = 16;
        });
  for (const uint32_t a : {0u, 1u, 3u, 16u, 48u, 64u, 1u << 20, 1u << 21, 1u << 31}) {
    b.set("alignment", "general.alignment", std::to_string(a), u32(a), Expect::kErrorOrRun);
  }
  // The vocabulary against the tensors.
  b.add("mismatch", "token_embd.weight", "rows one fewer than the tokens", Expect::kErrorOrRun,
        [](GgufDoc& d) {
          GgufDoc::Tensor* t = d.find_tensor("token_embd.weight");
          t->dims[1] -= 1;
          t->bytes.resize(t->bytes.size() - t->dims[0] * 4);
        },
        {"tokenizer.ggml.tokens", "vocab"});
  // Tensors: each non-block tensor and every tensor of block 0 (all mutations on the llama base
  // and for the tensors a llama file does not have; a few for the others); an unknown extra one.
  static const std::set<std::string> kLlamaTensors = {
      "token_embd.weight",      "output_norm.weight",       "output.weight",
      "blk.0.attn_norm.weight", "blk.0.attn_q.weight",      "blk.0.attn_k.weight",
      "blk.0.attn_v.weight",    "blk.0.attn_output.weight", "blk.0.ffn_norm.weight",
      "blk.0.ffn_gate.weight",  "blk.0.ffn_down.weight",    "blk.0.ffn_up.weight"};
  for (const GgufTensorInfo& t : base.tensors()) {
    if (t.name.rfind("blk.", 0) == 0 && t.name.rfind("blk.0.", 0) != 0) continue;
    tensor_cases(b, t, model.name == "llama" || kLlamaTensors.count(t.name) == 0);
  }
  b.add("tensor extra", "blk.0.unknown.weight", "an extra tensor no family reads",
        Expect::kErrorOrRun, [](GgufDoc& d) {
          GgufDoc::Tensor t{"blk.0.unknown.weight", 0, {4}, std::vector<uint8_t>(16, 0)};
          d.tensors.push_back(t);
        });
  b.add("tensor extra", "blk.2.attn_norm.weight", "a third block's tensor (block_count 2)",
        Expect::kErrorOrRun, [](GgufDoc& d) {
          GgufDoc::Tensor t = *d.find_tensor("blk.1.attn_norm.weight");
          t.name = "blk.2.attn_norm.weight";
          d.tensors.push_back(t);
        });
  return out;
}

}  // namespace sllm::mutation
