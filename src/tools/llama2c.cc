#include "tools/llama2c.h"

#include <fmt/format.h>

#include <bit>
#include <cstring>
#include <limits>
#include <vector>

#include "gguf/gguf.h"
#include "util/mapped_file.h"

namespace sllm {

static_assert(std::endian::native == std::endian::little,
              "llama2.c files are little-endian and are copied as is");

namespace {

// The 7 int32 header of a legacy llama2.c checkpoint (run.c `Config`).
struct Llama2cConfig {
  int32_t dim = 0;         // transformer width
  int32_t hidden_dim = 0;  // FFN width
  int32_t n_layers = 0;
  int32_t n_heads = 0;     // query heads
  int32_t n_kv_heads = 0;  // key/value heads (< n_heads: grouped-query attention)
  int32_t vocab_size = 0;  // negative when the classifier is not shared (wcls follows)
  int32_t seq_len = 0;     // training context length
};
constexpr uint64_t kHeaderBytes = 7 * sizeof(int32_t);

// llama.cpp's llama_token_type.
enum TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kByte = 6 };

// SentencePiece's fixed ids, which llama2.c's tokenizers keep.
constexpr size_t kUnkId = 0, kBosId = 1, kEosId = 2;
// Written for the separator and padding ids: llama.cpp's converter stores -1 ("none") as u32.
constexpr uint32_t kNoToken = 0xFFFFFFFFu;

// Sizes computed from an untrusted header saturate instead of wrapping: a saturated total can
// never equal a real file size, so it is rejected by the same check as any other mismatch.
constexpr uint64_t kSaturated = std::numeric_limits<uint64_t>::max();
uint64_t mul_sat(uint64_t a, uint64_t b) {
  uint64_t product = 0;
  return __builtin_mul_overflow(a, b, &product) ? kSaturated : product;
}
uint64_t add_sat(uint64_t a, uint64_t b) {
  uint64_t sum = 0;
  return __builtin_add_overflow(a, b, &sum) ? kSaturated : sum;
}

// Byte offsets of the checkpoint's f32 arrays, in the order run.c's memory_map_weights reads
// them. Per-layer arrays are [n_layers, ...] with the layer outermost.
struct CheckpointLayout {
  uint64_t token_embd = 0;  // [vocab, dim]
  uint64_t rms_att = 0;     // [n_layers, dim]
  uint64_t wq = 0;          // [n_layers, n_heads * head_size, dim]
  uint64_t wk = 0;          // [n_layers, n_kv_heads * head_size, dim]
  uint64_t wv = 0;          // [n_layers, n_kv_heads * head_size, dim]
  uint64_t wo = 0;          // [n_layers, dim, n_heads * head_size]
  uint64_t rms_ffn = 0;     // [n_layers, dim]
  uint64_t w1 = 0;          // [n_layers, hidden_dim, dim]  gate
  uint64_t w2 = 0;          // [n_layers, dim, hidden_dim]  down
  uint64_t w3 = 0;          // [n_layers, hidden_dim, dim]  up
  uint64_t rms_final = 0;   // [dim]
  uint64_t freq_cis = 0;    // [2, seq_len, head_size / 2]: unused RoPE tables, skipped
  uint64_t wcls = 0;        // [vocab, dim], only when vocab_size < 0
  uint64_t end = 0;         // expected file size (kSaturated if it overflows)
};

CheckpointLayout layout_of(const Llama2cConfig& c) {
  const uint64_t dim = static_cast<uint64_t>(c.dim);
  const uint64_t hidden = static_cast<uint64_t>(c.hidden_dim);
  const uint64_t n_layers = static_cast<uint64_t>(c.n_layers);
  const uint64_t vocab =
      static_cast<uint64_t>(c.vocab_size < 0 ? -int64_t{c.vocab_size} : int64_t{c.vocab_size});
  const uint64_t head_size = dim / static_cast<uint64_t>(c.n_heads);
  const uint64_t kv_dim = static_cast<uint64_t>(c.n_kv_heads) * head_size;
  const uint64_t f32 = sizeof(float);

  CheckpointLayout l;
  uint64_t at = kHeaderBytes;
  auto next = [&](uint64_t n_elements) {
    const uint64_t start = at;
    at = add_sat(at, mul_sat(n_elements, f32));
    return start;
  };
  l.token_embd = next(mul_sat(vocab, dim));
  l.rms_att = next(mul_sat(n_layers, dim));
  l.wq = next(mul_sat(n_layers, mul_sat(dim, dim)));
  l.wk = next(mul_sat(n_layers, mul_sat(kv_dim, dim)));
  l.wv = next(mul_sat(n_layers, mul_sat(kv_dim, dim)));
  l.wo = next(mul_sat(n_layers, mul_sat(dim, dim)));
  l.rms_ffn = next(mul_sat(n_layers, dim));
  l.w1 = next(mul_sat(n_layers, mul_sat(hidden, dim)));
  l.w2 = next(mul_sat(n_layers, mul_sat(dim, hidden)));
  l.w3 = next(mul_sat(n_layers, mul_sat(hidden, dim)));
  l.rms_final = next(dim);
  l.freq_cis = next(mul_sat(static_cast<uint64_t>(c.seq_len), head_size));
  l.wcls = next(c.vocab_size < 0 ? mul_sat(vocab, dim) : 0);
  l.end = at;
  return l;
}

std::string describe(const Llama2cConfig& c) {
  return fmt::format(
      "dim {}, hidden_dim {}, n_layers {}, n_heads {}, n_kv_heads {}, vocab_size {}, seq_len {}",
      c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len);
}

Result<Llama2cConfig> read_header(std::span<const uint8_t> bytes, const std::string& path) {
  auto bad = [&](const std::string& message) {
    return Error(ErrorCode::kFormat, fmt::format("llama2.c checkpoint '{}': {}", path, message));
  };
  if (bytes.size() < kHeaderBytes) {
    return bad(fmt::format("file is {} bytes, shorter than the {}-byte header", bytes.size(),
                           kHeaderBytes));
  }
  Llama2cConfig c;
  std::memcpy(&c, bytes.data(), kHeaderBytes);
  static_assert(sizeof(Llama2cConfig) == kHeaderBytes);

  if (c.dim <= 0 || c.hidden_dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
      c.vocab_size == 0 || c.vocab_size == std::numeric_limits<int32_t>::min() || c.seq_len <= 0) {
    return bad("header (" + describe(c) + ") has a zero or negative size");
  }
  if (c.dim % c.n_heads != 0) {
    return bad(fmt::format("dim {} is not a multiple of n_heads {}", c.dim, c.n_heads));
  }
  if (c.n_heads % c.n_kv_heads != 0) {
    return bad(
        fmt::format("n_heads {} is not a multiple of n_kv_heads {}", c.n_heads, c.n_kv_heads));
  }
  if ((c.dim / c.n_heads) % 2 != 0) {
    return bad(fmt::format("head size {} is odd; RoPE rotates pairs", c.dim / c.n_heads));
  }
  const uint64_t expected = layout_of(c).end;
  if (bytes.size() != expected) {
    return bad(fmt::format("file is {} bytes but its header ({}) implies {}", bytes.size(),
                           describe(c),
                           expected == kSaturated ? "more than 2^64" : std::to_string(expected)));
  }
  return c;
}

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
};

bool is_byte_token(std::string_view text) {
  auto is_hex = [](char ch) { return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'F'); };
  return text.size() == 6 && text.substr(0, 3) == "<0x" && is_hex(text[3]) && is_hex(text[4]) &&
         text[5] == '>';
}

// SentencePiece marks spaces with U+2581 LOWER ONE EIGHTH BLOCK; llama2.c's export decoded them.
std::string escape_spaces(std::string_view text) {
  std::string out;
  for (char ch : text) {
    if (ch == ' ') {
      out += "\xE2\x96\x81";
    } else {
      out += ch;
    }
  }
  return out;
}

// tok*.bin: u32 max_token_length, then per token: f32 score, i32 n_bytes, the bytes.
// Texts and types are made what llama.cpp's convert-llama2c-to-ggml makes them.
Result<Vocab> read_tokenizer(const std::string& path, size_t n_vocab) {
  SLLM_ASSIGN_OR_RETURN(MappedFile file, MappedFile::open(path));
  const std::span<const uint8_t> bytes = file.bytes();
  auto bad = [&](const std::string& message) {
    return Error(ErrorCode::kFormat, fmt::format("llama2.c tokenizer '{}': {}", path, message));
  };
  size_t at = 0;
  auto read_u32 = [&](uint32_t* out) {
    if (bytes.size() - at < 4) return false;
    std::memcpy(out, bytes.data() + at, 4);
    at += 4;
    return true;
  };
  uint32_t max_token_length = 0;
  if (!read_u32(&max_token_length)) {
    return bad(fmt::format("file is {} bytes, shorter than the 4-byte header", bytes.size()));
  }
  Vocab vocab;
  for (size_t id = 0; id < n_vocab; ++id) {
    uint32_t score_bits = 0, n_bytes = 0;
    if (!read_u32(&score_bits) || !read_u32(&n_bytes)) {
      return bad(fmt::format("ends at byte {} inside token {} of the {} the checkpoint has", at, id,
                             n_vocab));
    }
    if (static_cast<int32_t>(n_bytes) < 0) {
      return bad(
          fmt::format("token {} has a negative length {}", id, static_cast<int32_t>(n_bytes)));
    }
    if (n_bytes > max_token_length) {
      return bad(fmt::format("token {} is {} bytes, longer than max_token_length {}", id, n_bytes,
                             max_token_length));
    }
    if (bytes.size() - at < n_bytes) {
      return bad(fmt::format("ends at byte {} inside token {} of the {} the checkpoint has",
                             bytes.size(), id, n_vocab));
    }
    std::string_view text(reinterpret_cast<const char*>(bytes.data() + at), n_bytes);
    at += n_bytes;

    int32_t type = kNormal;
    std::string gguf_text;
    if (id == kUnkId) {
      type = kUnknown;
      gguf_text = "<unk>";
    } else if (id == kBosId || id == kEosId) {
      // llama2.c stores these as "\n<s>\n" and "\n</s>\n" (how its decoder prints them).
      type = kControl;
      gguf_text = id == kBosId ? "<s>" : "</s>";
    } else if (text.empty()) {
      type = kControl;
    } else if (is_byte_token(text)) {
      type = kByte;
      gguf_text = text;
    } else {
      gguf_text = escape_spaces(text);
    }
    vocab.tokens.push_back(std::move(gguf_text));
    vocab.scores.push_back(std::bit_cast<float>(score_bits));
    vocab.types.push_back(type);
  }
  if (at != bytes.size()) {
    return bad(fmt::format("has {} bytes after the {} tokens the checkpoint's vocab_size asks for",
                           bytes.size() - at, n_vocab));
  }
  return vocab;
}

}  // namespace

Status convert_llama2c(const std::string& checkpoint_path, const std::string& tokenizer_path,
                       const std::string& out_gguf) {
  // A device, FIFO or directory as the output is refused before the work, not after it.
  SLLM_RETURN_IF_ERROR(check_output_path(out_gguf));
  SLLM_ASSIGN_OR_RETURN(MappedFile checkpoint, MappedFile::open(checkpoint_path));
  SLLM_ASSIGN_OR_RETURN(Llama2cConfig c, read_header(checkpoint.bytes(), checkpoint_path));
  const bool shared_classifier = c.vocab_size > 0;
  const uint64_t n_vocab = static_cast<uint64_t>(shared_classifier ? c.vocab_size : -c.vocab_size);
  SLLM_ASSIGN_OR_RETURN(Vocab vocab, read_tokenizer(tokenizer_path, n_vocab));

  const uint64_t dim = static_cast<uint64_t>(c.dim);
  const uint64_t hidden = static_cast<uint64_t>(c.hidden_dim);
  const uint64_t head_size = dim / static_cast<uint64_t>(c.n_heads);
  const uint64_t kv_dim = static_cast<uint64_t>(c.n_kv_heads) * head_size;

  GgufWriter w;
  // Keys in the order llama.cpp's converter writes them.
  w.set("tokenizer.ggml.tokens", GgufValue::string_array(vocab.tokens));
  w.set("tokenizer.ggml.scores", GgufValue::f32_array(vocab.scores));
  w.set("tokenizer.ggml.token_type", GgufValue::i32_array(vocab.types));
  w.set("tokenizer.ggml.model", GgufValue::str("llama"));
  w.set("general.architecture", GgufValue::str("llama"));
  w.set("general.name", GgufValue::str("llama"));
  w.set("tokenizer.ggml.unknown_token_id", GgufValue::u32(kUnkId));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(kBosId));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(kEosId));
  w.set("tokenizer.ggml.seperator_token_id", GgufValue::u32(kNoToken));  // llama.cpp's spelling
  w.set("tokenizer.ggml.padding_token_id", GgufValue::u32(kNoToken));
  w.set("llama.context_length", GgufValue::u32(static_cast<uint32_t>(c.seq_len)));
  w.set("llama.embedding_length", GgufValue::u32(static_cast<uint32_t>(c.dim)));
  w.set("llama.feed_forward_length", GgufValue::u32(static_cast<uint32_t>(c.hidden_dim)));
  w.set("llama.attention.head_count", GgufValue::u32(static_cast<uint32_t>(c.n_heads)));
  w.set("llama.attention.head_count_kv", GgufValue::u32(static_cast<uint32_t>(c.n_kv_heads)));
  w.set("llama.block_count", GgufValue::u32(static_cast<uint32_t>(c.n_layers)));
  w.set("llama.rope.dimension_count", GgufValue::u32(static_cast<uint32_t>(head_size)));
  // llama2.c's rmsnorm hard-codes 1e-5.
  w.set("llama.attention.layer_norm_rms_epsilon", GgufValue::f32(1e-5f));

  const uint8_t* base = checkpoint.bytes().data();
  // llama2.c stores each matrix W as [out, in] row-major, which is GGUF's dims {in, out}
  // (dims[0] is the row length): the bytes are copied unchanged. In particular wq and wk already
  // pair RoPE dimensions (2i, 2i+1), the layout llama.cpp's 'llama' arch expects, so they need
  // none of the row permutation that llama.cpp's Hugging Face converter applies.
  auto add_matrix = [&](const std::string& name, uint64_t offset, uint64_t row_length,
                        uint64_t n_rows) {
    const uint64_t n_bytes = row_length * n_rows * sizeof(float);
    return w.add_tensor(name, TensorType::kF32, {row_length, n_rows}, {base + offset, n_bytes});
  };
  auto add_vector = [&](const std::string& name, uint64_t offset, uint64_t n) {
    return w.add_tensor(name, TensorType::kF32, {n}, {base + offset, n * sizeof(float)});
  };
  const CheckpointLayout l = layout_of(c);
  const uint64_t f32 = sizeof(float);
  SLLM_RETURN_IF_ERROR(add_matrix("token_embd.weight", l.token_embd, dim, n_vocab));
  SLLM_RETURN_IF_ERROR(add_vector("output_norm.weight", l.rms_final, dim));
  // As llama.cpp's converter does, a shared classifier is written out as a copy of the
  // embedding table, so that every reader finds output.weight.
  SLLM_RETURN_IF_ERROR(
      add_matrix("output.weight", shared_classifier ? l.token_embd : l.wcls, dim, n_vocab));
  for (uint64_t layer = 0; layer < static_cast<uint64_t>(c.n_layers); ++layer) {
    const std::string blk = fmt::format("blk.{}.", layer);
    SLLM_RETURN_IF_ERROR(
        add_matrix(blk + "attn_q.weight", l.wq + layer * dim * dim * f32, dim, dim));
    SLLM_RETURN_IF_ERROR(
        add_matrix(blk + "attn_k.weight", l.wk + layer * kv_dim * dim * f32, dim, kv_dim));
    SLLM_RETURN_IF_ERROR(
        add_matrix(blk + "attn_v.weight", l.wv + layer * kv_dim * dim * f32, dim, kv_dim));
    SLLM_RETURN_IF_ERROR(
        add_matrix(blk + "attn_output.weight", l.wo + layer * dim * dim * f32, dim, dim));
    SLLM_RETURN_IF_ERROR(add_vector(blk + "attn_norm.weight", l.rms_att + layer * dim * f32, dim));
    SLLM_RETURN_IF_ERROR(
        add_matrix(blk + "ffn_gate.weight", l.w1 + layer * hidden * dim * f32, dim, hidden));
    SLLM_RETURN_IF_ERROR(
        add_matrix(blk + "ffn_down.weight", l.w2 + layer * dim * hidden * f32, hidden, dim));
    SLLM_RETURN_IF_ERROR(
        add_matrix(blk + "ffn_up.weight", l.w3 + layer * hidden * dim * f32, dim, hidden));
    SLLM_RETURN_IF_ERROR(add_vector(blk + "ffn_norm.weight", l.rms_ffn + layer * dim * f32, dim));
  }
  return w.write(out_gguf);
}

}  // namespace sllm
