// GgufDoc (a GGUF as plain data, serialised without validation), the two tiny vocabularies and
// the base models.
#include <cstring>
#include <filesystem>
#include <string_view>

#include "gguf_mutation.h"
#include "streamingllm/tools.h"

namespace sllm::mutation {

namespace {

class Bytes {
 public:
  explicit Bytes(std::vector<uint8_t>& out) : out_(out) {}
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
  void pad_to(uint64_t alignment) {
    out_.resize((out_.size() + alignment - 1) / alignment * alignment, 0);
  }
  // The payload of `value` as its declared type says, whatever the variant holds (a mismatch
  // writes the variant's bits at the type's width: that too is a mutation).
  void put_value(const GgufValue& value) {
    uint64_t bits = 0;
    double real = 0;
    if (const auto* u = std::get_if<uint64_t>(&value.v)) bits = *u, real = static_cast<double>(*u);
    if (const auto* s = std::get_if<int64_t>(&value.v)) {
      bits = static_cast<uint64_t>(*s);
      real = static_cast<double>(*s);
    }
    if (const auto* d = std::get_if<double>(&value.v)) real = *d;
    if (const auto* b = std::get_if<bool>(&value.v)) bits = *b ? 1 : 0;
    switch (value.type) {
      case GgufValueType::kUint8:
      case GgufValueType::kInt8:
      case GgufValueType::kBool:
        put(static_cast<uint8_t>(bits));
        return;
      case GgufValueType::kUint16:
      case GgufValueType::kInt16:
        put(static_cast<uint16_t>(bits));
        return;
      case GgufValueType::kUint32:
      case GgufValueType::kInt32:
        put(static_cast<uint32_t>(bits));
        return;
      case GgufValueType::kUint64:
      case GgufValueType::kInt64:
        put(bits);
        return;
      case GgufValueType::kFloat32:
        put(static_cast<float>(real));
        return;
      case GgufValueType::kFloat64:
        put(real);
        return;
      case GgufValueType::kString: {
        const auto* s = std::get_if<std::string>(&value.v);
        put_string(s != nullptr ? *s : std::string());
        return;
      }
      case GgufValueType::kArray: {
        const auto* a = std::get_if<GgufArray>(&value.v);
        const GgufArray empty;
        const GgufArray& array = a != nullptr ? *a : empty;
        put(static_cast<uint32_t>(array.elem_type));
        put<uint64_t>(array.items.size());
        for (const GgufValue& item : array.items) {
          GgufValue typed = item;
          typed.type = array.elem_type;  // an item is written as the array says
          put_value(typed);
        }
        return;
      }
    }
  }

 private:
  std::vector<uint8_t>& out_;
};

}  // namespace

GgufDoc GgufDoc::from(const GgufFile& file) {
  GgufDoc doc;
  doc.metadata = file.metadata();
  doc.layout_alignment = file.alignment();
  for (const GgufTensorInfo& t : file.tensors()) {
    doc.tensors.push_back({t.name, static_cast<uint32_t>(t.type), t.dims,
                           std::vector<uint8_t>(t.data, t.data + t.n_bytes)});
  }
  return doc;
}

std::vector<uint8_t> GgufDoc::serialize() const {
  std::vector<uint8_t> out;
  Bytes b(out);
  b.put<uint32_t>(0x46554747);  // "GGUF"
  b.put<uint32_t>(3);
  b.put<uint64_t>(tensors.size());
  b.put<uint64_t>(metadata.size());
  for (const auto& [key, value] : metadata) {
    b.put_string(key);
    b.put(static_cast<uint32_t>(value.type));
    b.put_value(value);
  }
  uint64_t offset = 0;
  const uint64_t a = layout_alignment;
  for (const Tensor& t : tensors) {
    b.put_string(t.name);
    b.put(static_cast<uint32_t>(t.dims.size()));
    for (const uint64_t d : t.dims) b.put(d);
    b.put(t.type);
    b.put(offset);
    offset = (offset + t.bytes.size() + a - 1) / a * a;
  }
  b.pad_to(a);
  for (const Tensor& t : tensors) {
    out.insert(out.end(), t.bytes.begin(), t.bytes.end());
    b.pad_to(a);
  }
  return out;
}

GgufValue* GgufDoc::find(const std::string& key) {
  for (auto& [k, v] : metadata) {
    if (k == key) return &v;
  }
  return nullptr;
}

void GgufDoc::set(const std::string& key, GgufValue value) {
  if (GgufValue* v = find(key)) {
    *v = std::move(value);
  } else {
    metadata.emplace_back(key, std::move(value));
  }
}

bool GgufDoc::erase(const std::string& key) {
  for (auto it = metadata.begin(); it != metadata.end(); ++it) {
    if (it->first == key) {
      metadata.erase(it);
      return true;
    }
  }
  return false;
}

GgufDoc::Tensor* GgufDoc::find_tensor(const std::string& name) {
  for (Tensor& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

namespace {

std::string hex_byte(int b) {
  static const char* kDigits = "0123456789ABCDEF";
  std::string s = "<0x";
  s += kDigits[b >> 4];
  s += kDigits[b & 15];
  return s + ">";
}

// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others for U+0100 on.
std::vector<std::string> gpt2_byte_symbols() {
  std::vector<std::string> symbols(256);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const int cp = printable ? b : next++;
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    symbols[static_cast<size_t>(b)] = s;
  }
  return symbols;
}

}  // namespace

Status write_spm_vocab(const std::string& path) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<float> scores = {0, 0, 0};
  std::vector<int32_t> types = {2, 3, 3};  // unknown, control, control
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(hex_byte(b));
    scores.push_back(0);
    types.push_back(6);  // byte
  }
  const char* pieces[] = {"\xE2\x96\x81",
                          "e",
                          "t",
                          "a",
                          "o",
                          "n",
                          "l",
                          "h",
                          "r",
                          "d",
                          "w",
                          "H",
                          "\xE2\x96\x81t",
                          "he",
                          "\xE2\x96\x81the",
                          "ll",
                          "llo",
                          "He",
                          "Hello",
                          "\xE2\x96\x81w",
                          "or",
                          "ld",
                          "\xE2\x96\x81wor",
                          "\xE2\x96\x81world",
                          "in",
                          "\u2581a",
                          "on",
                          "er",
                          "\xE2\x96\x81on",
                          "ce"};
  float score = -1;
  for (const char* p : pieces) {
    tokens.emplace_back(p);
    scores.push_back(score);
    score -= 1;
    types.push_back(1);
  }
  GgufWriter w;
  w.set("tokenizer.ggml.model", GgufValue::str("llama"));
  w.set("tokenizer.ggml.tokens", GgufValue::string_array(tokens));
  w.set("tokenizer.ggml.scores", GgufValue::f32_array(scores));
  w.set("tokenizer.ggml.token_type", GgufValue::i32_array(types));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(1));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(2));
  w.set("tokenizer.ggml.unknown_token_id", GgufValue::u32(0));
  w.set("tokenizer.ggml.padding_token_id", GgufValue::u32(0));
  w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(true));
  w.set("tokenizer.ggml.add_eos_token", GgufValue::boolean(false));
  w.set("tokenizer.chat_template",
        GgufValue::str("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"));
  return w.write(path);
}

Status write_bpe_vocab(const std::string& path) {
  std::vector<std::string> tokens = gpt2_byte_symbols();
  std::vector<int32_t> types(tokens.size(), 1);
  const char* merges[] = {"\xC4\xA0 t", "h e",          "\xC4\xA0t he", "l l",
                          "ll o",       "H e",          "He llo",       "\xC4\xA0 w",
                          "o r",        "\xC4\xA0w or", "l d",          "\xC4\xA0wor ld",
                          "i n",        "\u0120 a",     "e r"};
  std::vector<std::string> merge_list;
  for (const char* m : merges) {
    merge_list.emplace_back(m);
    std::string joined = m;
    joined.erase(joined.find(' '), 1);
    tokens.push_back(joined);
    types.push_back(1);
  }
  tokens.emplace_back("<|endoftext|>");
  types.push_back(3);
  const auto eot = static_cast<uint32_t>(tokens.size() - 1);
  GgufWriter w;
  w.set("tokenizer.ggml.model", GgufValue::str("gpt2"));
  w.set("tokenizer.ggml.pre", GgufValue::str("gpt-2"));
  w.set("tokenizer.ggml.tokens", GgufValue::string_array(tokens));
  w.set("tokenizer.ggml.token_type", GgufValue::i32_array(types));
  w.set("tokenizer.ggml.merges", GgufValue::string_array(merge_list));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(eot));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(eot));
  w.set("tokenizer.ggml.add_space_prefix", GgufValue::boolean(false));
  return w.write(path);
}

std::vector<std::string> base_model_names() {
  std::vector<std::string> archs;
  const std::string names = make_model_architectures();
  for (size_t i = 0; i < names.size();) {
    const size_t j = names.find(", ", i);
    archs.push_back(names.substr(i, j == std::string::npos ? std::string::npos : j - i));
    i = j == std::string::npos ? names.size() : j + 2;
  }
  archs.emplace_back("llama-bpe");
  return archs;
}

Result<std::vector<BaseModel>> write_base_models(const std::string& dir) {
  std::filesystem::create_directories(dir);
  const std::string spm = dir + "/vocab-spm.gguf", bpe = dir + "/vocab-bpe.gguf";
  SLLM_RETURN_IF_ERROR(write_spm_vocab(spm));
  SLLM_RETURN_IF_ERROR(write_bpe_vocab(bpe));
  std::vector<BaseModel> bases;
  for (const std::string& name : base_model_names()) {
    MakeModelOptions o;
    o.arch = name == "llama-bpe" ? "llama" : name;
    o.vocab = name == "llama-bpe" ? bpe : spm;
    o.n_embd = 32;
    o.n_layer = 2;
    o.n_head = 4;
    // Falcon with one KV head is the 7B style; every other family takes GQA (2 KV heads).
    o.n_head_kv = o.arch == "falcon" || o.arch == "mpt" || o.arch == "gptneox" ? 0 : 2;
    o.n_ff = 64;
    o.n_ctx = 256;
    o.sliding_window = 8;
    const std::string path = dir + "/base-" + name + ".gguf";
    SLLM_RETURN_IF_ERROR(make_model(o, path));
    bases.push_back({name, o.arch, path});
  }
  return bases;
}

}  // namespace sllm::mutation
